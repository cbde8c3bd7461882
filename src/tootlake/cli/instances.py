"""`tootlake instances discover|check`: find instances and see how `collect` would read them."""

from __future__ import annotations

import json
import sys

import click

from tootlake.cli.command import run_command
from tootlake.cli.options import (
    TIMELINE,
    format_option,
    instances_options,
    load_policy_of,
    policy_option,
    settings_and_specs,
)
from tootlake.cli.output import clean, one_line


@click.group()
def instances() -> None:
    """Find instances and see how `collect` would read them."""


@instances.command()
@click.option(
    "--from",
    "start",
    required=True,
    metavar="HOST",
    help="An instance whose peers (/api/v1/instance/peers) to probe.",
)
@click.option("--limit", default=100, show_default=True, help="How many answering instances.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write the instances file here (default: stdout).",
)
@click.option("--timeline", default="public", show_default=True, type=TIMELINE)
@run_command
def discover(start: str, limit: int, output: str | None, timeline: str) -> None:
    """Probe the peers of an instance and write an instances file for `collect`."""
    from tootlake.collector import discover_instances

    reports = discover_instances(start, limit, timeline)
    lines = [f"# instances found from {start}: {len(reports)}"]
    for r in sorted(reports, key=lambda r: r.instance):
        reg = {True: "open", False: "closed", None: "?"}[r.registrations]
        lines.append(  # the version is remote text: one line, or it could add instances
            f"{one_line(r.instance):40}  # {one_line(r.version) or '?'}; live feeds "
            f"{one_line(r.live_feeds) or '?'}; registrations {reg}; without a token: {r.action}"
        )
    text = "\n".join(lines) + "\n"
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
        from tootlake.text import counted

        click.echo(f"Wrote {counted(len(reports), 'instance')} to {output}", err=True)
    else:
        click.echo(text, nl=False)


@instances.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--instance",
    "instance_names",
    multiple=True,
    metavar="URL",
    help="An instance to check (repeatable), besides FILE.",
)
@instances_options
@policy_option
@click.option(
    "--rules/--no-rules",
    default=True,
    show_default=True,
    help="Also read each instance's rules, terms of service and privacy policy.",
)
@format_option(["table", "json"], default="table", show_default=True)
@run_command
def check(
    file: str | None,
    instance_names: tuple[str, ...],
    tokens: tuple[str, ...],
    token_file: str | None,
    timeline: str,
    policy: str | None,
    rules: bool,
    fmt: str,
) -> None:
    """Say, for each instance, what `collect` would do: stream / poll / needs token / down;
    show its rules, whether it publishes terms of service and a privacy policy (their
    pages), and flag the instances whose rules or description mention research, scraping,
    bots, archiving or AI, so that you can decide (and write a --policy) before collecting.
    With --policy, also what the policy decides for each."""
    from tootlake.collector import check_instances
    from tootlake.redact import redact_json
    from tootlake.text import json_for_terminal

    settings, specs = settings_and_specs(instance_names, file, tokens, token_file, policy=policy)
    if not specs:
        raise click.UsageError("Give an instances FILE or --instance.")
    reports = check_instances(specs, timeline, rules=rules, policy=load_policy_of(settings))
    if fmt == "json":
        rows = redact_json([r.as_dict() for r in reports])
        click.echo(json_for_terminal(json.dumps(rows, indent=1, ensure_ascii=False)))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table("instance", "collect would", "version", "live feeds", "token", "why")
    if rules:
        for column in ("rules", "terms", "privacy", "mentions"):
            table.add_column(column)
    if policy or settings.policy:
        table.add_column("policy")
    styles = {"stream": "green", "poll": "green", "needs token": "yellow", "down": "red"}
    for r in reports:
        # Version, feeds and reasons are remote text: plain Text (no rich markup), made safe.
        cells = [
            Text(clean(r.instance)),
            Text(r.action, style=styles.get(r.action, "")),
            Text(clean(r.version)),
            Text(clean(r.live_feeds)),
            "yes" if r.token else "no",
            Text(clean(r.reason)),
        ]
        if rules:
            p = r.policy
            cells += [
                Text(clean(p.rules_status)) if p else "",
                Text(clean(p.terms_url or p.terms_status)) if p else "",
                Text(clean(p.privacy_url or p.privacy_status)) if p else "",
                Text(clean(_mentions(p.flags)), style="yellow") if p and p.flags else "",
            ]
        if policy or settings.policy:
            cells.append(Text(clean(r.decision)))
        table.add_row(*cells)
    console = Console(width=200 if not sys.stdout.isatty() else None)
    console.print(table)
    for r in reports:
        if not rules or r.policy is None or not (r.policy.rules or r.policy.problems):
            continue
        console.print(Text(f"{clean(r.instance)}:", style="bold"))
        for number, rule in enumerate(r.policy.rules, 1):
            hint = f" ({rule.hint})" if rule.hint else ""
            console.print(Text(f"  {number}. {one_line(rule.text + hint)}"))
        for problem in r.policy.problems[:10]:
            console.print(Text(f"  ! {one_line(problem)}", style="red"))


def _mentions(flags: dict[str, list[str]]) -> str:
    return "; ".join(f"{topic} ({', '.join(words)})" for topic, words in flags.items())
