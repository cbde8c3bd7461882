"""What every command shares when it runs: one place that turns a TootlakeError into a clean
message (a real bug still shows its traceback), and a clean stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from tootlake.cli.output import clean
from tootlake.errors import TootlakeError

__all__ = ["run_command", "stop_on_signals"]


def run_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a TootlakeError into a clean one-line message and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TootlakeError as exc:
            raise click.ClickException(clean(str(exc))) from exc

    return wrapper


@contextmanager
def stop_on_signals(stop: threading.Event, message: str) -> Iterator[None]:
    """First Ctrl-C/SIGTERM: set `stop` (the command drains, writes and commits). A second
    Ctrl-C: stop now."""

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo(message, err=True)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
