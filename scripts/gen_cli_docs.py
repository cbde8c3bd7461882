"""Write docs/cli.md from the click commands' own help, so the reference cannot drift.
Run: .venv/bin/python scripts/gen_cli_docs.py (tests/test_cli.py checks it is current)."""

from __future__ import annotations

from pathlib import Path

import click

from tootlake.cli import main

OUT = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def commands(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
    found = []
    for name in sorted(group.commands):
        command = group.commands[name]
        path = f"{prefix} {name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found.extend(commands(command, path))
    return found


def render() -> str:
    lines = [
        "# Command line reference",
        "",
        "Generated from the commands' help by `scripts/gen_cli_docs.py`; do not edit by hand.",
        "",
    ]
    for path, command in [("tootlake", main), *commands(main, "tootlake")]:
        # The group's settings (-h as well as --help), as a real invocation has them: click
        # caches each command's help option from the first context that asks for it.
        context = click.Context(command, info_name=path, **main.context_settings)
        lines += [f"## `{path}`", "", "```", command.get_help(context).rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
