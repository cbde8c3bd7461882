"""`tootlake revalidate` against instances that lie or misbehave, each a small HTTP server on
loopback (real sockets) answering what the test chooses: nothing may be removed on the word of
a proxy's page, a redirect, or an instance that knows none of the posts; a 429 with no wait
is not an invitation to hammer; posts that always fail do not hold up the rest; a lake
collected under two consent policies is not judged by the stricter one."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tootlake.errors import ConfigError
from tootlake.lake.reader import open_lake
from tootlake.pipeline import replay
from tootlake.record import Consent
from tootlake.revalidate import RevalidateOptions, lake_consent, revalidate
from tootlake.sources.fleet import InstanceSpec
from tootlake.sources.lookup import LookupOptions, mastodon_error

JSON = {"Content-Type": "application/json"}
INSTANCE = json.dumps({"version": "4.3.0", "title": "x", "domain": "x"}).encode()
NOT_FOUND = (404, JSON, b'{"error":"Record not found"}')
FAST = RevalidateOptions(
    lookups=LookupOptions(connect_timeout=1.0, request_timeout=2.0, max_wait=10.0),
    backoff_base=0.05,
    backoff_cap=0.2,
    max_errors_in_a_row=3,
)
Answer = tuple[int, dict[str, str], bytes]


def real_statuses() -> list[dict[str, Any]]:
    text = resources.files("tootlake.simulate").joinpath("data/statuses.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.split("\n") if line.strip()]


class Server:
    """An instance on loopback: `answer(path)` says what each GET gets; `hits` lists paths."""

    def __init__(self, answer: Callable[[str], Answer]) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                outer.hits.append(self.path)
                if self.path.startswith("/api/v2/instance"):
                    code, headers, body = 200, JSON, INSTANCE
                else:
                    code, headers, body = answer(self.path)
                self.send_response(code)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"http://{self.host}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def lookups(self) -> list[str]:
        return [path for path in self.hits if path.startswith("/api/v1/")]


@pytest.fixture
def servers() -> Iterator[Callable[[Callable[[str], Answer]], Server]]:
    started: list[Server] = []

    def start(answer: Callable[[str], Answer]) -> Server:
        server = Server(answer)
        started.append(server)
        return server

    yield start
    for server in started:
        server.httpd.shutdown()
        server.httpd.server_close()


def lake_of(tmp_path: Path, host: str, statuses: list[dict[str, Any]], **policy: Any) -> str:
    lake = str(tmp_path / "lake")
    capture = tmp_path / f"in-{len(list(tmp_path.glob('in-*')))}.jsonl"
    capture.write_text("".join(json.dumps(s) + "\n" for s in statuses), encoding="utf-8")
    replay([capture], lake, observed_on=host, workers=1, **policy)
    return lake


def uris(lake: str) -> set[str]:
    return {u for (u,) in open_lake(lake).execute("SELECT uri FROM posts").fetchall()}


def local(n: int) -> list[dict[str, Any]]:
    """`n` real statuses of accounts local to the instance they are replayed as seen on."""
    return [s for s in real_statuses() if "@" not in s["account"]["acct"]][:n]


def status_of(statuses: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    wanted = path.rpartition("/")[2]
    return next((s for s in statuses if s["id"] == wanted), None)


def test_a_proxys_html_404_removes_nothing(servers, tmp_path):
    server = servers(lambda path: (404, {"Content-Type": "text/html"}, b"<h1>404</h1>nginx"))
    lake = lake_of(tmp_path, server.host, local(4))
    before = uris(lake)
    result = revalidate(lake, instances=[InstanceSpec(server.url)], older_than=0, options=FAST)
    assert uris(lake) == before and result.stats.deletes == 0
    assert result.stats.errors == 3  # then the instance is left for this run


def test_a_redirect_is_not_followed_and_removes_nothing(servers, tmp_path):
    inside = servers(lambda path: NOT_FOUND)  # what a redirect could lead to
    server = servers(lambda path: (302, {"Location": f"{inside.url}/admin{path}"}, b""))
    lake = lake_of(tmp_path, server.host, local(3))
    before = uris(lake)
    result = revalidate(lake, instances=[InstanceSpec(server.url)], older_than=0, options=FAST)
    assert uris(lake) == before and result.stats.deletes == 0 and result.stats.errors == 3
    assert inside.hits == []


def test_retry_after_zero_is_not_an_invitation_to_hammer(servers, tmp_path):
    server = servers(lambda path: (429, {**JSON, "Retry-After": "0"}, b'{"error":"Too many"}'))
    lake = lake_of(tmp_path, server.host, local(1))
    stop = threading.Event()
    threading.Timer(3.0, stop.set).start()
    started = time.monotonic()
    result = revalidate(
        lake, instances=[InstanceSpec(server.url)], older_than=0, options=FAST, stop=stop
    )
    assert time.monotonic() - started < 10
    assert len(server.lookups()) <= 5  # one a second at most
    assert result.stats.deletes == 0


def test_an_instance_that_knows_none_of_the_posts_removes_none(servers, tmp_path):
    """A reinstalled server at the same domain, or the wrong --observed-on: every lookup
    404s with Mastodon's own error. No post was found as it is, so no 404 is trusted."""
    server = servers(lambda path: NOT_FOUND)
    statuses = local(6)
    lake = lake_of(tmp_path, server.host, statuses)
    before = uris(lake)
    result = revalidate(lake, instances=[InstanceSpec(server.url)], older_than=0, options=FAST)
    assert uris(lake) == before and result.stats.deletes == 0
    assert result.stats.unconfirmed == len(before) and result.stats.remaining == len(before)


