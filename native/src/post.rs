//! `tootlake.record.status.to_post` (the Python there is the reference): the Post of a
//! validated status, its fields read once, the text helpers called without a trip through
//! Python. Where the Python reaches for something rarer (a quote's fallback paragraph, HTML
//! the fast path leaves to the parser, a bio that may hold an opt-out tag, a host beyond
//! ASCII), this calls the same Python function, so the answer is the Python's by
//! construction. None: a value of a type the Python never gets from validation; the caller
//! then runs the Python.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple, PyTzInfo};

use crate::{count_words_of, may_hold_tag_of, simple_text_of, with_newlines};

/// The fields of `tootlake.record.model.Post`, in the order `build` passes them: the Python
/// does not use a module built for another Post.
pub const POST_FIELDS: [&str; 48] = [
    "uri",
    "id",
    "observed_on",
    "origin",
    "url",
    "created_at",
    "edited_at",
    "ingested_at",
    "language",
    "app",
    "acct",
    "username",
    "display_name",
    "bot",
    "text",
    "characters",
    "words",
    "tags",
    "mentions_count",
    "media_count",
    "favourites_count",
    "reblogs_count",
    "replies_count",
    "sensitive",
    "spoiler_text",
    "visibility",
    "in_reply_to_id",
    "local",
    "account_id",
    "account_created_at",
    "followers_count",
    "in_reply_to_account_id",
    "app_website",
    "has_poll",
    "has_card",
    "emojis_count",
    "opted_out",
    "mentions",
    "in_reply_to_acct",
    "quote_uri",
    "quote_state",
    "quotes_count",
    "indexable",
    "discoverable",
    "locked",
    "group",
    "moved_to",
    "consent",
];

/// The fields of ValidStatus, StatusData and Account (`tootlake.record.status`), whose
/// positions `build` reads: the Python does not use a module built for other ones.
pub const VALID_STATUS_FIELDS: [&str; 6] =
    ["data", "id", "created_at", "edited_at", "coerced", "size"];
pub const STATUS_FIELDS: [&str; 26] = [
    "uri",
    "id",
    "account",
    "created_at",
    "in_reply_to_id",
    "in_reply_to_account_id",
    "sensitive",
    "spoiler_text",
    "visibility",
    "language",
    "url",
    "replies_count",
    "reblogs_count",
    "favourites_count",
    "quotes_count",
    "edited_at",
    "content",
    "reblog",
    "application",
    "media_attachments",
    "mentions",
    "tags",
    "emojis",
    "quote",
    "card",
    "poll",
];
pub const ACCOUNT_FIELDS: [&str; 16] = [
    "id",
    "username",
    "acct",
    "display_name",
    "locked",
    "bot",
    "discoverable",
    "indexable",
    "group",
    "created_at",
    "note",
    "url",
    "followers_count",
    "noindex",
    "moved",
    "fields",
];

/// The Python functions this falls back on, in this order (`tootlake.record.status._NATIVE`).
struct Helpers<'py> {
    post: Bound<'py, PyAny>,
    html_to_text: Bound<'py, PyAny>,
    has_opt_out_tag: Bound<'py, PyAny>,
    without_quote_fallback: Bound<'py, PyAny>,
    parse_time: Bound<'py, PyAny>,
    astuple: Bound<'py, PyAny>,
}

/// Why the native path stops: it gives up (a value it does not read: the caller runs the
/// Python), or Python raised (in a function it called: the same exception the Python would
/// meet, KeyboardInterrupt included, goes to the caller).
enum Stop {
    GiveUp,
    Raised(PyErr),
}
use Stop::GiveUp;

/// `parse_time` of Mastodon's usual form, `YYYY-MM-DDTHH:MM:SS.mmmZ` (or without the
/// fraction, or with six digits of it): what `datetime.fromisoformat` makes of it, in UTC.
/// None for any other value, and for a date or time out of range: `parse_time` decides.
pub(crate) fn usual_time<'py>(value: &Bound<'py, PyAny>) -> Option<Bound<'py, PyAny>> {
    usual_time_micros(value).map(|(time, _)| time)
}

