"""The collector's WebSocket stream (tootlake.sources.websocket) against servers written by
hand over real loopback sockets: what a hostile server can send (frames that lie about their
size, endless fragments, empty messages, ping floods, trickles, reserved bits, broken
handshakes and redirects) and what the stream must still do (deliver every whole message in
order, stay bounded, end with the reason named)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tootlake.sources.mastodon import InstanceDown, TooLarge
from tootlake.sources.websocket import (
    REDIRECTS,
    HandshakeFailed,
    Refused,
    Stream,
    open_stream,
    redirected,
)

MiB = 1 << 20
log = logging.getLogger("tootlake.sources.websocket")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def upgrade(request: bytes) -> bytes:
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """A server's frame (unmasked)."""
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = bytes([first, n])
    elif n < 65536:
        head = bytes([first, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, 127]) + n.to_bytes(8, "big")
    return head + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """A client's frame (masked): its opcode and payload."""
    head = await reader.readexactly(2)
    n = head[1] & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    mask = await reader.readexactly(4)
    data = await reader.readexactly(n)
    return head[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def answer_pings(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the client's frames until it goes away, answering its pings."""
    try:
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 9:
                writer.write(frame(10, payload))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass


def run(handler: Handler, scenario: Callable[[int], Awaitable[Any]]) -> Any:
    """`scenario(port)` against a server whose connections `handler` serves."""

    async def main() -> Any:
        tasks: set[asyncio.Task[None]] = set()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            tasks.add(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass  # (the client went away, or the scenario ended)
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        try:
            return await scenario(server.sockets[0].getsockname()[1])
        finally:
            # a closed transport closes its socket in a callback the loop runs next: let it
            # run before asyncio.run() closes the loop (else: an unclosed socket at GC)
            await asyncio.sleep(0.05)
            server.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    return asyncio.run(main())


async def connect(port: int, **options: Any) -> Stream:
    settings_ = {
        "connect_timeout": 3.0,
        "keepalive": 5.0,
        "max_message": MiB,
        "max_buffered": 2 * MiB,
        "logger": log,
    }
    settings_.update(options)
    return await open_stream(
        f"ws://127.0.0.1:{port}/api/v1/streaming?stream=public",
        {"Authorization": "Bearer SECRET", "User-Agent": "tootlake-test"},
        **settings_,
    )


async def drain(stream: Stream, timeout: float = 10) -> tuple[list[bytes], BaseException | None]:
    """Every message until the stream ends, and what ended it (None: a clean close)."""
    got: list[bytes] = []
    try:
        async with asyncio.timeout(timeout):
            while batch := await stream.receive(1000, MiB):
                got += batch
    except (InstanceDown, TooLarge) as exc:
        return got, exc
    finally:
        stream.close()
    return got, None


def streaming(*chunks: bytes, then: Handler = answer_pings) -> Handler:
    """A server: the upgrade, `chunks` written one by one, then `then`."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(upgrade(await reader.readuntil(b"\r\n\r\n")))
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        await then(reader, writer)

    return handler


# -- messages ---------------------------------------------------------------------------------


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


_messages = st.lists(st.binary(max_size=300), min_size=1, max_size=12)


@st.composite
def _wire(draw: Any) -> tuple[list[bytes], bytes]:
    """Messages, and the frames a server may send them in: whole or in fragments, text or
    binary, with pings and pongs between frames (fragments too)."""
    messages = draw(_messages)
    out = b""
    for message in messages:
        opcode = draw(st.sampled_from([1, 2]))
        cuts = sorted(draw(st.lists(st.integers(0, len(message)), max_size=3)))
        pieces = [message[a:b] for a, b in zip([0, *cuts], [*cuts, len(message)], strict=True)]
        for i, piece in enumerate(pieces):
            if draw(st.booleans()) and draw(st.booleans()):
                out += frame(draw(st.sampled_from([9, 10])), draw(st.binary(max_size=20)))
            out += frame(opcode if i == 0 else 0, piece, fin=i == len(pieces) - 1)
    return messages, out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_wire(), st.lists(st.integers(0, 10_000), max_size=8))
def test_every_message_arrives_whole_and_in_order_however_it_is_framed_and_cut(wire, cuts):
    """Any framing (fragments, control frames between them) cut into any TCP writes: the
    stream hands over exactly the messages sent, in order, then ends cleanly at the close."""
    messages, data = wire
    chunks = _chunked(data + frame(8, (1000).to_bytes(2, "big")), cuts)

    async def slowly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(upgrade(await reader.readuntil(b"\r\n\r\n")))
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0)
        await answer_pings(reader, writer)

    async def scenario(port: int) -> Any:
        return await drain(await connect(port))

    got, ended = run(slowly, scenario)
    assert (got, ended) == (messages, None)


def test_messages_taken_from_the_callback_are_not_given_again():
    """With a handler (`deliver`), the messages of each read go to it while the reader
    waits, at most 7 at a time; what it refuses (a full bridge) reaches the reader in order,
    after them, and the handler gets messages again once the reader waits again."""
    sent = [f"m{i}".encode() for i in range(200)]
    batches: list[list[bytes]] = []

    async def paced(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(upgrade(await reader.readuntil(b"\r\n\r\n")))
        for i in range(0, 200, 10):
            await asyncio.sleep(0.02)  # the reader waits between reads
            writer.write(b"".join(frame(1, m) for m in sent[i : i + 10]))
        writer.write(frame(8, (1000).to_bytes(2, "big")))
        await answer_pings(reader, writer)

    async def scenario(port: int) -> None:
        stream = await connect(port)

        def handler(messages: list[bytes]) -> bool:
            if 50 <= len(timeline) < 100 and len(batches) % 2:
                return False  # the bridge is full, now and then
            batches.append(messages)
            timeline.extend(messages)
            return True

        stream.deliver(handler, 7, MiB)
        while batch := await stream.receive(1000, MiB):
            read.append(batch)
            timeline.extend(batch)
        stream.close()

    timeline: list[bytes] = []
    read: list[list[bytes]] = []
    run(paced, scenario)
    assert batches and read and max(len(batch) for batch in batches) <= 7
    assert timeline == sent  # each once, in order


# -- bounds -------------------------------------------------------------------------------------


def _endless(first: bytes, again: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 17)
        writer.write(upgrade(await reader.readuntil(b"\r\n\r\n")) + first)
        while True:
            writer.write(again)
            await writer.drain()

    return handler


@pytest.mark.parametrize(
    "first, again",
    [
        (b"\x81\x7f" + (1 << 40).to_bytes(8, "big"), bytes(1 << 16)),  # one frame of 2**40
        (frame(1, b"x" * 1000, fin=False), frame(0, b"x" * 1000, fin=False)),  # fragments
        (frame(1, b"", fin=False), frame(0, b"", fin=False) * 1000),  # empty fragments
    ],
    ids=["huge-frame", "endless-fragments", "empty-fragments"],
)
def test_a_message_beyond_the_limit_ends_the_stream_at_once(first, again):
    async def scenario(port: int) -> Any:
        return await drain(await connect(port))

    got, ended = run(_endless(first, again), scenario)
    assert got == [] and isinstance(ended, TooLarge), ended
    assert f"larger than {MiB} bytes" in str(ended)


@pytest.mark.parametrize("last, fits", [(200, True), (201, False)])
def test_a_fragmented_message_fits_the_limit_to_the_byte(last, fits):
    """The limit is of the message, its fragments together: 1,000 bytes in three fragments
    pass a 1,000-byte limit, and so does a frame of 1,000; one byte more does not."""
    sizes = [400, 400, last]
    wire = b"".join(
        frame(1 if i == 0 else 0, b"x" * n, fin=i == len(sizes) - 1) for i, n in enumerate(sizes)
    )

    async def scenario(port: int) -> Any:
        return await drain(await connect(port, max_message=1000))

    got, ended = run(streaming(wire + frame(1, b"y" * (1000 + (not fits))), frame(8)), scenario)
    if fits:
        assert (got, ended) == ([b"x" * 1000, b"y" * 1000], None)
    else:
        assert got == [] and isinstance(ended, TooLarge)


@pytest.mark.parametrize("payload", [b"", b"{}"], ids=["empty", "small"])
def test_messages_not_taken_stop_the_reading_at_the_buffer_cap(payload):
    """A flood of (even empty) messages while the reader takes none: reading stops once
    `max_buffered` is held (each message counts at least 64 bytes), and every message read
    is still there, in order, once the reader takes them."""

    async def scenario(port: int) -> tuple[int, int, int, bool]:
        stream = await connect(port, max_buffered=256 * 1024)
        await asyncio.sleep(1.0)  # the reader is busy (a full bridge)
        held, paused = len(stream._messages), stream._paused
        await asyncio.sleep(0.5)
        later = len(stream._messages)
        first = await stream.receive(10**6, 1 << 40)
        stream.close()
        return held, later, len(first), paused

    held, later, taken, paused = run(_endless(b"", frame(1, payload) * 1000), scenario)
    # (the cap, and what one read held beyond it: 2-byte frames)
    assert paused and 0 < held <= 256 * 1024 // 64 + 64 * 1024 // 2
    assert later == held == taken  # no more read, none lost


def test_a_server_that_does_not_read_is_dropped():
    """A ping flood from a server that never reads our pongs: our write buffer would grow
    without end; the connection ends once it is full (64 KiB) instead."""

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(upgrade(await reader.readuntil(b"\r\n\r\n")))
        while True:
            writer.write(frame(9, b"x" * 125) * 1000)
            await writer.drain()

    async def scenario(port: int) -> Any:
        return await drain(await connect(port, keepalive=60))

    got, ended = run(flood, scenario)
    assert isinstance(ended, InstanceDown) and "does not read" in str(ended)


# -- liveness -----------------------------------------------------------------------------------


def test_a_trickling_server_is_dropped_at_the_ping_timeout():
    """A frame that comes a byte every 0.3 s: bytes keep coming, but the pong cannot pass
    the unfinished frame, so the stream ends after two pings' time (websockets did so too)."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(upgrade(await reader.readuntil(b"\r\n\r\n")) + b"\x81\x7e\x10\x00")
        while True:
            await asyncio.sleep(0.3)
            writer.write(b"x")
            await writer.drain()

    async def scenario(port: int) -> Any:
        started = time.monotonic()
        result = await drain(await connect(port, keepalive=0.5))
        return result, time.monotonic() - started

    (got, ended), took = run(trickle, scenario)
    assert isinstance(ended, InstanceDown) and "ping timeout" in str(ended) and took < 5


def test_no_ping_timeout_while_the_collector_does_not_read():
    """Reading paused for backpressure longer than the ping timeout: the pong waits unread
    in the socket, which is not the server's fault: no timeout, every message arrives."""
    sent = [b"y" * 60_000] * 60  # 3.6 MB, beyond max_buffered

    async def scenario(port: int) -> Any:
        stream = await connect(port, keepalive=0.3, max_buffered=MiB)
        await asyncio.sleep(2.0)  # seven keepalive periods without taking anything
        return await drain(stream)

    got, ended = run(
        streaming(b"".join(frame(1, m) for m in sent), frame(8, (1000).to_bytes(2, "big"))),
        scenario,
    )
    assert (got, ended) == (sent, None)


def test_a_silent_server_that_answers_pings_is_kept():
    async def scenario(port: int) -> Any:
        stream = await connect(port, keepalive=0.2)
        await asyncio.sleep(1.5)
        alive = not stream.transport.is_disconnected
        stream.close()
        return alive

    assert run(streaming(), scenario)


# -- the protocol ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wire, error",
    [
        (frame(1, b"\xf2H\xcd\xc9\xc9\x07\x00", rsv=0x40), "reserved bits"),
        (frame(0, b"x") + frame(1, b"after"), "continuation frame without a message"),
        (frame(1, b"a", fin=False) + frame(1, b"b"), "new message began inside"),
    ],
    ids=["rsv1", "continuation-first", "message-inside-fragments"],
)
def test_a_protocol_violation_ends_the_stream_and_nothing_after_it_counts(wire, error):
    async def scenario(port: int) -> Any:
        return await drain(await connect(port))

    got, ended = run(streaming(frame(1, b"before") + wire + frame(1, b"later")), scenario)
    assert got == [b"before"] and isinstance(ended, InstanceDown) and error in str(ended)


@pytest.mark.parametrize(
    "close, clean",
    [
        (b"", True),  # no code (1005)
        ((1000).to_bytes(2, "big"), True),
        ((1001).to_bytes(2, "big") + b"going away", True),
        ((1011).to_bytes(2, "big") + b"internal error", False),
        ((4000).to_bytes(2, "big"), False),
    ],
    ids=["empty", "1000", "1001", "1011", "4000"],
)
def test_a_close_ends_the_stream_after_what_came_before_it(close, clean):
    """What came before the close is delivered, nothing after it; the client answers with a
    close of its own (never code 0); an error code is named."""
    answered: list[bytes] = []

    async def then(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opcode, payload = await read_frame(reader)
        while opcode != 8:
            opcode, payload = await read_frame(reader)
        answered.append(payload)

    async def scenario(port: int) -> Any:
        result = await drain(await connect(port))
        for _ in range(100):
            if answered:
                break
            await asyncio.sleep(0.02)
        return result

    wire = frame(1, b"one") + frame(8, close) + frame(1, b"after the close")
    got, ended = run(streaming(wire, then=then), scenario)
    assert got == [b"one"]
    assert (ended is None) if clean else ("closed by the server" in str(ended))
    assert answered and int.from_bytes(answered[0][:2], "big") >= 1000


# -- the handshake ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, status",
    [
        (b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}", 401),
        (b"HTTP/1.1 522 \r\nContent-Length: 0\r\n\r\n", 522),
        (b"HTTP/1.1 429\r\nRetry-After: 30\r\n\r\n", 429),
        (b"HTTP/1.0 503 Service Unavailable\r\n\r\n", 503),
    ],
    ids=["401", "522-no-reason", "429-bare", "http-1.0"],
)
def test_an_http_answer_instead_of_the_upgrade_is_a_refusal_with_its_status(answer, status):
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(1)

    async def scenario(port: int) -> Any:
        with pytest.raises(Refused) as caught:
            await connect(port)
        return caught.value

    refused = run(refuse, scenario)
    assert refused.status == status
    if status == 429:
        assert refused.headers.get("Retry-After") == "30"


@pytest.mark.parametrize(
    "answer",
    [b"HTTP/1.1 101 Switching", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"],
    ids=["cut-mid-answer", "no-accept-key"],
)
def test_a_broken_upgrade_fails_at_once(answer):
    """A server that closes mid-answer, or answers without the accept key: an error, never a
    stream that waits for ever."""

    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()

    async def scenario(port: int) -> Any:
        with pytest.raises((InstanceDown, HandshakeFailed)) as caught:
            async with asyncio.timeout(5):
                await connect(port)
        return caught.value

    assert run(broken, scenario)


def test_a_connection_that_comes_after_the_timeout_is_dropped(monkeypatch):
    """TCP connects slowly (1 s), the upgrade answer comes 0.7 s later: the connect timeout
    (1.2 s) has passed, but picows' own handshake timer (1.2 s from the connect) has not, so
    the upgrade succeeds for a caller that gave up. Nobody would own that connection (pinged
    for ever); it is dropped as it comes up."""
    seen: list[str] = []

    async def late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(0.7)
        writer.write(upgrade(request))
        seen.append("upgraded")
        await answer_pings(reader, writer)
        seen.append("closed")

    async def scenario(port: int) -> None:
        loop = asyncio.get_running_loop()
        real = loop.create_connection

        async def slow(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(1.0)  # (DNS, a slow network: before the protocol exists)
            return await real(*args, **kwargs)

        monkeypatch.setattr(loop, "create_connection", slow)
        with pytest.raises(InstanceDown, match="timed out"):
            await connect(port, connect_timeout=1.2, keepalive=0.2)
        await asyncio.sleep(2.0)

    run(late, scenario)
    assert seen == ["upgraded", "closed"]


@pytest.mark.parametrize(
    "location, sent_to, token",
    [
        ("/elsewhere", "ws://a.example:8080/elsewhere", True),
        ("wss://a.example:8080/x", "wss://a.example:8080/x", False),  # another scheme
        ("ws://b.example:8080/x", "ws://b.example:8080/x", False),
        ("http://a.example:8080/x", "ws://a.example:8080/x", True),
        ("ws://A.EXAMPLE:8080/x", "ws://A.EXAMPLE:8080/x", True),
    ],
)
def test_a_redirect_keeps_the_token_only_for_the_same_origin(location, sent_to, token):
    url, headers = redirected(
        "ws://a.example:8080/api/v1/streaming", location, {"Authorization": "Bearer t", "X": "1"}
    )
    assert url == sent_to and ("Authorization" in headers) is token and headers["X"] == "1"


@pytest.mark.parametrize(
    "url, location",
    [
        ("wss://a.example/s", "ws://a.example/s"),
        ("ws://a.example/s", "ftp://a.example/s"),
        ("ws://a.example/s", "ws://127.0.0.1:99999/x"),
        ("ws://a.example/s", "ws://[::1/x"),
    ],
    ids=["downgrade", "ftp", "bad-port", "bad-ipv6"],
)
def test_a_redirect_that_cannot_be_followed_is_named(url, location):
    with pytest.raises(InstanceDown, match="redirect"):
        redirected(url, location, {})


@given(st.text(max_size=80))
def test_redirected_reads_any_location_or_names_it(location):
    try:
        url, headers = redirected("wss://a.example/api/v1/streaming", location, {"A": "b"})
    except InstanceDown:
        return
    assert url.startswith("wss://")  # never down to ws://


def test_redirects_are_followed_a_few_times_then_refused():
    hops: list[str] = []

    async def loop_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        hops.append(request.split(b" ")[1].decode())
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async def scenario(port: int) -> Any:
        with pytest.raises(InstanceDown, match=f"more than {REDIRECTS} redirects"):
            await connect(port)

    run(loop_forever, scenario)
    assert len(hops) == REDIRECTS + 1


def test_the_upgrade_request_is_never_logged(caplog):
    async def scenario(port: int) -> Any:
        stream = await connect(port)
        stream.close()

    with caplog.at_level(1):
        run(streaming(), scenario)
    assert "SECRET" not in caplog.text
