"""Run a simulated fediverse as a service: what `tootlake simulate` calls.

It starts the instances, writes the files a collector needs (instance URLs, tokens), publishes
at the requested rate until the duration ends or SIGINT/SIGTERM, then writes the ground truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from tootlake._gc import fewer_collections
from tootlake.errors import ConfigError
from tootlake.simulate.fediverse import Fediverse, Truth
from tootlake.simulate.hostile import INSTANCE_KINDS
from tootlake.simulate.server import InstanceSettings

__all__ = ["instance_token", "run_simulation"]


def instance_token(seed: int, index: int) -> str:
    """The token of simulated instance `index`: stable for a seed, so scripts can rely on it."""
    return "sim-" + hashlib.sha256(f"tootlake/{seed}/{index}".encode()).hexdigest()[:24]


def run_simulation(
    *,
    instances: int = 3,
    rate: float = 20.0,
    duration: float | None = None,
    token_required: bool = True,
    seed: int = 0,
    port_base: int | None = None,
    federation: int = 2,
    edits: float = 0.02,
    deletes: float = 0.01,
    heartbeat: float = 15.0,
    hostile: float = 0.0,
    flood_rate: float | None = None,
    write_instances: str | Path | None = None,
    tokens_file: str | Path | None = None,
    truth_file: str | Path | None = None,
    echo: Callable[[str], None] = print,
    status: Callable[[str], None] = print,
) -> Truth:
    """Serve until `duration` seconds have passed (None: until SIGINT/SIGTERM); return the truth.

    `token_required`: each instance gets a token (see `instance_token`) and its REST public
    timeline needs it (live feeds "authenticated"); otherwise no token is configured (any
    token streams: Mastodon >= 4.2 always wants one) and REST is open. `echo` gets the instance
    URLs, one per call; `status` the human-readable lines.

    `hostile` > 0: that share of public statuses is served mutated, and one instance of each
    hostile kind (flood, stall, huge, huge_document, bad_document) follows the ordinary ones
    (see `tootlake.simulate.hostile`); `flood_rate` caps the flood (None: as fast as its
    clients read).
    """
    # before anything runs: the truth file is written only at the end (the tokens file is
    # made readable by its owner only from the start)
    made = [
        Path(path)
        for path, mode in ((write_instances, 0o666), (tokens_file, 0o600), (truth_file, 0o666))
        if path and _check_writable(path, mode)
    ]
    try:
        with fewer_collections():  # it keeps every post it published, for the truth
            return asyncio.run(
                _serve(
                    instances,
                    rate,
                    duration,
                    token_required,
                    seed,
                    port_base,
                    federation,
                    edits,
                    deletes,
                    heartbeat,
                    hostile,
                    flood_rate,
                    write_instances,
                    tokens_file,
                    truth_file,
                    echo,
                    status,
                )  # fmt: skip
            )
    except BaseException:
        # a failed run leaves no empty file behind that the check above made
        for path in made:
            with contextlib.suppress(OSError):
                if path.stat().st_size == 0:
                    path.unlink()
        raise


async def _serve(
    instances: int,
    rate: float,
    duration: float | None,
    token_required: bool,
    seed: int,
    port_base: int | None,
    federation: int,
    edits: float,
    deletes: float,
    heartbeat: float,
    hostile: float,
    flood_rate: float | None,
    write_instances: str | Path | None,
    tokens_file: str | Path | None,
    truth_file: str | Path | None,
    echo: Callable[[str], None],
    status: Callable[[str], None],
) -> Truth:
    feeds = "authenticated" if token_required else "public"

    def settings_of(index: int, misbehave: str | None = None) -> InstanceSettings:
        return InstanceSettings(
            token=instance_token(seed, index) if token_required else None,
            live_feeds={"local": feeds, "remote": feeds},
            heartbeat=heartbeat,
            misbehave=misbehave,
            flood_rate=flood_rate,
        )

    settings = [settings_of(i) for i in range(instances)]
    misbehaving = (
        [settings_of(instances + i, kind) for i, kind in enumerate(INSTANCE_KINDS)]
        if hostile > 0
        else []
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not in the main thread
            loop.add_signal_handler(signum, stop.set)
    fed = Fediverse(
        instances,
        settings=settings,
        seed=seed,
        federation=federation,
        port_base=port_base,
        hostile=hostile,
        hostile_instances=misbehaving,
    )
    try:
        await fed.start()  # (in the try: what started before a failure is stopped)
        for url in fed.urls:
            echo(url)
        if write_instances:
            Path(write_instances).write_text(
                "".join(f"{url}\n" for url in fed.urls), encoding="utf-8"
            )
        if tokens_file:
            lines = [f"{inst.host}={inst.settings.token or 'any'}\n" for inst in fed.instances]
            # Readable by its owner only, as `collect --token-file` wants a token file.
            fd = os.open(tokens_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write("".join(lines))
            os.chmod(tokens_file, 0o600)  # an existing file keeps its mode through O_CREAT
        status(
            f"{instances} simulated instances on {fed.bind}, publishing {rate:g} posts/s"
            + (f" for {duration:g} s" if duration is not None else " until interrupted")
            + (
                "; streaming needs each instance's token"
                if token_required
                else "; any token streams"
            )
        )
        if hostile > 0:
            kinds = ", ".join(f"{inst.settings.misbehave} {inst.url}" for inst in fed.misbehaving)
            status(f"{hostile:.0%} of public statuses hostile; hostile instances: {kinds}")
        started = time.monotonic()
        if rate > 0:
            fed.start_publishing(rate, edits=edits, deletes=deletes)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
        await fed.stop_publishing()
        elapsed = time.monotonic() - started
        truth = fed.truth()
        status(
            f"Published {fed.published:,} statuses in {elapsed:.1f} s "
            f"({fed.published / max(elapsed, 1e-9):,.0f}/s): "
            f"{len(truth.latest):,} collectable, {len(truth.deleted):,} deleted, "
            f"{len(truth.opted_out):,} opted out, {truth.hidden:,} hidden from public feeds."
            + (
                f" Hostile: {len(truth.invalid):,} invalid (to be rejected), "
                f"{len(truth.coerced):,} with fields to coerce, {len(truth.shaped):,} shaped "
                "like other servers."
                if hostile > 0
                else ""
            )
        )
        if truth_file:
            document = {"instances": fed.urls, **truth.to_json()}
            Path(truth_file).write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
        return truth
    finally:
        await fed.close()


def _check_writable(path: str | Path, mode: int) -> bool:
    """A ConfigError naming `path` when it cannot be written (a missing folder, no right);
    a file made here gets `mode` (less the umask). True when it made the file."""
    existed = os.path.lexists(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode))
    except OSError as exc:
        raise ConfigError(f"Cannot write {path}: {exc.strerror or exc}") from exc
    return not existed
