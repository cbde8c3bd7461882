"""The CLI package's shape: commands listed on `main` explicitly, and no command reaching
into another module's private helpers (what is shared lives in `options`, `output` and
`command`, under public names)."""

from __future__ import annotations

import ast
from pathlib import Path

import click

import tootlake.cli
from tootlake.cli import COMMANDS, main

CLI = Path(tootlake.cli.__file__).parent


def _private_imports(path: Path) -> list[str]:
    """`from tootlake.cli.X import _name` (or `from tootlake.cli import _name`, or
    `tootlake.cli.X._name` as an attribute) in the module at `path`."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tootlake.cli"):
            found += [
                f"{path.name}:{node.lineno}: from {node.module} import {alias.name}"
                for alias in node.names
                if alias.name.startswith("_")
            ]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            base = ast.unparse(node.value)
            if base.startswith("tootlake.cli"):
                found.append(f"{path.name}:{node.lineno}: {base}.{node.attr}")
    return found


def test_no_cli_module_imports_a_private_name_of_another():
    modules = sorted(CLI.glob("*.py"))
    assert len(modules) > 5
    assert [hit for path in modules for hit in _private_imports(path)] == []


def test_the_checker_sees_a_private_import(tmp_path):
    sample = tmp_path / "demo.py"
    sample.write_text(
        "from tootlake.cli.collect import _print_final, status\n"
        "import tootlake.cli.output\n"
        "tootlake.cli.output._hidden()\n"
    )
    assert _private_imports(sample) == [
        "demo.py:1: from tootlake.cli.collect import _print_final",
        "demo.py:3: tootlake.cli.output._hidden",
    ]


def test_every_command_is_listed_on_main():
    assert sorted(main.commands) == sorted(command.name for command in COMMANDS)
    assert all(isinstance(command, click.Command) for command in COMMANDS)
    assert not (CLI.parent / "commands").exists()
