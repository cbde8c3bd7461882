"""The `tootlake` command line: a thin click layer. Each command parses its flags, loads
settings and calls one library function that a notebook could call too.

Commands of later stages (collect, simulate, sink, compact, dashboard...) live in
`tootlake.commands.*`; every module there is imported below and registers itself on `main`.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import pkgutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from tootlake._version import __version__
from tootlake.errors import TootlakeError
from tootlake.settings import load_settings

__all__ = ["main", "lake_option", "run_command", "skip_corrupt_option", "stop_on_signals"]

log = logging.getLogger("tootlake")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "context", {}))
        return json.dumps(entry, ensure_ascii=False)


def _clean(text: str) -> str:
    """Text for stderr/stdout: no token (`tootlake.redact`), no control characters."""
    from tootlake.redact import redact
    from tootlake.text import for_terminal

    return for_terminal(redact(text))


def _excepthook(kind: Any, value: Any, tb: Any) -> None:
    """A real bug still shows its traceback, redacted like the logs."""
    import traceback

    sys.stderr.write(_clean("".join(traceback.format_exception(kind, value, tb))))


def _setup_logging(level: str, fmt: str) -> None:
    from tootlake.redact import RedactingFilter
    from tootlake.text import for_terminal

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(message)s")
    )
    # Every line: tokens masked, remote text unable to drive the terminal or forge a line.
    handler.addFilter(RedactingFilter(clean=for_terminal, single_line=fmt == "text"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    sys.excepthook = _excepthook


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _echo_output(text: str) -> None:
    """Rendered output as is: made safe for a terminal already, and lossless (CSV) to a file,
    where click would otherwise strip what looks like colour codes."""
    click.echo(text, nl=not text.endswith("\n"), color=True)


def lake_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--lake PATH|s3://...`, also from TOOTLAKE_LAKE and the config file."""
    return click.option(
        "--lake",
        default=None,
        metavar="PATH|s3://BUCKET/PREFIX",
        help="The lake (default ./lake; env TOOTLAKE_LAKE).",
    )(func)


