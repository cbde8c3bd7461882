//! `tootlake.record.status._check` for the usual status (the Python there is the reference):
//! what types cannot say (a uri, a usable id, an author, times that parse and are not from
//! the future), read from the decoded Structs in one call. It answers only where every check
//! passes and the times have Mastodon's usual form; anything else (a rejection, an edit time
//! to coerce, another time format) returns None, and the Python decides.

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyString, PyTuple};

use crate::post::usual_time_micros;

/// `EARLIEST`: 2000-01-01T00:00:00Z, in seconds since the epoch.
pub(crate) const EARLIEST_SECONDS: i64 = 946_684_800;
/// `FUTURE_SLACK`: a day.
const SLACK_SECONDS: i64 = 86_400;
/// `_SNOWFLAKE_SHIFT`
const SNOWFLAKE_SHIFT: u32 = 16;

/// `latest_time()` as microseconds since the epoch, and `_snowflake_limit` of it: the wall
/// clock's second, plus one, plus a day (the Python's `_LIMITS`).
pub(crate) fn limits() -> Option<(i64, u128)> {
    let second =
        i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?;
    let latest = second + 1 + SLACK_SECONDS;
    let limit = ((u128::try_from(latest).ok()? * 1000) << SNOWFLAKE_SHIFT) | 0xFFFF;
    Some((latest * 1_000_000, limit))
}

/// `usable_id(value, latest)` of a str id; None where the Python says None.
pub(crate) fn usable_text_id(id: &str, limit: u128) -> bool {
    let b = id.as_bytes();
    if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
        if b.len() >= 17 {
            let significant = &b[b.iter().position(|&c| c != b'0').unwrap_or(b.len())..];
            // more than 39 digits does not fit a u128, and is beyond any limit anyway
            if significant.len() > 39 {
                return false;
            }
            let value = significant
                .iter()
                .fold(0u128, |acc, &c| acc * 10 + u128::from(c - b'0'));
            if value > limit {
                return false;
            }
        }
        return b.len() <= 64;
    }
    (1..=64).contains(&b.len())
        && b[0] != b'-'
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// A `str | None` that is a non-empty str.
fn non_empty(value: &Bound<'_, PyAny>) -> bool {
    value
        .cast_exact::<PyString>()
        .is_ok_and(|s| s.to_str().is_ok_and(|s| !s.is_empty()))
}

/// `status.MAX_URI`: the longest uri the Python keeps (in characters; here its UTF-8 bytes,
/// never fewer, so a uri this declines may still be kept: the Python decides).
pub(crate) const MAX_URI: usize = 2_048;

/// A uri the Python keeps: a non-empty str of at most `MAX_URI` characters.
fn usable_uri(value: &Bound<'_, PyAny>) -> bool {
    value.cast_exact::<PyString>().is_ok_and(|s| {
        s.to_str()
            .is_ok_and(|s| !s.is_empty() && s.len() <= MAX_URI)
    })
}

fn check<'py>(
    py: Python<'py>,
    status: &Bound<'py, PyAny>,
    coerced: &Bound<'py, PyAny>,
    size: &Bound<'py, PyAny>,
    valid_status: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if !size.is_exact_instance_of::<PyInt>() {
        return Ok(None);
    }
    if !usable_uri(&status.getattr(intern!(py, "uri"))?) {
        return Ok(None);
    }
    let Some((latest, limit)) = limits() else {
        return Ok(None);
    };
    let id = status.getattr(intern!(py, "id"))?;
    let status_id = if let Ok(text) = id.cast_exact::<PyString>() {
        match text.to_str() {
            Ok(s) if usable_text_id(s, limit) => id.clone(),
            _ => return Ok(None),
        }
    } else if id.is_exact_instance_of::<PyInt>() {
        match id.extract::<i64>() {
            // (then read as its text is, the snowflake limit included)
            Ok(n) if n >= 0 && usable_text_id(&n.to_string(), limit) => {
                PyString::new(py, &n.to_string()).into_any()
            }
            _ => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    let account = status.getattr(intern!(py, "account"))?;
    if !(non_empty(&account.getattr(intern!(py, "acct"))?)
        || non_empty(&account.getattr(intern!(py, "username"))?))
    {
        return Ok(None);
    }
    let in_range = |micros: i64| (EARLIEST_SECONDS * 1_000_000..=latest).contains(&micros);
    let Some((created_at, micros)) = usual_time_micros(&status.getattr(intern!(py, "created_at"))?)
    else {
        return Ok(None);
    };
    if !in_range(micros) {
        return Ok(None);
    }
    let edited = status.getattr(intern!(py, "edited_at"))?;
    let edited_at = if edited.is_none() {
        edited
    } else {
        let Ok(text) = edited.cast_exact::<PyString>() else {
            return Ok(None);
        };
        if text.to_str().is_ok_and(str::is_empty) {
            py.None().into_bound(py)
        } else {
            match usual_time_micros(&edited) {
                Some((time, micros)) if in_range(micros) => time,
                _ => return Ok(None), // (the Python coerces it, or reads another format)
            }
        }
    };
    let args = PyTuple::new(
        py,
        [
            status.clone(),
            status_id,
            created_at,
            edited_at,
            coerced.clone(),
            size.clone(),
        ],
    )?;
    Ok(Some(valid_status.call1(args)?))
}

/// `_check(status, coerced, None, size)` for a status decoded from `size` bytes: the
/// ValidStatus (`valid_status`: the class), or None to let the Python decide.
#[pyfunction]
pub fn check_status<'py>(
    py: Python<'py>,
    status: &Bound<'py, PyAny>,
    coerced: &Bound<'py, PyAny>,
    size: &Bound<'py, PyAny>,
    valid_status: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    match crate::guarded(|| Some(check(py, status, coerced, size, valid_status))) {
        Some(result) => result,
        None => Ok(None), // (a panic, reported on stderr)
    }
}
