"""The `tootlake` command line: a thin click layer. Each command parses its flags, loads
settings and calls one library function that a notebook could call too.

One module a command (or group of commands), listed below; options more than one command
takes are in `options`, shared printing in `output`, error handling and signals in `command`.
"""

from __future__ import annotations

import os

# The command line does no linear algebra: numpy (pyarrow imports it) need not start its BLAS
# threads, whose start-up spin cost about 0.1 s of CPU a process, the collector's merge child
# included. A value set by the user is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click

from tootlake._version import __version__
from tootlake.cli import (  # the modules: `tootlake.cli.sql` stays the module, not the command
    collect,
    compact,
    dashboard,
    datasheet,
    demo,
    enrich,
    graph,
    instances,
    keygen,
    migrate,
    replay,
    report,
    revalidate,
    simulate,
    sink,
    sql,
)
from tootlake.cli.logs import setup_logging

__all__ = ["entry", "main"]

COMMANDS: list[click.Command] = [
    collect.collect,
    compact.compact,
    dashboard.dashboard,
    datasheet.datasheet,
    demo.demo,
    enrich.enrich,
    graph.graph,
    instances.instances,
    keygen.keygen,
    migrate.migrate,
    replay.replay,
    report.report,
    revalidate.revalidate,
    simulate.simulate,
    sink.sink,
    sql.sql,
]


_GLOBAL_OPTIONS = ("--log-level", "--log-format")  # options of `tootlake` itself, with a value
_GLOBAL_WITH_VALUE = tuple(f"{name}=" for name in _GLOBAL_OPTIONS)  # --log-level=info


class _Group(click.Group):
    """`tootlake`'s group: its own options are taken after the command too
    (`tootlake collect ... --log-level info`, as people type them), not only before it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        hoisted: list[str] = []
        rest: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":  # what follows is arguments, whatever they look like
                rest += args[i:]
                break
            if arg in _GLOBAL_OPTIONS:
                if i + 1 == len(args):
                    raise click.BadOptionUsage(arg, f"Option '{arg}' requires an argument.", ctx)
                hoisted += args[i : i + 2]
                i += 2
                continue
            if arg.startswith(_GLOBAL_WITH_VALUE):
                hoisted.append(arg)
            else:
                rest.append(arg)
            i += 1
        return super().parse_args(ctx, hoisted + rest)


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="tootlake")
@click.option(
    "--log-level",
    default="warning",
    type=click.Choice(["debug", "info", "warning", "error"]),
    envvar="TOOTLAKE_LOG_LEVEL",
    help="How much to log (stderr). Before or after the command.",
)
@click.option(
    "--log-format",
    default="text",
    type=click.Choice(["text", "json"]),
    envvar="TOOTLAKE_LOG_FORMAT",
    help="Log lines as text, or JSON lines for services. Before or after the command.",
)
def main(log_level: str, log_format: str) -> None:
    """Collect public Mastodon posts into a lake of Delta Lake tables and study them with DuckDB."""
    setup_logging(log_level, log_format)


for _command in COMMANDS:
    main.add_command(_command)


def entry() -> None:
    """The `tootlake` program: `main` in a process of its own (tests call `main` itself)."""
    from tootlake._arrow import skip_pandas_probe

    skip_pandas_probe()  # (pyarrow would import pandas, 0.4 s, to ask about every list)
    main()
