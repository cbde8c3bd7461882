"""The lake's Delta tables: their schemas, where they are, and the one way to append to them.

Each table is the record's Arrow schema plus `date`, the partition column (the day of the
record's own time in UTC). delta-rs keeps partition values in the log and folder names, not
in the Parquet files, so readers take `date` from there (see `tootlake.lake.reader`).

Every write goes through `append()`: ZSTD files, the schema merged (a newer tootlake adds
nullable columns; older rows read them as NULL), timestamps tz-aware so the table stays at
reader version 1 / writer version 2 (no table features: every Delta reader opens it, and no
deletion vectors are ever written). A commit can carry app transactions (`Transaction`):
Delta's idempotent-writer marks, which the Kafka sink uses for its offsets and `posts` for
the versions of the source tables it covers.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tootlake.errors import LakeError, MissingDependency
from tootlake.lake.layout import DELETES, POSTS, POSTS_ALL, REJECTS, SIGHTINGS, is_remote, join
from tootlake.record import (
    arrow_schema,
    delete_arrow_schema,
    reject_arrow_schema,
    sighting_arrow_schema,
)
from tootlake.text import shorten

__all__ = [
    "DATE_FIELD",
    "RECORD_SCHEMAS",
    "TIME_COLUMN",
    "append",
    "commit_metadata",
    "error_text",
    "is_table",
    "load",
    "storage_options",
    "table_schema",
    "table_uri",
    "with_date",
]

log = logging.getLogger(__name__)

DATE_FIELD = pa.field("date", pa.date32(), nullable=False)
# The schema of each table's records (without `date`), and the column `date` is the day of.
RECORD_SCHEMAS: Mapping[str, Callable[[], pa.Schema]] = {
    POSTS_ALL: arrow_schema,
    POSTS: arrow_schema,
    DELETES: delete_arrow_schema,
    SIGHTINGS: sighting_arrow_schema,
    REJECTS: reject_arrow_schema,
}
TIME_COLUMN = {
    POSTS_ALL: "created_at",
    POSTS: "created_at",
    DELETES: "deleted_at",
    SIGHTINGS: "seen_at",
    REJECTS: "rejected_at",
}
# Files of about this size (delta-rs' default is 100 MiB); compaction aims at it too.
TARGET_FILE_BYTES = 128 * 1024 * 1024
ROW_GROUP_ROWS = 32 * 1024
# Text columns whose values are (nearly) all different: a dictionary never pays for them, and
# Parquet's writer fills one per row group until it outgrows its limit, then writes plain.
PLAIN_COLUMNS = ("uri", "id", "url", "text", "raw")
APPEND_ATTEMPTS = 5


def _deltalake() -> Any:
    try:
        import deltalake
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingDependency("deltalake", "all") from exc
    return deltalake


def table_schema(table: str) -> pa.Schema:
    """The Arrow schema of `table` as stored: its records' columns, then `date`."""
    return RECORD_SCHEMAS[table]().append(DATE_FIELD)


def table_uri(lake: str, table: str) -> str:
    """The table's location as delta-rs takes it: an absolute path or an s3:// URL."""
    if is_remote(lake):
        return join(lake, table)
    return os.path.abspath(join(lake, table))


def storage_options(lake: str) -> dict[str, str] | None:
    """delta-rs' object-store options for an S3 lake, from the same AWS environment the rest
    of tootlake reads (`tootlake.lake.s3`); None for a local folder. No locking provider is
    needed: delta-rs commits to S3 with conditional PUTs (`If-None-Match`)."""
    if not is_remote(lake):
        return None
    from tootlake.lake.s3 import check_lake_url, credential_options

    check_lake_url(lake)  # a prefix delta-rs would read as other keys than tootlake does
    env = os.environ
    options = {
        "AWS_REGION": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
    }
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    options.update(credential_options(endpoint))  # (never the instance-metadata service's)
    return options


def is_table(lake: str, table: str) -> bool:
    """True when the lake has this Delta table (at least one commit)."""
    return load(lake, table) is not None


def load(lake: str, table: str, version: int | None = None) -> Any:
    """The `deltalake.DeltaTable` of `table` (at `version`, else the latest); None when the
    table does not exist yet."""
    deltalake = _deltalake()
    uri = table_uri(lake, table)
    options = storage_options(lake)
    if not is_remote(lake) and not os.path.isdir(os.path.join(uri, "_delta_log")):
        return None
    try:
        if not deltalake.DeltaTable.is_deltatable(uri, storage_options=options):
            return None
        return deltalake.DeltaTable(uri, version=version, storage_options=options)
    except (OSError, deltalake.exceptions.DeltaError) as exc:
        raise LakeError(f"Cannot read the Delta table {uri}: {_first_line(exc)}") from exc


def with_date(table: str, data: pa.Table) -> pa.Table:
    """`data` (records of `table`) with its `date` partition column added."""
    day = pc.cast(data.column(TIME_COLUMN[table]), pa.date32())
    return data.append_column(DATE_FIELD, day)


def commit_metadata(**values: Any) -> dict[str, str]:
    """Custom commit metadata: `tootlake.<key>` entries (delta-rs' history shows them)."""
    return {f"tootlake.{key}": str(value) for key, value in values.items()}


