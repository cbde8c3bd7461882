"""`tootlake keygen FILE`: the secret key of a pseudonymised lake (`tootlake.pseudonym`)."""

from __future__ import annotations

import click

from tootlake.cli.command import run_command


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace FILE if it exists (its lakes are orphaned).")
@run_command
def keygen(file: str, force: bool) -> None:
    """Write a new secret key (32 random bytes) to FILE, readable by its owner only (mode
    0600 from the start), for pseudonymised lakes. Keep it outside the lake: whoever holds it
    can link pseudonyms to accounts. Prints the key's id (a short hash), never the key."""
    from tootlake.pseudonym import generate_key

    ident = generate_key(file, force=force)
    click.echo(f"Wrote a new key to {file} (key id {ident}); keep it private and backed up.")
