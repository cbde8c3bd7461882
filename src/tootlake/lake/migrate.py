"""`tootlake migrate`: a lake of the layout before Delta tables (plain Parquet files) becomes
Delta Lake tables, in place.

The old layout: plain Parquet files under `LAKE/<table>/date=D/`, for the tables `posts`
(every version of every post), `deletes`, `sightings` and `rejects`, and the compaction
manifest `LAKE/_tootlake/manifest.json`. The files of the lake are exactly those the old
reader read: every `.parquet` file listed under a table's folder (not hidden ones), less those
the manifest marks as replaced by compaction (matched by path and version: mtime in ns, or
the S3 ETag, as the old reader matched them), less `compact@` files the manifest does not list
(a compaction that died before its swap), plus the compacted files the manifest lists.

The new tables: old `posts` -> `posts_all`; `deletes`, `sightings` and `rejects` keep their
names; each row gets `date` from its record's own time (`tables.with_date`), in today's
record schema (a column older files lack is NULL, or the record's default where the column
cannot be NULL). `posts` is then made by `maintenance.merge_posts`.

Steps, each recorded in `LAKE/_tootlake/migrate/state.json` so that a rerun after a crash (or
Ctrl-C) carries on where the last run stopped:

1. convert: the old files' row groups, about `GROUP_BYTES` of them per Delta commit (never a
   whole table in memory), into `posts_all` (a new folder: written in place) and into staged
   tables `LAKE/_tootlake/migrate/<table>` (the others' folders are the old ones' names). Each
   commit records, as a Delta app transaction (`APP_ID`), the place of the last old row group
   it holds: a rerun resumes after it, and no row is converted twice. The list of old files is
   fixed when the migration starts; if the old lake changed since (a writer still running, a
   file moved out), the conversion starts over.
2. swap: for deletes, sightings and rejects, the old folder moves to
   `LAKE/_tootlake/old-layout/<table>` and the staged table into its place (local folders: one
   rename; S3: copy and delete, object by object); then the old `posts` folder moves; then the
   manifest. Until then every reader still finds an old-layout lake and says to run
   `tootlake migrate`: no reader sees a half-converted lake.
3. merge: `merge_posts()` makes `posts` (the lake is readable from here on).
4. cleanup: the rows of each new table are checked against the old files' footers, then the
   old files are deleted (unless `keep_old`), and the state with them.

A crash at any point leaves the old lake readable by `tootlake migrate` (its files are in
place, or under `_tootlake/old-layout` with the state saying so) and every row in it; rerun
to finish. Writers must be stopped while a lake migrates. The run that finishes a migration
appends a row to the new lake's `audit` table (command `migrate`: the rows of `posts_all` and
the run's statistics: files converted and left out, rows per table, columns filled).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tootlake.errors import LakeError
from tootlake.lake import tables
from tootlake.lake.audit import AuditEntry, record_run
from tootlake.lake.layout import (
    DELETES,
    META,
    POSTS,
    POSTS_ALL,
    REJECTS,
    SIGHTINGS,
    is_remote,
    join,
)
from tootlake.lake.storage import FileInfo, Storage, storage_for

__all__ = ["MigrateProgress", "MigrateStats", "migrate"]

log = logging.getLogger(__name__)

# The old layout's tables (folder name -> the Delta table it becomes); posts last, since its
# folder is what makes a lake look old (`reader.old_layout`).
OLD_TABLES = {DELETES: DELETES, SIGHTINGS: SIGHTINGS, REJECTS: REJECTS, POSTS: POSTS_ALL}
OLD_MANIFEST = (META, "manifest.json")
OLD_LOCK = (META, "compact.lock")
MANIFEST_FORMAT = 1
COMPACTED_PREFIX = "compact@"
WORK = (META, "migrate")  # the state and the staged tables
OLD_FILES = (META, "old-layout")  # where the old files go until they are deleted
STATE_FORMAT = 1
APP_ID = "tootlake.migrate"  # app transaction: the last old row group converted
# Rows converted per Delta commit: old row groups of about this many bytes in all (their size
# in memory, from the footers; one row group at least). delta-rs 1.6 holds much of a commit in
# memory until it ends (each partition's file is buffered until it is full), so this bounds
# the memory of a migration: about 0.5 GB peak, for any size of lake.
GROUP_BYTES = 32 * 1024 * 1024
BATCH_ROWS = 64 * 1024
# A commit's app transaction marks its last row group as file index * this + row group.
GROUPS_PER_FILE = 1 << 20

PHASES = ("convert", "swap", "merge", "cleanup")


@dataclass
class MigrateProgress:
    """Where a migration is: `step` (convert, swap, merge, cleanup), the table, and how far
    (files converted or moved, of `total`)."""

    step: str
    table: str | None = None
    done: int = 0
    total: int = 0


@dataclass
class MigrateStats:
    """What `migrate()` did. `migrated` is False when there was nothing to migrate."""

    lake: str
    migrated: bool = False
    resumed: bool = False  # carried on from an interrupted run
    files: dict[str, int] = field(default_factory=dict)  # old files converted, by new table
    rows: dict[str, int] = field(default_factory=dict)  # rows of each new table
    files_left_out: int = 0  # old files that were not part of the lake (see the docstring)
    replaced_but_changed: int = 0  # files the manifest replaced, rewritten since: kept
    columns_filled: dict[str, list[str]] = field(default_factory=dict)  # table -> columns
    columns_dropped: dict[str, list[str]] = field(default_factory=dict)  # not in the schema
    old_files: str | None = None  # where the old files are kept (keep_old)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out


def migrate(
    lake: str,
    *,
    keep_old: bool = False,
    memory_limit: str | None = None,
    on_progress: Callable[[MigrateProgress], None] | None = None,
) -> MigrateStats:
    """Convert the old-layout lake at `lake` (a folder or s3://bucket/prefix) into Delta
    tables in place (see the module docstring); a lake in the Delta layout already is left
    as it is (`migrated` False). Rerun after a crash to finish. With `keep_old`, the old files
    stay under `LAKE/_tootlake/old-layout/`. `memory_limit` is DuckDB's while `posts` is
    merged (e.g. "1GB"; it spills to disk beyond it); the conversion itself holds about
    `GROUP_BYTES` of rows at a time, whatever the size of the lake."""
    started = time.monotonic()
    started_at = datetime.now(UTC)
    run = _Run(lake, on_progress or (lambda progress: None))
    stats = MigrateStats(lake=lake)
    state = run.load_state()
    if state is None:
        run.check_exists()
        if not run.old_layout():
            stats.seconds = time.monotonic() - started
            return stats
        state = run.start()
    else:
        stats.resumed = True
        log.info("carrying on with the migration of %s (%s)", lake, state["phase"])
        if state["phase"] == "convert":
            state = run.check_unchanged(state) or state
    stats.migrated = True
    if state["phase"] == "convert":
        run.convert(state)
        if run.check_unchanged(state) is not None:  # a writer added files meanwhile
            raise LakeError(
                f"The lake {lake} changed while it was being converted: stop every writer "
                "(collect, sink, compact), then run tootlake migrate again "
                "(it converts the lake again from the start)"
            )
        state["phase"] = "swap"
        run.save_state(state)
        _step("converted")
    if state["phase"] == "swap":
        run.swap(state)
        state["phase"] = "merge"
        run.save_state(state)
        _step("swapped")
    if state["phase"] == "merge":
        from tootlake.lake.maintenance import merge_posts

        run.progress("merge")
        merge_posts(lake, memory_limit=memory_limit)
        state["phase"] = "cleanup"
        run.save_state(state)
        _step("merged")
    if not state.get("verified"):
        run.verify(state)
        state["verified"] = True
        run.save_state(state)
    stats.rows = run.rows()
    run.cleanup(keep_old)
    stats.files = {OLD_TABLES[t]: len(files) for t, files in state["files"].items() if files}
    stats.files_left_out = int(state.get("left_out", 0))
    stats.replaced_but_changed = int(state.get("changed", 0))
    stats.columns_filled = dict(state.get("filled", {}))
    stats.columns_dropped = dict(state.get("dropped", {}))
    stats.old_files = run.path(*OLD_FILES) if keep_old else None
    stats.seconds = time.monotonic() - started
    record_run(
        lake,
        AuditEntry(
            "migrate", started_at, posts=stats.rows.get(POSTS_ALL, 0), stats=stats.as_dict()
        ),
    )
    return stats


def _step(name: str) -> None:
    """Called after each durable step (tests make a run crash here)."""


# ----------------------------------------------------------------------------------------
# the old layout's files, as the old reader saw them


@dataclass
class _Replaced:
    size: int | None
    version: str | None

    def matches(self, info: FileInfo) -> bool:
        if self.version is None or info.version is None:
            return True  # a storage that cannot tell versions: the path decides
        return self.version == info.version and (
            self.size is None or info.size is None or self.size == info.size
        )


@dataclass
class _Snapshot:
    live: dict[str, list[tuple[str, int]]]  # old table -> (path relative to the lake, size)
    left_out: int  # listed files that are not part of the lake
    changed: int  # files the manifest replaced that were rewritten since (kept, as of old)
    signature: str  # of every listed file (path, size, version) and the manifest


@dataclass
class _Chunk:
    """One row group of an old file: the unit of a migration's progress."""

    index: int  # of the file, in the table's list of old files
    rel: str
    group: int
    groups: int  # row groups of the file
    size: int  # bytes in memory (uncompressed), from the footer
    metadata: Any  # the file's footer


def _is_compacted(rel: str) -> bool:
    return rel.rsplit("/", 1)[-1].startswith(COMPACTED_PREFIX)


class _Run:
    """One run of `migrate()` on one lake: its storage and the operations of each step."""

    def __init__(self, lake: str, on_progress: Callable[[MigrateProgress], None]) -> None:
        self.lake = lake
        self.remote = is_remote(lake)
        self.storage: Storage = storage_for(lake)
        self.root = (
            lake.rstrip("/") if self.remote else os.path.abspath(lake.removeprefix("file://"))
        )
        self.on_progress = on_progress
        self.options = tables.storage_options(lake)

    # -- paths ---------------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        """A path (or s3:// URL) in the lake, from parts of `/`-separated relative paths."""
        pieces = [piece for part in parts for piece in part.split("/") if piece]
        return join(self.root, *pieces)

    def relative(self, path: str) -> str:
        if self.remote:
            return path.removeprefix(self.root + "/")
        return os.path.relpath(path, self.root).replace(os.sep, "/")

    def staged_uri(self, table: str) -> str:
        return self.path(*WORK, table)

    def target_uri(self, old: str) -> str:
        """Where the old table `old` is converted to: posts_all in place, others staged."""
        new = OLD_TABLES[old]
        return tables.table_uri(self.lake, new) if new == POSTS_ALL else self.staged_uri(new)

    def progress(self, step: str, table: str | None = None, done: int = 0, total: int = 0) -> None:
        self.on_progress(MigrateProgress(step, table, done, total))

    # -- state ---------------------------------------------------------------------------

    def check_exists(self) -> None:
        """A local lake must be a folder (a missing bucket fails when it is listed)."""
        if self.remote:
            return
        if not os.path.exists(self.root):
            raise LakeError(f"No lake at {self.root}: the folder does not exist.")
        if not os.path.isdir(self.root):
            raise LakeError(f"The lake {self.root} is a file, not a folder.")

    def load_state(self) -> dict[str, Any] | None:
        path = self.path(*WORK, "state.json")
        try:
            raw = self.storage.read(path)
        except FileNotFoundError:
            return None
        try:
            state = json.loads(raw)
            if state.get("format") != STATE_FORMAT or state.get("phase") not in PHASES:
                raise ValueError(f"format {state.get('format')!r}, phase {state.get('phase')!r}")
            return dict(state)
        except (ValueError, AttributeError) as exc:
            raise LakeError(
                f"The migration state {path} is damaged ({exc}); the old files are in the "
                f"lake or under {self.path(*OLD_FILES)}"
            ) from exc

    def save_state(self, state: dict[str, Any]) -> None:
        state["updated_at"] = datetime.now(UTC).isoformat()
        self.storage.write_atomic(
            self.path(*WORK, "state.json"), json.dumps(state, indent=1).encode()
        )

    def old_layout(self) -> bool:
        """True when the lake has files of the old layout: what `reader.old_layout` finds (the
        manifest, or `posts/date=...` without a Delta log), or any other old table's."""
        from tootlake.lake.reader import old_layout

        if old_layout(self.lake):
            return True
        for old in OLD_TABLES:
            folder = self.path(old)
            if self.remote:
                s3 = self._s3()
                found = s3.has_prefix(f"{folder}/date=") and not s3.has_prefix(
                    f"{folder}/_delta_log/"
                )
            else:
                found = (
                    os.path.isdir(folder)
                    and not os.path.isdir(os.path.join(folder, "_delta_log"))
                    and any(name.startswith("date=") for name in os.listdir(folder))
                )
            if found:
                return True
        return False

    def start(self) -> dict[str, Any]:
        """A first run: check the lake can be migrated, and fix the list of its files."""
        if self._exists_file(self.path(*OLD_LOCK)):
            raise LakeError(
                f"A compaction of the old layout holds {self.path(*OLD_LOCK)}: wait for it to end "
                "(or delete the lock if none runs), stop every writer, then migrate"
            )
        for old, new in OLD_TABLES.items():
            for name in {old, new}:
                if self._has(self.path(name, "_delta_log")):
                    raise LakeError(
                        f"{self.path(name)} is a Delta table already, and the lake also has files "
                        "of the old layout: tootlake cannot tell which is the lake. Move one of "
                        "them out of the way, then migrate"
                    )
        self._remove_tree(self.path(*WORK))  # leftovers of a run that never saved its state
        snapshot = self.snapshot()
        if snapshot.changed:  # (said once: `check_unchanged` lists the files again)
            log.warning(
                "%d file(s) that the old compaction manifest marks as replaced have been "
                "rewritten since (their mtime or ETag changed, e.g. by a copy that did not keep "
                "times): they are converted too, as the tootlake that wrote them reads them",
                snapshot.changed,
            )
        state: dict[str, Any] = {
            "format": STATE_FORMAT,
            "phase": "convert",
            "started_at": datetime.now(UTC).isoformat(),
            "signature": snapshot.signature,
            "files": snapshot.live,
            "left_out": snapshot.left_out,
            "changed": snapshot.changed,
            "swapped": [],
        }
        self.save_state(state)
        _step("started")
        return state

    def check_unchanged(self, state: dict[str, Any]) -> dict[str, Any] | None:
        """The lake must still be the one whose files were listed when the migration started
        (checked when a run carries on with the conversion, and before the old files move).
        None when it is; else what was converted is dropped, and the state (returned) is
        back at the start of the conversion, with the files of the lake now."""
        snapshot = self.snapshot()
        if snapshot.signature == state["signature"]:
            return None
        log.warning(
            "The lake %s changed since its migration started (a writer still running?): "
            "converting it again from the start",
            self.lake,
        )
        self._drop_converted()
        state.update(
            signature=snapshot.signature,
            files=snapshot.live,
            left_out=snapshot.left_out,
            changed=snapshot.changed,
            filled={},
            dropped={},
            versions={},
        )
        self.save_state(state)
        _step("restarted")
        return state

    def _drop_converted(self) -> None:
        """Remove what the conversion wrote: posts_all (which the old layout has not: the
        first run checked) and the staged tables."""
        uri = tables.table_uri(self.lake, POSTS_ALL)
        dt = self._delta(uri)
        if dt is not None:
            foreign = [e for e in dt.history() if e.get("tootlake.operation") != "migrate"]
            if foreign:
                raise LakeError(
                    f"{uri} has commits that the migration did not make: something writes to "
                    "the lake while it migrates. Stop every writer, then run migrate again"
                )
        self._remove_tree(uri)  # the table, or the files of a first commit that never was
        for table in (DELETES, SIGHTINGS, REJECTS):
            self._remove_tree(self.staged_uri(table))

    # -- the old files -------------------------------------------------------------------

    def snapshot(self) -> _Snapshot:
        """The old lake's files, as the old reader (`tootlake.sinks.snapshot`) saw them: list
        first, then read the manifest."""
        listed = {old: self._list_parquet(self.path(old)) for old in OLD_TABLES}
        raw, manifest = self._manifest()
        compacted: dict[str, list[str]] = {
            str(k): [str(name) for name in v] for k, v in manifest.get("compacted", {}).items()
        }
        replaced = {
            str(rel): _Replaced(entry.get("size"), entry.get("version"))
            for rel, entry in manifest.get("superseded", {}).items()
        }
        digest = hashlib.sha256(raw)
        live: dict[str, list[tuple[str, int]]] = {}
        left_out = changed = 0
        for old, infos in listed.items():
            by_rel = {self.relative(info.path): info for info in infos}
            files: dict[str, int] = {}
            for rel, info in sorted(by_rel.items()):
                digest.update(f"{rel}\0{info.size}\0{info.version}\n".encode())
                partition, name = rel.rsplit("/", 1) if "/" in rel else ("", rel)
                if _is_compacted(rel):
                    if name not in compacted.get(partition, ()):
                        left_out += 1
                    continue  # listed ones come from the manifest, below
                entry = replaced.get(rel)
                if entry is not None:
                    if entry.matches(info):
                        left_out += 1
                        continue
                    changed += 1
                files[rel] = info.size or 0
            for partition, names in sorted(compacted.items()):
                if partition.split("/", 1)[0] != old:
                    continue
                for name in sorted(names):
                    rel = f"{partition}/{name}"
                    found = by_rel.get(rel)
                    if found is None:
                        raise LakeError(
                            f"The old lake's manifest lists {self.path(rel)}, which is missing: "
                            "the lake is damaged (the tootlake that wrote it cannot read it either)"
                        )
                    files[rel] = found.size or 0
            live[old] = sorted(files.items())
        return _Snapshot(live, left_out, changed, digest.hexdigest())

    def _manifest(self) -> tuple[bytes, dict[str, Any]]:
        path = self.path(*OLD_MANIFEST)
        try:
            raw = self.storage.read(path)
        except FileNotFoundError:
            return b"", {}
        try:
            manifest = json.loads(raw)
            if manifest.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {manifest.get('format')!r}")
            if not isinstance(manifest.get("compacted", {}), dict) or not isinstance(
                manifest.get("superseded", {}), dict
            ):
                raise ValueError("compacted and superseded must be objects")
            return raw, dict(manifest)
        except (ValueError, AttributeError) as exc:
            raise LakeError(f"The old lake's manifest {path} is damaged: {exc}") from exc

    def _list_parquet(self, prefix: str) -> list[FileInfo]:
        list_info = getattr(self.storage, "list_info", None)
        if list_info is None:  # pragma: no cover - both storages have it
            return [FileInfo(path) for path in self.storage.list(prefix)]
        return list(list_info(prefix))

    # -- convert -------------------------------------------------------------------------

    def convert(self, state: dict[str, Any]) -> None:
        versions: dict[str, int] = state.setdefault("versions", {})
        filled: dict[str, list[str]] = state.setdefault("filled", {})
        dropped: dict[str, list[str]] = state.setdefault("dropped", {})
        for old, new in OLD_TABLES.items():
            files = [str(rel) for rel, _size in state["files"].get(old, [])]
            uri = self.target_uri(old)
            dt = self._delta(uri)
            position = None if dt is None else dt.transaction_version(APP_ID)
            start, first = 0, 0
            if position is not None:  # resume after the last row group converted
                start, first = divmod(int(position), GROUPS_PER_FILE)
                first += 1
            self.progress("convert", new, start, len(files))
            conform = _Conformer(new)
            chunks = self._chunks(files, start, first)
            pending = next(chunks, None)
            while pending is not None:
                group, size = [pending], pending.size
                pending = next(chunks, None)
                while pending is not None and size + pending.size <= GROUP_BYTES:
                    group.append(pending)
                    size += pending.size
                    pending = next(chunks, None)
                self._write_group(uri, new, group, conform)
                last = group[-1]
                done = last.index + (1 if last.group == last.groups - 1 else 0)
                self.progress("convert", new, done, len(files))
                _step(f"converted {new} {done}/{len(files)}")
            if conform.filled:
                filled[new] = sorted(set(filled.get(new, [])) | conform.filled)
            if conform.dropped:
                dropped[new] = sorted(set(dropped.get(new, [])) | conform.dropped)
            dt = self._delta(uri)
            if dt is not None:
                versions[new] = dt.version()
            self.save_state(state)

    def _chunks(self, files: Sequence[str], start: int, first: int) -> Iterator[_Chunk]:
        """The row groups of the old files, from row group `first` of file `start` on."""
        for index in range(start, len(files)):
            metadata = self._metadata(files[index])
            if metadata.num_row_groups >= GROUPS_PER_FILE:
                raise LakeError(f"{self.path(files[index])} has too many row groups to migrate")
            for group in range(first if index == start else 0, metadata.num_row_groups):
                size = metadata.row_group(group).total_byte_size
                yield _Chunk(index, files[index], group, metadata.num_row_groups, size, metadata)

    def _write_group(
        self, uri: str, table: str, chunks: Sequence[_Chunk], conform: _Conformer
    ) -> None:
        """One Delta commit of these row groups (delta-rs holds a commit's rows in memory
        until it writes them: `GROUP_BYTES` bounds them), marked with the last one's place."""
        import itertools

        import deltalake

        def batches() -> Iterator[pa.RecordBatch]:
            for _index, same_file in itertools.groupby(chunks, key=lambda chunk: chunk.index):
                parts = list(same_file)
                groups = [chunk.group for chunk in parts]
                for batch in self._read(parts[0].rel, groups, parts[0].metadata):
                    yield conform(batch)

        first, last = chunks[0], chunks[-1]
        schema = tables.table_schema(table)
        commit = deltalake.CommitProperties(
            app_transactions=[
                deltalake.Transaction(
                    app_id=APP_ID, version=last.index * GROUPS_PER_FILE + last.group
                )
            ],
            custom_metadata=tables.commit_metadata(
                operation="migrate",
                old_files=f"{first.index}:{first.group}-{last.index}:{last.group}",
            ),
        )
        try:
            deltalake.write_deltalake(
                uri,
                pa.RecordBatchReader.from_batches(schema, batches()),
                mode="append",
                partition_by=["date"],
                schema_mode="merge",
                storage_options=self.options,
                target_file_size=tables.TARGET_FILE_BYTES,
                writer_properties=tables.writer_properties(),
                commit_properties=commit,
            )
        except LakeError:
            raise
        except (OSError, pa.ArrowException, deltalake.exceptions.DeltaError) as exc:
            raise LakeError(f"Cannot write the Delta table {uri}: {_first_line(exc)}") from exc

    def _open(self, path: str) -> Any:
        filesystem = getattr(self.storage, "arrow_filesystem", None)
        if filesystem is not None:
            return filesystem().open_input_file(path.removeprefix("s3://"))
        return pa.OSFile(path)

    def _metadata(self, rel: str) -> Any:
        """The footer of one old file."""
        import pyarrow.parquet as pq

        try:
            with self._open(self.path(rel)) as handle:
                return pq.read_metadata(handle)
        except (pa.ArrowException, OSError) as exc:
            raise self._unreadable(rel, exc) from exc

    def _read(self, rel: str, groups: Sequence[int], metadata: Any) -> Iterator[pa.RecordBatch]:
        """The rows of these row groups of one old file, a batch at a time."""
        import pyarrow.parquet as pq

        try:
            with (
                self._open(self.path(rel)) as handle,
                pq.ParquetFile(handle, metadata=metadata) as parquet,
            ):
                yield from parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=list(groups))
        except (pa.ArrowException, OSError) as exc:
            raise self._unreadable(rel, exc) from exc

    def _unreadable(self, rel: str, exc: BaseException) -> LakeError:
        text = " ".join(str(exc).split()).split(". ", 1)[0].rstrip(".")
        return LakeError(
            f"Cannot read the old file {self.path(rel)} ({text or type(exc).__name__}): if it is "
            "corrupt, move it out of the lake (the old reader's --skip-corrupt left it out too), "
            "then run migrate again"
        )

    # -- swap ----------------------------------------------------------------------------

    def swap(self, state: dict[str, Any]) -> None:
        swapped: list[str] = state.setdefault("swapped", [])
        moved: list[str] = state.setdefault("moved", [])  # old folders out of the way
        for old, new in OLD_TABLES.items():
            if old in swapped:
                continue
            self.progress("swap", new)
            if old not in moved:  # (once moved, the folder is the new table's)
                self._move_tree(self.path(old), self.path(*OLD_FILES, old))
                moved.append(old)
                self.save_state(state)
                _step(f"moved old {old}")
            if new != POSTS_ALL:
                self._move_tree(self.staged_uri(new), self.path(new))
                _step(f"installed {new}")
            swapped.append(old)
            self.save_state(state)
        manifest = self.path(*OLD_MANIFEST)
        if self._exists_file(manifest):
            self._move_file(manifest, self.path(*OLD_FILES, "manifest.json"))
        _step("moved manifest")

    # -- verify and clean up -------------------------------------------------------------

    def verify(self, state: dict[str, Any]) -> None:
        """Before the old files are deleted: the rows of each new table, as converted, must be
        the rows of its old files (their footers, read where they are now)."""
        versions = state.get("versions", {})
        for old, new in OLD_TABLES.items():
            files = state["files"].get(old, [])
            if not files:
                continue
            dt = tables.load(self.lake, new, versions.get(new))
            converted = _rows(dt)
            expected = sum(self._footer_rows(str(rel)) for rel, _ in files)
            if converted != expected:
                raise LakeError(
                    f"The migrated table {tables.table_uri(self.lake, new)} holds {converted:,} "
                    f"rows where the old files hold {expected:,}: the old files are kept under "
                    f"{self.path(*OLD_FILES)}. Please report this."
                )

    def rows(self) -> dict[str, int]:
        """Rows of each table of the lake now."""
        rows = {}
        for table in (POSTS_ALL, POSTS, DELETES, SIGHTINGS, REJECTS):
            dt = tables.load(self.lake, table)
            if dt is not None:
                rows[table] = _rows(dt)
        return rows

    def _footer_rows(self, rel: str) -> int:
        """Rows of the old file `rel`, from its footer (it is under `old-layout` by now)."""
        return int(self._metadata("/".join([*OLD_FILES, rel])).num_rows)

    def cleanup(self, keep_old: bool) -> None:
        self.progress("cleanup")
        if not keep_old:
            self._remove_tree(self.path(*OLD_FILES))
            _step("deleted old files")
        for table in (DELETES, SIGHTINGS, REJECTS):
            self._remove_tree(self.staged_uri(table))  # gone already: moved into place
        self.storage.delete(self.path(*WORK, "state.json"))  # the migration is over
        self._remove_tree(self.path(*WORK))
        _step("done")

    # -- storage operations --------------------------------------------------------------

    def _delta(self, uri: str) -> Any:
        import deltalake

        if not self.remote and not os.path.isdir(os.path.join(uri, "_delta_log")):
            return None
        try:
            if not deltalake.DeltaTable.is_deltatable(uri, storage_options=self.options):
                return None
            return deltalake.DeltaTable(uri, storage_options=self.options)
        except (OSError, deltalake.exceptions.DeltaError) as exc:
            raise LakeError(f"Cannot read the Delta table {uri}: {_first_line(exc)}") from exc

    def _exists_file(self, path: str) -> bool:
        if self.remote:
            return bool(self._s3().exists(path))
        return os.path.isfile(path)

    def _has(self, folder: str) -> bool:
        """True when `folder` holds anything."""
        if self.remote:
            return bool(self._s3().has_prefix(folder.rstrip("/") + "/"))
        return os.path.isdir(folder)

    def _s3(self) -> Any:
        return self.storage

    def _keys(self, folder: str) -> list[str]:
        """Every object under the S3 folder `folder` (keys)."""
        from tootlake.lake.s3 import split_url

        s3 = self._s3()
        bucket, key = split_url(folder)
        keys: list[str] = []
        with s3._errors("list", folder):
            pages = s3.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=key.rstrip("/") + "/"
            )
            for page in pages:
                keys += [obj["Key"] for obj in page.get("Contents", ())]
        return sorted(keys)

    def _move_file(self, src: str, dst: str) -> None:
        if not self.remote:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.replace(src, dst)
            return
        from tootlake.lake.s3 import split_url

        s3 = self._s3()
        bucket, src_key = split_url(src)
        _, dst_key = split_url(dst)
        with s3._errors("move", src):
            s3.client.copy({"Bucket": bucket, "Key": src_key}, bucket, dst_key)
            s3.client.delete_object(Bucket=bucket, Key=src_key)

    def _move_tree(self, src: str, dst: str) -> None:
        """Move everything under `src` to the same place under `dst`. Local: one rename when
        `dst` is not there yet, else file by file; S3: object by object (copy, then delete).
        Safe to rerun after a crash: what moved already is not under `src` any more."""
        if not self.remote:
            if not os.path.isdir(src):
                return
            try:
                if not os.path.exists(dst):
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    os.rename(src, dst)
                    return
                for folder, _dirs, names in os.walk(src):
                    for name in names:
                        path = os.path.join(folder, name)
                        target = os.path.join(dst, os.path.relpath(path, src))
                        os.makedirs(os.path.dirname(target), exist_ok=True)
                        os.replace(path, target)
                for folder, _dirs, _names in sorted(os.walk(src), reverse=True):
                    os.rmdir(folder)
            except OSError as exc:
                raise LakeError(f"Cannot move {src} to {dst}: {exc.strerror or exc}") from exc
            return
        from tootlake.lake.s3 import split_url

        bucket, src_key = split_url(src)
        _, dst_key = split_url(dst)
        keys = self._keys(src)
        for done, key in enumerate(keys, 1):
            target = dst_key.rstrip("/") + "/" + key.removeprefix(src_key.rstrip("/") + "/")
            self._move_file(f"s3://{bucket}/{key}", f"s3://{bucket}/{target}")
            if done % 100 == 0:
                self.progress("swap", None, done, len(keys))

    def _remove_tree(self, folder: str) -> None:
        if not self.remote:
            try:
                shutil.rmtree(folder)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise LakeError(f"Cannot delete {folder}: {exc.strerror or exc}") from exc
            return
        from tootlake.lake.s3 import split_url

        s3 = self._s3()
        bucket, _ = split_url(folder)
        keys = self._keys(folder)
        with s3._errors("delete", folder):
            for start in range(0, len(keys), 1000):
                chunk = [{"Key": key} for key in keys[start : start + 1000]]
                s3.client.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})