def append(
    lake: str,
    table: str,
    data: pa.Table,
    *,
    transactions: Sequence[tuple[str, int]] = (),
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Append `data` (with its `date` column) to `table` in one Delta commit, creating the
    table on first use. `transactions` are (app id, version) marks committed with the data.
    An empty `data` still commits when it carries transactions (a mark alone). Concurrent
    appends from other writers are retried by delta-rs; a failure is a LakeError naming the
    table, and nothing of this commit is visible. A commit with `transactions` that conflicts
    is not tried again here (the caller reads its marks and decides), unless the marks show it
    is in: then it returns (an S3 reply lost after the server did the commit)."""
    deltalake = _deltalake()
    if not data.num_rows and not transactions:
        return
    uri = table_uri(lake, table)
    commit = deltalake.CommitProperties(
        app_transactions=[
            deltalake.Transaction(app_id=app_id, version=version)
            for app_id, version in transactions
        ]
        or None,
        custom_metadata=dict(metadata or {}) or None,
    )
    for attempt in range(APPEND_ATTEMPTS):
        try:
            deltalake.write_deltalake(
                uri,
                data,
                mode="append",
                partition_by=["date"],
                schema_mode="merge",
                storage_options=storage_options(lake),
                target_file_size=TARGET_FILE_BYTES,
                writer_properties=writer_properties(),
                commit_properties=commit,
            )
            return
        except deltalake.exceptions.CommitFailedError as exc:
            # delta-rs retries appends that raced other appends itself; what reaches here is
            # a race it does not retry: two writers creating the table (or evolving its
            # schema) at once, or a commit carrying the app ids of our marks, which may be
            # this very commit (an S3 reply lost on the way back: delta-rs' retried PUT finds
            # its own entry). A marked commit is never tried again here: its caller knows
            # which rows lie past the marks now (the Kafka sink re-reads them and retries).
            if transactions:
                try:
                    landed = _landed(lake, table, transactions)
                except (LakeError, OSError, deltalake.exceptions.DeltaError) as check:
                    raise LakeError(
                        f"Cannot write to the Delta table {uri}: {_first_line(exc)}; whether "
                        f"it is in is unknown (its marks cannot be read: {_first_line(check)})"
                    ) from exc
                if landed:
                    log.info(
                        "The commit to %s is in its log already (its reply was lost): "
                        "not written again",
                        uri,
                    )
                    return
                raise LakeError(
                    f"Cannot write to the Delta table {uri}: {_first_line(exc)}"
                ) from exc
            if attempt == APPEND_ATTEMPTS - 1:
                raise LakeError(
                    f"Cannot write to the Delta table {uri}: {_first_line(exc)}"
                ) from exc
            time.sleep(0.05 * (attempt + 1))
        except (OSError, deltalake.exceptions.DeltaError) as exc:
            raise LakeError(f"Cannot write to the Delta table {uri}: {_first_line(exc)}") from exc


def writer_properties() -> Any:
    """ZSTD, statistics on: what every file of the lake is written with (also by OPTIMIZE
    and MERGE). Row groups of ROW_GROUP_ROWS: delta-rs holds a whole row group per open
    partition while it writes, so parquet's default (a million rows) made rewriting ten
    partitions 1.1 GB; DuckDB reads the smaller groups in parallel just as well. No
    dictionary for PLAIN_COLUMNS (a name a table lacks is ignored)."""
    deltalake = _deltalake()
    plain = deltalake.ColumnProperties(dictionary_enabled=False)
    return deltalake.WriterProperties(
        compression="ZSTD",
        max_row_group_size=ROW_GROUP_ROWS,
        column_properties=dict.fromkeys(PLAIN_COLUMNS, plain),
    )


# What delta-rs and object_store put around the cause of an I/O error: error kinds nested
# one in another ("Failed to parse parquet: External: Generic LocalFileSystem error: ..."),
# a chain of causes on lines of their own ("\n  ↳ cause", with ANSI colours), object_store's
# "#1" after the path of a file being written, and the errno ("(os error 30)").
_BACKTRACE = re.compile(r"\n\s*(?:Stack backtrace:|0: )")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_WRAPPERS = re.compile(
    r"^(?:Failed to parse parquet|External|Generic \w* ?error|Kernel error|Arrow error"
    r"|Parquet error|Generic DeltaTable error|Delta ?Table error|Object ?store error"
    r"|IO error|I/O error)\s*:\s*",
    re.IGNORECASE,
)
_PART_SUFFIX = re.compile(r"(?<=\S)#\d+(?=:|\s|$)")
_ERRNO = re.compile(r"\s*\(os error \d+\)")
_ERROR_CHARS = 2_000  # of a store's error: it may quote a whole reply body (megabytes)


def error_text(exc: BaseException) -> str:
    """A delta-rs (or object_store) error as one clear line: the cause and the path it names,
    without the kinds of error wrapped around it, colours, or delta-rs' "Help:" advice
    (`Unable to open file /lake/posts_all/date=.../part-....parquet: Read-only file system`),
    cut to 2,000 characters."""
    text = _ANSI.sub("", str(exc))
    # a Rust backtrace after the message (delta-rs' kernel errors): frames, then "at file:line"
    text = _BACKTRACE.split(text, 1)[0]
    parts = [line.strip().lstrip("↳").strip() for line in text.splitlines()]
    text = ": ".join(part for part in parts if part and not part.startswith("Help:"))
    while match := _WRAPPERS.match(text):
        text = text[match.end() :]
    text = _ERRNO.sub("", _PART_SUFFIX.sub("", text)).strip()
    return shorten(text, _ERROR_CHARS) or type(exc).__name__


def _landed(lake: str, table: str, transactions: Sequence[tuple[str, int]]) -> bool:
    """True when every (app id, version) mark is in `table`'s log at that version or later:
    a commit carrying them is in, so the rows it carried are (Delta's idempotent writes).
    Raises what reading the log raises."""
    dt = load(lake, table)
    if dt is None:
        return False
    for app_id, version in transactions:
        done = dt.transaction_version(app_id)
        if done is None or int(done) < version:
            return False
    return True


def _first_line(exc: BaseException) -> str:
    return error_text(exc)
