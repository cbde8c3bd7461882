"""Replay recorded statuses from files.

Accepted, line by line and mixed freely:
  * JSON lines of bare statuses (`{"id": ..., "uri": ..., ...}`)
  * JSON lines `{"observed_on": host, "status": {...}}` (what `tootlake` itself records)
  * JSON lines of Mastodon WebSocket frames (`{"event": ..., "payload": "..."}`)
  * SSE captures: `event: update` / `data: {...}` / blank line, `:` comments, `delete` with a
    bare id as data.
Files ending in .gz are read through gzip. A line that cannot become a post (not JSON, not a
status, an invalid status, longer than `max_line` bytes) becomes a REJECT event naming file
and line, kept in the lake's rejects table; the replay goes on. A line is never held whole
beyond `max_line`, so memory stays bounded whatever the file holds.
"""

from __future__ import annotations

import gzip
import io
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec

from tootlake.errors import BadInput, SourceError
from tootlake.record import Rejection, ValidStatus, decode_status, host_of, mend_surrogates
from tootlake.sources import DELETE, EDIT, UPDATE, Event, reject_event

__all__ = ["MAX_LINE", "Piece", "ReplaySource", "cut", "infer_observed_on"]

log = logging.getLogger(__name__)
_KINDS = {UPDATE, EDIT, DELETE}
MAX_LINE = 1024 * 1024  # bytes: a status is a few KiB; a 1 MiB one is already absurd


class _Envelope(msgspec.Struct):
    """The wrapper keys of a line, each left as its JSON text; for a bare status every other
    key is skipped, unread. A line with a `uri` is a bare status, whatever else it holds."""

    uri: msgspec.Raw = msgspec.Raw(b"")
    observed_on: msgspec.Raw = msgspec.Raw(b"")
    event: msgspec.Raw = msgspec.Raw(b"")
    status: msgspec.Raw = msgspec.Raw(b"")  # (msgspec takes no `Raw | None`)
    payload: msgspec.Raw = msgspec.Raw(b"")


def _text(raw: msgspec.Raw) -> str | None:
    """A JSON string held as its text; None for anything else."""
    if not raw or bytes(raw)[:1] != b'"':
        return None
    try:
        return msgspec.json.decode(raw, type=str)
    except msgspec.MsgspecError:
        return None


_ENVELOPE = msgspec.json.Decoder(_Envelope)


def infer_observed_on(status: ValidStatus) -> str | None:
    """Best guess of the instance a bare recorded status came from.

    A local account's profile lives on the observing instance; failing that, hashtag links
    point at the observing instance (Mastodon rewrites them to its own /tags/ pages).
    """
    data = status.data
    account = data.account
    if "@" not in (account.acct or "@"):
        return host_of(account.url) or host_of(data.uri)
    for tag in data.tags or ():
        host = host_of(tag.url)
        if host:
            return host
    return None


