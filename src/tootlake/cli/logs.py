"""The command line's logging: to stderr, as text or JSON lines, every line redacted."""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from tootlake.cli.output import clean

__all__ = ["setup_logging"]


class _TextFormatter(logging.Formatter):
    """`2026-12-03T22:21:05Z WARNING message`: the time in UTC, ISO 8601 to the second, as
    the lake's own times are, so a log line and a row compare at a glance."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_time(record)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _utc_time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "context", {}))
        return json.dumps(entry, ensure_ascii=False)


def _utc_time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _excepthook(kind: Any, value: Any, tb: Any) -> None:
    """A real bug still shows its traceback, redacted like the logs."""
    import traceback

    sys.stderr.write(clean("".join(traceback.format_exception(kind, value, tb))))


def _thread_excepthook(args: Any) -> None:
    """A bug in a thread (the fleet's loop, a pool's worker) too: redacted, as `_excepthook`."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    sys.stderr.write(clean(f"Exception in {name}:\n"))
    _excepthook(args.exc_type, args.exc_value, args.exc_traceback)


def setup_logging(level: str, fmt: str) -> None:
    """Log `level` and above to stderr as `fmt` (text or json)."""
    from tootlake.redact import RedactingFilter
    from tootlake.text import for_terminal

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    # Every line: tokens masked, remote text unable to drive the terminal or forge a line.
    handler.addFilter(RedactingFilter(clean=for_terminal, single_line=fmt == "text"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
