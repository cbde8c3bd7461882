"""bench/ablate.py, the measuring tool that runs the collector without parts of its work:
its `decode` stand-in must keep each post's own uri and id, or the ablation would measure a
collector writing one post over and over (the Recorder drops repeats); and it must decode
nothing, or it would measure nothing."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ablate  # bench/ (on the path: conftest)
from tootlake.record import Rejection, ValidStatus, decode_status
from tootlake.record.consent import Consent
from tootlake.sources import fleet

from .conftest import all_real_statuses

# what uris and ids hold: no quote, backslash or control character (JSON escapes none)
plain = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")).filter(lambda c: c not in '"\\'),
    max_size=80,
)


@given(uri=plain, sid=plain, before=st.dictionaries(plain, plain, max_size=3))
def test_plain_after_reads_the_value(uri: str, sid: str, before: dict[str, str]) -> None:
    status = {"id": sid, "uri": uri}
    # keys that do not end in the ones looked for may come first
    others = {k: v for k, v in before.items() if k not in status and not k.endswith(("id", "uri"))}
    raw = json.dumps({**others, **status}, ensure_ascii=False, separators=(",", ":")).encode()
    assert ablate._plain_after(raw, b'"id":"') == sid
    assert ablate._plain_after(raw, b'"uri":"') == uri


def test_plain_after_without_the_key_or_its_end() -> None:
    assert ablate._plain_after(b'{"id":1}', b'"uri":"') is None
    assert ablate._plain_after(b'{"uri":"unterminated', b'"uri":"') is None


@pytest.fixture
def shared_tree(monkeypatch: pytest.MonkeyPatch) -> Any:
    # (undone after the test)
    monkeypatch.setattr(fleet, "decode_stream_status", fleet.decode_stream_status)
    monkeypatch.setattr(fleet, "ws_status", fleet.ws_status)
    ablate._without_decode()
    assert fleet.ws_status(b'{"event":"update","payload":"{}"}') is None  # frames: framed first
    return fleet.decode_stream_status


def test_the_decode_stand_in_keeps_each_posts_own_key(shared_tree: Any) -> None:
    statuses = [status for _, _, status in all_real_statuses()]
    # first a status the consent gate stops: it must not become the template, or every
    # post of the run would be skipped and the run would write nothing
    statuses.insert(0, {**statuses[0], "visibility": "unlisted"})
    compared, template = 0, None
    for status in statuses:
        raw = msgspec.json.encode(status)  # compact, in the status's own key order
        real = decode_status(raw)
        stood_in = shared_tree(raw)
        if isinstance(real, Rejection) or not isinstance(stood_in, ValidStatus):
            continue
        assert (stood_in.uri, stood_in.id) == (real.uri, real.id)
        if template is None and Consent().gate(real) is not None:
            continue  # decoded for real, and not taken as the template
        if template is None:  # the first one the gate lets through is shared from then on
            template = stood_in.data.account
        assert stood_in.data.account is template  # no tree decoded: what is measured
        assert Consent().gate(stood_in) is None
        compared += 1
    assert compared > 400  # every usual real status; not a test of nothing


def test_unknown_parts_are_named() -> None:
    assert ablate.unknown_parts("decode,merge") is None
    wrong = ablate.unknown_parts("decode,../x")
    assert wrong is not None and "'../x'" in wrong and "choose from" in wrong
