"""tootlake_native.ws_frame (native/src/frame.rs) reads the streaming WebSocket frame of
Mastodon, `{"stream":[...],"event":"update","payload":"<status JSON as a JSON string>"}`, as
the Python reference `tootlake.sources.mastodon.parse_ws_frame_python` does: wherever it
answers (not None) its answer equals the Python's in value and type (a tuple of a str and
exact `bytes` or None: never the `Mended` subclass, the native code never mends), and
`parse_ws_frame`, which asks the native code first, equals the Python on every input, also
where the Python raises. ws_frame answers None (and raises nothing) for every object that is
not exactly `bytes`.

The frames are generated from the grammar (any key order and JSON whitespace, `stream` in
every shape, event names in every spelling, payloads escaped in every way JSON allows:
astral characters, pairs and lone surrogates as `\\uXXXX`, short escapes, `\\/`, U+0000,
with json, orjson and a hand-made encoder), strung from tokens without a grammar, and built
from the real recordings (tests/fixtures/real and the cassettes bench/datasets.py reads:
on every real status the native path must answer, so a regression that gives up silently
fails), then mutated byte by byte (bytes set, inserted, deleted, cut; keys added, given
twice, escaped; invalid UTF-8 in the payload). Planted-defect tests show the comparison
catches wrong stand-ins for the native reader."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from functools import cache
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import (
    HealthCheck,
    Phase,
    currently_in_test_context,
    example,
    find,
    given,
    settings,
)
from hypothesis import event as _event
from hypothesis import strategies as st

from tootlake.sources import mastodon
from tootlake.sources.mastodon import Mended, parse_ws_frame, parse_ws_frame_python

from .conftest import BENCH, REAL, all_real_statuses, native

SETTINGS = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))


def event(name: str) -> None:
    """Hypothesis' statistics (--hypothesis-show-statistics), inside a property test."""
    if currently_in_test_context():
        _event(name)


# ----------------------------------------------------------------------------------------
# the comparison


def outcome(function: Callable[[Any], Any], data: Any) -> tuple[Any, ...]:
    """What `function(data)` gives, with the types of what it gives: ("value", the value,
    its types) or ("raises", the exception's type, its message)."""
    try:
        value = function(data)
    except Exception as error:
        return ("raises", type(error), str(error))
    if isinstance(value, tuple):
        return ("value", value, type(value), tuple(type(item) for item in value))
    return ("value", value, type(value))


def check(data: Any, *, answers: bool | None = None) -> tuple[str, bytes | None] | None:
    """Compare the native frame reader (the one `parse_ws_frame` uses) with the Python on
    `data`; `answers` True/False: the native reader must / must not answer. Its answer."""
    reader = mastodon._native
    assert reader is not None, "parse_ws_frame runs without the native reader"
    ws_frame = reader.ws_frame
    try:
        got = ws_frame(data)
    except BaseException as error:  # it must never raise
        raise AssertionError(f"ws_frame({data!r:.300}) raised {error!r}") from error
    want = outcome(parse_ws_frame_python, data)
    if isinstance(data, bytes | bytearray | str) and want[0] == "raises":
        # the Python's own contract: ValueError (only) for what it cannot read (a memoryview
        # is beyond its `str | bytes`: an AttributeError from its message there)
        assert issubclass(want[1], ValueError), f"Python raised {want!r} on {data!r:.300}"
    if got is None:
        event("native: None (the Python reads it)")
    else:
        event("native: answered")
        assert type(data) is bytes, f"ws_frame answered {got!r:.200} for a {type(data)}"
        assert type(got) is tuple and len(got) == 2, f"ws_frame gave {got!r:.300}"
        name, payload = got
        assert type(name) is str and (payload is None or type(payload) is bytes), (
            f"ws_frame gave types {type(name)}, {type(payload)} on {data!r:.300}"
        )
        assert want[0] == "value", f"ws_frame({data!r:.300}) = {got!r:.300}, Python {want!r}"
        expected = want[1]
        assert expected is not None, f"ws_frame({data!r:.300}) = {got!r:.300}, Python None"
        assert got == expected and type(expected[1]) is type(payload), (
            f"ws_frame({data!r:.500}):\n  native {got!r:.500} {type(payload)}"
            f"\n  Python {expected!r:.500} {type(expected[1])}"
        )
    if answers is not None:
        assert (got is not None) is answers, (
            f"ws_frame({data!r:.500}) = {got!r:.300}, expected it to "
            + ("answer" if answers else "leave it to the Python")
        )
    dispatched = outcome(parse_ws_frame, data)
    assert dispatched == want, (
        f"parse_ws_frame({data!r:.500}):\n  {dispatched!r:.500}\n  Python {want!r:.500}"
    )
    return got  # type: ignore[no-any-return]


