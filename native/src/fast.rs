//! Stage 1 of docs/design/fused-receive.md: a streamed status read into one native object
//! (`FastStatus`) instead of msgspec's tree of a few dozen Python objects. The reference is
//! `tootlake.record.status.decode_status`: `fast_status` answers only where it gives what
//! that would (the same fields, nothing coerced), and None for anything else, which the
//! Python then reads. Its consent gate is `Consent.gate`'s, and `PostRows.append_fast`
//! appends the row `to_post` would make, both read from the parsed fields while they are
//! hot. What is rare (a bio that may hold an opt-out tag, HTML beyond the sanitiser's, a
//! quote's fallback, a host or tag beyond ASCII) calls the same Python function, so the
//! answer is the Python's by construction; a value it does not read gives up, and the
//! caller makes the ValidStatus (`valid`) and takes the usual path.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::OnceLock;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDateTime, PyString, PyTuple, PyTzInfo};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::check::{limits, usable_text_id, EARLIEST_SECONDS, MAX_URI};
use crate::{count_words_of, may_hold_tag_of, simple_text_of, with_newlines};

// ---------------------------------------------------------------------------------------
// the status, as msgspec reads it into `StatusData` (any difference: serde refuses, and
// `fast_status` declines)

/// A JSON string, borrowed from the payload when it has no escapes.
#[derive(Debug)]
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// `StatusId`: a str, or an int (msgspec keeps ints beyond 64 bits: those decline here).
#[derive(Debug)]
enum Id<'a> {
    Str(Cow<'a, str>),
    Int(i64),
}

impl Id<'_> {
    /// `str(value)`
    fn text(&self) -> Cow<'_, str> {
        match self {
            Id::Str(s) => Cow::Borrowed(s),
            Id::Int(n) => Cow::Owned(n.to_string()),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Id<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Id<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Id::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Id::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Id::Str(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Id::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(Id::Int)
                    .map_err(|_| E::custom("an id beyond int64"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Any JSON value, read and dropped: what msgspec checks of a value it skips (its strings
/// hold no lone surrogate escape, it nests within bounds), which serde's own `IgnoredAny`
/// does not (it skips strings unread, and nesting without limit). serde_json reads nesting
/// to 128 levels at most (msgspec about a thousand: the Python's recursion limit).
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Skip, S::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Skip, M::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// `Present`: any JSON object (its content checked, and dropped); anything else, an array
/// too, is refused.
#[derive(Debug)]
struct Present;

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Present;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Present, M::Error> {
                while map.next_entry::<Skip, Skip>()?.is_some() {}
                Ok(Present)
            }
        }
        d.deserialize_map(V)
    }
}

/// A msgspec Struct as a Rust struct read from a JSON object, and only an object (serde's
/// derived structs also read an array of the fields in order, which msgspec refuses):
/// `required` fields must be there and not null, `optional` ones hold None when missing or
/// null; a field given twice is refused (msgspec keeps the last: the Python decides); any
/// other key's value is read as `Skip`.
macro_rules! object {
    ($name:ident { required { $($req:ident: $rty:ty),* $(,)? } optional { $($opt:ident: $oty:ty),* $(,)? } }) => {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct $name<'a> {
            $($req: $rty,)*
            $($opt: Option<$oty>,)*
            _borrows: PhantomData<&'a str>,
        }

        impl<'de: 'a, 'a> Deserialize<'de> for $name<'a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V<'a>(PhantomData<&'a str>);
                impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
                    type Value = $name<'a>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str(concat!("an object (", stringify!($name), ")"))
                    }
                    #[allow(unused_mut)]
                    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                        $(let mut $req: Option<$rty> = None;)*
                        $(let mut $opt: Option<Option<$oty>> = None;)*
                        while let Some(key) = map.next_key::<Str<'de>>()? {
                            match key.0.as_ref() {
                                $(stringify!($req) => {
                                    if $req.is_some() {
                                        return Err(de::Error::duplicate_field(stringify!($req)));
                                    }
                                    $req = Some(map.next_value()?);
                                })*
                                $(stringify!($opt) => {
                                    if $opt.is_some() {
                                        return Err(de::Error::duplicate_field(stringify!($opt)));
                                    }
                                    $opt = Some(map.next_value()?);
                                })*
                                _ => {
                                    map.next_value::<Skip>()?;
                                }
                            }
                        }
                        Ok($name {
                            $($req: $req.ok_or_else(|| de::Error::missing_field(stringify!($req)))?,)*
                            $($opt: $opt.flatten(),)*
                            _borrows: PhantomData,
                        })
                    }
                }
                d.deserialize_map(V(PhantomData))
            }
        }
    };
}

