//! C-speed versions of tootlake's per-post helpers: the text functions of `tootlake.text`,
//! the Arrow columns of `tootlake.lake.writer.records_to_batch`, `to_post` (post.rs) and the
//! WebSocket frame of the streaming API (frame.rs).
//!
//! Each function here equals Python code on every input; that code stays the reference (for
//! the text, the regular expressions of `src/tootlake/text.py` define what these scanners do;
//! for the columns, `pyarrow.array`), and tests/test_native.py holds the two equal with
//! property tests. Where a function cannot answer (a str holding lone surrogates has no UTF-8
//! form; a value of a type the column does not expect) it returns None and the caller runs
//! the Python code. docs/native.md says why this module exists and how it is built.

mod check;
mod fast;
mod frame;
mod post;

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyDateAccess, PyDateTime, PyInt, PyList, PyString, PyTimeAccess, PyTuple,
    PyTzInfo, PyTzInfoAccess,
};

/// Python's `str.isspace()` (and `\s` of its `re`): Unicode White_Space, plus U+001C-U+001F.
#[inline]
fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// `f()`, or None where it panics (a defect here must not stop a collector: the caller
/// runs the Python instead, and the panic message names the defect on stderr).
pub(crate) fn guarded<T>(f: impl FnOnce() -> Option<T>) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(None)
}

/// The UTF-8 form of a Python str; None when it holds lone surrogates.
#[inline]
fn utf8<'a>(text: &'a Bound<'_, PyString>) -> Option<&'a str> {
    text.to_str().ok() // (the UnicodeEncodeError is dropped: None says "use Python")
}

// ---------------------------------------------------------------------------------------
// html_to_text's fast path: _simple_text(_with_newlines(html))

/// The first place from `at` that is not a space (`\s`), or the end.
#[inline]
fn skip_spaces(s: &str, mut at: usize) -> usize {
    for c in s[at..].chars() {
        if !is_py_space(c) {
            break;
        }
        at += c.len_utf8();
    }
    at
}

/// The end of `_PARAGRAPH_BREAK` = `</p>\s*<p(?:\s[^>]*)?>` (IGNORECASE) matched at `at`.
fn paragraph_break_end(s: &str, at: usize) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < at + 4 || b[at] != b'<' || b[at + 1] != b'/' || !matches!(b[at + 2], b'p' | b'P') {
        return None;
    }
    if b[at + 3] != b'>' {
        return None;
    }
    // \s* then `<p`: no backtracking can help (fewer spaces leave a space where `<` must be)
    let i = skip_spaces(s, at + 4);
    if b.len() < i + 2 || b[i] != b'<' || !matches!(b[i + 1], b'p' | b'P') {
        return None;
    }
    let i = i + 2;
    if i >= b.len() {
        return None;
    }
    if b[i] == b'>' {
        return Some(i + 1);
    }
    // `\s[^>]*>`: a space, then up to the first `>`, which must come
    let c = s[i..].chars().next()?;
    if !is_py_space(c) {
        return None;
    }
    let from = i + c.len_utf8();
    s[from..].find('>').map(|k| from + k + 1)
}

/// The end of `_LINE_BREAK` = `<br\s*/?>` (IGNORECASE) matched at `at`.
fn line_break_end(s: &str, at: usize) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < at + 4
        || b[at] != b'<'
        || !matches!(b[at + 1], b'b' | b'B')
        || !matches!(b[at + 2], b'r' | b'R')
    {
        return None;
    }
    let mut i = skip_spaces(s, at + 3);
    if i < b.len() && b[i] == b'/' {
        i += 1;
    }
    if i < b.len() && b[i] == b'>' {
        Some(i + 1)
    } else {
        None
    }
}

/// Every non-overlapping match of a pattern (`end_at`: its end when it matches at a `<`)
/// replaced by `with`, left to right, as `re.sub` does.
fn replace_matches(s: &str, end_at: fn(&str, usize) -> Option<usize>, with: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some(k) = s[at..].find('<') {
        let start = at + k;
        match end_at(s, start) {
            Some(end) => {
                out.push_str(&s[copied..start]);
                out.push_str(with);
                copied = end;
                at = end;
            }
            None => at = start + 1,
        }
    }
    out.push_str(&s[copied..]);
    out
}