def test_the_dispatcher_uses_the_native_reader() -> None:
    """Else comparing parse_ws_frame with the Python would prove nothing."""
    assert mastodon._native is native()
    assert native().ws_frame(b'{"event":"update","payload":"{}"}') == ("update", b"{}")


# ----------------------------------------------------------------------------------------
# frames from the grammar

JSON_WS = st.text(alphabet=" \t\n\r", max_size=3)
# what JSON does not count as whitespace (msgspec refuses it between tokens)
ODD_WS = st.sampled_from(["\x0b", "\x0c", "\xa0", "\u2028", "\ufeff", "\x00", "\x85"])
SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n"}
SHORT |= {"\r": "\\r", "\t": "\\t"}
# every code point, lone surrogates too (st.text() alone leaves them out)
ANY_TEXT = st.text(st.characters(), max_size=40)
NAMES = st.sampled_from(["update", "status.update", "delete", "notification", "x"])


def _u(code: int, upper: bool) -> str:
    return f"\\u{code:04X}" if upper else f"\\u{code:04x}"


def escaped(char: str, form: int) -> str:
    """`char` in a JSON string, in one of the ways JSON (or a careless encoder) writes it:
    form 0 raw where JSON allows it, 1 and 2 `\\uXXXX` (a pair for astral characters) in lower
    and upper case hex, 3 the short escape, 4 raw even where JSON does not allow it."""
    code = ord(char)
    must_escape = char in '"\\' or code < 0x20
    if form == 4 or (form == 0 and not must_escape):
        return char
    if form == 3 and char in SHORT:
        return SHORT[char]
    upper = form == 2
    if code > 0xFFFF:
        code -= 0x10000
        return _u(0xD800 + (code >> 10), upper) + _u(0xDC00 + (code & 0x3FF), upper)
    return _u(code, upper)


# a character of a JSON string, written by `escaped`
PIECE = st.tuples(st.characters(), st.integers(0, 3)).map(lambda p: escaped(*p))
# a lone (or, next to another, paired) surrogate escape
LONE = st.tuples(st.integers(0xD800, 0xDFFF), st.booleans()).map(lambda p: _u(*p))
FIXED = st.sampled_from(["\\/", "\\u0000", "\\ud83d\\ude00", "\\uD83D\\uDE00", "\\uffff"])
# a character raw even where JSON does not allow it (a quote, a backslash, a control one)
RAW = st.tuples(st.characters(), st.just(4)).map(lambda p: escaped(*p))


@st.composite
def json_string(
    draw: st.DrawFn, text: st.SearchStrategy[str] = ANY_TEXT, rough: bool = False
) -> str:
    """The JSON string literal of a text, by json, orjson or escaping each character its own
    way, with lone and paired surrogate escapes strewn in (`rough`: and raw characters JSON
    does not allow)."""
    way = draw(st.sampled_from(["json", "orjson", "pieces"]))
    if way == "json":
        return json.dumps(draw(text), ensure_ascii=draw(st.booleans()))
    if way == "orjson":
        value = draw(text)
        try:
            return orjson.dumps(value).decode()
        except TypeError:  # a lone surrogate (orjson refuses it)
            return json.dumps(value)
    kinds = [PIECE] * 6 + [LONE, FIXED] + ([RAW, RAW] if rough else [])
    return '"' + "".join(draw(st.lists(st.one_of(kinds), max_size=20))) + '"'


