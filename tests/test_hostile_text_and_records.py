"""Hostile input that once broke "validated once at the edge into a record or a counted
rejection; never an unexpected exception, a hang, or unbounded memory" (found by an audit on
2026-12-05; each test failed before its fix). The timing bounds are hang guards, far above
the linear cost (milliseconds) and far below the quadratic one (tens of seconds)."""

import io
import json
import time

import pytest

from tootlake._native import python_only
from tootlake.record.consent import Consent
from tootlake.record.status import ValidStatus, decode_status, validate_status
from tootlake.text import html_to_text

STATUS = {
    "uri": "https://ex.social/users/a/statuses/1",
    "id": "1",
    "created_at": "2024-01-01T00:00:00.000Z",
    "account": {"acct": "a", "username": "a", "note": "hello"},
    "visibility": "public",
    "content": "<p>hi</p>",
}


def _seconds(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


# text.py:148 `_parsed_text`: etree.fromstring(html) of a *str* runs lxml's own
# _hasEncodingDeclaration regex r'^(<\?xml[^>]+)\s+encoding...' on it, which backtracks
# quadratically on "<?xml" followed by whitespace. 40 KB takes ~2 s (1 MiB, the SSE limit:
# ~20 min of CPU per status, holding the GIL, before the fix). Reached from html_to_text
# (content) and from has_opt_out_tag (bios, profile fields) in the consent gate, native path
# or not.
@pytest.mark.parametrize("native", [True, False])
def test_html_to_text_xml_declaration_prefix_is_not_quadratic(native):
    html = "<?xml" + " " * 120_000
    if native:
        took = _seconds(html_to_text, html)
    else:
        with python_only():
            took = _seconds(html_to_text, html)
    assert took < 3, f"html_to_text took {took:.1f}s on 120 KB"


# Same root cause, through the consent gate (Consent.gate -> has_opt_out_tag(note) ->
# html_to_text -> _parsed_text, text.py:148): one hostile bio stalls the Recorder.
def test_consent_gate_on_xml_declaration_bio_is_not_quadratic():
    bio = "<?xml" + " " * 120_000 + "#nobot"
    status = decode_status(json.dumps({**STATUS, "account": {"acct": "a", "note": bio}}))
    assert isinstance(status, ValidStatus)
    took = _seconds(Consent().gate, status)
    assert took < 3, f"the consent gate took {took:.1f}s on a 120 KB bio"


# text.py:154 `_parsed_text` fallback: lxml refuses a str with an XML encoding declaration
# (ValueError), and `_TAGS.sub` (`<[^>]*>`, text.py:57) then scans to the end from every `<`
# that has no `>` after it: quadratic. 60 KB of `<` takes ~2 s.
def test_html_to_text_fallback_tag_strip_is_not_quadratic():
    html = '<?xml version="1.0" encoding="x"?>' + "<" * 150_000
    took = _seconds(html_to_text, html)
    assert took < 3, f"html_to_text took {took:.1f}s on 150 KB"


# record/status.py:351 `validate_status`: a ValidStatus whose data holds an int beyond
# msgpack's range is re-encoded as JSON to look for lone surrogates; msgspec's JSON encoder
# raises ValueError (str() of > 4,300 digits), which nothing catches: the documented "a
# ValidStatus or a Rejection, never an error" is broken (from_status, skip_reason and
# fleet._validated with a library caller's page of dicts). Not reachable from JSON bytes.
@pytest.mark.parametrize(
    "change",
    [
        {"in_reply_to_id": 10**5000},
        {"in_reply_to_account_id": 10**5000},
        {"account": {"acct": "a", "id": 10**5000}},
    ],
    ids=["in_reply_to_id", "in_reply_to_account_id", "account.id"],
)
def test_validate_status_with_a_huge_int_does_not_raise(change):
    got = validate_status({**STATUS, **change})  # (raised ValueError)
    assert got.reason == "a number with more than 4,300 digits"


# kafka/decode.py:261-265 `_decode_bulk` (polars) reads a timestamp-micros long as is, so a
# message with created_at = 2**62 us (year 148108) becomes a row; the message-by-message path
# (fastavro, decode.py:281) turns it into a counted error ("OverflowError: date value out of
# range"). The row is written to the lake, where every Python read of it raises
# (pyarrow to_pylist -> analysis.report.as_pylist:211: report, dashboard, sql).
@pytest.mark.parametrize("field", ["created_at", "ingested_at"])
def test_bulk_avro_decode_rejects_times_beyond_datetime_like_the_slow_path(field):
    pytest.importorskip("polars")
    import fastavro

    from tests.test_avro import real_posts
    from tootlake.kafka.decode import EnvelopeDecoder
    from tootlake.kafka.encode import envelope_of
    from tootlake.kafka.schema import envelope_schema, single_object_header

    envelope = envelope_of(real_posts()[0])
    name, post = envelope["post"]
    envelope["post"] = (name, {**post, field: 2**62})  # microseconds since 1970
    buffer = io.BytesIO(single_object_header(envelope_schema()))
    buffer.seek(0, io.SEEK_END)
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(envelope_schema()), envelope)
    value = buffer.getvalue()

    slow = EnvelopeDecoder(bulk=False).decode([value])
    assert slow.table("post").num_rows == 0 and len(slow.errors) == 1
    bulk = EnvelopeDecoder(bulk=True).decode([value])
    assert bulk.table("post").num_rows == 0, "bulk path made a row of an impossible time"
    assert [i for i, _ in bulk.errors] == [0]