def skip_corrupt_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--skip-corrupt`: read the rest of a lake with corrupt Parquet files."""
    return click.option(
        "--skip-corrupt",
        is_flag=True,
        help="Leave out corrupt or truncated Parquet files (a warning names each) instead of "
        "stopping at the first.",
    )(func)


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


def run_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a TootlakeError into a clean one-line message and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TootlakeError as exc:
            raise click.ClickException(_clean(str(exc))) from exc

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tootlake")
@click.option(
    "--log-level",
    default="warning",
    type=click.Choice(["debug", "info", "warning", "error"]),
    envvar="TOOTLAKE_LOG_LEVEL",
    help="How much to log (stderr).",
)
@click.option(
    "--log-format",
    default="text",
    type=click.Choice(["text", "json"]),
    envvar="TOOTLAKE_LOG_FORMAT",
    help="Log lines as text, or JSON lines for services.",
)
def main(log_level: str, log_format: str) -> None:
    """Collect public Mastodon posts into a Parquet lake and study them with DuckDB."""
    _setup_logging(log_level, log_format)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@lake_option
@click.option(
    "--observed-on",
    metavar="HOST",
    help="Instance the recording was made on (default: inferred from each status).",
)
@click.option(
    "--include-opted-out",
    is_flag=True,
    default=None,
    help="Keep posts of accounts that opted out of indexing (noindex, #nobot...).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress, only the final line.")
@click.option(
    "--kafka",
    envvar="TOOTLAKE_KAFKA",
    metavar="HOST:PORT",
    help="Send to this Kafka cluster instead of the lake (`tootlake sink` writes the topic "
    "into the lake). Env TOOTLAKE_KAFKA.",
)
@click.option(
    "--topic",
    default="mastodon-posts",
    show_default=True,
    envvar="TOOTLAKE_TOPIC",
    help="Kafka topic (with --kafka).",
)
@click.option(
    "--schema-registry",
    envvar="TOOTLAKE_SCHEMA_REGISTRY",
    metavar="URL",
    help="With --kafka: Confluent wire format with this schema registry, instead of Avro "
    "single-object encoding.",
)
@run_command
def replay(
    files: tuple[str, ...],
    lake: str | None,
    observed_on: str | None,
    include_opted_out: bool | None,
    quiet: bool,
    kafka: str | None,
    topic: str,
    schema_registry: str | None,
) -> None:
    """Replay recorded statuses (JSON lines or SSE captures) into the lake, or into Kafka."""
    from tootlake.pipeline import replay as replay_files
    from tootlake.pipeline import replay_to_kafka

    settings = load_settings(lake=lake, include_opted_out=include_opted_out)
    if kafka:
        stats = replay_to_kafka(
            files,
            kafka=kafka,
            topic=topic,
            schema_registry=schema_registry,
            observed_on=observed_on,
            include_opted_out=settings.include_opted_out,
        )
        target = f"Kafka topic {topic} at {kafka}"
    else:
        stats = replay_files(
            files,
            settings.lake,
            observed_on=observed_on,
            include_opted_out=settings.include_opted_out,
        )
        target = settings.lake
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(stats.skipped.items())) or "none"
    coerced = sum(stats.coerced.values())
    fields = ", ".join(f"{name} {n:,}" for name, n in stats.coerced.most_common(5))
    click.echo(
        f"Replayed {stats.events:,} events into {target}: {stats.posts:,} posts, "
        f"{stats.edits:,} edits, {stats.deletes:,} deletes; skipped {skipped}; "
        f"{stats.rejected:,} rejected (in the rejects table); "
        f"{coerced:,} odd fields stored as null or default{f' ({fields})' if fields else ''}; "
        f"{stats.files} files; {stats.posts_per_second:,.0f} posts/s."
    )
    if stats.bad and not quiet:
        for example in stats.bad_examples[:5]:
            click.echo(f"  bad: {_clean(example)}", err=True)


@main.command()
@lake_option
@click.option(
    "--format",
    "fmt",
    default="table",
    type=click.Choice(["table", "json", "csv", "markdown"]),
    help="Output format. Text is made safe to print (no control characters); csv to a file "
    "or pipe stays lossless.",
)
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML report."
)
@click.option("--term", "terms", multiple=True, help="A word to follow per day (repeatable).")
@click.option("--top", default=20, show_default=True, help="Rows of the top-N sections.")
@skip_corrupt_option
@run_command
def report(
    lake: str | None,
    fmt: str,
    html_path: str | None,
    terms: tuple[str, ...],
    top: int,
    skip_corrupt: bool,
) -> None:
    """Print every analysis of the lake."""
    from tootlake.analysis.lake import check_lake, read_lake
    from tootlake.analysis.queries import DEFAULT_TERMS
    from tootlake.analysis.report import build_report, render_report

    settings = load_settings(lake=lake)
    if not check_lake(settings.lake):
        click.echo(f"Note: the lake {settings.lake} holds no data yet.", err=True)

    def build(con: Any) -> Any:
        tables = build_report(con=con, terms=terms or DEFAULT_TERMS, top=top)
        if html_path:
            from tootlake.analysis.html import write_html_report

            try:
                write_html_report(settings.lake, html_path, report=tables, con=con)
            except OSError as exc:
                message = f"Cannot write {html_path}: {exc.strerror or exc}"
                raise click.ClickException(message) from exc
        return tables

    tables = read_lake(settings.lake, build, skip_corrupt=skip_corrupt)
    if html_path:
        click.echo(f"Wrote {html_path}", err=True)
    _echo_output(render_report(tables, fmt, terminal=_stdout_is_terminal()))


@main.command()
@click.argument("query")
@lake_option
@click.option(
    "--format",
    "fmt",
    default="table",
    type=click.Choice(["table", "json", "csv", "markdown"]),
    help="Output format. Text is made safe to print (no control characters); csv to a file "
    "or pipe stays lossless.",
)
@skip_corrupt_option
@run_command
def sql(query: str, lake: str | None, fmt: str, skip_corrupt: bool) -> None:
    """Run SQL over the lake's views: posts, posts_all, deletes, sightings, rejects."""
    import duckdb

    from tootlake.analysis.lake import read_lake
    from tootlake.analysis.report import render_table

    def run(con: duckdb.DuckDBPyConnection) -> Any:
        relation = con.sql(query)  # None for a statement without a result (SET, CREATE ...)
        return None if relation is None else relation.to_arrow_table()

    settings = load_settings(lake=lake)
    try:
        table = read_lake(settings.lake, run, skip_corrupt=skip_corrupt)
    except duckdb.Error as exc:
        raise click.ClickException(_clean(f"SQL error: {exc}")) from exc
    if table is None:
        return
    _echo_output(render_table(table, fmt, terminal=_stdout_is_terminal()))


def _load_command_modules() -> None:
    from tootlake import commands

    for module in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"tootlake.commands.{module.name}")


_load_command_modules()