def plain(literal: str) -> bool:
    """A JSON string literal without escapes, control characters or surrogates: what the
    native reader takes as a key, a name or a stream."""
    body = literal[1:-1]
    return (
        literal[:1] == '"'
        and "\\" not in body
        and '"' not in body
        and all(ord(c) >= 0x20 and not 0xD800 <= ord(c) <= 0xDFFF for c in body)
    )


def readable(literal: str) -> bool:
    """A valid JSON string literal whose text is Unicode (no lone surrogate): the payloads
    the native reader unescapes."""
    try:
        value = json.loads(literal)
    except ValueError:
        return False
    if not isinstance(value, str):
        return False
    try:
        literal.encode()
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


# JSON values that are not strings
NOT_STRINGS = st.one_of(
    st.sampled_from(["null", "true", "false", "0", "-1.5e3", "123", "{}", "[]", '[""]']),
    st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3).map(json.dumps),
    st.integers().map(str),
)


@st.composite
def frames(draw: st.DrawFn) -> tuple[str, bool]:
    """A frame's text, and whether the native reader must answer it (the usual frame:
    `stream`, `event` and `payload` at most once each, plain keys, a plain non-empty event
    name, a stream of plain strings, a payload string of Unicode text, or null, or none).
    One in four is rough: other keys, keys given twice or escaped, values of other types,
    whitespace JSON does not allow, raw characters in strings, something after the object."""
    rough = draw(st.integers(0, 3)) == 0
    usual = True

    def ws() -> str:
        nonlocal usual
        if rough and draw(st.integers(0, 10)) == 0:
            usual = False
            return draw(ODD_WS)
        return draw(JSON_WS)

    def string(text: st.SearchStrategy[str] = ANY_TEXT) -> str:
        return draw(json_string(text, rough))

    members: list[tuple[str, str]] = []
    # stream
    kind = draw(st.sampled_from(["array", "string", "null", "absent"] + ["odd"] * rough))
    if kind == "array":
        literals = draw(st.lists(st.one_of(NAMES.map(json.dumps), json_string()), max_size=3))
        usual &= all(plain(lit) for lit in literals)
        members.append(("stream", "[" + ws() + ("," + ws()).join(literals) + ws() + "]"))
    elif kind == "string":
        literal = draw(st.just('"public"')) if draw(st.booleans()) else string()
        usual &= plain(literal)
        members.append(("stream", literal))
    elif kind == "null":
        members.append(("stream", "null"))
    elif kind == "odd":
        usual = False
        members.append(("stream", draw(st.sampled_from(["1", "[1]", '[["public"]]', "{}"]))))
    # event
    kind = draw(st.sampled_from(["usual", "usual", "text"] + ["absent", "not a string"] * rough))
    if kind == "usual":
        members.append(("event", json.dumps(draw(NAMES))))
    elif kind == "text":
        literal = string(st.one_of(NAMES, ANY_TEXT))
        usual &= plain(literal) and literal != '""'
        members.append(("event", literal))
    elif kind == "absent":
        usual = False
    else:
        usual = False
        members.append(("event", draw(NOT_STRINGS)))
    # payload
    kind = draw(
        st.sampled_from(["status", "status", "text", "null", "absent"] + ["not a string"] * rough)
    )
    if kind in ("status", "text"):
        if kind == "status":  # a status-like object's JSON text, with any text inside
            status = draw(st.dictionaries(st.sampled_from(["id", "content", "x"]), ANY_TEXT))
            inner = json.dumps(status, ensure_ascii=draw(st.booleans()))
            literal = string(st.just(inner))
        else:
            literal = string()
        usual &= readable(literal)
        members.append(("payload", literal))
    elif kind == "null":
        members.append(("payload", "null"))
    elif kind == "not a string":
        usual = False
        members.append(("payload", draw(NOT_STRINGS)))
    if rough:  # other keys, and keys given twice
        extra = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["error", "status", "unknown", "event", "payload", "stream"]),
                    st.one_of(json_string(NAMES), NOT_STRINGS),
                ),
                max_size=2,
            )
        )
        if extra:
            usual = False
            members.extend(extra)
    members = draw(st.permutations(members))
    keys = []
    for key, _ in members:
        if rough and draw(st.integers(0, 5)) == 0:  # a key spelled with an escape
            usual = False
            at = draw(st.integers(0, len(key) - 1))
            keys.append(
                '"' + key[:at] + _u(ord(key[at]), draw(st.booleans())) + key[at + 1 :] + '"'
            )
        else:
            keys.append(json.dumps(key))
    body = ("," + ws()).join(
        key + ws() + ":" + ws() + value + ws()
        for key, (_, value) in zip(keys, members, strict=True)
    )
    text = ws() + "{" + ws() + body + "}" + ws()
    if rough and draw(st.integers(0, 7)) == 0:  # a comma too many, or more after the object
        usual = False
        text = draw(st.sampled_from([text.replace("}", ",}"), text + "x", text + "{}", text[:-1]]))
    return text, usual