/// `_with_newlines`: paragraph breaks as a blank line, `<br>` as a newline.
pub(crate) fn with_newlines(html: &str) -> String {
    let paragraphs = replace_matches(html, paragraph_break_end, "\n\n");
    replace_matches(&paragraphs, line_break_end, "\n")
}

/// `_SIMPLE_TAG_NAMES`
#[inline]
fn is_simple_tag_name(name: &[u8]) -> bool {
    matches!(
        name,
        b"span"
            | b"a"
            | b"p"
            | b"br"
            | b"b"
            | b"blockquote"
            | b"code"
            | b"del"
            | b"em"
            | b"i"
            | b"li"
            | b"ol"
            | b"pre"
            | b"s"
            | b"strong"
            | b"u"
            | b"ul"
    )
}

/// The end of `_SIMPLE_TAG` matched at `at` (a `<`): `</NAME>`, or `<NAME` then
/// ` name="value"` attributes (`[a-z0-9-]+`, a value without `"<>`) then `>`. At most one
/// name can be followed by ` ` or `>`, so the name is the run of lower-case letters.
fn simple_tag_end(b: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    let closing = i < b.len() && b[i] == b'/';
    if closing {
        i += 1;
    }
    let name_start = i;
    while i < b.len() && b[i].is_ascii_lowercase() {
        i += 1;
    }
    if !is_simple_tag_name(&b[name_start..i]) {
        return None;
    }
    if !closing {
        while i < b.len() && b[i] == b' ' {
            let mut j = i + 1;
            let name = j;
            while j < b.len()
                && (b[j].is_ascii_lowercase() || b[j].is_ascii_digit() || b[j] == b'-')
            {
                j += 1;
            }
            if j == name || j + 1 >= b.len() || b[j] != b'=' || b[j + 1] != b'"' {
                return None; // an attribute begun and not finished: `>` cannot come here
            }
            j += 2;
            while j < b.len() && !matches!(b[j], b'"' | b'<' | b'>') {
                j += 1;
            }
            if j >= b.len() || b[j] != b'"' {
                return None;
            }
            i = j + 1;
        }
    }
    if i < b.len() && b[i] == b'>' {
        Some(i + 1)
    } else {
        None
    }
}

const MAX_TAGS: usize = 250; // `_MAX_TAGS`
const ENTITIES: [(&str, &str); 7] = [
    ("amp;", "&"),
    ("lt;", "<"),
    ("gt;", ">"),
    ("quot;", "\""),
    ("#39;", "'"),
    ("apos;", "'"),
    ("nbsp;", "\u{a0}"),
];

/// The entity at `rest` (just after a `&`): its text and length, when it is one of
/// `_ENTITY_CHARS`.
#[inline]
fn entity_at(rest: &[u8]) -> Option<(&'static str, usize)> {
    ENTITIES
        .iter()
        .find(|(name, _)| rest.starts_with(name.as_bytes()))
        .map(|(name, text)| (*text, name.len()))
}

/// `_simple_text(html)` for `html` with its breaks already newlines.
pub(crate) fn simple_text_of(html: &str) -> Option<String> {
    let b = html.as_bytes();
    let first = html.chars().next()?;
    if matches!(first, ' ' | '\t' | '\n' | '\u{c}' | '\r' | '\u{feff}') || html.starts_with("</") {
        return None;
    }
    let mut text = String::with_capacity(html.len());
    let mut tags = 0;
    let mut copied = 0;
    let mut at = 0;
    let mut ampersand = false;
    while let Some(k) = b[at..].iter().position(|&c| c == b'<') {
        let start = at + k;
        let end = simple_tag_end(b, start)?; // another tag or a bare `<`: the parser's work
        tags += 1;
        if tags > MAX_TAGS {
            return None;
        }
        text.push_str(&html[copied..start]);
        copied = end;
        at = end;
    }
    text.push_str(&html[copied..]);
    for &c in text.as_bytes() {
        match c {
            0 | b'\r' => return None, // NUL and CR: libxml2 drops them or makes LF of them
            b'&' => ampersand = true,
            _ => {}
        }
    }
    if !ampersand {
        return Some(text);
    }
    // `_ODD_ENTITY` is searched in the whole document, tags included
    let mut from = 0;
    while let Some(k) = b[from..].iter().position(|&c| c == b'&') {
        let at = from + k + 1;
        entity_at(&b[at..])?;
        from = at;
    }
    let t = text.as_bytes();
    let mut decoded = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(k) = t[from..].iter().position(|&c| c == b'&') {
        let at = from + k;
        let (chars, len) = entity_at(&t[at + 1..])?; // (every `&` starts one: checked above)
        decoded.push_str(&text[copied..at]);
        decoded.push_str(chars);
        copied = at + 1 + len;
        from = copied;
    }
    decoded.push_str(&text[copied..]);
    Some(decoded)
}