def test_gone_answers_count_once_the_instance_showed_a_post(servers, tmp_path):
    statuses = local(6)
    kept = statuses[-1]  # asked last (collected last): the 404s before it wait for it

    def answer(path: str) -> Answer:
        found = status_of(statuses, path)
        if found is kept:
            return 200, JSON, json.dumps(kept).encode()
        return NOT_FOUND

    server = servers(answer)
    lake = lake_of(tmp_path, server.host, statuses)
    result = revalidate(lake, instances=[InstanceSpec(server.url)], older_than=0, options=FAST)
    assert uris(lake) == {kept["uri"]}
    # (their accounts are mastodon.social's, not this server's: each copy goes on its own)
    assert result.stats.removed == {"gone_from_observer": 5}
    assert result.stats.unconfirmed == 0


def test_posts_that_always_fail_go_to_the_back_of_the_queue(servers, tmp_path):
    statuses = local(8)
    broken = {s["id"] for s in statuses[:3]}  # collected first: asked first in a first run

    def answer(path: str) -> Answer:
        found = status_of(statuses, path)
        assert found is not None
        if found["id"] in broken:
            return 200, JSON, b'{"note": "not a status"}'
        return 200, JSON, json.dumps(found).encode()

    server = servers(answer)
    lake = lake_of(tmp_path, server.host, statuses)
    first = revalidate(lake, instances=[InstanceSpec(server.url)], older_than=0, options=FAST)
    assert first.stats.errors == 3 and first.stats.present == 0  # left after 3 in a row
    second = revalidate(lake, instances=[InstanceSpec(server.url)], older_than=0, options=FAST)
    assert second.stats.present == len(statuses) - 3  # the others first this time


def test_a_lake_of_two_consent_policies_needs_one_said(servers, tmp_path):
    statuses = local(5)
    server = servers(lambda path: (200, JSON, json.dumps(status_of(statuses, path)).encode()))
    lake = lake_of(tmp_path, server.host, statuses)  # opt-out
    lake_of(tmp_path, server.host, [], consent=Consent("opt-in"))  # a stray opt-in replay
    with pytest.raises(ConfigError, match="several consent policies.*opt-in, opt-out"):
        lake_consent(lake)
    with pytest.raises(ConfigError, match="--consent"):
        revalidate(lake, instances=[InstanceSpec(server.url)], older_than=0, options=FAST)
    before = uris(lake)
    result = revalidate(
        lake, instances=[InstanceSpec(server.url)], older_than=0, consent=Consent(), options=FAST
    )
    assert uris(lake) == before and result.stats.present == len(before)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.from_regex(rb'\{"error": ?"[^"]*"\}', fullmatch=True)))
def test_only_mastodons_json_error_makes_a_404_a_delete(body):
    """Any bytes a server sends after a 404: never an exception; gone only for a JSON object
    whose `error` is a string."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    expected = isinstance(parsed, dict) and isinstance(parsed.get("error"), str)
    assert mastodon_error(body) is expected
