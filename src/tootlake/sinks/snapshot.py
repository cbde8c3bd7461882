"""Which files make up the lake at one moment, and a DuckDB view over them.

Writers only add files, so a listing is the lake, except for what compaction
(`tootlake.sinks.compact`) did. Compaction writes its files under names that start with
`compact@` and then swaps them in with ONE atomic write of the manifest
`LAKE/_tootlake/manifest.json`:

    compacted    partition -> its live compacted files (a `compact@` file is part of the lake
                 only while the manifest lists it here)
    superseded   path -> (size, version) of each file that a compacted file replaced; that file
                 is no longer part of the lake, but stays on storage for a grace period so that
                 readers that opened the lake before the swap can finish

A snapshot lists the files FIRST and reads the manifest SECOND. A manifest is never older than
the listing then, so: a file listed before the swap is hidden when the manifest read says it was
replaced; compacted files come from the manifest itself, never from the listing, so a swap that
happens between the two steps is seen whole; and a superseded file is deleted only after the
manifest that hides it was written, and its entry outlives the deletion (`TOMBSTONE_SECONDS`).

A superseded entry matches a file by path AND version (local: mtime in ns; S3: ETag), so a file
rewritten under the same name later (a Kafka sink replaying offsets names files by offset) is a
new file: it is visible, and never deleted by compaction as if it were the old one.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tootlake.errors import LakeError, TootlakeError
from tootlake.sinks.layout import DELETES, POSTS, SIGHTINGS, is_remote, join
from tootlake.sinks.storage import FileInfo, Storage, file_infos

__all__ = [
    "COMPACTED_PREFIX",
    "MANIFEST",
    "Manifest",
    "Snapshot",
    "Superseded",
    "create_view",
    "is_compacted",
    "read_snapshot",
]

MANIFEST = ("_tootlake", "manifest.json")
MANIFEST_FORMAT = 1
COMPACTED_PREFIX = "compact@"  # '@' is in no Kafka topic name nor in our writers' names
# A superseded entry stays this long (at least) after its file was deleted: a reader whose
# listing still saw the file must find the entry when it reads the manifest.
TOMBSTONE_SECONDS = 3600.0


def is_compacted(path: str) -> bool:
    return path.rsplit("/", 1)[-1].rsplit(os.sep, 1)[-1].startswith(COMPACTED_PREFIX)


def relative(lake: str, path: str) -> str:
    """`path` relative to the lake root, with `/` separators (the manifest's keys)."""
    if is_remote(lake):
        return path.removeprefix(lake.rstrip("/") + "/")
    rel = os.path.relpath(path, lake.removeprefix("file://"))
    return rel.replace(os.sep, "/")


def absolute(lake: str, rel: str) -> str:
    return join(lake, *rel.split("/"))


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Superseded:
    size: int | None
    version: str | None
    at: str  # when the swap that replaced it was committed (UTC, ISO)
    deleted_at: str | None = None  # when compaction deleted it from storage

    def matches(self, info: FileInfo) -> bool:
        if self.version is None or info.version is None:
            return True  # a storage that cannot tell versions: the path decides
        return self.version == info.version and (
            self.size is None or info.size is None or self.size == info.size
        )


@dataclass
class Manifest:
    """Compaction's record of the swap; see the module docstring. Empty when never compacted."""

    generation: int = 0
    compacted: dict[str, list[str]] = field(default_factory=dict)
    superseded: dict[str, Superseded] = field(default_factory=dict)
    updated_at: str | None = None
    # True when no uri is in two live compacted posts files, nor twice in one (compaction
    # checks it at every swap): readers then look for versions only where uncompacted files
    # are involved, instead of grouping the whole lake by uri.
    unique_posts: bool = False

    @classmethod
    def load(cls, storage: Storage, lake: str) -> Manifest:
        path = join(lake, *MANIFEST)
        try:
            data = storage.read(path)
        except FileNotFoundError:
            return cls()
        try:
            raw = json.loads(data)
            if raw.get("format") != MANIFEST_FORMAT:
                raise LakeError(
                    f"{path} has format {raw.get('format')!r}, which this tootlake cannot read "
                    f"(it reads {MANIFEST_FORMAT}): upgrade tootlake"
                )
            return cls(
                generation=int(raw["generation"]),
                compacted={k: list(v) for k, v in raw["compacted"].items()},
                superseded={k: Superseded(**v) for k, v in raw["superseded"].items()},
                updated_at=raw.get("updated_at"),
                unique_posts=bool(raw.get("unique_posts", False)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LakeError(f"The lake's manifest {path} is damaged: {exc}") from exc

    def dumps(self) -> bytes:
        raw = {
            "format": MANIFEST_FORMAT,
            "generation": self.generation,
            "updated_at": self.updated_at,
            "unique_posts": self.unique_posts,
            "compacted": {k: sorted(v) for k, v in sorted(self.compacted.items()) if v},
            "superseded": {k: vars(v) for k, v in sorted(self.superseded.items())},
        }
        return json.dumps(raw, indent=1).encode()

    def save(self, storage: Storage, lake: str) -> None:
        """Write the manifest: one atomic write, which is the swap."""
        self.generation += 1
        self.updated_at = _iso(_now())
        storage.write_atomic(join(lake, *MANIFEST), self.dumps())

    def hides(self, rel: str, info: FileInfo) -> bool:
        """True when the listed file `info` (at `rel`) is not part of the lake."""
        if is_compacted(rel):
            return rel.rsplit("/", 1)[-1] not in self.compacted.get(rel.rsplit("/", 1)[0], ())
        entry = self.superseded.get(rel)
        return entry is not None and entry.matches(info)

    def live(self, table: str) -> list[str]:
        """Relative paths of the live compacted files of `table`."""
        return [
            f"{part}/{name}"
            for part, names in sorted(self.compacted.items())
            if part.split("/", 1)[0] == table
            for name in sorted(names)
        ]


@dataclass
class Snapshot:
    """The lake at one moment: what was listed, the manifest read after it, what is visible."""

    lake: str
    manifest: Manifest
    listed: dict[str, list[FileInfo]]
    visible: dict[str, list[FileInfo]]

    def paths(self, table: str) -> list[str]:
        return [info.path for info in self.visible.get(table, [])]

    def compacted_paths(self, table: str) -> tuple[list[str], list[str]]:
        """The visible files of `table`: (written by compaction, the others)."""
        live = set(self.manifest.live(table))
        compacted: list[str] = []
        others: list[str] = []
        for path in self.paths(table):
            (compacted if relative(self.lake, path) in live else others).append(path)
        return compacted, others

    def partitions(self, table: str) -> dict[str, list[FileInfo]]:
        """Relative partition folder (`posts/date=...`) -> its visible files."""
        parts: dict[str, list[FileInfo]] = defaultdict(list)
        for info in self.visible.get(table, []):
            parts[relative(self.lake, info.path).rsplit("/", 1)[0]].append(info)
        return dict(sorted(parts.items()))


def read_snapshot(
    storage: Storage, lake: str, tables: Iterable[str] = (POSTS, DELETES, SIGHTINGS)
) -> Snapshot:
    """List the lake, then read its manifest, and tell which files are the lake now."""
    tables = list(tables)
    try:
        listed = {table: file_infos(storage, join(lake, table)) for table in tables}
    except TootlakeError:
        raise
    except Exception as exc:  # storage errors name the lake; a bad lake is not a bug
        raise LakeError(f"Cannot list the lake at {lake}: {exc}") from exc
    manifest = Manifest.load(storage, lake)
    visible: dict[str, list[FileInfo]] = {}
    for table in tables:
        by_rel = {relative(lake, info.path): info for info in listed[table]}
        files = [
            info for rel, info in by_rel.items()
            if not is_compacted(rel) and not manifest.hides(rel, info)
        ]  # fmt: skip
        for rel in manifest.live(table):  # from the manifest, even if listed too early
            files.append(by_rel.get(rel) or FileInfo(absolute(lake, rel)))
        visible[table] = sorted(files, key=lambda info: info.path)
    return Snapshot(lake, manifest, listed, visible)


def _sql_type(arrow_type: Any) -> str:
    """DuckDB's name for the Arrow types the lake's schemas use."""
    import pyarrow as pa

    if pa.types.is_list(arrow_type):
        return _sql_type(arrow_type.value_type) + "[]"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    simple = {
        pa.string(): "VARCHAR",
        pa.large_string(): "VARCHAR",
        pa.bool_(): "BOOLEAN",
        pa.int64(): "BIGINT",
        pa.int32(): "INTEGER",
        pa.float64(): "DOUBLE",
    }
    if arrow_type not in simple:
        raise TypeError(f"no DuckDB type for Arrow {arrow_type}")
    return simple[arrow_type]


def create_view(con: Any, name: str, files: Sequence[str], storage: Storage, schema: Any) -> None:
    """`CREATE OR REPLACE VIEW name` with the columns of `schema` over exactly these Parquet
    files: DuckDB's reader for local files, a registered pyarrow dataset for a storage that has
    `arrow_dataset` (S3). Columns an old file lacks read as NULL; no files give no rows."""
    import duckdb

    columns = ", ".join(f'"{f.name}"' for f in schema)
    if not files:
        # Typed NULLs in SQL, not a registered empty Arrow table: registering one makes
        # DuckDB import pandas, a third of a second of every report over a lake without
        # deletes or sightings.
        typed = ", ".join(f'CAST(NULL AS {_sql_type(f.type)}) AS "{f.name}"' for f in schema)
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {typed} WHERE false")
        return
    arrow_dataset = getattr(storage, "arrow_dataset", None)
    if arrow_dataset is not None:
        con.register(f"_arrow_{name}", arrow_dataset(list(files), schema))
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {columns} FROM _arrow_{name}")
        return
    listed = ", ".join("'" + path.replace("'", "''") + "'" for path in files)
    # union_by_name: files written before a column was added read it as NULL.
    source = f"read_parquet([{listed}], union_by_name = true, hive_partitioning = false)"
    try:
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {columns} FROM {source}")
        return
    except duckdb.BinderException:
        pass  # an old file lacks a newer column: fall through to per-column defaults
    described = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    cols = ", ".join(
        f'"{f.name}"' if f.name in described else f'NULL AS "{f.name}"' for f in schema
    )
    con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {cols} FROM {source}")