class ReplaySource:
    """Events from recorded files, in file order."""

    def __init__(
        self,
        paths: Iterable[str | Path],
        observed_on: str | None = None,
        on_bad: Callable[[BadInput], None] | None = None,
        max_line: int = MAX_LINE,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.observed_on = observed_on
        self.on_bad = on_bad or (lambda exc: log.warning("%s", exc))
        self.max_line = max_line
        for path in self.paths:
            if not path.exists():
                raise SourceError(f"No such file to replay: {path}")

    def events(self) -> Iterator[Event]:
        for path in self.paths:
            with _open(path) as handle:
                yield from self._file_events(handle, str(path))

    def piece_events(self, piece: Piece) -> Iterator[Event]:
        """The events of one piece of a file (see `cut`): its lines numbered as in the file,
        its deletes given the file's instance until a status of its own says otherwise."""
        with open(piece.path, "rb") as raw:
            first_line = _newlines_before(raw, piece.start) + 1
            raw.seek(piece.start)
            handle = io.BufferedReader(_Range(raw, piece.end - piece.start), 1 << 20)
            yield from self._file_events(handle, piece.path, first_line, piece.host)

    def _file_events(
        self, handle: IO[bytes], name: str, first_line: int = 1, host: str | None = None
    ) -> Iterator[Event]:
        # A capture is one instance's stream: a delete (a bare id) belongs to the instance the
        # file's statuses were inferred to come from, unless --observed-on says otherwise.
        self._file_host: str | None = host
        sse_event: str | None = None  # the pending `event:` name of an SSE capture
        sse_line = 0
        for number, raw in _lines(handle, self.max_line, first_line):
            if raw is None:
                rejection = Rejection(f"line longer than {self.max_line} bytes; skipped")
                yield self._reject(rejection, b"", f"{name}:{number}")
                sse_event = None
                continue
            line = raw.strip()
            if not line:
                sse_event = None
                continue
            if line.startswith(b":"):  # SSE comment: `:)` opener, `:thump` heartbeat
                continue
            if line.startswith(b"event:"):
                sse_event, sse_line = line[6:].strip().decode("utf-8", "replace"), number
                continue
            kind = UPDATE
            bare = False  # an SSE event's data is a bare status: no wrapper to look for
            at = number  # the line an event is reported at: an SSE event's `event:` line
            if line.startswith(b"data:"):
                line = line[5:].strip()
                if sse_event is not None:
                    kind, bare, at = sse_event, True, sse_line
            if kind not in _KINDS:
                continue  # other stream events (notification, filters_changed...) are not posts
            event = self._parse(kind, line, f"{name}:{at}", bare)
            if event is not None:
                yield event

    def _reject(self, rejection: Rejection, raw: bytes | str, where: str) -> Event:
        host = self.observed_on or self._file_host
        return reject_event(rejection, raw, source="replay", observed_on=host, where=where)

    def _delete(
        self, status_id: str, line: bytes, where: str, observed_on: str | None = None
    ) -> Event:
        if not status_id or len(status_id) > 256:
            return self._reject(Rejection("delete event without a status id"), line, where)
        host = observed_on or self.observed_on or self._file_host
        return Event(DELETE, host, id=status_id, where=where)

    def _parse(self, kind: str, line: bytes, where: str, bare: bool = False) -> Event | None:
        if kind == DELETE:
            return self._delete(line.decode("utf-8", "replace").strip().strip('"'), line, where)
        if bare:
            return self._status(kind, line, line, self.observed_on, where)
        envelope = _envelope(line)
        if isinstance(envelope, Rejection):
            return self._reject(envelope, line, where)
        mended = isinstance(envelope, tuple)
        if isinstance(envelope, tuple):  # lone surrogates mended: read the mended line
            line, envelope = envelope
        observed_on = self.observed_on
        body: bytes | str = line
        event = _text(envelope.event)
        if envelope.uri:
            pass  # a bare status (its own `event` or `status` keys are just odd fields)
        elif bytes(envelope.status)[:1] == b"{":  # our own recording format
            observed_on = _text(envelope.observed_on) or observed_on
            kind = event or kind
            if kind not in _KINDS:
                return None
            body = bytes(envelope.status)
            if kind == DELETE:  # a delete recorded with the status it deleted
                status = decode_status(body)
                status_id = status.id if isinstance(status, ValidStatus) else ""
                return self._delete(status_id, line, where, observed_on)
        elif event is not None and envelope.payload:  # a WebSocket frame
            kind = event
            if kind not in _KINDS:
                return None
            payload = bytes(envelope.payload)
            text = _text(envelope.payload)
            if kind == DELETE:
                return self._delete(text or payload.decode("utf-8", "replace"), line, where)
            if text is None:
                return self._reject(Rejection("WebSocket payload is not a status"), line, where)
            body = text
        return self._status(kind, body, line, observed_on, where, mended)

    def _status(
        self,
        kind: str,
        body: bytes | str,
        line: bytes,
        observed_on: str | None,
        where: str,
        mended: bool = False,
    ) -> Event:
        status = decode_status(body)
        if isinstance(status, Rejection):
            return self._reject(status, line, where)
        if mended and "surrogates" not in status.coerced:
            status.coerced += ("surrogates",)  # mended in the line, before decode_status
        observed_on = observed_on or infer_observed_on(status)
        if observed_on:
            self._file_host = observed_on
        return Event(kind, observed_on, status=status, where=where)


def _envelope(line: bytes) -> _Envelope | tuple[bytes, _Envelope] | Rejection:
    """The wrapper keys of a line; with the line itself when lone surrogate escapes had to
    be mended first (see `record.mend_surrogates`)."""
    try:
        return _ENVELOPE.decode(line)
    except msgspec.ValidationError as exc:  # (a DecodeError too: this goes first)
        return Rejection(f"not a status or a recording ({exc})")
    except msgspec.DecodeError as exc:
        mended = mend_surrogates(line)
        if mended is None:
            return Rejection(f"not valid JSON ({exc})")
        again = _envelope(mended)
        return (mended, again) if isinstance(again, _Envelope) else again
    except RecursionError:
        return Rejection("JSON nested too deeply")


def _lines(handle: IO[bytes], limit: int, first: int = 1) -> Iterator[tuple[int, bytes | None]]:
    """(number, line) of a file; None for a line longer than `limit`, which is skipped
    without ever being held whole."""
    number = first - 1
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # skip the rest of it, chunk by chunk
                line = handle.readline(1 << 20)
            yield number, None
            continue
        yield number, line


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb", buffering=1 << 20)


# ----------------------------------------------------------------------------------------
# pieces: one file replayed by several processes side by side


@dataclass(frozen=True, slots=True)
class Piece:
    """Bytes [start, end) of a recorded file, cut where a line (or an SSE event) ends."""

    path: str
    start: int
    end: int
    host: str | None = None  # the instance the file's statuses came from (for its deletes)


MIN_PIECE = 16 * 1024 * 1024  # smaller pieces cost more in process start-up than they save


def cut(paths: Iterable[str | Path], parts: int, min_piece: int | None = None) -> list[Piece]:
    """The files as about `parts` pieces of similar size, each at least `min_piece` bytes:
    big files are cut (an SSE capture between events, other files between lines), small ones
    are a piece each; gzip files cannot be cut. Pieces come in file order."""
    min_piece = min_piece or MIN_PIECE
    files = [Path(p) for p in paths]
    sizes = [f.stat().st_size for f in files]
    target = max(min_piece, -(-sum(sizes) // max(parts, 1)))  # (rounded up)
    pieces: list[Piece] = []
    for path, size in zip(files, sizes, strict=True):
        count = 1 if path.suffix == ".gz" or size < 2 * min_piece else -(-size // target)
        count = min(count, parts, size // min_piece)
        if count == 1:
            pieces.append(Piece(str(path), 0, size))
            continue
        with open(path, "rb") as handle:
            head = handle.read(64 * 1024)
            separator = b"\n\n" if _is_sse(head) else b"\n"
            bounds = [0]
            for i in range(1, count):
                bounds.append(_boundary(handle, max(bounds[-1], size * i // count), separator))
            bounds.append(size)
        host = _first_host(path)
        pieces += [Piece(str(path), a, b, host) for a, b in itertools.pairwise(bounds) if b > a]
    return pieces


def _is_sse(head: bytes) -> bool:
    return any(line.startswith((b"event:", b"data:", b":")) for line in head.split(b"\n")[:50])


def _boundary(handle: IO[bytes], offset: int, separator: bytes) -> int:
    """The first offset at or after `offset` just past `separator` (the file's end if none)."""
    handle.seek(offset)
    tail = b""
    position = offset
    while True:
        chunk = handle.read(1 << 20)
        if not chunk:
            return position + len(tail)
        data = tail + chunk
        found = data.find(separator)
        if found >= 0:
            return position + found + len(separator)
        keep = len(separator) - 1
        position += len(data) - keep
        tail = data[-keep:] if keep else b""


def _first_host(path: Path) -> str | None:
    """The instance the first status of a file came from (None when it has none)."""
    source = ReplaySource([path])
    for number, event in enumerate(source.events()):
        if event.status is not None:
            return event.observed_on
        if number > 10_000:
            break
    return None


def _newlines_before(handle: IO[bytes], offset: int) -> int:
    handle.seek(0)
    count, left = 0, offset
    while left > 0:
        chunk = handle.read(min(left, 1 << 22))
        if not chunk:
            break
        count += chunk.count(b"\n")
        left -= len(chunk)
    return count


class _Range(io.RawIOBase):
    """The next `length` bytes of a file, then the end."""

    def __init__(self, handle: IO[bytes], length: int) -> None:
        self._handle = handle
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: self._left]
        got = self._handle.readinto(view)  # type: ignore[attr-defined]
        self._left -= got or 0
        return got or 0
