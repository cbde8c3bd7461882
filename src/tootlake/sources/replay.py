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
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

import msgspec

from tootlake.errors import BadInput, SourceError
from tootlake.record import Rejection, ValidStatus, decode_status, host_of
from tootlake.sources import DELETE, EDIT, UPDATE, Event, reject_event

__all__ = ["MAX_LINE", "ReplaySource", "infer_observed_on"]

log = logging.getLogger(__name__)
_KINDS = {UPDATE, EDIT, DELETE}
MAX_LINE = 1024 * 1024  # bytes: a status is a few KiB; a 1 MiB one is already absurd


class _Envelope(msgspec.Struct):
    """The wrapper keys of a line; for a bare status every key is skipped, unread."""

    observed_on: str | None = None
    event: str | None = None
    status: msgspec.Raw = msgspec.Raw(b"")  # (msgspec takes no `Raw | None`)
    payload: str | int | None = None


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

    def _file_events(self, handle: IO[bytes], name: str) -> Iterator[Event]:
        # A capture is one instance's stream: a delete (a bare id) belongs to the instance the
        # file's statuses were inferred to come from, unless --observed-on says otherwise.
        self._file_host: str | None = None
        sse_event: str | None = None  # the pending `event:` name of an SSE capture
        sse_line = 0
        for number, raw in _lines(handle, self.max_line):
            where = f"{name}:{number}"
            if raw is None:
                rejection = Rejection(f"line longer than {self.max_line} bytes; skipped")
                yield self._reject(rejection, b"", where)
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
            if line.startswith(b"data:"):
                line = line[5:].strip()
                if sse_event is not None:
                    kind, bare = sse_event, True
                    where = f"{name}:{sse_line}"
            if kind not in _KINDS:
                continue  # other stream events (notification, filters_changed...) are not posts
            event = self._parse(kind, line, where, bare)
            if event is not None:
                yield event

    def _reject(self, rejection: Rejection, raw: bytes | str, where: str) -> Event:
        host = self.observed_on or self._file_host
        return reject_event(rejection, raw, source="replay", observed_on=host, where=where)

    def _delete(self, status_id: str, line: bytes, where: str) -> Event:
        if not status_id or len(status_id) > 256:
            return self._reject(Rejection("delete event without a status id"), line, where)
        host = self.observed_on or self._file_host
        return Event(DELETE, host, id=status_id, where=where)

    def _parse(self, kind: str, line: bytes, where: str, bare: bool = False) -> Event | None:
        if kind == DELETE:
            return self._delete(line.decode("utf-8", "replace").strip().strip('"'), line, where)
        if bare:
            return self._status(kind, line, line, self.observed_on, where)
        try:
            envelope = _ENVELOPE.decode(line)
        except msgspec.ValidationError as exc:  # (a DecodeError too: this goes first)
            return self._reject(Rejection(f"not a status or a recording ({exc})"), line, where)
        except msgspec.DecodeError as exc:
            return self._reject(Rejection(f"not valid JSON ({exc})"), line, where)
        observed_on = self.observed_on
        body: bytes | str = line
        if envelope.status:  # our own recording format
            observed_on = envelope.observed_on or observed_on
            kind = envelope.event or kind
            if kind not in _KINDS:
                return None
            body = bytes(envelope.status)
        elif envelope.event is not None and envelope.payload is not None:  # a WebSocket frame
            kind = envelope.event
            if kind not in _KINDS:
                return None
            if kind == DELETE:
                return self._delete(str(envelope.payload), line, where)
            if not isinstance(envelope.payload, str):
                return self._reject(Rejection("WebSocket payload is not a status"), line, where)
            body = envelope.payload
        return self._status(kind, body, line, observed_on, where)

    def _status(
        self, kind: str, body: bytes | str, line: bytes, observed_on: str | None, where: str
    ) -> Event:
        status = decode_status(body)
        if isinstance(status, Rejection):
            return self._reject(status, line, where)
        observed_on = observed_on or infer_observed_on(status)
        if observed_on:
            self._file_host = observed_on
        return Event(kind, observed_on, status=status, where=where)


def _lines(handle: IO[bytes], limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(number, line) of a file; None for a line longer than `limit`, which is skipped
    without ever being held whole."""
    number = 0
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