object!(Application { required {} optional { name: Str<'a>, website: Str<'a> } });
object!(Tag { required { name: Str<'a> } optional { url: Str<'a> } });
object!(Mention { required {} optional { id: Id<'a>, url: Str<'a>, acct: Str<'a> } });
object!(MovedTo { required {} optional { acct: Str<'a>, url: Str<'a> } });
object!(QuotedStatus { required {} optional { uri: Str<'a> } });
object!(Quote { required {} optional { state: Str<'a>, quoted_status: QuotedStatus<'a> } });
object!(ProfileField { required {} optional { name: Str<'a>, value: Str<'a> } });
object!(Account {
    required {}
    optional {
        id: Id<'a>,
        username: Str<'a>,
        acct: Str<'a>,
        display_name: Str<'a>,
        locked: bool,
        bot: bool,
        discoverable: bool,
        indexable: bool,
        group: bool,
        created_at: Str<'a>,
        note: Str<'a>,
        url: Str<'a>,
        followers_count: u64,
        noindex: bool,
        moved: MovedTo<'a>,
        fields: Vec<ProfileField<'a>>,
    }
});
object!(Status {
    required { uri: Str<'a>, id: Id<'a>, account: Account<'a>, created_at: Str<'a> }
    optional {
        in_reply_to_id: Id<'a>,
        in_reply_to_account_id: Id<'a>,
        sensitive: bool,
        spoiler_text: Str<'a>,
        visibility: Str<'a>,
        language: Str<'a>,
        url: Str<'a>,
        replies_count: u64,
        reblogs_count: u64,
        favourites_count: u64,
        quotes_count: u64,
        edited_at: Str<'a>,
        content: Str<'a>,
        reblog: Present,
        application: Application<'a>,
        media_attachments: Vec<Present>,
        mentions: Vec<Mention<'a>>,
        tags: Vec<Tag<'a>>,
        emojis: Vec<Present>,
        quote: Quote<'a>,
        card: Present,
        poll: Present,
    }
});

/// `Count`: not negative (serde refuses that), at most int64's largest.
fn count_ok(value: Option<u64>) -> bool {
    value.is_none_or(|n| i64::try_from(n).is_ok())
}

fn text<'b>(value: &'b Option<Str<'_>>) -> Option<&'b str> {
    value.as_ref().map(|s| s.0.as_ref())
}

/// `value or None` of a `str | None`: the text when it is not empty.
fn non_empty<'b>(value: &'b Option<Str<'_>>) -> Option<&'b str> {
    text(value).filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------------------
// times

/// Mastodon's usual time, `YYYY-MM-DDTHH:MM:SS[.mmm|.mmmmmm]Z`, as microseconds since the
/// epoch and its parts; None for any other text, and for a date or time Python's datetime
/// refuses (`post::usual_time` makes the datetime of it).
pub(crate) fn usual_time(text: &str) -> Option<(i64, [u32; 7])> {
    let text = text.as_bytes();
    let n = text.len();
    if !matches!(n, 20 | 24 | 27) || text[n - 1] != b'Z' {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<u32> {
        text[from..to].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let shape = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if shape.iter().any(|&(at, c)| text[at] != c) {
        return None;
    }
    let micros = match n {
        20 => 0,
        24 if text[19] == b'.' => digits(20, 23)? * 1000,
        27 if text[19] == b'.' => digits(20, 26)?,
        _ => return None,
    };
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if year == 0 || day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = crate::days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let seconds =
        days * 86_400 + i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second);
    Some((
        seconds * 1_000_000 + i64::from(micros),
        [year, month, day, hour, minute, second, micros],
    ))
}

/// The aware datetime (UTC) of `usual_time`'s parts.
pub(crate) fn datetime<'py>(py: Python<'py>, parts: [u32; 7]) -> PyResult<Bound<'py, PyAny>> {
    let utc = PyTzInfo::utc(py)?;
    let [year, month, day, hour, minute, second, micros] = parts;
    let narrow = |n: u32| u8::try_from(n).unwrap_or(0); // (each checked by usual_time)
    Ok(PyDateTime::new(
        py,
        i32::try_from(year).unwrap_or(1),
        narrow(month),
        narrow(day),
        narrow(hour),
        narrow(minute),
        narrow(second),
        micros,
        Some(&utc),
    )?
    .into_any())
}

// ---------------------------------------------------------------------------------------
// the object

/// A validated status, read natively (see the module docstring). Python reads `id`, `uri`,
/// `version`, `created_at`, `edited_at`, `coerced` (always empty), `size` and
/// `edited_text` as it reads a ValidStatus's; anything else through `valid()`, the
/// ValidStatus `decode_status` makes of the same bytes.
#[pyclass(module = "tootlake_native", frozen)]
pub struct FastStatus {
    // (declared first: dropped before the bytes it borrows from)
    status: Status<'static>,
    created_micros: i64,
    edited_micros: Option<i64>,
    #[pyo3(get)]
    id: Py<PyString>,
    #[pyo3(get)]
    uri: Py<PyString>,
    #[pyo3(get)]
    version: Py<PyString>,
    #[pyo3(get)]
    created_at: Py<PyAny>,
    #[pyo3(get)]
    edited_at: Py<PyAny>,
    #[pyo3(get)]
    size: usize,
    /// "update" or "status.update" when read from a WebSocket frame (`ws_fast_status`)
    #[pyo3(get)]
    event: Option<Py<PyString>>,
    valid: OnceLock<Py<PyAny>>,
    payload: Payload,
}

/// The bytes a FastStatus was read from (and borrows from): a bytes object it was given,
/// or what it unescaped from a frame itself (no bytes object made unless asked for).
enum Payload {
    Given(Py<PyBytes>),
    Own(Box<[u8]>),
}

/// The parsed status of `payload` when every check of `_check` passes with nothing to
/// coerce; None for anything else.
fn read(
    py: Python<'_>,
    payload: Payload,
    event: Option<Py<PyString>>,
) -> PyResult<Option<FastStatus>> {
    let bytes: &[u8] = match &payload {
        Payload::Given(given) => given.bind(py).as_bytes(),
        Payload::Own(own) => own,
    };
    // SAFETY: neither a bytes object nor a boxed slice's contents ever change or move (the
    // Box itself may move; what it points to does not), and the FastStatus owns `payload`
    // for as long as it holds what borrows from it (`status` is dropped first).
    let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
    // (UTF-8 checked once, here: serde_json then reads the text without checking each
    // string again, a third of its time on these payloads)
    let Ok(json) = std::str::from_utf8(bytes) else {
        return Ok(None);
    };
    let Ok(status) = serde_json::from_str::<Status<'static>>(json) else {
        return Ok(None);
    };
    let Some((latest, limit)) = limits() else {
        return Ok(None);
    };
    let uri: &str = &status.uri.0;
    if uri.is_empty() || uri.len() > MAX_URI {
        return Ok(None);
    }
    let id = match &status.id {
        Id::Str(s) if usable_text_id(s, limit) => s.to_string(),
        Id::Int(n) if *n >= 0 && usable_text_id(&n.to_string(), limit) => n.to_string(),
        _ => return Ok(None),
    };
    let a = &status.account;
    if non_empty(&a.acct).is_none() && non_empty(&a.username).is_none() {
        return Ok(None);
    }
    let counts = [
        status.replies_count,
        status.reblogs_count,
        status.favourites_count,
        status.quotes_count,
        a.followers_count,
    ];
    if !counts.into_iter().all(count_ok) {
        return Ok(None);
    }
    let in_range = |micros: i64| (EARLIEST_SECONDS * 1_000_000..=latest).contains(&micros);
    let Some((created_micros, created_parts)) = usual_time(&status.created_at.0) else {
        return Ok(None);
    };
    if !in_range(created_micros) {
        return Ok(None);
    }
    let (edited_micros, edited_parts, version) = match non_empty(&status.edited_at) {
        None => (None, None, ""),
        Some(edited) => match usual_time(edited) {
            // (version: its first 19 characters, all ASCII in this form)
            Some((micros, parts)) if in_range(micros) => (Some(micros), Some(parts), &edited[..19]),
            _ => return Ok(None), // (the Python coerces it, or reads another format)
        },
    };
    let edited_at = match edited_parts {
        Some(parts) => datetime(py, parts)?.unbind(),
        None => py.None(),
    };
    Ok(Some(FastStatus {
        id: PyString::new(py, &id).unbind(),
        uri: PyString::new(py, uri).unbind(),
        version: PyString::new(py, version).unbind(),
        created_at: datetime(py, created_parts)?.unbind(),
        edited_at,
        size: bytes.len(),
        created_micros,
        edited_micros,
        event,
        valid: OnceLock::new(),
        status,
        payload,
    }))
}

/// `decode_status(payload)`'s fields as a FastStatus, or None where the Python must read it
/// (`payload` not exactly bytes, anything `decode_status` would coerce, repair or reject,
/// JSON serde reads otherwise than msgspec: a key given twice, `-0`, deep nesting...).
#[pyfunction]
pub fn fast_status(py: Python<'_>, payload: &Bound<'_, PyAny>) -> PyResult<Option<FastStatus>> {
    let Ok(bytes) = payload.cast_exact::<PyBytes>() else {
        return Ok(None);
    };
    let payload = Payload::Given(bytes.clone().unbind());
    match crate::guarded(|| Some(read(py, payload, None))) {
        Some(result) => result,
        None => Ok(None),
    }
}

/// The FastStatus of a WebSocket message that `parse_ws_frame` reads as an `update` or a
/// `status.update` with a payload `fast_status` answers for (read from the frame in the
/// same call: no bytes object for the payload); None for any other message.
#[pyfunction]
pub fn ws_fast_status(py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Option<FastStatus>> {
    let Ok(bytes) = message.cast_exact::<PyBytes>() else {
        return Ok(None);
    };
    let read_message = || -> Option<PyResult<Option<FastStatus>>> {
        let (event, payload) = crate::frame::read_frame(bytes.as_bytes())?;
        let name = match event {
            b"update" => intern!(py, "update"),
            b"status.update" => intern!(py, "status.update"),
            _ => return None,
        };
        let payload = Payload::Own(payload?.into_boxed_slice());
        Some(read(py, payload, Some(name.clone().unbind())))
    };
    match crate::guarded(read_message) {
        Some(result) => result,
        None => Ok(None),
    }
}

/// `has_opt_out_tag(html)`: the native pre-check, then the Python (`has_tag`).
fn has_opt_out_tag(
    py: Python<'_>,
    html: Option<&str>,
    has_tag: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    match html {
        Some(html) if !html.is_empty() && may_hold_tag_of(html) => {
            has_tag.call1((PyString::new(py, html),))?.is_truthy()
        }
        _ => Ok(false),
    }
}

fn has_opt_out_tag_field(
    py: Python<'_>,
    fields: &Option<Vec<ProfileField<'_>>>,
    has_tag: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    for field in fields.iter().flatten() {
        if has_opt_out_tag(py, text(&field.value), has_tag)?
            || has_opt_out_tag(py, text(&field.name), has_tag)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[pymethods]
impl FastStatus {
    /// Nothing was coerced (or this would be a ValidStatus).
    #[getter]
    fn coerced<'py>(&self, py: Python<'py>) -> Bound<'py, PyTuple> {
        PyTuple::empty(py)
    }

    /// `status.data.edited_at or ""`
    #[getter]
    fn edited_text<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        PyString::new(py, text(&self.status.edited_at).unwrap_or(""))
    }

    /// `data.account.acct or data.account.username or ""`
    #[getter]
    fn author<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        let a = &self.status.account;
        PyString::new(
            py,
            non_empty(&a.acct).or(non_empty(&a.username)).unwrap_or(""),
        )
    }

    /// The bytes it was read from (the status's JSON).
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        match &self.payload {
            Payload::Given(given) => given.bind(py).clone(),
            Payload::Own(own) => PyBytes::new(py, own),
        }
    }

    /// The ValidStatus of the same bytes, made once (`decode`: `decode_status`).
    fn valid<'py>(
        &self,
        py: Python<'py>,
        decode: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(valid) = self.valid.get() {
            return Ok(valid.bind(py).clone());
        }
        let valid = decode.call1((self.payload(py),))?;
        Ok(self.valid.get_or_init(|| valid.unbind()).bind(py).clone())
    }

    /// `Consent(mode, skip_locked, skip_bots).gate(status)` (mode: "opt-out", "opt-in" or
    /// "none"); `has_tag`: `tootlake.text.has_opt_out_tag`, for bios that may hold one.
    fn gate<'py>(
        &self,
        py: Python<'py>,
        mode: &str,
        skip_locked: bool,
        skip_bots: bool,
        has_tag: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyString>>> {
        let s = &self.status;
        let a = &s.account;
        let gate = |name: &Bound<'py, PyString>| Ok(Some(name.clone()));
        if s.reblog.is_some() {
            return gate(intern!(py, "reblog"));
        }
        if text(&s.visibility) != Some("public") {
            return gate(intern!(py, "not_public"));
        }
        if mode != "none" {
            if a.noindex == Some(true) {
                return gate(intern!(py, "noindex"));
            }
            if has_opt_out_tag(py, text(&a.note), has_tag)?
                || has_opt_out_tag_field(py, &a.fields, has_tag)?
            {
                return gate(intern!(py, "opt_out_tag"));
            }
        }
        let locked = a.locked == Some(true);
        if mode == "opt-in" {
            if a.indexable != Some(true) {
                return gate(intern!(py, "not_indexable"));
            }
            if locked {
                return gate(intern!(py, "locked"));
            }
        } else if skip_locked && locked {
            return gate(intern!(py, "locked"));
        }
        if skip_bots && a.bot == Some(true) {
            return gate(intern!(py, "bot"));
        }
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------
// the post's row (to_post's 48 fields, as native/src/post.rs builds them from the Structs)

/// A value of a row, for `Column::push_value`.
pub(crate) enum Val<'a, 'py> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
    Time(i64),
    List(Vec<Cow<'a, str>>),
    Py(Bound<'py, PyAny>),
}

/// The native path gives up (the caller takes the usual one), or Python raised.
pub(crate) enum Stop {
    GiveUp,
    Raised(PyErr),
}

impl From<PyErr> for Stop {
    fn from(err: PyErr) -> Self {
        Stop::Raised(err)
    }
}

type Out<T> = Result<T, Stop>;

/// The Python functions `append_fast` falls back on (`tootlake.record.status._HELPERS`).
pub(crate) struct FastHelpers<'py> {
    pub(crate) html_to_text: Bound<'py, PyAny>,
    pub(crate) has_opt_out_tag: Bound<'py, PyAny>,
    pub(crate) without_quote_fallback: Bound<'py, PyAny>,
    pub(crate) parse_time: Bound<'py, PyAny>,
}

/// `host_of(url)`; gives up beyond ASCII (Python's lower() decides there).
fn host_of(url: Option<&str>) -> Out<Option<String>> {
    let Some(url) = url else { return Ok(None) };
    let Some(scheme_end) = url.find("://") else {
        return Ok(None);
    };
    let rest = &url[scheme_end + 3..];
    let rest = &rest[..rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len())];
    let host = &rest[rest.rfind('@').map_or(0, |at| at + 1)..];
    if host.is_empty() {
        return Ok(None);
    }
    if !host.is_ascii() {
        return Err(Stop::GiveUp);
    }
    Ok(Some(host.to_ascii_lowercase()))
}

/// `_qualified(acct, url, home)`
fn qualified<'a>(
    acct: Option<&'a str>,
    url: Option<&str>,
    home: &str,
) -> Out<Option<Cow<'a, str>>> {
    let Some(name) = acct.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if name.contains('@') {
        return Ok(Some(Cow::Borrowed(name)));
    }
    Ok(Some(Cow::Owned(match host_of(url)? {
        Some(host) => format!("{name}@{host}"),
        None => format!("{name}@{home}"),
    })))
}

/// A Python str's text (None: give up).
fn py_text(value: &Bound<'_, PyAny>) -> Out<String> {
    let s = value.cast::<PyString>().map_err(|_| Stop::GiveUp)?;
    Ok(s.to_str().map_err(|_| Stop::GiveUp)?.to_owned())
}

/// The 48 values of `to_post(status, observed_on, ingested_at, opted_out=, consent=)`, in
/// `POST_FIELDS` order.
pub(crate) fn fields<'a, 'py>(
    py: Python<'py>,
    fast: &'a FastStatus,
    observed_on: &Bound<'py, PyAny>,
    ingested_at: &Bound<'py, PyAny>,
    opted_out: &Bound<'py, PyAny>,
    consent: &Bound<'py, PyAny>,
    helpers: &FastHelpers<'py>,
) -> Out<Vec<Val<'a, 'py>>> {
    let s = &fast.status;
    let a = &s.account;
    let uri: &str = &s.uri.0;
    let origin = host_of(Some(uri))?.unwrap_or_default();
    let observed: Option<String> = if observed_on.is_none() {
        None
    } else {
        Some(py_text(observed_on)?).filter(|o| !o.is_empty())
    };
    let mut acct: Cow<'a, str> =
        Cow::Borrowed(non_empty(&a.acct).or(non_empty(&a.username)).unwrap_or(""));
    let mut local_host: Option<String> = None;
    if !acct.contains('@') {
        let host = match host_of(text(&a.url))? {
            Some(h) => h,
            None => observed.clone().unwrap_or_else(|| origin.clone()),
        };
        acct = Cow::Owned(format!("{acct}@{host}"));
        local_host = Some(host);
    }
    // the text of the content (its quote fallback dropped, as the Python does)
    let content = text(&s.content).unwrap_or("");
    let quoted_content: Option<String> = if !content.is_empty() && content.contains("quote-inline")
    {
        Some(py_text(
            &helpers
                .without_quote_fallback
                .call1((PyString::new(py, content),))?,
        )?)
    } else {
        None
    };
    let html = quoted_content.as_deref().unwrap_or(content);
    let text_of_post: Cow<'a, str> = if html.is_empty() {
        Cow::Borrowed("")
    } else if !html.contains(['<', '&']) {
        Cow::Owned(html.to_owned())
    } else {
        match simple_text_of(&with_newlines(html)) {
            Some(t) => Cow::Owned(t),
            None => Cow::Owned(py_text(
                &helpers.html_to_text.call1((PyString::new(py, html),))?,
            )?),
        }
    };
    let characters = text_of_post.chars().count();
    let words = count_words_of(&text_of_post);
    let given_opted_out = opted_out;
    let opted_out = if opted_out.is_none() {
        a.noindex == Some(true)
            || has_opt_out_tag(py, text(&a.note), &helpers.has_opt_out_tag)?
            || has_opt_out_tag_field(py, &a.fields, &helpers.has_opt_out_tag)?
    } else {
        opted_out.is_truthy()?
    };
    let locked = a.locked;
    let consent_value: Val<'a, 'py> = if consent.is_none() {
        Val::Str(Cow::Borrowed(if opted_out {
            "none"
        } else if a.indexable == Some(true) && locked != Some(true) {
            "opt-in"
        } else {
            "opt-out"
        }))
    } else {
        Val::Py(consent.clone())
    };
    let home: String = observed.clone().unwrap_or_else(|| origin.clone());
    let mut named: Option<Vec<Cow<'a, str>>> = None;
    if let Some(mentions) = &s.mentions {
        let mut list = Vec::with_capacity(mentions.len());
        for m in mentions {
            let Some(name) = non_empty(&m.acct) else {
                continue;
            };
            if name.contains('@') {
                list.push(Cow::Borrowed(name));
                continue;
            }
            let host = match &local_host {
                Some(h) => h.clone(),
                None => {
                    let h = host_of(text(&m.url))?.unwrap_or_else(|| home.clone());
                    local_host = Some(h.clone());
                    h
                }
            };
            list.push(Cow::Owned(format!("{name}@{host}")));
        }
        named = Some(list);
    }
    let mut reply_acct: Option<Cow<'a, str>> = None;
    if let Some(reply_to) = &s.in_reply_to_account_id {
        let wanted = reply_to.text();
        let same_author = a.id.as_ref().is_some_and(|author| author.text() == wanted);
        if same_author {
            reply_acct = Some(acct.clone()); // a self-reply: a thread
        } else if let Some(mentions) = s.mentions.as_ref().filter(|m| !m.is_empty()) {
            for m in mentions {
                if m.id.as_ref().is_some_and(|id| id.text() == wanted) {
                    let home_here = local_host.as_deref().unwrap_or(&home);
                    reply_acct = qualified(text(&m.acct), text(&m.url), home_here)?;
                    break;
                }
            }
        }
    }
    let (mut quote_uri, mut quote_state) = (None, Val::Null);
    if let Some(q) = &s.quote {
        quote_state = text(&q.state).map_or(Val::Null, |t| Val::Str(Cow::Borrowed(t)));
        if let Some(quoted) = &q.quoted_status {
            quote_uri = non_empty(&quoted.uri);
        }
    }
    let moved_to = match &a.moved {
        Some(m) => qualified(text(&m.acct), text(&m.url), &home)?,
        None => None,
    };
    let (app, app_website) = match &s.application {
        Some(app) => (non_empty(&app.name), non_empty(&app.website)),
        None => (None, None),
    };
    let username_or: Cow<'a, str> = match non_empty(&a.username) {
        Some(u) => Cow::Borrowed(u),
        None => Cow::Owned(acct.split('@').next().unwrap_or("").to_owned()),
    };
    let mut tag_names: Vec<Cow<'a, str>> = Vec::new();
    for tag in s.tags.iter().flatten() {
        let name: &str = &tag.name.0;
        if name.is_ascii() {
            tag_names.push(Cow::Owned(name.to_ascii_lowercase()));
        } else {
            let lowered = PyString::new(py, name).call_method0(intern!(py, "lower"))?;
            tag_names.push(Cow::Owned(py_text(&lowered)?));
        }
    }
    let account_created_at = match text(&a.created_at).and_then(usual_time) {
        Some((micros, _)) => Val::Time(micros),
        None => {
            let value = match text(&a.created_at) {
                Some(t) => PyString::new(py, t).into_any(),
                None => py.None().into_bound(py),
            };
            Val::Py(helpers.parse_time.call1((value,))?)
        }
    };
    let local = observed.as_deref().is_some_and(|o| o == origin);
    let opt_str = |v: Option<&'a str>| v.map_or(Val::Null, |t| Val::Str(Cow::Borrowed(t)));
    let opt_cow = |v: Option<Cow<'a, str>>| v.map_or(Val::Null, Val::Str);
    let opt_bool = |v: Option<bool>| v.map_or(Val::Null, Val::Bool);
    let or_zero = |v: Option<u64>| Val::Int(v.map_or(0, |n| n as i64)); // (checked: fits)
    let id_val = |v: &'a Option<Id<'a>>| v.as_ref().map_or(Val::Null, |id| Val::Str(id.text()));
    let len_of = |n: Option<usize>| Val::Int(n.unwrap_or(0) as i64);
    Ok(vec![
        Val::Str(Cow::Borrowed(uri)),
        Val::Str(Cow::Owned(fast.id.bind(py).to_str()?.to_owned())),
        opt_cow(observed.clone().map(Cow::Owned)),
        Val::Str(Cow::Owned(origin.clone())),
        opt_str(text(&s.url)),
        Val::Time(fast.created_micros),
        fast.edited_micros.map_or(Val::Null, Val::Time),
        Val::Py(ingested_at.clone()),
        opt_str(non_empty(&s.language)),
        opt_str(app),
        Val::Str(acct.clone()),
        Val::Str(username_or),
        Val::Str(Cow::Borrowed(non_empty(&a.display_name).unwrap_or(""))),
        Val::Bool(a.bot == Some(true)),
        Val::Str(text_of_post),
        Val::Int(characters as i64),
        Val::Int(words as i64),
        Val::List(tag_names),
        len_of(s.mentions.as_ref().map(Vec::len)),
        len_of(s.media_attachments.as_ref().map(Vec::len)),
        or_zero(s.favourites_count),
        or_zero(s.reblogs_count),
        or_zero(s.replies_count),
        Val::Bool(s.sensitive == Some(true)),
        Val::Str(Cow::Borrowed(non_empty(&s.spoiler_text).unwrap_or(""))),
        Val::Str(Cow::Borrowed(non_empty(&s.visibility).unwrap_or("unknown"))),
        id_val(&s.in_reply_to_id),
        Val::Bool(local),
        Val::Str(a.id.as_ref().map_or(Cow::Borrowed(""), Id::text)),
        account_created_at,
        or_zero(a.followers_count),
        id_val(&s.in_reply_to_account_id),
        opt_str(app_website),
        Val::Bool(s.poll.is_some()),
        Val::Bool(s.card.is_some()),
        len_of(s.emojis.as_ref().map(Vec::len)),
        if given_opted_out.is_none() {
            Val::Bool(opted_out)
        } else {
            Val::Py(given_opted_out.clone())
        },
        named.map_or(Val::Null, Val::List),
        opt_cow(reply_acct),
        opt_str(quote_uri),
        quote_state,
        s.quotes_count.map_or(Val::Null, |n| Val::Int(n as i64)),
        opt_bool(a.indexable),
        opt_bool(a.discoverable),
        opt_bool(locked),
        opt_bool(a.group),
        opt_cow(moved_to),
        consent_value,
    ])
}