/// `_simple_text(_with_newlines(html))`: the text of a status' HTML by string work when it
/// holds only what Mastodon's sanitiser writes; None for anything else (the parser's work),
/// for "" and for a str with lone surrogates.
#[pyfunction]
fn simple_text(html: &Bound<'_, PyString>) -> Option<String> {
    let html = utf8(html)?;
    if html.is_empty() {
        return None;
    }
    guarded(|| simple_text_of(&with_newlines(html)))
}

// ---------------------------------------------------------------------------------------
// count_words

/// `len(text.split())`; None for a str with lone surrogates.
#[pyfunction]
fn count_words(text: &Bound<'_, PyString>) -> Option<usize> {
    let text = utf8(text)?;
    guarded(|| Some(count_words_of(text)))
}

/// `len(text.split())`
pub(crate) fn count_words_of(text: &str) -> usize {
    let mut words = 0;
    let mut in_word = false;
    if text.is_ascii() {
        for &c in text.as_bytes() {
            let space = matches!(c, b'\t'..=b'\r' | 0x1c..=b' ');
            if !space && !in_word {
                words += 1;
            }
            in_word = !space;
        }
    } else {
        for c in text.chars() {
            let space = is_py_space(c);
            if !space && !in_word {
                words += 1;
            }
            in_word = !space;
        }
    }
    words
}

// ---------------------------------------------------------------------------------------
// has_opt_out_tag's pre-check: _may_hold_tag

const TAG_LOOKS: usize = 4; // `_TAG_LOOKS`

/// `_MAY_BE_N` at `at`: `n` or `N` not followed by an ASCII letter or digit other than `o`,
/// or `&`, NUL or a character beyond ASCII (any byte from 0x80 starts one).
#[inline]
fn may_be_n(b: &[u8], at: usize) -> bool {
    match b.get(at) {
        Some(b'n' | b'N') => match b.get(at + 1) {
            Some(&c) => !(c.is_ascii_alphanumeric() && c != b'o' && c != b'O'),
            None => true,
        },
        Some(&c) => c == b'&' || c == 0 || c >= 0x80,
        None => false,
    }
}

/// `<!` or `<?` at `at`.
#[inline]
fn comment_or_pi(b: &[u8], at: usize) -> bool {
    b.get(at) == Some(&b'<') && matches!(b.get(at + 1), Some(b'!' | b'?'))
}

/// The end of `<(?:[^>"']|"[^"]*"|'[^']*')*>` at `at` (a `<`): a quoted value may hold `>`.
fn quoted_tag_end(b: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    while i < b.len() {
        match b[i] {
            b'>' => return Some(i + 1),
            q @ (b'"' | b'\'') => {
                let close = b[i + 1..].iter().position(|&c| c == q)?;
                i += close + 2;
            }
            _ => i += 1,
        }
    }
    None
}

/// The end of `<[^>]*>` at `at` (a `<`).
fn plain_tag_end(b: &[u8], at: usize) -> Option<usize> {
    b[at + 1..]
        .iter()
        .position(|&c| c == b'>')
        .map(|k| at + k + 2)
}

/// `(?:TAG)*(?:MAY_BE_N|<[!?])` matched at `at`: tags one after another, then, at the end of
/// any of them (the regex backtracks through each), what may become an `n`, or `<!`, `<?`.
fn after_tags(b: &[u8], mut at: usize, tag_end: fn(&[u8], usize) -> Option<usize>) -> bool {
    loop {
        if may_be_n(b, at) || comment_or_pi(b, at) {
            return true;
        }
        if b.get(at) != Some(&b'<') {
            return false;
        }
        match tag_end(b, at) {
            Some(end) => at = end,
            None => return false,
        }
    }
}