def as_bytes(text: str) -> bytes:
    """The frame's UTF-8 bytes; a raw lone surrogate as its (invalid) 3-byte form."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


@settings(SETTINGS, max_examples=3000)
@given(frames())
@example(('{"stream":["public"],"event":"update","payload":"{\\"id\\":\\"1\\"}"}', True))
@example(('{"event":"update","payload":"\\ud83d\\ude00\\u00e9\\/\\u0000"}', True))
@example(('{"event":"update","payload":"\\ud800"}', False))
@example(('{"event":"update","payload":"\\udc00\\ud800"}', False))
@example(('{"event":"update","payload":"\\ud800\\u0041"}', False))
@example(('{"event":"update","payload":"\\ud800\\ud800\\udc00"}', False))
@example(('{"event":"update","event":"delete"}', False))
@example(('{"event":"","payload":"x"}', False))
@example(('{"\\u0065vent":"update","payload":"x"}', False))
@example(('{"event":"update","payload":"x","error":null}', False))
@example(('{"stream":[],"event":"update"}', True))
@example((' {"payload" : null , "event" : "delete"} \n', True))
@example(('{"event":"update","payload":"a\tb"}', False))
@example(('{"event":"update","payload":"\x7f\U0001f600"}', True))
def test_generated_frames(case: tuple[str, bool]) -> None:
    text, usual = case
    data = as_bytes(text)
    got = check(data, answers=True if usual else None)
    if got is not None and got[1] is not None:  # the payload: the string's UTF-8
        literal = json.loads(text)["payload"]
        assert got[1] == literal.encode()
    check(text)  # a str: always the Python's
    check(bytearray(data))


# ----------------------------------------------------------------------------------------
# the real recordings


@cache
def real_texts() -> list[str]:
    """Every real status's JSON text: the stream recordings' lines as the servers sent them
    (the truncated line too: as a payload it is just a string), then each status of
    timelines.jsonl and of the .yml cassettes (bench/datasets.py) as orjson writes it."""
    texts: dict[str, None] = {}
    for name in ("mastodonsocial.json", "malformed.json"):
        for line in (REAL / name).read_text(encoding="utf-8").rstrip("\n").split("\n"):
            texts[line] = None
    statuses = [status for _, _, status in all_real_statuses()]
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    datasets = importlib.import_module("datasets")
    statuses += [status for _, status in datasets.real_statuses()]
    for status in statuses:
        try:
            texts[orjson.dumps(status).decode()] = None
        except TypeError:  # a lone surrogate: as \udXXX (then a JSON string holds `\\ud...`)
            texts[json.dumps(status)] = None
    return sorted(texts, key=len)


def wrap(text: str, event_name: str = "update", *, how: str = "json") -> bytes:
    """A real status as the streaming API sends it, `stream` first."""
    frame = {"stream": ["public"], "event": event_name, "payload": text}
    if how == "orjson":
        return orjson.dumps(frame)
    return json.dumps(frame, ensure_ascii=how == "ascii").encode()


@cache
def real_frames() -> list[bytes]:
    frames = []
    for number, text in enumerate(real_texts()):
        how = ("ascii", "json", "orjson")[number % 3]
        frames.append(wrap(text, ("update", "status.update")[number % 5 == 4], how=how))
    frames += [wrap("109372138742213231", "delete"), b'{"event":"update","payload":null}']
    return sorted(frames, key=len)


def test_every_real_status_is_read_natively() -> None:
    """On every real status, in every usual spelling of its frame, the native reader
    answers, and as the Python does: it never silently leaves the usual frame to it."""
    texts = real_texts()
    assert len(texts) > 500
    for text in texts:
        for how in ("ascii", "json", "orjson"):
            for name in ("update", "status.update"):
                got = check(wrap(text, name, how=how), answers=True)
                assert got == (name, text.encode())
        compact = json.dumps({"event": "update", "payload": text}, separators=(",", ":"))
        check(compact.encode(), answers=True)
    check(wrap("109372138742213231", "delete"), answers=True)
    check(b'{"stream":"public","event":"delete","payload":"1"}', answers=True)


# byte strings that matter to a JSON reader
SNIPPETS = [
    b'"', b"\\", b"\\u", b"\\ud800", b"\\udc00", b"\\uDBFF", b"\\ud83d\\ude00",
    b"\\uD83D\\uDE00", b"\\u0000", b"\\u00e9", b"\\/", b"\\x", b"\\'", b"\\\\", b'\\"',
    b"\x00", b"\x1f", b"\x7f", b"\x80", b"\xbf", b"\xc3", b"\xc0\xaf", b"\xff", b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80", b"\xef\xbb\xbf", b"\xe2\x80\xa8", b"{", b"}", b"[", b"]", b",", b":",
    b" ", b"\t", b"\n", b"\r", b"\x0b", b"null", b'"x"', b"1",
]  # fmt: skip
MEMBERS = [
    b'"event":"delete"', b'"event":"update"', b'"event":null', b'"event":1', b'"payload":"x"',
    b'"payload":null', b'"payload":{"a":1}', b'"payload":7', b'"stream":"user"',
    b'"stream":null', b'"error":"boom"', b'"error":null', b'"status":400', b'"unknown":1',
    b'"\\u0065vent":"update"', b'"pay\\u006coad":"x"', b'"Event":"update"', b'"":1',
]  # fmt: skip
KEYS = [b'"event"', b'"payload"', b'"stream"']
RENAMED = [b'"\\u0065vent"', b'"even\\u0074"', b'"\\u0070ayload"', b'"stre\\u0061m"']
RENAMED += [b'"error"', b'"status"', b'"events"', b'"payload "', b'"Payload"']

EDITS = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 1 << 16), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.sampled_from(SNIPPETS)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=3)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 16), st.integers(1, 8)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 16)),
    st.tuples(st.just("member"), st.booleans(), st.sampled_from(MEMBERS)),
    st.tuples(st.just("rename"), st.sampled_from(KEYS), st.sampled_from(RENAMED)),
    # near the start, the end or the payload's opening quote, where the structure is
    st.tuples(
        st.just("near"),
        st.sampled_from(["start", "end", "payload", "event"]),
        st.integers(-12, 12),
        st.sampled_from(SNIPPETS),
    ),
    # invalid UTF-8 (and other bytes) inside the payload string
    st.tuples(st.just("in payload"), st.integers(0, 1 << 16), st.sampled_from(SNIPPETS)),
)


def edit(data: bytes, change: tuple[Any, ...]) -> bytes:
    kind = change[0]
    if kind in ("set", "insert", "delete", "truncate", "in payload"):
        if kind == "in payload":
            start = data.find(b'"payload":"') + 11
            at = start + change[1] % max(1, len(data) - start - 2)
        else:
            at = change[1] % (len(data) + 1)
        if kind == "set":
            return data[:at] + bytes([change[2]]) + data[at + 1 :]
        if kind in ("insert", "in payload"):
            return data[:at] + change[2] + data[at:]
        if kind == "delete":
            return data[:at] + data[at + change[2] :]
        return data[:at]
    if kind == "member":
        at_end, member = change[1], change[2]
        if at_end:
            end = data.rfind(b"}")
            return data[:end] + b"," + member + data[end:] if end >= 0 else data + member
        start = data.find(b"{") + 1
        return data[:start] + member + b"," + data[start:]
    if kind == "rename":
        return data.replace(change[1], change[2], 1)
    _, anchor, offset, snippet = change
    where = {
        "start": 0,
        "end": len(data),
        "payload": data.find(b'"payload"') + 10,
        "event": data.find(b'"event"') + 8,
    }[anchor]
    at = min(max(where + offset, 0), len(data))
    return data[:at] + snippet + data[at:]


@settings(SETTINGS, max_examples=4000)
@given(st.integers(0, 1 << 16), st.lists(EDITS, min_size=1, max_size=4))
def test_mutated_real_frames(which: int, changes: list[tuple[Any, ...]]) -> None:
    frames = real_frames()
    data = frames[which % len(frames)]
    for change in changes:
        data = edit(data, change)
        check(data)


# the tokens of frames, strung together without a grammar
TOKENS = [
    b"{", b"}", b"[", b"]", b",", b":", b" ", b"\n", b'"event"', b'"payload"', b'"stream"',
    b'"error"', b'"status"', b'"update"', b'"delete"', b'"public"', b'""', b'"x"', b"null",
    b"nul", b"1", b"true", b'"\\ud800"', b'"\\udc00\\ud800"', b'"\\ud83d\\ude00"', b'"\\u00e9"',
    b'"a\\"b"', b'"\\\\"', b'"\\/"', b'"\\u0000"', b'"\\q"', b'"\\u12"', b'"\xc3\xa9"', b'"\xff"',
    b'"\xed\xa0\x80"', b'"\x00"', b'"\x7f"', b'"', b"\\", b"\xef\xbb\xbf",
]  # fmt: skip


@settings(SETTINGS, max_examples=1500)
@given(st.lists(st.sampled_from(TOKENS), max_size=14).map(b"".join))
@example(b'{"event":"update"}')
@example(b'{"event":"update","payload":""}')
@example(b'{"payload":"","event":"x","stream":[]}')
def test_token_soup(data: bytes) -> None:
    check(data)
    check(b"{" + data + b"}")
    check(b'{"event":"update",' + data + b"}")
    check(b'{"event":"update","payload":' + data + b"}")


# ----------------------------------------------------------------------------------------
# any object


class OwnBytes(bytes):
    pass


VALID = b'{"stream":["public"],"event":"update","payload":"{\\"id\\":\\"1\\"}"}'

OBJECTS = st.one_of(
    st.text(st.characters(), max_size=20),
    st.binary(max_size=20).map(bytearray),
    st.binary(max_size=20).map(lambda b: memoryview(b)),
    st.binary(max_size=20).map(OwnBytes),
    st.binary(max_size=20).map(Mended),
    st.sampled_from([VALID.decode(), bytearray(VALID), memoryview(VALID), OwnBytes(VALID)]),
    st.sampled_from([Mended(VALID), memoryview(VALID)[1:-1], memoryview(b"x" + VALID)[1:]]),
    st.integers(),
    st.floats(),
    st.none(),
    st.booleans(),
    st.complex_numbers(),
    st.lists(st.binary(max_size=5), max_size=3),
    st.tuples(st.binary(max_size=5)),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()),
    st.just(type),
    st.just(bytes),
    st.just(Ellipsis),
    st.sets(st.integers(), max_size=2),
)


@settings(SETTINGS, max_examples=400)
@given(OBJECTS)
def test_any_object(obj: Any) -> None:
    """None for every object that is not exactly bytes (a str, a bytearray, a memoryview, a
    bytes subclass such as Mended included), never an exception, and parse_ws_frame does
    what the Python does with it (also when that raises)."""
    assert native().ws_frame(obj) is None
    check(obj, answers=False)


def test_valid_frame_in_other_types_is_left_to_the_python() -> None:
    assert native().ws_frame(VALID) == ("update", b'{"id":"1"}')
    for obj in (VALID.decode(), bytearray(VALID), memoryview(VALID), OwnBytes(VALID)):
        assert native().ws_frame(obj) is None
        check(obj, answers=False)
    # a Mended payload keeps its type through parse_ws_frame
    mended = parse_ws_frame(b'{"event":"update","payload":"\\ud800"}')
    assert mended is not None and type(mended[1]) is Mended


def test_large_and_deep_frames() -> None:
    text = '\U0001f600\\"é/\x00' * 20000
    check(wrap(text, how="ascii"), answers=True)
    check(wrap(text, how="orjson"), answers=True)
    for depth in (10, 900, 5000):
        check(b'{"event":"update","payload":' + b"[" * depth + b"]" * depth + b"}", answers=False)
        check(b'{"event":"update","stream":' + b"[" * depth + b"]" * depth + b"}", answers=False)
    check(b"[" * 100000, answers=False)
    check(b'{"event":"update","payload":"' + b"\\u" * 100000, answers=False)
    check(b'{"event":"update","payload":"' + b"a" * 100000, answers=False)


# ----------------------------------------------------------------------------------------
# the tests can fail: wrong stand-ins for the native reader are caught


def _no_unescaping(data: Any) -> Any:
    """Gives the payload's JSON string as it is written, escapes and all."""
    got = native().ws_frame(data)
    if got is None or got[1] is None:
        return got
    start = data.index(b'"payload"') + 9
    start = data.index(b'"', start) + 1
    end = start
    while data[end] != 0x22:
        end += 2 if data[end] == 0x5C else 1
    return got[0], data[start:end]


