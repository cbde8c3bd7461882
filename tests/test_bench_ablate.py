"""bench/ablate.py, the measuring tool that runs the collector without parts of its work:
its `decode` stand-in must keep each post's own uri, id and content, or the ablation would
measure a collector writing one post over and over (the Recorder drops repeats)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ablate  # bench/ (on the path: conftest)
from tootlake.record import Rejection, ValidStatus, decode_status
from tootlake.sources import fleet

from .conftest import all_real_statuses

text = st.text(st.characters(codec="utf-8"), max_size=80)


@given(uri=text, sid=text, content=text, before=st.dictionaries(text, text, max_size=3))
def test_string_after_reads_the_value_whatever_its_escapes(
    uri: str, sid: str, content: str, before: dict[str, str]
) -> None:
    status = {"id": sid, "uri": uri, "content": content}
    # keys that do not end in the ones looked for may come first
    ends = ("id", "uri", "content")
    others = {k: v for k, v in before.items() if k not in status and not k.endswith(ends)}
    for ascii_only in (False, True):
        raw = json.dumps({**others, **status}, ensure_ascii=ascii_only, separators=(",", ":"))
        for key, value in status.items():
            assert ablate._string_after(raw.encode(), f'"{key}":"'.encode()) == value


def test_string_after_without_the_key_or_a_string_value() -> None:
    assert ablate._string_after(b'{"id":1}', b'"uri":"') is None
    assert ablate._string_after(b'{"uri":"unterminated', b'"uri":"') is None


@pytest.fixture
def shared_tree(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(fleet, "decode_status", fleet.decode_status)  # undone after the test
    ablate._without_decode()
    return fleet.decode_status


def test_the_decode_stand_in_keeps_each_posts_own_key_and_text(shared_tree: Any) -> None:
    compared, template = 0, None
    for _, _, status in all_real_statuses():
        raw = msgspec.json.encode(status)  # compact, in the status's own key order
        real = decode_status(raw)
        stood_in = shared_tree(raw)
        if isinstance(real, Rejection) or not isinstance(stood_in, ValidStatus):
            continue
        if template is None:  # the first one is decoded for real and shared from then on
            template = stood_in.data.account
        assert stood_in.data.account is template  # no tree decoded: what is measured
        assert (stood_in.uri, stood_in.id, stood_in.data.content) == (
            real.uri,
            real.id,
            real.data.content,
        )
        compared += 1
    assert compared > 400  # every usual real status; not a test of nothing
