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

from tootlake import __version__
from tootlake.errors import TootlakeError
from tootlake.settings import load_settings

__all__ = ["main", "lake_option", "run_command", "stop_on_signals"]

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


def _setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def lake_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--lake PATH|s3://...`, also from TOOTLAKE_LAKE and the config file."""
    return click.option(
        "--lake",
        default=None,
        metavar="PATH|s3://BUCKET/PREFIX",
        help="The lake (default ./lake; env TOOTLAKE_LAKE).",
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
            raise click.ClickException(str(exc)) from exc

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
    click.echo(
        f"Replayed {stats.events:,} events into {target}: {stats.posts:,} posts, "
        f"{stats.edits:,} edits, {stats.deletes:,} deletes; skipped {skipped}; "
        f"{stats.bad:,} bad lines; {stats.files} files; {stats.posts_per_second:,.0f} posts/s."
    )
    if stats.bad and not quiet:
        for example in stats.bad_examples[:5]:
            click.echo(f"  bad: {example}", err=True)


@main.command()
@lake_option
@click.option(
    "--format",
    "fmt",
    default="table",
    type=click.Choice(["table", "json", "csv", "markdown"]),
    help="Output format.",
)
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML report."
)
@click.option("--term", "terms", multiple=True, help="A word to follow per day (repeatable).")
@click.option("--top", default=20, show_default=True, help="Rows of the top-N sections.")
@run_command
def report(
    lake: str | None, fmt: str, html_path: str | None, terms: tuple[str, ...], top: int
) -> None:
    """Print every analysis of the lake."""
    from tootlake.analysis.queries import DEFAULT_TERMS
    from tootlake.analysis.report import build_report, render_report

    settings = load_settings(lake=lake)
    tables = build_report(settings.lake, terms=terms or DEFAULT_TERMS, top=top)
    if html_path:
        from tootlake.analysis.html import write_html_report

        write_html_report(settings.lake, html_path, report=tables)
        click.echo(f"Wrote {html_path}", err=True)
    click.echo(render_report(tables, fmt))


@main.command()
@click.argument("query")
@lake_option
@click.option(
    "--format",
    "fmt",
    default="table",
    type=click.Choice(["table", "json", "csv", "markdown"]),
    help="Output format.",
)
@run_command
def sql(query: str, lake: str | None, fmt: str) -> None:
    """Run SQL over the lake's views: posts, posts_all, deletes."""
    import duckdb

    from tootlake.analysis.lake import open_lake
    from tootlake.analysis.report import render_table

    settings = load_settings(lake=lake)
    con = open_lake(settings.lake)
    try:
        table = con.sql(query).to_arrow_table()
    except duckdb.Error as exc:
        raise click.ClickException(f"SQL error: {exc}") from exc
    except AttributeError:  # a statement without a result (SET, CREATE ...)
        return
    click.echo(render_table(table, fmt))


def _load_command_modules() -> None:
    from tootlake import commands

    for module in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"tootlake.commands.{module.name}")


_load_command_modules()
