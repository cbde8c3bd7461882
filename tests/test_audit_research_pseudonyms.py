"""Hostile review of pseudonymisation (audit): identifiers a server hides where a host should
be (a backslash path in a uri, an acct with a path or a second @), and accts quoted in error
texts, must not reach a pseudonymised lake in the clear."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import deltalake
import pytest

from tootlake.errors import LakeError
from tootlake.lake.pseudonyms import claim, lake_key_id
from tootlake.pipeline import replay
from tootlake.record import Reject
from tootlake.record.pseudonymize import Pseudonymizer
from tootlake.sources.mastodon import parse_ws_frame_python

KEY = bytes(range(32))
P = Pseudonymizer(KEY)
# usernames that appear nowhere but in the hostile statuses below
NAMES = ("zoezoe", "yanyan", "xavixavi", "vicvic", "wendywendy")


def _status(n: int, **changes: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "id": f"10900000000000{n:04d}",
        "uri": f"https://home.example/users/someone/statuses/10900000000000{n:04d}",
        "created_at": "2025-01-02T03:04:05.000Z",
        "visibility": "public",
        "content": "<p>hello there</p>",
        "account": {"id": str(n), "username": "someone", "acct": "someone"},
    }
    status.update(changes)
    return status


def _strings(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _lake_text(lake: Path) -> str:
    """Every value of every Delta table of the lake, and every file of `_tootlake`, as text."""
    out = []
    for log in lake.glob("*/_delta_log"):
        out.append(_strings(deltalake.DeltaTable(str(log.parent)).to_pyarrow_table().to_pylist()))
    for path in (lake / "_tootlake").rglob("*"):
        if path.is_file():
            out.append(path.read_text("utf-8", "replace"))
    return "\n".join(out)


def test_names_hidden_in_the_host_of_uris_and_accts_never_reach_a_pseudonymised_lake(tmp_path):
    """A uri whose "host" runs on with backslashes (browsers read `\\` as `/`: it is the
    profile path), an acct with a path or a second @: the name in
    them was kept as if it were a host, in `uri`, `origin`, `acct`, `mentions`..."""
    statuses = [
        _status(1, uri="https://home.example\\users\\zoezoe\\statuses\\1"),
        _status(
            2,
            account={"id": "2", "username": "yanyan", "acct": "yanyan@far.example/users/yanyan"},
        ),
        _status(
            4,
            mentions=[
                {
                    "id": "9",
                    "username": "vicvic",
                    "acct": "vicvic@far.example:vicvic",
                    "url": "https://far.example/@vicvic",
                }
            ],
        ),
    ]
    text = _replayed(tmp_path, statuses)
    assert "hello there" in text  # the posts are there
    for name in NAMES:
        assert name not in text.lower(), name


def test_a_local_accounts_url_with_a_backslash_leaves_no_name_in_its_acct(tmp_path):
    account = {
        "id": "3",
        "username": "xavixavi",
        "acct": "xavixavi",
        "url": "https://home.example\\@xavixavi",
    }
    text = _replayed(tmp_path, [_status(3, account=account)])
    assert "hello there" in text
    assert "xavixavi" not in text.lower()


def test_a_name_before_a_backslash_and_an_at_in_a_uri_is_not_kept_as_its_origin(tmp_path):
    """`https://wendywendy\\@far.example/...`: browsers and host_of read the host as
    `wendywendy`, urllib as user `wendywendy\\` of far.example. The uri became a pseudonym,
    but the post's `origin` (host_of of the uri) kept the name."""
    uri = "https://wendywendy\\@far.example/users/someone/statuses/5"
    text = _replayed(tmp_path, [_status(5, uri=uri)])
    assert "hello there" in text
    assert "wendywendy" not in text.lower()


def _replayed(tmp_path: Path, statuses: list[dict[str, Any]]) -> str:
    capture = tmp_path / "in.jsonl"
    capture.write_text("".join(json.dumps(s) + "\n" for s in statuses), encoding="utf-8")
    lake = tmp_path / "lake"
    replay([capture], str(lake), observed_on="home.example", workers=1, pseudonymizer=P)
    return _lake_text(lake)


def test_an_acct_quoted_bare_in_a_servers_error_is_masked_in_the_reject():
    """A streaming server's error text goes into the reject's reason ("bad WebSocket frame:
    server error on the stream: ..."): a bare `user@host` in it was kept."""
    with pytest.raises(ValueError) as error:
        parse_ws_frame_python(b'{"error": "no stream for wendywendy@far.example, sorry"}')
    reason = f"bad WebSocket frame: {error.value}"  # as the fleet builds it
    reject = Reject(datetime.now(UTC), "websocket", "far.example", None, reason, None, "{}")
    masked = P.reject(reject).reason
    assert "wendywendy" not in masked and "server error on the stream" in masked
    assert P.message("mail wendywendy@far.example.") == f"mail {P.acct('wendywendy@far.example')}."


def test_accts_with_a_host_keep_their_form_and_accts_without_a_usable_host_lose_it():
    assert P.acct("alice@Far.Example") == P.acct("Alice@far.example")
    assert P.acct("alice@far.example").endswith("@far.example")
    assert P.acct("alice@[::1]:8080").endswith("@[::1]:8080")
    assert P.acct("alice@far.example.").endswith("@far.example.")
    for hostile in ("alice@far.example/@alice", "alice@x\\@alice", "@alice@far.example x"):
        assert "alice" not in P.acct(hostile) and "@" not in P.acct(hostile)
    assert P.uri("https://far.example\\users\\alice").startswith("urn:p:")
    assert P.uri("http://[::1]:8080/@alice").startswith("http://[::1]:8080/p/")


def test_a_marker_nested_too_deeply_is_a_damaged_marker_not_a_traceback(tmp_path):
    lake = tmp_path / "lake"
    claim(str(lake), P.key_id)
    assert lake_key_id(str(lake)) == P.key_id
    marker = lake / "_tootlake" / "pseudonymised.json"
    marker.write_text("[" * 60_000, encoding="utf-8")
    with pytest.raises(LakeError, match="damaged"):
        lake_key_id(str(lake))


def test_a_uri_has_one_pseudonym_whatever_was_pseudonymised_before():
    """The cache keyed a url as "\\x00" + url: a uri that starts with "\\x00" (a server's
    bytes) got that url's pseudonym when it was cached, another one in a fresh process (a
    replay's other worker)."""
    fresh = Pseudonymizer(KEY).uri("\x00https://home.example/users/a/statuses/1")
    used = Pseudonymizer(KEY)
    used.url("https://home.example/users/a/statuses/1")
    assert used.uri("\x00https://home.example/users/a/statuses/1") == fresh
