"""Secret audit, over real sockets: servers that echo what they were sent (a token in an error
body, cut short or whole; a token in the Location of a redirect or in the announced streaming
URL; an S3 session token in an S3 error) must not get it into a log line, the state files,
--stats, the lake or an error message."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from aiohttp import web

from tootlake.redact import register_secret
from tootlake.sources.fleet import InstanceSpec

from .collect.conftest import wait_for
from .collect.servers import DOC_V2, json_answer, running_fleet, serve

ECHOED = "echo-T0ken-AbCdEfGhIjKlMnOpQrStUvWxYz01"  # 40 characters, as real tokens are


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOTLAKE_", "AWS_"))}
    env["TOOTLAKE_CONFIG"] = os.devnull
    return env


def _leaks(secret: str, root: Path, *texts: str) -> list[str]:
    """Where the secret, or its first half, shows: in `texts`, a file under `root`, or a
    string of a Parquet file there (also what the Delta log keeps as column statistics)."""
    half = secret[: len(secret) // 2]
    found = [f"output {i}" for i, text in enumerate(texts) if half in text]
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        shown = half.encode() in path.read_bytes()
        if not shown and path.suffix == ".parquet":  # compressed: read its strings
            shown = half in json.dumps(pq.read_table(path).to_pylist(), default=str)
        if shown:
            found.append(str(path.relative_to(root)))
    return found


@contextmanager
def _echoing_instance(pad: int) -> Iterator[Any]:
    """An instance whose stream answers 401 quoting the token it was sent after `pad`
    characters (Mastodon's `{"error": ...}`); its public timeline is open (polled)."""

    async def refuse(request: web.Request) -> web.StreamResponse:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return web.json_response({"error": "x" * pad + sent + " was revoked"}, status=401)

    routes = {
        "/api/v2/instance": json_answer(DOC_V2),
        "/api/v1/timelines/public": json_answer([]),
        "/api/v1/streaming{tail:.*}": refuse,
    }
    with serve(routes) as instance:
        yield instance


def _collect(tmp_path: Path, instance: Any, stream: str) -> tuple[Path, str]:
    run = tmp_path / "run"  # everything the collector writes; the token file is outside
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{instance.host}={ECHOED}\n", encoding="utf-8")
    tokens.chmod(0o600)
    proc = subprocess.run(
        [sys.executable, "-m", "tootlake", "--log-level", "debug", "collect",
         "--instance", instance.url, "--token-file", str(tokens), "--stream", stream,
         "--lake", str(run / "lake"), "--state", str(run / "state"),
         "--stats", str(run / "stats.json"), "--duration", "4"],
        capture_output=True, text=True, env=_env(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "token rejected" in proc.stderr  # the 401 was read (and its text logged)
    return run, proc.stdout + proc.stderr


@pytest.mark.parametrize("stream", ["sse", "websocket"])
def test_a_token_echoed_cut_short_in_a_401_body_is_in_no_log_or_state_file(tmp_path, stream):
    """The error text is cut to 200 characters before redaction: with 176 characters before
    it, the token is cut after 24 of its 40, so it is no longer there whole to be masked."""
    with _echoing_instance(pad=176) as instance:
        run, output = _collect(tmp_path, instance, stream)
    health = json.loads((run / "state" / "health.json").read_text(encoding="utf-8"))
    assert "***" in health[instance.host]["detail"]
    assert _leaks(ECHOED, run, output) == []


def test_a_token_echoed_by_a_server_is_not_in_the_audit_table(tmp_path):
    with _echoing_instance(pad=0) as instance:
        run, output = _collect(tmp_path, instance, "sse")
    assert _leaks(ECHOED, run, output) == []


def test_a_token_echoed_in_the_announced_streaming_url_is_not_in_health(tmp_path):
    """The instance document announces a streaming URL on another host with the token it was
    sent in the query: refused (plain http elsewhere), the token in neither its detail nor
    health.json."""
    echoed = "stream-url-T0ken-AbCdEfGhIjKlMnOpQrStUv"

    async def document(request: web.Request) -> web.StreamResponse:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
        url = f"http://127.0.0.2:9/api/v1/streaming?access_token={sent}&x=1"
        return web.json_response({**DOC_V2, "configuration": {"urls": {"streaming": url}}})

    routes = {"/api/v2/instance": document, "/api/v1/timelines/public": json_answer([])}
    with serve(routes) as instance:
        spec = InstanceSpec(instance.url, echoed)  # (not registered: the pattern must do)
        with running_fleet([spec], tmp_path, stream="sse") as fleet:
            worker = fleet.wait_status(instance.host, "failing", "refusing to send the token")
            detail = fleet.worker(instance.host).detail
            wait_for(
                lambda: (
                    "refusing" in (tmp_path / "health.json").read_text(encoding="utf-8")
                    if (tmp_path / "health.json").exists()
                    else False
                ),
                10,
                "health.json",
            )
    # (the announced URL is named without its query: nothing of the token to mask)
    assert worker and echoed[:10] not in (tmp_path / "health.json").read_text("utf-8")
    assert echoed[:10] not in detail


def test_a_token_echoed_through_a_redirect_is_in_no_state_file(tmp_path):
    """The stream is redirected to another host with the token in the Location's query
    (`?t=`, no `access_token=` to spot); that host answers 500 quoting its query. The token
    is registered, as load_settings registers every token it loads."""
    echoed = "redirect-T0ken-AbCdEfGhIjKlMnOpQrStUvW/+="
    register_secret(echoed)

    async def quote_query(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": f"bad t {request.query.get('t')}"}, status=500)

    with serve({"/{tail:.*}": quote_query}, "127.0.0.2") as other:

        async def moved(request: web.Request) -> web.StreamResponse:
            sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
            from yarl import URL

            raise web.HTTPFound(str(URL(f"{other.url}/s").with_query(t=sent)))

        routes = {
            "/api/v2/instance": json_answer(DOC_V2),
            "/api/v1/timelines/public": json_answer([]),
            "/api/v1/streaming{tail:.*}": moved,
        }
        with serve(routes) as instance:
            spec = InstanceSpec(instance.url, echoed)
            with running_fleet([spec], tmp_path, stream="sse"):
                wait_for(lambda: len(other.requests) >= 2, 20, "the redirected streams")
                wait_for(lambda: (tmp_path / "health.json").exists(), 10, "health.json")
    assert all("Authorization" not in headers for _, headers in other.requests)
    text = "".join(p.read_text("utf-8") for p in tmp_path.glob("*.json"))
    assert "redirect-T0ken" not in text and "%2B" not in text, text


# -- S3 ------------------------------------------------------------------------------------

SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLE/session+token0123456789=="


@contextmanager
def _s3_echoing_the_session_token() -> Iterator[str]:
    """An S3 endpoint that lists empty buckets and refuses every Delta log request with
    ExpiredToken, quoting the token as AWS does (`<Token-0>`)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            token = self.headers.get("x-amz-security-token", "")
            if "_delta_log" in self.path or "delta_log" in self.path:
                code, body = (
                    400,
                    (
                        "<?xml version='1.0'?><Error><Code>ExpiredToken</Code><Message>The "
                        f"provided token has expired.</Message><Token-0>{token}</Token-0></Error>"
                    ),
                )
            elif "list-type=2" in self.path:
                code, body = (
                    200,
                    (
                        "<?xml version='1.0'?><ListBucketResult xmlns='http://s3.amazonaws.com/"
                        "doc/2006-03-01/'><Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false"
                        "</IsTruncated></ListBucketResult>"
                    ),
                )
            else:
                code, body = 404, "<Error><Code>NoSuchKey</Code><Message>no</Message></Error>"
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


@pytest.mark.parametrize("command", [["replay", "STATUSES"], ["report"]])
def test_an_s3_session_token_echoed_by_s3_is_masked_in_the_error(tmp_path, command):
    pytest.importorskip("boto3")
    statuses = tmp_path / "s.jsonl"
    statuses.write_text(
        '{"id": "1", "uri": "https://a.example/1", "created_at": "2024-01-01T00:00:00Z", '
        '"content": "hi", "visibility": "public", '
        '"account": {"id": "1", "acct": "a", "url": "https://a.example/@a"}}\n',
        encoding="utf-8",
    )
    args = [str(statuses) if a == "STATUSES" else a for a in command]
    with _s3_echoing_the_session_token() as endpoint:
        env = {
            **_env(),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "secret-key-EXAMPLE-0123456789",
            "AWS_SESSION_TOKEN": SESSION_TOKEN,
        }
        proc = subprocess.run(
            [sys.executable, "-m", "tootlake", "--log-level", "debug", *args,
             "--lake", "s3://b/lake"],
            capture_output=True, text=True, env=env, timeout=180,
        )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "ExpiredToken" in output, output[-2000:]
    assert "session+token" not in output and "session%2Btoken" not in output, output[-2000:]
