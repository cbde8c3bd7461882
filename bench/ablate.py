"""Run `tootlake` with parts of the collector's work taken out, to measure what each part
costs in a live run (`bench/collect_bench.py --ablate PARTS`, against the whole collector
of the same checkout: `--baseline HEAD`). A measuring tool only: the lake it writes is not
a real collection. Usage: `python bench/ablate.py PARTS ARGS...`, PARTS comma-separated:

- `decode`: no status tree per event. The first status is decoded; every later one is that
  status with its own uri, id and content (read from the JSON bytes with `bytes.find` and
  one string decode). So decoding, its checks and freeing its objects go, and every post
  has one author and one time. The ceiling of a native parser (docs/design/fused-receive.md,
  stage 1): such a parser still parses, this takes that out too.
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


def _string_after(data: bytes, key: bytes) -> str | None:
    """The JSON string value after the first `key` (which ends with its opening quote)."""
    at = data.find(key)
    if at < 0:
        return None
    start = at + len(key)
    end = data.find(b'"', start)
    while end > 0 and _escaped(data, end):
        end = data.find(b'"', end + 1)
    if end < 0:
        return None
    value = msgspec.json.decode(data[start - 1 : end + 1])
    return value if isinstance(value, str) else None


def _escaped(data: bytes, at: int) -> bool:
    """Whether the quote at `at` is escaped (an odd number of backslashes before it)."""
    n = 0
    while at - n - 1 >= 0 and data[at - n - 1] == 0x5C:
        n += 1
    return n % 2 == 1


def _without_decode() -> None:
    from tootlake.record import status as status_module
    from tootlake.sources import fleet

    real = fleet.decode_status
    template: list[Any] = []

    def shared_tree(data: bytes | str, now: Any = None) -> Any:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if template:
            # Mastodon's order: the status's id, then its uri, before the account's
            uri, sid = _string_after(raw, b'"uri":"'), _string_after(raw, b'"id":"')
            content = _string_after(raw, b'"content":"')
            if uri is not None and sid is not None:
                first = template[0]
                return status_module.ValidStatus(
                    data=msgspec.structs.replace(first.data, uri=uri, id=sid, content=content),
                    id=sid,
                    created_at=first.created_at,
                    edited_at=None,
                    size=len(raw),
                )
        checked = real(data, now)
        usable = isinstance(checked, status_module.ValidStatus) and checked.edited_at is None
        if not template and usable:
            template.append(checked)
        return checked

    fleet.decode_status = shared_tree  # type: ignore[assignment]


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


def main() -> None:
    parts = set(sys.argv[1].split(","))
    unknown = parts - PARTS
    if unknown:
        raise SystemExit(f"unknown parts {sorted(unknown)}: choose from {sorted(PARTS)}")
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
