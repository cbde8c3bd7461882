"""The collector's state: per-instance cursors and health, in `--state DIR`.

    DIR/cursors.json   {"instances": {host: {"cursor": id, "updated_at": iso}}}
    DIR/health.json    {host: {"mode", "status", "detail", "since", "posts", "errors"}}

A cursor is the greatest status id of an instance such that every post up to it is durable in
the lake. It moves only in `advance()`, which the pipeline calls from the acks of a batch
after the sink flushed it, and never backwards (ids compare as snowflakes). Files are written
atomically (temporary file, fsync, rename). No token is ever written here: every string
(errors of remote servers among them) goes through `tootlake.redact` on its way to a file.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tootlake.errors import ConfigError, LakeError
from tootlake.record import usable_id
from tootlake.redact import redact_json
from tootlake.sources.mastodon import id_key, may_lead

log = logging.getLogger(__name__)

__all__ = ["CollectorState", "write_json_atomic"]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` atomically, every string redacted of tokens. A folder
    that refuses the write (read-only, full disk) is a LakeError naming the file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(redact_json(data), handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise LakeError(f"Cannot write the collector state {path}: {exc.strerror or exc}") from None


class CollectorState:
    """Cursors (durable) and health (informative) of every instance of a fleet."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._cursors: dict[str, str] = {}
        self._keys: dict[str, tuple[int, int, str]] = {}  # id_key of each cursor
        self._updated: dict[str, str] = {}
        self._moved: dict[str, float] = {}  # when a cursor last advanced in this process
        self._dirty = False
        path = self.directory / "cursors.json"
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                for host, entry in (data.get("instances") or {}).items():
                    cursor = entry.get("cursor")
                    if not cursor:
                        continue
                    if usable_id(cursor) is None or not may_lead(str(cursor)):
                        # saved by an older tootlake, which took any id: starting afresh
                        # there costs a backfill; keeping it would read nothing for ever
                        log.warning(
                            "%s: the saved cursor %r cannot be a status id; dropped",
                            host,
                            str(cursor)[:40],
                        )
                        continue
                    self._cursors[host] = str(cursor)
                    self._keys[host] = id_key(self._cursors[host])
                    self._updated[host] = str(entry.get("updated_at") or "")
            except (OSError, ValueError, AttributeError) as exc:
                raise ConfigError(
                    f"Cannot read the collector state {path}: {exc}. Move it away to start "
                    "afresh (posts already in the lake are deduplicated)."
                ) from exc

    def cursor(self, host: str) -> str | None:
        with self._lock:
            return self._cursors.get(host)

    def advance(self, host: str, status_id: str | None) -> None:
        """Everything of `host` up to `status_id` is durable (called from acks only)."""
        if not status_id:
            return
        key = id_key(status_id)  # acks run once per event: no time formatting here
        with self._lock:
            current = self._keys.get(host)
            # a durable cursor, like the worker's, keeps its kind and never leads (`advance`)
            if current is not None and key[0] != current[0]:
                return
            if (current is None or key > current) and may_lead(status_id):
                self._cursors[host] = status_id
                self._keys[host] = key
                self._moved[host] = time.time()
                self._dirty = True

    def save(self) -> None:
        """Write the cursors if they moved (called after each commit, and at the end)."""
        with self._lock:
            if not self._dirty:
                return
            for host, moved in self._moved.items():
                self._updated[host] = datetime.fromtimestamp(moved, UTC).isoformat(
                    timespec="seconds"
                )
            self._moved.clear()
            data = {
                "instances": {
                    host: {"cursor": cursor, "updated_at": self._updated.get(host, "")}
                    for host, cursor in self._cursors.items()
                }
            }
            self._dirty = False
        write_json_atomic(self.directory / "cursors.json", data)

    def save_health(self, health: dict[str, dict[str, Any]]) -> None:
        write_json_atomic(self.directory / "health.json", health)

    def cursors(self) -> dict[str, str]:
        with self._lock:
            return dict(self._cursors)
