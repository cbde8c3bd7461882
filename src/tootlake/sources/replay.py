"""Replay recorded statuses from files.

Accepted, line by line and mixed freely:
  * JSON lines of bare statuses (`{"id": ..., "uri": ..., ...}`)
  * JSON lines `{"observed_on": host, "status": {...}}` (what `tootlake` itself records)
  * JSON lines of Mastodon WebSocket frames (`{"event": ..., "payload": "..."}`)
  * SSE captures: `event: update` / `data: {...}` / blank line, `:` comments, `delete` with a
    bare id as data.
Files ending in .gz are read through gzip. A bad line is reported with file and line number
through `on_bad` and the replay goes on.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from tootlake.errors import BadInput, SourceError
from tootlake.record import host_of
from tootlake.sources import DELETE, EDIT, UPDATE, Event

__all__ = ["ReplaySource", "infer_observed_on"]

log = logging.getLogger(__name__)
_KINDS = {UPDATE, EDIT, DELETE}


def infer_observed_on(status: dict[str, Any]) -> str | None:
    """Best guess of the instance a bare recorded status came from.

    A local account's profile lives on the observing instance; failing that, hashtag links
    point at the observing instance (Mastodon rewrites them to its own /tags/ pages).
    """
    account = status.get("account") or {}
    if "@" not in (account.get("acct") or "@"):
        return host_of(account.get("url")) or host_of(status.get("uri"))
    for tag in status.get("tags") or ():
        host = host_of(tag.get("url"))
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
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.observed_on = observed_on
        self.on_bad = on_bad or (lambda exc: log.warning("%s", exc))
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
        for number, raw in enumerate(handle, 1):
            line = raw.strip()
            if not line:
                sse_event = None
                continue
            where = f"{name}:{number}"
            try:
                if line.startswith(b":"):  # SSE comment: `:)` opener, `:thump` heartbeat
                    continue
                if line.startswith(b"event:"):
                    sse_event, sse_line = line[6:].strip().decode(), number
                    continue
                kind = UPDATE
                if line.startswith(b"data:"):
                    line = line[5:].strip()
                    if sse_event is not None:
                        kind = sse_event
                        where = f"{name}:{sse_line}"
                if kind not in _KINDS:
                    continue  # other stream events (notification, filters_changed...) are not posts
                event = self._parse(kind, line, where)
                if event is not None:
                    yield event
            except BadInput as exc:
                self.on_bad(exc)

    def _parse(self, kind: str, line: bytes, where: str) -> Event | None:
        if kind == DELETE:
            delete_id = line.decode().strip().strip('"')
            if not delete_id:
                raise BadInput(f"{where}: delete event without a status id")
            return Event(DELETE, self.observed_on or self._file_host, id=delete_id, where=where)
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise BadInput(f"{where}: not valid JSON ({exc}); line skipped") from None
        if not isinstance(obj, dict):
            raise BadInput(f"{where}: expected a JSON object, got {type(obj).__name__}")
        observed_on = self.observed_on
        if "status" in obj and isinstance(obj["status"], dict):  # our own recording format
            observed_on = obj.get("observed_on") or observed_on
            kind = obj.get("event", kind)
            obj = obj["status"]
        elif "event" in obj and "payload" in obj:  # a WebSocket frame
            kind = obj["event"]
            if kind not in _KINDS:
                return None
            if kind == DELETE:
                host = observed_on or self._file_host
                return Event(DELETE, host, id=str(obj["payload"]), where=where)
            try:
                obj = orjson.loads(obj["payload"])
            except (orjson.JSONDecodeError, TypeError):
                raise BadInput(f"{where}: WebSocket payload is not a status") from None
        if not obj.get("uri") or not obj.get("id"):
            raise BadInput(f"{where}: status without uri or id; line skipped")
        observed_on = observed_on or infer_observed_on(obj)
        if observed_on:
            self._file_host = observed_on
        return Event(kind, observed_on, status=obj, where=where)


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb", buffering=1 << 20)