/// `usual_time`, with the time's microseconds since the epoch.
pub(crate) fn usual_time_micros<'py>(
    value: &Bound<'py, PyAny>,
) -> Option<(Bound<'py, PyAny>, i64)> {
    let text = value.cast_exact::<PyString>().ok()?.to_str().ok()?;
    let (micros, parts) = crate::fast::usual_time(text)?;
    Some((crate::fast::datetime(value.py(), parts).ok()?, micros))
}

type Out<T> = Result<T, Stop>;

impl From<PyErr> for Stop {
    fn from(err: PyErr) -> Self {
        Stop::Raised(err)
    }
}

impl From<std::convert::Infallible> for Stop {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// An attribute of a Struct.
#[inline]
fn attr<'py>(obj: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> Out<Bound<'py, PyAny>> {
    Ok(obj.getattr(name)?)
}

/// A `str | None` value as text; None for None. (Any other type: give up.)
#[inline]
fn text_of<'a>(value: &'a Bound<'_, PyAny>) -> Out<Option<&'a str>> {
    if value.is_none() {
        return Ok(None);
    }
    let s = value.cast::<PyString>().map_err(|_| GiveUp)?;
    Ok(Some(s.to_str().map_err(|_| GiveUp)?))
}

/// Python's truth of a `bool | None` (or any) value.
#[inline]
fn truthy(value: &Bound<'_, PyAny>) -> Out<bool> {
    Ok(value.is_truthy()?)
}

/// `value or fallback`, for a `str | None`: the value when it is a non-empty str.
#[inline]
fn non_empty<'py>(value: Bound<'py, PyAny>) -> Out<Option<Bound<'py, PyAny>>> {
    Ok(match text_of(&value)? {
        Some(s) if !s.is_empty() => Some(value),
        _ => None,
    })
}

/// `host_of(url)`: the lower-case host (with port) of a URL; None when it has none.
fn host_of<'py>(py: Python<'py>, url: &Bound<'py, PyAny>) -> Out<Option<Bound<'py, PyString>>> {
    let Some(url) = text_of(url)? else {
        return Ok(None);
    };
    let Some(scheme_end) = url.find("://") else {
        return Ok(None);
    };
    let rest = &url[scheme_end + 3..];
    // (a backslash ends the host as a `/` does, in browsers: as the Python host_of)
    let rest = &rest[..rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len())];
    let host = &rest[rest.rfind('@').map_or(0, |at| at + 1)..];
    if host.is_empty() {
        return Ok(None);
    }
    if host.is_ascii() {
        return Ok(Some(PyString::new(py, &host.to_ascii_lowercase())));
    }
    // Python's lower() beyond ASCII (it can lengthen a string: İ), as the Python does
    let lowered = PyString::new(py, host).call_method0(intern!(py, "lower"))?;
    let lowered = lowered.cast_into::<PyString>().map_err(|_| GiveUp)?;
    Ok(if lowered.to_str().map_err(|_| GiveUp)?.is_empty() {
        None
    } else {
        Some(lowered)
    })
}

/// `f"{name}@{host}"`
#[inline]
fn qualify<'py>(py: Python<'py>, name: &str, host: &Bound<'py, PyAny>) -> Out<Bound<'py, PyAny>> {
    let host = text_of(host)?.ok_or(GiveUp)?;
    Ok(PyString::new(py, &format!("{name}@{host}")).into_any())
}

/// `_qualified(acct, url, home)`: an acct as user@host, a bare one on the host of its url.
fn qualified<'py>(
    py: Python<'py>,
    acct: &Bound<'py, PyAny>,
    url: &Bound<'py, PyAny>,
    home: &Bound<'py, PyAny>,
) -> Out<Bound<'py, PyAny>> {
    let Some(name) = text_of(acct)? else {
        return Ok(py.None().into_bound(py));
    };
    if name.is_empty() {
        return Ok(py.None().into_bound(py));
    }
    if name.contains('@') {
        return Ok(acct.clone());
    }
    match host_of(py, url)? {
        Some(host) => qualify(py, name, host.as_any()),
        None => qualify(py, name, home),
    }
}

/// `has_opt_out_tag(html)`: the native pre-check, then the Python for what may hold a tag.
fn has_opt_out_tag(value: &Bound<'_, PyAny>, helpers: &Helpers<'_>) -> Out<bool> {
    let Some(html) = text_of(value)? else {
        return Ok(false);
    };
    if html.is_empty() || !may_hold_tag_of(html) {
        return Ok(false);
    }
    truthy(&helpers.has_opt_out_tag.call1((value,))?)
}

