"""Run `tootlake` with parts of the collector's work taken out, to measure what each part
costs in a live run (`bench/collect_bench.py --ablate PARTS`, against the whole collector
of the same checkout: `--baseline HEAD`). A measuring tool only: the lake it writes is not
a real collection. Usage: `python bench/ablate.py PARTS ARGS...`, PARTS comma-separated:

- `decode`: no status read per event (no msgspec tree, no native `FastStatus`). The first
  status the consent gate lets through is decoded; every later one is that status with its
  own uri and id (found in the JSON bytes with `bytes.find`: about 1 us a status in a loop,
  a fifth of `decode_status`). So parsing, its checks and freeing what it made go, and
  every post has one author, one time and one text: the gate reads one account, always in
  the cache, and Parquet compresses one text far better (add `commit,merge` to leave the
  writing out of the comparison), so the cost measured is an upper bound of what reading
  a status costs.
- `merge`: no end-of-run merge of `posts` (its child process, its imports, its reading of
  `posts_all` and writing of `posts`).
- `commit`: no Delta commits: Arrow batches are built and dropped (no Parquet, no delta-rs).
  The merge then finds nothing to merge but still starts: add `merge` to leave it out.
- `record`: the Recorder drops every event (no post, edit or delete made, nothing written;
  acks still flow). With `merge`, what is left is receiving: the socket, frames, decoding,
  events, cursors and the hand-over to the Recorder's thread.
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

PARTS = {"decode", "merge", "commit", "record"}


def _plain_after(data: bytes, key: bytes) -> str | None:
    """The text after `key` (which ends with its opening quote) up to the next quote, not
    unescaped: cheap, and uris and ids hold no escape in what servers send (a backslash
    there would stay in, which keeps the value each post's own)."""
    at = data.find(key)
    if at < 0:
        return None
    start = at + len(key)
    end = data.find(b'"', start)
    return None if end < 0 else data[start:end].decode("utf-8", "replace")


def _without_decode() -> None:
    from tootlake.record import status as status_module
    from tootlake.record.consent import Consent
    from tootlake.sources import fleet

    real = fleet.decode_status
    template: list[Any] = []

    def shared_tree(data: bytes | str, now: Any = None) -> Any:
        raw = data if isinstance(data, bytes) else data.encode()
        if template:
            # Mastodon's order: the status's id, then its uri, before the account's
            uri, sid = _plain_after(raw, b'"uri":"'), _plain_after(raw, b'"id":"')
            if uri is not None and sid is not None:
                first = template[0]
                return status_module.ValidStatus(
                    data=msgspec.structs.replace(first.data, uri=uri, id=sid),
                    id=sid,
                    created_at=first.created_at,
                    edited_at=None,
                    size=len(raw),
                )
        checked = real(data, now)
        # a template the default consent gate lets through: one failing it would have every
        # post skipped, and the run measure a collector that writes nothing
        if (
            not template
            and isinstance(checked, status_module.ValidStatus)
            and checked.edited_at is None
            and Consent().gate(checked) is None
        ):
            template.append(checked)
        return checked

    # every stream status through the stand-in: WebSocket frames too (not read natively,
    # frame and status in one call, but framed first, then given to it)
    fleet.ws_status = lambda message: None  # type: ignore[assignment]
    fleet.decode_stream_status = shared_tree  # type: ignore[assignment]


def _without_merge() -> None:
    from tootlake import collector

    def no_merge(lake: str, *, isolated: bool = False) -> None:
        return None

    collector.merge_lake = no_merge


def _without_commit() -> None:
    from tootlake.lake import writer

    def no_commit(*args: Any, **kwargs: Any) -> None:
        return None

    writer.append = no_commit


def _without_record() -> None:
    from tootlake import pipeline

    def drop(self: Any, event: Any) -> None:
        self.stats.events += 1  # counted as the Recorder counts them: the CPU per event
        self.stats.posts += 1
        return None

    pipeline.Recorder.record = drop  # type: ignore[method-assign]


def unknown_parts(parts: str) -> str | None:
    """What is wrong with a comma-separated list of parts (None: nothing)."""
    unknown = set(parts.split(",")) - PARTS
    return f"unknown parts {sorted(unknown)}: choose from {sorted(PARTS)}" if unknown else None


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit("usage: python bench/ablate.py PARTS tootlake-arguments...")
    wrong = unknown_parts(sys.argv[1])
    if wrong:
        raise SystemExit(wrong)
    parts = set(sys.argv[1].split(","))
    if "decode" in parts:
        _without_decode()
    if "merge" in parts:
        _without_merge()
    if "commit" in parts:
        _without_commit()
    if "record" in parts:
        _without_record()
    from tootlake.cli import entry

    sys.argv = ["tootlake", *sys.argv[2:]]
    entry()


if __name__ == "__main__":
    main()