/// `&(?:#0*35|#[xX]0*23|num)` somewhere in `b`.
fn number_sign_entity(b: &[u8]) -> bool {
    let mut from = 0;
    while let Some(k) = b[from..].iter().position(|&c| c == b'&') {
        let mut i = from + k + 1;
        if b[i..].starts_with(b"num") {
            return true;
        }
        if b.get(i) == Some(&b'#') {
            i += 1;
            let hex = matches!(b.get(i), Some(b'x' | b'X'));
            if hex {
                i += 1;
            }
            while b.get(i) == Some(&b'0') {
                i += 1;
            }
            if b[i..].starts_with(if hex { b"23" } else { b"35" }) {
                return true;
            }
        }
        from = from + k + 1;
    }
    false
}

/// `_may_hold_tag(html)`: False when no opt-out tag can be in `html`; None for a str with
/// lone surrogates.
#[pyfunction]
fn may_hold_tag(html: &Bound<'_, PyString>) -> Option<bool> {
    let html = utf8(html)?;
    guarded(|| Some(may_hold_tag_of(html)))
}

/// `_may_hold_tag(html)`
pub(crate) fn may_hold_tag_of(html: &str) -> bool {
    let b = html.as_bytes();
    if b.contains(&b'&') && number_sign_entity(b) {
        return true;
    }
    if html.contains('\u{ff03}') || html.contains('\u{fe5f}') {
        return true;
    }
    // `_NUMBER_SIGN_THEN` = `#(?:<span>)?+(?:MAY_BE_N|<)`, its matches left to right
    let mut looked = 0;
    let mut from = 0;
    while let Some(k) = b[from..].iter().position(|&c| c == b'#') {
        let sign = from + k;
        let mut at = sign + 1;
        if b[at..].starts_with(b"<span>") {
            at += 6; // possessive: not given back when what follows fails
        }
        if may_be_n(b, at) {
            return true;
        }
        if b.get(at) != Some(&b'<') {
            from = sign + 1;
            continue;
        }
        if looked >= TAG_LOOKS {
            return true; // (the full check is linear)
        }
        looked += 1;
        if after_tags(b, at, quoted_tag_end) || after_tags(b, at, plain_tag_end) {
            return true;
        }
        from = at + 1;
    }
    false
}

// ---------------------------------------------------------------------------------------
// Arrow columns: the buffers `pyarrow.array(values, type=...)` makes, for the lake's types

/// The column kinds of the lake's schemas (`tootlake.lake.writer._KINDS` names them).
const STRING: u8 = 0;
const INT64: u8 = 1;
const BOOL: u8 = 2;
const TIMESTAMP_US_UTC: u8 = 3;
pub(crate) const LIST_OF_STRING: u8 = 4;

/// A validity bitmap (bit set: a value), kept only when some value is null; grown as values
/// come (`rows::PostRows` does not know its length in advance).
struct Validity {
    bits: Vec<u8>,
    nulls: usize,
}

impl Validity {
    fn new(len: usize) -> Self {
        Validity {
            bits: vec![0xff; len.div_ceil(8)],
            nulls: 0,
        }
    }
    #[inline]
    fn null(&mut self, i: usize) {
        if i / 8 >= self.bits.len() {
            self.bits.resize(i / 8 + 1, 0xff);
        }
        self.bits[i / 8] &= !(1 << (i % 8));
        self.nulls += 1;
    }
    /// Undoes `null(i)` (a row taken back).
    fn unnull(&mut self, i: usize) {
        self.bits[i / 8] |= 1 << (i % 8);
        self.nulls -= 1;
    }
    fn into_py<'py>(mut self, py: Python<'py>, len: usize) -> Py<PyAny> {
        if self.nulls == 0 {
            py.None()
        } else {
            self.bits.resize(len.div_ceil(8), 0xff);
            PyBytes::new(py, &self.bits).into_any().unbind()
        }
    }
}

