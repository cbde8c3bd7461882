//! The streaming WebSocket frame of Mastodon, `{"stream":[...],"event":"update","payload":"..."}`,
//! read in one pass: the event's name and the payload's JSON string unescaped straight into
//! the UTF-8 bytes `decode_status` reads. The reference is `parse_ws_frame_python` in
//! src/tootlake/sources/mastodon.py (msgspec reads the frame, then the payload string, then
//! Python encodes it again: four passes over a status's text). Only the usual shape is read
//! here; anything else (another key, an escape in a key or a name, a lone surrogate, a
//! payload that is not a string, invalid UTF-8 or JSON) returns None and the Python runs.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

#[inline]
fn skip_ws(b: &[u8], mut at: usize) -> usize {
    while at < b.len() && matches!(b[at], b' ' | b'\t' | b'\n' | b'\r') {
        at += 1;
    }
    at
}

/// Where the next `"`, `\\` or control character is from `at` (None: none is), eight bytes
/// a step: in a status's JSON the runs between escaped quotes are a few words long, and a
/// byte at a time cost more than the rest of the frame.
#[inline]
fn next_special(b: &[u8], mut at: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while at + 8 <= b.len() {
        let x = u64::from_le_bytes(b[at..at + 8].try_into().ok()?);
        let quote = x ^ (ONES * b'"' as u64);
        let backslash = x ^ (ONES * b'\\' as u64);
        // a byte below 0x20, or equal to either: (v - ONES*n) & !v & HIGH flags any byte
        // below n (exactly for "any"; a flagged byte is found byte by byte below)
        let found = ((x.wrapping_sub(ONES * 0x20) & !x)
            | (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash))
            & HIGH;
        if found != 0 {
            break;
        }
        at += 8;
    }
    b[at..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|n| at + n)
}

/// A JSON string at `at` without escapes or control characters: (its text, the index after
/// its closing quote).
fn plain_string(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let end = next_special(b, start)?;
    if b[end] != b'"' {
        return None;
    }
    Some((&b[start..end], end + 1))
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let digits = b.get(at..at + 4)?;
    let mut value = 0u32;
    for &d in digits {
        value = value * 16 + (d as char).to_digit(16)?;
    }
    Some(value)
}

/// The JSON string at `at` unescaped into UTF-8: (the bytes, the index after its closing
/// quote). None for what msgspec refuses (a control character, a bad escape) and for a lone
/// surrogate escape, which the Python mends.
fn unescape(b: &[u8], at: usize) -> Option<(Vec<u8>, usize)> {
    if b.get(at) != Some(&b'"') {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() - at);
    let mut i = at + 1;
    loop {
        let next = next_special(b, i)?;
        out.extend_from_slice(&b[i..next]);
        i = next;
        match b[i] {
            b'"' => return Some((out, i + 1)),
            b'\\' => {
                let escaped = *b.get(i + 1)?;
                i += 2;
                match escaped {
                    b'"' => out.push(b'"'),
                    b'\\' => out.push(b'\\'),
                    b'/' => out.push(b'/'),
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0c),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'u' => {
                        let unit = hex4(b, i)?;
                        i += 4;
                        let code = match unit {
                            0xD800..=0xDBFF => {
                                // a pair, or a lone high surrogate (left to the Python)
                                if b.get(i..i + 2) != Some(b"\\u") {
                                    return None;
                                }
                                let low = hex4(b, i + 2)?;
                                if !(0xDC00..=0xDFFF).contains(&low) {
                                    return None;
                                }
                                i += 6;
                                0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                            }
                            0xDC00..=0xDFFF => return None,
                            _ => unit,
                        };
                        let c = char::from_u32(code)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return None,
                }
            }
            _ => return None, // a control character
        }
    }
}

/// `["public", ...]`: an array of plain strings, or a plain string, or null (what servers
/// send as `stream`); the index after it.
fn skip_stream(b: &[u8], at: usize) -> Option<usize> {
    match b.get(at)? {
        b'"' => plain_string(b, at).map(|(_, end)| end),
        b'n' => (b.get(at..at + 4)? == b"null").then_some(at + 4),
        b'[' => {
            let mut i = skip_ws(b, at + 1);
            if b.get(i) == Some(&b']') {
                return Some(i + 1);
            }
            loop {
                let (_, end) = plain_string(b, i)?;
                i = skip_ws(b, end);
                match b.get(i)? {
                    b',' => i = skip_ws(b, i + 1),
                    b']' => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        _ => None,
    }
}

/// (event, payload) of the usual frame; None for any other.
pub(crate) fn read_frame(b: &[u8]) -> Option<(&[u8], Option<Vec<u8>>)> {
    std::str::from_utf8(b).ok()?; // msgspec refuses invalid UTF-8 in a string
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let (mut event, mut payload): (Option<&[u8]>, Option<Option<Vec<u8>>>) = (None, None);
    let mut stream = false;
    loop {
        let (key, end) = plain_string(b, i)?;
        i = skip_ws(b, end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        match key {
            b"stream" if !stream => {
                stream = true;
                i = skip_stream(b, i)?;
            }
            b"event" if event.is_none() => {
                let (name, end) = plain_string(b, i)?;
                if name.is_empty() {
                    return None;
                }
                event = Some(name);
                i = end;
            }
            b"payload" if payload.is_none() => {
                if b.get(i..i + 4) == Some(b"null") {
                    payload = Some(None);
                    i += 4;
                } else {
                    let (text, end) = unescape(b, i)?;
                    payload = Some(Some(text));
                    i = end;
                }
            }
            _ => return None, // another key, or one given twice
        }
        i = skip_ws(b, i);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => break,
            _ => return None,
        }
    }
    if skip_ws(b, i + 1) != b.len() {
        return None;
    }
    Some((event?, payload.flatten()))
}

/// `parse_ws_frame` for the usual frame: (event, payload bytes or None); None to say "use
/// the Python" (any other frame, and bytes subclasses, which carry meaning there).
#[pyfunction]
pub(crate) fn ws_frame<'py>(data: &Bound<'py, PyAny>) -> Option<Bound<'py, PyTuple>> {
    let py = data.py();
    let bytes = data.cast_exact::<PyBytes>().ok()?;
    let (event, payload) = crate::guarded(|| read_frame(bytes.as_bytes()))?;
    let name = match event {
        b"update" => pyo3::intern!(py, "update").clone(),
        b"status.update" => pyo3::intern!(py, "status.update").clone(),
        b"delete" => pyo3::intern!(py, "delete").clone(),
        // valid UTF-8: checked with the whole frame
        other => PyString::new(py, std::str::from_utf8(other).ok()?),
    };
    let payload = match payload {
        Some(text) => PyBytes::new(py, &text).into_any(),
        None => py.None().into_bound(py),
    };
    PyTuple::new(py, [name.into_any(), payload]).ok()
}