/// `html_to_text(content)`
fn html_to_text<'py>(
    py: Python<'py>,
    content: &Bound<'py, PyAny>,
    helpers: &Helpers<'py>,
) -> Out<Bound<'py, PyAny>> {
    let Some(html) = text_of(content)? else {
        return Ok(PyString::new(py, "").into_any());
    };
    if html.is_empty() {
        return Ok(PyString::new(py, "").into_any());
    }
    if !html.contains(['<', '&']) {
        return Ok(content.clone());
    }
    match simple_text_of(&with_newlines(html)) {
        Some(text) => Ok(PyString::new(py, &text).into_any()),
        None => Ok(helpers.html_to_text.call1((content,))?),
    }
}

fn len_or_zero(value: &Bound<'_, PyAny>) -> Out<usize> {
    Ok(if truthy(value)? { value.len()? } else { 0 })
}

/// `str(value)` of a `str | int` id, None for None.
fn id_text<'py>(value: &Bound<'py, PyAny>) -> Out<Bound<'py, PyAny>> {
    Ok(if value.is_none() {
        value.clone()
    } else {
        value.str()?.into_any()
    })
}

/// The Post's 48 fields, in `POST_FIELDS` order (the Post itself is `build`'s; the
/// fused path appends them to Arrow columns instead: `rows::PostRows`).
fn build_fields<'py>(
    py: Python<'py>,
    status: &Bound<'py, PyAny>,
    observed_on: &Bound<'py, PyAny>,
    ingested_at: &Bound<'py, PyAny>,
    opted_out: &Bound<'py, PyAny>,
    consent: &Bound<'py, PyAny>,
    helpers: &Helpers<'py>,
) -> Out<[Bound<'py, PyAny>; 48]> {
    let none = || py.None().into_bound(py);
    // Each Struct's fields at once (msgspec.structs.astuple, in C), read by position:
    // `getattr` per field cost as much as the Python did.
    let fields_of = |obj: &Bound<'py, PyAny>| -> Out<Bound<'py, PyTuple>> {
        helpers
            .astuple
            .call1((obj,))?
            .cast_into::<PyTuple>()
            .map_err(|_| GiveUp)
    };
    let v = fields_of(status)?;
    let data = v.get_item(0)?;
    let d = fields_of(&data)?;
    let account = d.get_item(2)?;
    let a = fields_of(&account)?;
    let uri = d.get_item(0)?;
    let origin: Bound<'py, PyAny> = match host_of(py, &uri)? {
        Some(host) => host.into_any(),
        None => PyString::new(py, "").into_any(),
    };
    let account_acct = a.get_item(2)?;
    let username = a.get_item(1)?;
    let mut acct = match non_empty(account_acct)? {
        Some(a) => a,
        None => match non_empty(username.clone())? {
            Some(u) => u,
            None => PyString::new(py, "").into_any(),
        },
    };
    let observed = match non_empty(observed_on.clone())? {
        Some(o) => o,
        None => none(),
    };
    // the host of the observing instance's own accounts, once known
    let mut local_host: Option<Bound<'py, PyAny>> = None;
    let acct_text = text_of(&acct)?.ok_or(GiveUp)?.to_owned();
    if !acct_text.contains('@') {
        let host = match host_of(py, &a.get_item(11)?)? {
            Some(h) => h.into_any(),
            None => match non_empty(observed_on.clone())? {
                Some(o) => o,
                None => origin.clone(),
            },
        };
        acct = qualify(py, &acct_text, &host)?;
        local_host = Some(host);
    }
    let application = d.get_item(18)?;
    let mut content = d.get_item(16)?;
    if let Some(html) = text_of(&content)? {
        if !html.is_empty() && html.contains("quote-inline") {
            content = helpers.without_quote_fallback.call1((&content,))?;
        }
    }
    let text = html_to_text(py, &content, helpers)?;
    let text_str = text.cast::<PyString>().map_err(|_| GiveUp)?;
    let characters = text_str.len()?;
    let words = count_words_of(text_str.to_str().map_err(|_| GiveUp)?);
    let given_opted_out = opted_out;
    let opted_out: bool = if opted_out.is_none() {
        truthy(&a.get_item(13)?)? || has_opt_out_tag(&a.get_item(10)?, helpers)? || {
            let fields = a.get_item(15)?;
            let mut found = false;
            if !fields.is_none() {
                for item in fields.try_iter()? {
                    let item = item?;
                    let value = attr(&item, intern!(py, "value"))?;
                    let name = attr(&item, intern!(py, "name"))?;
                    if has_opt_out_tag(&value, helpers)? || has_opt_out_tag(&name, helpers)? {
                        found = true;
                        break;
                    }
                }
            }
            found
        }
    } else {
        truthy(opted_out)?
    };
    let indexable = a.get_item(7)?;
    let locked = a.get_item(4)?;
    let consent: Bound<'py, PyAny> = if consent.is_none() {
        let level = if opted_out {
            "none"
        } else if indexable.is(pyo3::types::PyBool::new(py, true)) && !truthy(&locked)? {
            "opt-in"
        } else {
            "opt-out"
        };
        PyString::new(py, level).into_any()
    } else {
        consent.clone()
    };
    let home = if observed.is_none() {
        origin.clone()
    } else {
        observed.clone()
    };
    let mentions = d.get_item(20)?;
    let mut named = none();
    if !mentions.is_none() {
        let list = PyList::empty(py);
        for m in mentions.try_iter()? {
            let m = m?;
            let name = attr(&m, intern!(py, "acct"))?;
            let Some(text) = text_of(&name)? else {
                continue;
            };
            if text.is_empty() {
                continue;
            }
            if text.contains('@') {
                list.append(&name)?;
                continue;
            }
            // a bare acct is an account of the observing instance, like a bare author
            let host = match &local_host {
                Some(h) => h.clone(),
                None => {
                    let h = match host_of(py, &attr(&m, intern!(py, "url"))?)? {
                        Some(h) => h.into_any(),
                        None => home.clone(),
                    };
                    local_host = Some(h.clone());
                    h
                }
            };
            list.append(qualify(py, text, &host)?)?;
        }
        named = list.into_any();
    }
    let reply_to = d.get_item(5)?;
    let mut reply_acct = none();
    if !reply_to.is_none() {
        let author_id = a.get_item(0)?;
        let same_author = !author_id.is_none()
            && (reply_to.eq(&author_id)?
                || (!reply_to.get_type().is(author_id.get_type())
                    && reply_to.str()?.as_any().eq(author_id.str()?)?));
        if same_author {
            reply_acct = acct.clone(); // a self-reply: a thread
        } else if truthy(&mentions)? {
            let wanted = reply_to.str()?;
            for m in mentions.try_iter()? {
                let m = m?;
                let id = attr(&m, intern!(py, "id"))?;
                if id.eq(&wanted)?
                    || (id.is_exact_instance_of::<pyo3::types::PyInt>()
                        && id.str()?.as_any().eq(&wanted)?)
                {
                    let home_here = match &local_host {
                        Some(h) => h.clone(),
                        None => home.clone(),
                    };
                    reply_acct = qualified(
                        py,
                        &attr(&m, intern!(py, "acct"))?,
                        &attr(&m, intern!(py, "url"))?,
                        &home_here,
                    )?;
                    break;
                }
            }
        }
    }
    let quote = d.get_item(23)?;
    let (mut quote_uri, mut quote_state) = (none(), none());
    if !quote.is_none() {
        quote_state = attr(&quote, intern!(py, "state"))?;
        let quoted = attr(&quote, intern!(py, "quoted_status"))?;
        if !quoted.is_none() {
            if let Some(uri) = non_empty(attr(&quoted, intern!(py, "uri"))?)? {
                quote_uri = uri;
            }
        }
    }
    let moved = a.get_item(14)?;
    let moved_to = if moved.is_none() {
        none()
    } else {
        qualified(
            py,
            &attr(&moved, intern!(py, "acct"))?,
            &attr(&moved, intern!(py, "url"))?,
            &home,
        )?
    };
    let (app, app_website) = if application.is_none() {
        (none(), none())
    } else {
        (
            non_empty(attr(&application, intern!(py, "name"))?)?.unwrap_or_else(none),
            non_empty(attr(&application, intern!(py, "website"))?)?.unwrap_or_else(none),
        )
    };
    let username_or = match non_empty(username)? {
        Some(u) => u,
        None => {
            let a = text_of(&acct)?.ok_or(GiveUp)?;
            PyString::new(py, a.split('@').next().unwrap_or("")).into_any()
        }
    };
    let or_empty = |value: Bound<'py, PyAny>| -> Out<Bound<'py, PyAny>> {
        Ok(non_empty(value)?.unwrap_or_else(|| PyString::new(py, "").into_any()))
    };
    let or_zero = |value: Bound<'py, PyAny>| -> Out<Bound<'py, PyAny>> {
        Ok(if truthy(&value)? {
            value
        } else {
            0i64.into_pyobject(py)?.into_any()
        })
    };
    let bool_of = |value: Bound<'py, PyAny>| -> Out<Bound<'py, PyAny>> {
        Ok(pyo3::types::PyBool::new(py, truthy(&value)?)
            .to_owned()
            .into_any())
    };
    let tags = d.get_item(21)?;
    let tag_names = PyList::empty(py);
    if truthy(&tags)? {
        for tag in tags.try_iter()? {
            let name = attr(&tag?, intern!(py, "name"))?;
            let text = text_of(&name)?.ok_or(GiveUp)?;
            if text.is_ascii() {
                tag_names.append(PyString::new(py, &text.to_ascii_lowercase()))?;
            } else {
                tag_names.append(name.call_method0(intern!(py, "lower"))?)?;
            }
        }
    }
    let visibility = d.get_item(8)?;
    let visibility =
        non_empty(visibility)?.unwrap_or_else(|| PyString::new(py, "unknown").into_any());
    let local = !observed.is_none() && observed.eq(&origin)?;
    let account_id = a.get_item(0)?;
    let account_id = if account_id.is_none() {
        PyString::new(py, "").into_any()
    } else {
        account_id.str()?.into_any()
    };
    let coerced = v.get_item(4)?;
    let locked_kept = if truthy(&coerced)? && coerced.contains(intern!(py, "account.locked"))? {
        none()
    } else {
        locked
    };
    let language = non_empty(d.get_item(9)?)?.unwrap_or_else(none);
    let created_value = a.get_item(9)?;
    let account_created_at = match usual_time(&created_value) {
        Some(time) => time,
        None => helpers.parse_time.call1((created_value,))?,
    };
    let fields: [Bound<'py, PyAny>; 48] = [
        uri,
        v.get_item(1)?,
        observed.clone(),
        origin,
        d.get_item(10)?,
        v.get_item(2)?,
        v.get_item(3)?,
        ingested_at.clone(),
        language,
        app,
        acct,
        username_or,
        or_empty(a.get_item(3)?)?,
        bool_of(a.get_item(5)?)?,
        text,
        characters.into_pyobject(py)?.into_any(),
        words.into_pyobject(py)?.into_any(),
        tag_names.into_any(),
        len_or_zero(&mentions)?.into_pyobject(py)?.into_any(),
        len_or_zero(&d.get_item(19)?)?.into_pyobject(py)?.into_any(),
        or_zero(d.get_item(13)?)?,
        or_zero(d.get_item(12)?)?,
        or_zero(d.get_item(11)?)?,
        bool_of(d.get_item(6)?)?,
        or_empty(d.get_item(7)?)?,
        visibility,
        id_text(&d.get_item(4)?)?,
        pyo3::types::PyBool::new(py, local).to_owned().into_any(),
        account_id,
        account_created_at,
        or_zero(a.get_item(12)?)?,
        id_text(&reply_to)?,
        app_website,
        pyo3::types::PyBool::new(py, !d.get_item(25)?.is_none())
            .to_owned()
            .into_any(),
        pyo3::types::PyBool::new(py, !d.get_item(24)?.is_none())
            .to_owned()
            .into_any(),
        len_or_zero(&d.get_item(22)?)?.into_pyobject(py)?.into_any(),
        if given_opted_out.is_none() {
            pyo3::types::PyBool::new(py, opted_out)
                .to_owned()
                .into_any()
        } else {
            given_opted_out.clone() // (as given, as the Python keeps it)
        },
        named,
        reply_acct,
        quote_uri,
        quote_state,
        d.get_item(14)?,
        indexable,
        a.get_item(6)?,
        locked_kept,
        a.get_item(8)?,
        moved_to,
        consent,
    ];
    Ok(fields)
}