/// Appends the UTF-8 of a str to `data`; false for anything else (or a str that has none).
#[inline]
fn push_str(value: &Bound<'_, PyAny>, data: &mut Vec<u8>) -> bool {
    if !value.is_exact_instance_of::<PyString>() {
        return false;
    }
    // SAFETY: checked above that it is exactly a str
    let text = unsafe { value.cast_unchecked::<PyString>() };
    match text.to_str() {
        Ok(s) => {
            data.extend_from_slice(s.as_bytes());
            true
        }
        Err(_) => false,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Where a column was before a row (`Column::mark`).
pub(crate) struct Mark {
    offsets: usize,
    data: usize,
    item_offsets: usize,
    items: usize,
    nulls: usize,
    len: usize,
}

/// Microseconds since the epoch of an aware datetime in UTC (`datetime.timezone.utc`).
#[inline]
fn utc_micros(value: &Bound<'_, PyAny>, utc: &Bound<'_, PyTzInfo>) -> Option<i64> {
    if !value.is_exact_instance_of::<PyDateTime>() {
        return None;
    }
    // SAFETY: checked above that it is exactly a datetime
    let dt = unsafe { value.cast_unchecked::<PyDateTime>() };
    if !dt.get_tzinfo()?.is(utc) {
        return None; // naive, or another zone: pyarrow's own conversion decides
    }
    let days = days_from_civil(
        dt.get_year() as i64,
        dt.get_month() as i64,
        dt.get_day() as i64,
    );
    let seconds = days * 86_400
        + dt.get_hour() as i64 * 3_600
        + dt.get_minute() as i64 * 60
        + dt.get_second() as i64;
    Some(seconds * 1_000_000 + dt.get_microsecond() as i64)
}

/// One column of Arrow buffers, filled value by value.
pub(crate) struct Column {
    kind: u8,
    len: usize, // values pushed
    validity: Validity,
    offsets: Vec<u8>,      // strings, lists: i32 offsets
    data: Vec<u8>,         // strings: UTF-8; int64, timestamps: values; bools: bits
    item_offsets: Vec<u8>, // lists: the i32 offsets of their strings (in `data`)
    items: usize,
    failed: bool, // a value this cannot hold: pyarrow makes the column
}

impl Column {
    pub(crate) fn new(kind: u8, n: usize) -> Self {
        let mut column = Column {
            kind,
            len: 0,
            validity: Validity::new(n),
            offsets: Vec::new(),
            data: Vec::new(),
            item_offsets: Vec::new(),
            items: 0,
            failed: kind > LIST_OF_STRING,
        };
        match kind {
            STRING => {
                column.offsets.reserve((n + 1) * 4);
                column.offsets.extend_from_slice(&0i32.to_le_bytes());
                column.data.reserve(n * 16);
            }
            INT64 | TIMESTAMP_US_UTC => column.data.reserve(n * 8),
            BOOL => column.data.resize(n.div_ceil(8), 0),
            _ => {
                column.offsets.reserve((n + 1) * 4);
                column.offsets.extend_from_slice(&0i32.to_le_bytes());
                column.item_offsets.extend_from_slice(&0i32.to_le_bytes());
            }
        }
        column
    }

    #[inline]
    pub(crate) fn push(&mut self, i: usize, value: &Bound<'_, PyAny>, utc: &Bound<'_, PyTzInfo>) {
        if !self.failed && self.try_push(i, value, utc).is_none() {
            self.failed = true;
        }
        self.len = i + 1;
    }

    pub(crate) fn kind(&self) -> u8 {
        self.kind
    }

    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// Where the column is now, for `take_back`.
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            offsets: self.offsets.len(),
            data: self.data.len(),
            item_offsets: self.item_offsets.len(),
            items: self.items,
            nulls: self.validity.nulls,
            len: self.len,
        }
    }

    /// The column as it was at `mark`, before value `i` (the last one) was pushed: a row
    /// another column could not hold is taken back from every column.
    pub(crate) fn take_back(&mut self, i: usize, mark: &Mark) {
        self.offsets.truncate(mark.offsets);
        self.item_offsets.truncate(mark.item_offsets);
        self.items = mark.items;
        if self.kind == BOOL {
            if let Some(byte) = self.data.get_mut(i / 8) {
                *byte &= !(1 << (i % 8));
            }
        } else {
            self.data.truncate(mark.data);
        }
        if self.validity.nulls > mark.nulls {
            self.validity.unnull(i);
        }
        self.len = mark.len;
        self.failed = false;
    }

    /// Bytes of strings held (offsets and fixed-width values aside).
    pub(crate) fn data_len(&self) -> usize {
        self.data.len()
    }

    #[inline]
    fn end_offset(offsets: &mut Vec<u8>, end: usize) -> Option<()> {
        let end = i32::try_from(end).ok()?; // (beyond 2 GiB: pyarrow makes it)
        offsets.extend_from_slice(&end.to_le_bytes());
        Some(())
    }

    fn try_push(
        &mut self,
        i: usize,
        value: &Bound<'_, PyAny>,
        utc: &Bound<'_, PyTzInfo>,
    ) -> Option<()> {
        let null = value.is_none();
        if null {
            self.validity.null(i);
        }
        match self.kind {
            STRING => {
                if !null && !push_str(value, &mut self.data) {
                    return None;
                }
                Self::end_offset(&mut self.offsets, self.data.len())
            }
            INT64 | TIMESTAMP_US_UTC => {
                let number = if null {
                    0
                } else if self.kind == INT64 {
                    if !value.is_exact_instance_of::<PyInt>() {
                        return None;
                    }
                    value.extract::<i64>().ok()? // beyond int64: pyarrow says so
                } else {
                    utc_micros(value, utc)?
                };
                self.data.extend_from_slice(&number.to_le_bytes());
                Some(())
            }
            BOOL => {
                if i / 8 >= self.data.len() {
                    self.data.resize(i / 8 + 1, 0);
                }
                if !null {
                    if !value.is_exact_instance_of::<PyBool>() {
                        return None;
                    }
                    if value.is_truthy().ok()? {
                        self.data[i / 8] |= 1 << (i % 8);
                    }
                }
                Some(())
            }
            _ => {
                if !null {
                    let list = value.cast_exact::<PyList>().ok()?;
                    for item in list.iter() {
                        // (a null item pyarrow keeps as one: left to it)
                        if !push_str(&item, &mut self.data) {
                            return None;
                        }
                        self.items += 1;
                        Self::end_offset(&mut self.item_offsets, self.data.len())?;
                    }
                }
                Self::end_offset(&mut self.offsets, self.items)
            }
        }
    }

    /// `push` of a value the native status gives (`fast::Val`): the same buffers as its
    /// Python value would make.
    #[inline]
    pub(crate) fn push_value(
        &mut self,
        i: usize,
        value: &fast::Val<'_, '_>,
        utc: &Bound<'_, PyTzInfo>,
    ) {
        if !self.failed && self.try_push_value(i, value, utc).is_none() {
            self.failed = true;
        }
        self.len = i + 1;
    }

    fn try_push_value(
        &mut self,
        i: usize,
        value: &fast::Val<'_, '_>,
        utc: &Bound<'_, PyTzInfo>,
    ) -> Option<()> {
        use fast::Val;
        if let Val::Py(value) = value {
            return self.try_push(i, value, utc);
        }
        if matches!(value, Val::Null) {
            self.validity.null(i);
        }
        match (self.kind, value) {
            (STRING, Val::Null) => Self::end_offset(&mut self.offsets, self.data.len()),
            (STRING, Val::Str(s)) => {
                self.data.extend_from_slice(s.as_bytes());
                Self::end_offset(&mut self.offsets, self.data.len())
            }
            (INT64, Val::Null) | (TIMESTAMP_US_UTC, Val::Null) => {
                self.data.extend_from_slice(&0i64.to_le_bytes());
                Some(())
            }
            (INT64, Val::Int(n)) | (TIMESTAMP_US_UTC, Val::Time(n)) => {
                self.data.extend_from_slice(&n.to_le_bytes());
                Some(())
            }
            (BOOL, Val::Null) | (BOOL, Val::Bool(_)) => {
                if i / 8 >= self.data.len() {
                    self.data.resize(i / 8 + 1, 0);
                }
                if let Val::Bool(true) = value {
                    self.data[i / 8] |= 1 << (i % 8);
                }
                Some(())
            }
            (LIST_OF_STRING, Val::Null) => Self::end_offset(&mut self.offsets, self.items),
            (LIST_OF_STRING, Val::List(items)) => {
                for item in items {
                    self.data.extend_from_slice(item.as_bytes());
                    self.items += 1;
                    Self::end_offset(&mut self.item_offsets, self.data.len())?;
                }
                Self::end_offset(&mut self.offsets, self.items)
            }
            _ => None, // (a value of another kind: pyarrow decides, through the Post)
        }
    }

    /// `(null_count, [validity, ...buffers])`; a list of strings has its strings' offsets and
    /// data after its own offsets. None when a value could not be held.
    pub(crate) fn finish<'py>(mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        if self.failed {
            return Ok(None);
        }
        let len = self.len;
        if self.kind == BOOL {
            self.data.resize(len.div_ceil(8), 0);
        }
        let bytes = |b: &[u8]| PyBytes::new(py, b).into_any().unbind();
        let buffers: Vec<Py<PyAny>> = match self.kind {
            STRING => vec![bytes(&self.offsets), bytes(&self.data)],
            INT64 | TIMESTAMP_US_UTC | BOOL => vec![bytes(&self.data)],
            _ => vec![
                bytes(&self.offsets),
                bytes(&self.item_offsets),
                bytes(&self.data),
            ],
        };
        let nulls = self.validity.nulls;
        let mut all = vec![self.validity.into_py(py, len)];
        all.extend(buffers);
        Ok(Some(PyTuple::new(
            py,
            [
                nulls.into_pyobject(py)?.into_any().unbind(),
                PyList::new(py, all)?.into_any().unbind(),
            ],
        )?))
    }
}