def _rows(dt: Any) -> int:
    if dt is None:
        return 0
    actions = dt.get_add_actions(flatten=True)
    return int(sum(value or 0 for value in actions.column("num_records").to_pylist()))


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# ----------------------------------------------------------------------------------------
# old rows in today's schema


class _Conformer:
    """Batches of an old file in the table's schema of today, with `date` added: columns are
    taken by name and cast; a column the file lacks is NULL, or (where the column cannot be
    NULL) the record's default, else the type's zero; columns no longer in the schema are
    dropped. `filled` and `dropped` name the columns that were."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.record_schema: pa.Schema = tables.RECORD_SCHEMAS[table]()
        self.schema: pa.Schema = tables.table_schema(table)
        self.defaults = _record_defaults(table)
        self.filled: set[str] = set()
        self.dropped: set[str] = set()

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        n = batch.num_rows
        names = set(batch.schema.names)
        arrays = []
        for f in self.record_schema:
            if f.name not in names:
                self.filled.add(f.name)
                arrays.append(pa.nulls(n, f.type) if f.nullable else self._default(f, n))
                continue
            array = batch.column(f.name)
            if array.type != f.type:
                array = array.cast(f.type, safe=not pa.types.is_timestamp(f.type))
            if not f.nullable and array.null_count:
                self.filled.add(f.name)
                array = pc.if_else(pc.is_null(array), self._default(f, n), array)
            arrays.append(array)
        self.dropped |= names - set(self.record_schema.names) - {"date"}
        records = pa.Table.from_arrays(arrays, schema=self.record_schema)
        dated = tables.with_date(self.table, records)
        return pa.RecordBatch.from_arrays(
            [dated.column(i).combine_chunks() for i in range(dated.num_columns)],
            schema=self.schema,
        )

    def _default(self, f: pa.Field, n: int) -> pa.Array:
        value = self.defaults.get(f.name, _NO_DEFAULT)
        if value is _NO_DEFAULT:
            value = _zero(f.type)
        return pa.array([value] * n, f.type)


_NO_DEFAULT = object()


def _record_defaults(table: str) -> dict[str, Any]:
    """The defaults of the record class behind `table` (a field added later, such as
    `Post.opted_out`, has one)."""
    import msgspec

    from tootlake.record import Delete, Post, Reject, Sighting

    classes: dict[str, type[msgspec.Struct]] = {
        POSTS_ALL: Post,
        DELETES: Delete,
        SIGHTINGS: Sighting,
        REJECTS: Reject,
    }
    cls = classes[table]
    return {
        f.name: f.default for f in msgspec.structs.fields(cls) if f.default is not msgspec.NODEFAULT
    }


def _zero(arrow_type: pa.DataType) -> Any:
    if pa.types.is_list(arrow_type):
        return []
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return ""
    if pa.types.is_boolean(arrow_type):
        return False
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return 0
    if pa.types.is_timestamp(arrow_type):
        return datetime(1970, 1, 1, tzinfo=UTC)
    raise TypeError(f"no default for {arrow_type}")
