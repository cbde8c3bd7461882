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
import os
import pkgutil
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from tootlake._version import __version__
from tootlake.errors import TootlakeError
from tootlake.settings import load_settings
from tootlake.transports.kafka_settings import DEFAULT_TOPIC, kafka_option, parse_options

__all__ = ["main", "lake_option", "run_command", "skip_corrupt_option", "stop_on_signals"]

log = logging.getLogger("tootlake")

SQL_TERMINAL_LIMIT = 1_000  # rows `sql` prints to a terminal unless --limit says otherwise
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
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
    "--workers",
    type=click.IntRange(min=1),
    metavar="N",
    help="Processes replaying pieces of the input side by side (default: one per core, for "
    "inputs of 16 MiB or more per core; 1: one process). Not with --kafka.",
)
@click.option(
    "--kafka",
    envvar="TOOTLAKE_KAFKA",
    metavar="HOST:PORT",
    help="Send to this Kafka cluster instead of the lake (`tootlake sink` writes the topic "
    "into the lake). Env TOOTLAKE_KAFKA.",
)
@click.option(
    "--topic",
    default=DEFAULT_TOPIC,
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
@kafka_option
@run_command
def replay(
    files: tuple[str, ...],
    lake: str | None,
    observed_on: str | None,
    include_opted_out: bool | None,
    quiet: bool,
    workers: int | None,
    kafka: str | None,
    topic: str,
    schema_registry: str | None,
    kafka_options: tuple[str, ...],
) -> None:
    """Replay recorded statuses (JSON lines or SSE captures) into the lake, or into Kafka.

    Shows a progress line on a terminal, then a summary, and the bad lines per file: how
    many, and the first few (each one is kept in the rejects table).
    """
    from tootlake.pipeline import replay as replay_files
    from tootlake.pipeline import replay_to_kafka

    settings = load_settings(
        lake=lake, include_opted_out=include_opted_out, kafka=parse_options(kafka_options)
    )
    with _replay_progress(quiet, files) as show:
        if kafka:
            stats = replay_to_kafka(
                files,
                kafka=kafka,
                topic=topic,
                schema_registry=schema_registry,
                observed_on=observed_on,
                include_opted_out=settings.include_opted_out,
                config=settings.kafka,
                on_progress=show,
            )
            target = f"Kafka topic {topic} at {kafka}"
        else:
            stats = replay_files(
                files,
                settings.lake,
                observed_on=observed_on,
                include_opted_out=settings.include_opted_out,
                on_progress=show,
                workers=workers or None,  # (None: one per core)
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
        for line in _bad_lines_summary(stats):
            click.echo(line, err=True)


BAD_FILES_SHOWN = 10  # files named in a replay's summary of bad lines; the rest are counted


def _bad_lines_summary(stats: Any) -> list[str]:
    """The bad lines of a replay, per file: how many, and each file's first few."""
    per_file = stats.bad_lines
    lines = ["Bad lines, by file (each one is in the rejects table):"]
    for name, count in list(per_file.items())[:BAD_FILES_SHOWN]:
        lines.append(f"  {_clean(name)}: {count:,} bad line{'s' if count != 1 else ''}")
        lines += [f"    {_clean(text)}" for text in stats.bad_line_examples.get(name, ())]
    if len(per_file) > BAD_FILES_SHOWN:
        rest = list(per_file.values())[BAD_FILES_SHOWN:]
        lines.append(f"  ... and {len(rest):,} more files with {sum(rest):,} bad lines.")
    others = stats.bad - sum(per_file.values())  # not a line of a file (none today)
    if others > 0:
        lines.append(f"  {others:,} other bad input{'s' if others != 1 else ''}.")
    return lines


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


@contextmanager
def _replay_progress(quiet: bool, files: Sequence[str]) -> Iterator[Callable[[Any], None] | None]:
    """A progress line on stderr when it is a terminal (and not --quiet): posts, posts/s,
    bad lines and time, for the input's size; it goes once the replay ends."""
    if quiet or not _stderr_is_terminal():
        yield None
        return
    from rich.console import Console
    from rich.filesize import decimal
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    size = sum(os.path.getsize(name) for name in files if os.path.isfile(name))
    what = f"{len(files):,} file{'s' if len(files) != 1 else ''} ({decimal(size)})"
    console = Console(stderr=True, force_terminal=True)  # stderr is a terminal: said above
    with Progress(
        SpinnerColumn(),
        TimeElapsedColumn(),  # before the text, which a narrow terminal cuts
        TextColumn("{task.description}"),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"Replaying {what}", total=None)

        def show(stats: Any) -> None:
            progress.update(
                task,
                description=f"Replaying {what}: {stats.posts + stats.edits:,} posts, "
                f"{stats.posts_per_second:,.0f} posts/s, {stats.rejected:,} bad lines",
            )

        yield show


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
    type=click.Choice(["table", "json", "jsonl", "csv", "markdown"]),
    help="Output format (jsonl: one JSON object a row). Text is made safe to print (no "
    "control characters); csv to a file or pipe stays lossless.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    metavar="N",
    help=f"Print at most N rows, 0 for all. Default: {SQL_TERMINAL_LIMIT:,} when the output "
    "is a terminal (a note says when rows were left out), all otherwise.",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A value for $NAME in the query (repeatable), bound by DuckDB, never pasted into "
    "the SQL. It is text: DuckDB casts it where the query compares it with a number, or "
    "write $NAME::INT.",
)
@skip_corrupt_option
@run_command
def sql(
    query: str,
    lake: str | None,
    fmt: str,
    limit: int | None,
    params: tuple[str, ...],
    skip_corrupt: bool,
) -> None:
    """Run SQL (DuckDB) over the lake's views.

    \b
      posts          one row per post: its latest version, deleted posts left out
      posts_all      every version of every post as written
      deletes        every delete event
      sightings      every instance a post was seen on (uri, observed_on, id, seen_at)
      sightings_all  the sightings as written (a replayed file may repeat one)
      rejects        every status, line or event that could not become a post, and why

    Their columns are in docs/lake.md. Values go in as parameters:

    \b
      tootlake sql 'SELECT count(*) FROM posts WHERE language = $lang' -p lang=de
    """
    import duckdb

    from tootlake.analysis.lake import read_lake
    from tootlake.analysis.report import render_table

    values = _sql_params(params)
    terminal = _stdout_is_terminal()
    if limit is None:
        limit = SQL_TERMINAL_LIMIT if terminal else 0

    def run(con: duckdb.DuckDBPyConnection) -> Any:
        # None for a statement without a result (SET, CREATE ...)
        relation = con.sql(query, params=values or None)
        if relation is not None and limit:
            relation = relation.limit(limit + 1)  # one more: were rows left out?
        return None if relation is None else relation.to_arrow_table()

    settings = load_settings(lake=lake)
    try:
        table = read_lake(settings.lake, run, skip_corrupt=skip_corrupt)
    except duckdb.Error as exc:
        raise click.ClickException(_clean(f"SQL error: {exc}")) from exc
    if table is None:
        return
    cut = bool(limit) and table.num_rows > limit
    if cut:
        table = table.slice(0, limit)
    _echo_output(render_table(table, fmt, terminal=terminal))
    if cut:
        click.echo(
            f"Showing the first {limit:,} rows; there are more. --limit 0 shows them all.",
            err=True,
        )


def _sql_params(pairs: tuple[str, ...]) -> dict[str, str]:
    """`-p NAME=VALUE` values -> {NAME: VALUE}, for DuckDB's `$NAME` (a `$` before NAME is
    allowed)."""
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().removeprefix("$")
        if not sep or not _PARAM_NAME.fullmatch(name):
            raise click.BadParameter(
                f"{_clean(pair)!r}: use NAME=VALUE, NAME made of letters, digits and _ "
                "(e.g. -p lang=de for $lang).",
                param_hint="'-p' / '--param'",
            )
        values[name] = value
    return values


def _load_command_modules() -> None:
    from tootlake import commands

    for module in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"tootlake.commands.{module.name}")


_load_command_modules()