/// The Arrow buffers of `values` as `pyarrow.array(values, type=T)` makes them, T given by
/// `kind`: `(null_count, [validity, ...buffers])`, a list of strings with a third item, the
/// buffers of its values. None when a value is not of the exact Python type the kind
/// expects (str, int, bool, a datetime in `timezone.utc`, a list of str; or None): the
/// caller asks pyarrow, which converts or refuses it as it always did.
#[pyfunction]
fn arrow_column<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyList>,
    kind: u8,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    guarded(|| {
        Some((|| {
            let utc = PyTzInfo::utc(py)?;
            let mut column = Column::new(kind, values.len());
            for (i, value) in values.iter().enumerate() {
                column.push(i, &value, &utc);
            }
            column.finish(py)
        })())
    })
    .unwrap_or(Ok(None))
}

/// The columns of `records` (Structs whose fields are the columns, in order: `astuple`
/// gives them), each as `arrow_column` gives it, or None where a value could not be held
/// (that column is pyarrow's to make). One pass over the records, each read once.
#[pyfunction]
fn arrow_batch<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
    kinds: Vec<u8>,
    astuple: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    guarded(|| {
        Some((|| {
            let utc = PyTzInfo::utc(py)?;
            let n = records.len();
            let mut columns: Vec<Column> = kinds.iter().map(|&k| Column::new(k, n)).collect();
            for (i, record) in records.iter().enumerate() {
                let fields = astuple.call1((record,))?;
                let Ok(fields) = fields.cast_into::<PyTuple>() else {
                    return Ok(None);
                };
                if fields.len() != columns.len() {
                    return Ok(None);
                }
                for (j, column) in columns.iter_mut().enumerate() {
                    column.push(i, &fields.get_borrowed_item(j)?.to_owned(), &utc);
                }
            }
            let out = PyList::empty(py);
            for column in columns {
                match column.finish(py)? {
                    Some(built) => out.append(built)?,
                    None => out.append(py.None())?,
                }
            }
            Ok(Some(out))
        })())
    })
    .unwrap_or(Ok(None))
}

