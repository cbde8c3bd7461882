"""What every command shares when it runs: one place that turns a TootlakeError into a clean
message (a real bug still shows its traceback), a clean stop on Ctrl-C or SIGTERM, and, for the
long-running commands, every thread's stack on stderr at SIGUSR1 (to see where one hangs)."""

from __future__ import annotations

import faulthandler
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from tootlake.cli.output import clean
from tootlake.errors import TootlakeError

__all__ = ["arm_watchdog", "disarm_watchdog", "run_command", "stop_on_signals"]


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
    Ctrl-C: stop now. SIGUSR1: print every thread's stack to stderr and go on."""

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo(message, err=True)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    _stacks_on_sigusr1()
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _stacks_on_sigusr1() -> None:
    """Have SIGUSR1 print every thread's stack to stderr, for the rest of the process
    (registered again, it stays one handler; never unregistered, which would also drop a
    handler registered before). None on Windows, which has no SIGUSR1. faulthandler writes
    from its C handler, so it answers while the main thread is blocked in C (librdkafka,
    delta-rs), where a Python signal handler would never run."""
    if hasattr(signal, "SIGUSR1"):
        _to_stderr(faulthandler.register, signal.SIGUSR1, all_threads=True)


def arm_watchdog(seconds: float) -> None:
    """Should the process still run `seconds` from now, print every thread's stack to stderr
    and exit with status 1, from faulthandler's own C thread: it works where a process is
    blocked in C holding the GIL and no Python code can run. For a command's last step,
    once everything is written (`disarm_watchdog` when the step ends)."""
    _to_stderr(faulthandler.dump_traceback_later, seconds, exit=True)


def _to_stderr(handler: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """Set up a faulthandler `handler` that writes to the process's stderr; nothing where it
    has no file descriptor (closed, or replaced by a test runner)."""
    if sys.__stderr__ is None:
        return
    try:
        handler(*args, file=sys.__stderr__, **kwargs)
    except (OSError, ValueError):  # no usable file descriptor (io.UnsupportedOperation)
        return


def disarm_watchdog() -> None:
    faulthandler.cancel_dump_traceback_later()