def _trailing_byte(data: Any) -> Any:
    got = native().ws_frame(data)
    return got if got is None or got[1] is None else (got[0], got[1] + b"\n")


def _mended_type(data: Any) -> Any:
    got = native().ws_frame(data)
    return got if got is None or got[1] is None else (got[0], Mended(got[1]))


def _first_key_wins(data: Any) -> Any:
    """Reads frames with keys given twice too, keeping the first (msgspec keeps the last)."""
    got = native().ws_frame(data)
    if got is not None or type(data) is not bytes:
        return got
    try:
        pairs = json.loads(data, object_pairs_hook=lambda p: p)
        frame = dict(reversed(pairs))
        payload = frame.get("payload")
        return (frame["event"], None if payload is None else payload.encode())
    except Exception:
        return None


def _gives_up(data: Any) -> Any:
    return None


def _raises_on_str(data: Any) -> Any:
    if isinstance(data, str):
        raise TypeError("a str")
    return native().ws_frame(data)


def _cesu_pairs(data: Any) -> Any:
    """Encodes an escaped astral character as its two surrogates (CESU-8), not as UTF-8."""
    got = native().ws_frame(data)
    if got is None or got[1] is None:
        return got
    try:
        text = json.loads(data)["payload"]
        raw = text.encode("utf-16-le")
        units = [raw[i : i + 2].decode("utf-16-le", "surrogatepass") for i in range(0, len(raw), 2)]
        return got[0], "".join(units).encode("utf-8", "surrogatepass")
    except Exception:
        return got


PLANTED: list[tuple[Callable[[Any], Any], Any]] = [
    (_no_unescaping, frames()),
    (_trailing_byte, frames()),
    (_mended_type, frames()),
    (_first_key_wins, frames()),
    (_gives_up, frames()),
    (_raises_on_str, frames()),
    (_cesu_pairs, frames()),
]


@pytest.mark.parametrize(
    ("stand_in", "strategy"), PLANTED, ids=[f.__name__.strip("_") for f, _ in PLANTED]
)
def test_planted_defects_are_caught(
    monkeypatch: pytest.MonkeyPatch, stand_in: Callable[[Any], Any], strategy: Any
) -> None:
    monkeypatch.setattr(mastodon, "_native", SimpleNamespace(ws_frame=stand_in))

    def caught(case: tuple[str, bool]) -> bool:
        text, usual = case
        data = as_bytes(text)
        try:
            check(data, answers=True if usual else None)
            check(text)
        except AssertionError:
            return True
        return False

    # (no shrinking: finding one is the point, and cheap)
    quick = settings(SETTINGS, max_examples=2000, phases=[Phase.generate])
    found = find(strategy, caught, settings=quick)
    assert caught(found)