#[pymodule]
fn tootlake_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(simple_text, m)?)?;
    m.add_function(wrap_pyfunction!(count_words, m)?)?;
    m.add_function(wrap_pyfunction!(may_hold_tag, m)?)?;
    m.add_function(wrap_pyfunction!(arrow_column, m)?)?;
    m.add_function(wrap_pyfunction!(arrow_batch, m)?)?;
    m.add_function(wrap_pyfunction!(post::to_post, m)?)?;
    m.add_class::<post::PostRows>()?;
    m.add_function(wrap_pyfunction!(frame::ws_frame, m)?)?;
    m.add_function(wrap_pyfunction!(check::check_status, m)?)?;
    m.add_function(wrap_pyfunction!(fast::fast_status, m)?)?;
    m.add_function(wrap_pyfunction!(fast::ws_fast_status, m)?)?;
    m.add_class::<fast::FastStatus>()?;
    m.add("POST_FIELDS", PyTuple::new(m.py(), post::POST_FIELDS)?)?;
    m.add(
        "VALID_STATUS_FIELDS",
        PyTuple::new(m.py(), post::VALID_STATUS_FIELDS)?,
    )?;
    m.add("STATUS_FIELDS", PyTuple::new(m.py(), post::STATUS_FIELDS)?)?;
    m.add(
        "ACCOUNT_FIELDS",
        PyTuple::new(m.py(), post::ACCOUNT_FIELDS)?,
    )?;
    Ok(())
}