/// `to_post(status, observed_on, ingested_at, opted_out=..., consent=...)` with
/// `ingested_at` given; `helpers`: (Post, html_to_text, has_opt_out_tag,
/// _without_quote_fallback, parse_time, msgspec.structs.astuple). None: the caller runs the
/// Python.
#[pyfunction]
pub fn to_post<'py>(
    py: Python<'py>,
    status: &Bound<'py, PyAny>,
    observed_on: &Bound<'py, PyAny>,
    ingested_at: &Bound<'py, PyAny>,
    opted_out: &Bound<'py, PyAny>,
    consent: &Bound<'py, PyAny>,
    helpers: &Bound<'py, PyTuple>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    match post_fields(
        py,
        status,
        observed_on,
        ingested_at,
        opted_out,
        consent,
        helpers,
    )? {
        Some((fields, helpers)) => Ok(Some(helpers.post.call1(PyTuple::new(py, fields)?)?)),
        None => Ok(None),
    }
}

/// `build_fields` with the helpers given as `to_post` takes them: the fields and the
/// helpers; None where the native path gives up (a value it does not read, or a panic,
/// reported on stderr): the caller runs the Python. What Python raised is raised.
#[allow(clippy::type_complexity)]
fn post_fields<'py>(
    py: Python<'py>,
    status: &Bound<'py, PyAny>,
    observed_on: &Bound<'py, PyAny>,
    ingested_at: &Bound<'py, PyAny>,
    opted_out: &Bound<'py, PyAny>,
    consent: &Bound<'py, PyAny>,
    helpers: &Bound<'py, PyTuple>,
) -> PyResult<Option<([Bound<'py, PyAny>; 48], Helpers<'py>)>> {
    let helpers = Helpers {
        post: helpers.get_item(0)?,
        html_to_text: helpers.get_item(1)?,
        has_opt_out_tag: helpers.get_item(2)?,
        without_quote_fallback: helpers.get_item(3)?,
        parse_time: helpers.get_item(4)?,
        astuple: helpers.get_item(5)?,
    };
    let built = crate::guarded(|| {
        Some(build_fields(
            py,
            status,
            observed_on,
            ingested_at,
            opted_out,
            consent,
            &helpers,
        ))
    });
    match built {
        Some(Ok(fields)) => Ok(Some((fields, helpers))),
        Some(Err(Stop::Raised(err))) => Err(err),
        Some(Err(Stop::GiveUp)) | None => Ok(None),
    }
}

impl PostRows {
    /// Pushes one row (`push(columns, row)` gives each column its value) and counts it;
    /// false, with the row taken back from every column, when a column could not hold its
    /// value.
    fn push_row(&mut self, push: impl FnOnce(&mut [crate::Column], usize)) -> bool {
        let i = self.rows;
        let before: usize = self.columns.iter().map(|c| c.data_len()).sum();
        let marks: Vec<crate::Mark> = self.columns.iter().map(|c| c.mark()).collect();
        push(&mut self.columns, i);
        if self.columns.iter().any(|c| c.failed()) {
            for (column, mark) in self.columns.iter_mut().zip(marks.iter()) {
                column.take_back(i, mark);
            }
            return false;
        }
        let after: usize = self.columns.iter().map(|c| c.data_len()).sum();
        self.rows += 1;
        self.size += after - before + self.overhead;
        true
    }
}

/// The fused path's posts: each appended as one row of Arrow columns (`posts_all`'s, in
/// `POST_FIELDS` order) instead of a Post object, which the writer would convert and free
/// later in another thread. `finish` gives the columns as `arrow_batch` does.
#[pyclass(module = "tootlake_native")]
pub struct PostRows {
    columns: Vec<crate::Column>,
    rows: usize,
    size: usize,
    overhead: usize,
}

#[pymethods]
impl PostRows {
    /// `kinds`: the 48 columns' kinds (`tootlake.lake.writer._KINDS`); `overhead`: bytes
    /// counted per row beyond its strings.
    #[new]
    fn new(kinds: Vec<u8>, overhead: usize) -> PyResult<Self> {
        if kinds.len() != POST_FIELDS.len() || kinds.iter().any(|&k| k > crate::LIST_OF_STRING) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "PostRows needs the 48 kinds of posts_all's columns, each one it can build",
            ));
        }
        Ok(PostRows {
            columns: kinds.iter().map(|&k| crate::Column::new(k, 0)).collect(),
            rows: 0,
            size: 0,
            overhead,
        })
    }

    /// Appends the post `to_post` would make of these arguments (same helpers) and gives its
    /// consent level (`post.consent or ""`); None, with nothing appended, when the native
    /// path gives up or a column cannot hold a value: the caller then makes the Post itself.
    /// What Python raises on the way is raised.
    #[allow(clippy::too_many_arguments)]
    fn append<'py>(
        &mut self,
        py: Python<'py>,
        status: &Bound<'py, PyAny>,
        observed_on: &Bound<'py, PyAny>,
        ingested_at: &Bound<'py, PyAny>,
        opted_out: &Bound<'py, PyAny>,
        consent: &Bound<'py, PyAny>,
        helpers: &Bound<'py, PyTuple>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some((fields, _)) = post_fields(
            py,
            status,
            observed_on,
            ingested_at,
            opted_out,
            consent,
            helpers,
        )?
        else {
            return Ok(None);
        };
        let utc = PyTzInfo::utc(py)?;
        if !self.push_row(|columns, i| {
            for (column, value) in columns.iter_mut().zip(fields.iter()) {
                column.push(i, value, &utc);
            }
        }) {
            return Ok(None);
        }
        let [.., consent] = fields;
        Ok(Some(if consent.is_truthy()? {
            consent
        } else {
            PyString::new(py, "").into_any()
        }))
    }

    /// `append` of a `FastStatus` (native/src/fast.rs), its fields read natively; None,
    /// with nothing appended, where that gives up: the caller then takes the ValidStatus
    /// path (`FastStatus.valid`).
    #[allow(clippy::too_many_arguments)]
    fn append_fast<'py>(
        &mut self,
        py: Python<'py>,
        status: &Bound<'py, crate::fast::FastStatus>,
        observed_on: &Bound<'py, PyAny>,
        ingested_at: &Bound<'py, PyAny>,
        opted_out: &Bound<'py, PyAny>,
        consent: &Bound<'py, PyAny>,
        helpers: &Bound<'py, PyTuple>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let helpers = crate::fast::FastHelpers {
            html_to_text: helpers.get_item(1)?,
            has_opt_out_tag: helpers.get_item(2)?,
            without_quote_fallback: helpers.get_item(3)?,
            parse_time: helpers.get_item(4)?,
        };
        let fast = status.get();
        let built = crate::guarded(|| {
            Some(crate::fast::fields(
                py,
                fast,
                observed_on,
                ingested_at,
                opted_out,
                consent,
                &helpers,
            ))
        });
        let values = match built {
            Some(Ok(values)) => values,
            Some(Err(crate::fast::Stop::Raised(err))) => return Err(err),
            Some(Err(crate::fast::Stop::GiveUp)) | None => return Ok(None),
        };
        let utc = PyTzInfo::utc(py)?;
        if !self.push_row(|columns, i| {
            for (column, value) in columns.iter_mut().zip(values.iter()) {
                column.push_value(i, value, &utc);
            }
        }) {
            return Ok(None);
        }
        Ok(Some(match values.last() {
            Some(crate::fast::Val::Str(level)) => PyString::new(py, level).into_any(),
            Some(crate::fast::Val::Py(given)) if given.is_truthy()? => given.clone(),
            _ => PyString::new(py, "").into_any(),
        }))
    }

    fn __len__(&self) -> usize {
        self.rows
    }

    /// Bytes held: the rows' strings and fixed-width values, and `overhead` per row.
    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    /// The columns as `arrow_batch` gives them (`(null_count, buffers)` each), the rows
    /// taken: this holds none after.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let kinds: Vec<u8> = self.columns.iter().map(|c| c.kind()).collect();
        let columns = std::mem::replace(
            &mut self.columns,
            kinds.iter().map(|&k| crate::Column::new(k, 0)).collect(),
        );
        self.rows = 0;
        self.size = 0;
        let out = PyList::empty(py);
        for column in columns {
            match column.finish(py)? {
                Some(built) => out.append(built)?,
                None => out.append(py.None())?, // (never: a row a column refused is not kept)
            }
        }
        Ok(out)
    }
}
