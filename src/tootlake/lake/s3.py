"""A lake on S3 (or MinIO, moto...): `S3Storage` for writers and compaction, and what DuckDB
needs to read it.

Settings come from the standard AWS environment, read when the storage is built:

    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN   credentials (else boto3's chain)
    AWS_REGION (or AWS_DEFAULT_REGION)                            default us-east-1
    AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL)                     e.g. http://127.0.0.1:9000

DuckDB reads the lake through pyarrow (`pyarrow.fs.S3FileSystem` + `pyarrow.dataset`),
registered as Arrow datasets, so projections and filters are pushed down and nothing is loaded
before a query asks for it. DuckDB's own httpfs extension is not used: it is downloaded from
DuckDB's servers, which this project cannot reach, and PyPI has no build of it for DuckDB 2.x.

An object appears whole when its PUT completes, so `write_atomic` is a plain PUT. Commits of
the Delta tables are delta-rs' own (conditional PUTs of the log: docs/s3.md).
"""

from __future__ import annotations

import builtins
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from tootlake.errors import LakeError, MissingDependency
from tootlake.lake.storage import FileInfo
from tootlake.redact import register_secret

__all__ = ["S3Storage", "check_lake_url", "configure_duckdb", "credential_options", "split_url"]

DEFAULT_REGION = "us-east-1"
# boto3 clients by (region, endpoint, key id, secret, token): shared by storages alike.
_CLIENTS: dict[tuple[str | None, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()


# What a lake's prefix cannot hold. URL parsers (Python's here, delta-rs' for the tables) cut
# a URL at ? and #, drop tabs and newlines, decode %XX and resolve . and .. segments, each in
# its own way: the tables and tootlake's own files would land under different keys, some
# outside the prefix. A backslash made delta-rs panic.
_BAD_PREFIX = re.compile(r"[?#%\\\x00-\x1f\x7f]")
_BUCKET = re.compile(r"[a-zA-Z0-9._-]{1,255}")  # botocore's rule


def check_lake_url(url: str) -> str:
    """`url` when it is an S3 lake both tootlake and delta-rs read as the same keys, else a
    LakeError that says why (and never repeats a `user:password@` it holds)."""
    bucket, _, path = url.removeprefix("s3://").partition("/")
    if "@" in bucket:
        raise LakeError(
            "An S3 lake URL cannot hold credentials (s3://user:password@...): set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"
        )
    if not url.startswith("s3://") or not bucket:
        raise LakeError(f"Not an S3 URL: {url!r}; expected s3://bucket/prefix")
    if not _BUCKET.fullmatch(bucket):
        raise LakeError(
            f"Invalid S3 bucket {bucket!r} in {url!r}: letters, digits, '.', '-' and '_' only "
            "(the server goes in AWS_ENDPOINT_URL, not in the lake URL)"
        )
    path = path.rstrip("/")
    bad = _BAD_PREFIX.search(path)
    if bad or (path and {"", ".", ".."} & set(path.split("/"))):
        what = f"the character {bad.group()!r}" if bad else "an empty, '.' or '..' folder"
        raise LakeError(f"Invalid S3 lake prefix {path!r} in s3://{bucket}: it holds {what}")
    return url


def split_url(url: str) -> tuple[str, str]:
    """("bucket", "key/prefix") of `s3://bucket/key/prefix` (no trailing slash)."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise LakeError(f"Not an S3 URL: {url!r}; expected s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


def _boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:
        raise MissingDependency("boto3", "s3") from exc
    return boto3


def _session(endpoint_url: str | None) -> Any:
    """A boto3 session; for another server than AWS (an endpoint), its credential chain leaves
    out instance and container roles: MinIO or moto has no use for AWS's role credentials,
    and asking for them sent requests to 169.254.169.254 (or waited where nothing answers)."""
    boto3 = _boto3()
    import botocore.session

    core = botocore.session.get_session()
    if endpoint_url:
        resolver = core.get_component("credential_provider")
        for name in ("iam-role", "container-role"):
            resolver.remove(name)
    return boto3.session.Session(botocore_session=core)


def _chain_credentials(endpoint_url: str) -> Any:
    """The frozen credentials boto3's chain finds for `endpoint_url` (a profile...), or None.
    They are registered as secrets: delta-rs quotes S3's answers in its errors."""
    found = _session(endpoint_url).get_credentials()
    if found is None:
        return None
    frozen = found.get_frozen_credentials()
    register_secret(frozen.secret_key, frozen.token)
    return frozen


def credential_options(endpoint_url: str | None) -> dict[str, str]:
    """delta-rs' credential options: the environment's AWS_ACCESS_KEY_ID... For another server
    than AWS without them, the ones boto3's chain finds (a profile), as delta-rs has no
    profiles and would ask the instance-metadata service instead; for AWS itself, nothing
    more: delta-rs' own chain (instance roles too) refreshes what expires."""
    env = os.environ
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    options = {key: env[key] for key in keys if env.get(key)}
    if "AWS_ACCESS_KEY_ID" in options or not endpoint_url:
        return options
    frozen = _chain_credentials(endpoint_url)
    if frozen is None:
        raise LakeError(
            f"Cannot reach the lake at {endpoint_url}: no AWS credentials; set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or configure boto3's credential chain)"
        )
    values = (frozen.access_key, frozen.secret_key, frozen.token)
    return {key: value for key, value in zip(keys, values, strict=True) if value}


class S3Storage:
    """A lake under `s3://bucket/prefix`. Paths given to and returned by every method are full
    `s3://` URLs, as `tootlake.lake.layout.join()` builds them."""

    def __init__(self, lake_url: str, *, client: Any = None) -> None:
        self.bucket, self.prefix = split_url(check_lake_url(lake_url))
        self.root = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        env = os.environ
        self.region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        self.endpoint_url = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        self._access_key = env.get("AWS_ACCESS_KEY_ID") or None
        self._secret_key = env.get("AWS_SECRET_ACCESS_KEY") or None
        self._session_token = env.get("AWS_SESSION_TOKEN") or None
        self._boto3 = _boto3()  # fail early, with the pip hint, when the extra is missing
        self._client = client
        self._sizes: dict[str, int | None] = {}  # path -> size, from listings
        self._arrow_fs: Any = None

    def __repr__(self) -> str:
        key = "***" if self._access_key else "default chain"
        return (
            f"S3Storage({self.root!r}, region={self.region!r}, "
            f"endpoint={self.endpoint_url or 'AWS'!r}, credentials={key})"
        )

    # -- boto3 ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            settings = (
                self.region,
                self.endpoint_url,
                self._access_key,
                self._secret_key,
                self._session_token,
            )
            with _CLIENTS_LOCK:
                # Making a client costs 0.2 s (boto3 loads its models); they are thread-safe.
                client = _CLIENTS.get(settings)
                if client is None:
                    client = _CLIENTS[settings] = self._make_client()
            self._client = client
        return self._client

    def _make_client(self) -> Any:
        from botocore.config import Config

        config = Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 4, "mode": "standard"},
            # Path-style for custom endpoints: MinIO and moto on 127.0.0.1 have no DNS.
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
        )
        return _session(self.endpoint_url).client(
            "s3",
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self._access_key,
            aws_secret_access_key=self._secret_key,
            aws_session_token=self._session_token,
            config=config,
        )

    def _where(self) -> str:
        return f" at {self.endpoint_url}" if self.endpoint_url else ""

    @contextmanager
    def _errors(self, action: str, url: str) -> Iterator[None]:
        """Turn boto3's errors into LakeError messages that say what, where and what to do.
        botocore's messages never include the secret key, and neither do ours."""
        from botocore import exceptions as bx

        try:
            yield
        except bx.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "?"))
            if code in {"NoSuchKey", "404"} and action == "read":
                raise FileNotFoundError(url) from None
            hint = {
                "NoSuchBucket": f"create the bucket {self.bucket!r} first",
                "AccessDenied": "check the credentials (AWS_ACCESS_KEY_ID) and the bucket policy",
                "InvalidAccessKeyId": "check AWS_ACCESS_KEY_ID",
                "SignatureDoesNotMatch": "check AWS_SECRET_ACCESS_KEY",
                "403": "check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
            }.get(code, "")
            message = error.get("Message") or code
            raise LakeError(
                f"Cannot {action} {url}{self._where()}: {code}: {message}"
                + (f"; {hint}" if hint else "")
            ) from None
        except bx.NoCredentialsError:
            raise LakeError(
                f"Cannot {action} {url}: no AWS credentials; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or configure boto3's credential chain)"
            ) from None
        except (bx.EndpointConnectionError, bx.ConnectTimeoutError) as exc:
            raise LakeError(
                f"Cannot {action} {url}: cannot reach S3{self._where() or ''} ({exc}); "
                "check AWS_ENDPOINT_URL and that the server is running"
            ) from None
        except bx.BotoCoreError as exc:
            raise LakeError(f"Cannot {action} {url}{self._where()}: {exc}") from None

    # -- the Storage protocol ------------------------------------------------------------

    def write_atomic(self, path: str, data: bytes) -> None:
        bucket, key = split_url(path)
        with self._errors("write", path):
            self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def list(self, prefix: str, *, suffix: str = ".parquet") -> list[str]:
        return [info.path for info in self.list_info(prefix, suffix=suffix)]

    def list_info(self, prefix: str, *, suffix: str = ".parquet") -> builtins.list[FileInfo]:
        """Every object under `prefix/` whose name ends with `suffix` (not hidden ones), with
        size and ETag."""
        bucket, key = split_url(prefix)
        start = f"{key}/" if key else ""
        infos = []
        with self._errors("list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=start
            )
            for page in pages:
                for obj in page.get("Contents", ()):
                    name = obj["Key"].rsplit("/", 1)[-1]
                    if name.endswith(suffix) and not name.startswith("."):
                        infos.append(
                            FileInfo(
                                f"s3://{bucket}/{obj['Key']}",
                                int(obj["Size"]),
                                str(obj.get("ETag", "")).strip('"') or None,
                            )
                        )
        self._sizes.update((info.path, info.size) for info in infos)
        return sorted(infos, key=lambda info: info.path)

    def delete(self, path: str) -> None:
        bucket, key = split_url(path)
        with self._errors("delete", path):
            self.client.delete_object(Bucket=bucket, Key=key)

    def read(self, path: str) -> bytes:
        bucket, key = split_url(path)
        with self._errors("read", path):
            body: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
            return body

    # -- reading with pyarrow ------------------------------------------------------------

    def arrow_filesystem(self) -> Any:
        """A `pyarrow.fs.S3FileSystem` with this storage's settings."""
        if self._arrow_fs is None:
            self._arrow_fs = self._make_arrow_filesystem()
        return self._arrow_fs

    def _make_arrow_filesystem(self) -> Any:
        try:
            from pyarrow import fs
        except ImportError as exc:  # pragma: no cover - pyarrow is a core dependency
            raise MissingDependency("pyarrow", "s3") from exc
        if not getattr(fs, "S3FileSystem", None):  # pragma: no cover - a build without S3
            raise LakeError("This pyarrow was built without S3 support; install pyarrow from PyPI")
        options: dict[str, Any] = {
            "region": self.region,
            "connect_timeout": 5,
            "request_timeout": 60,
        }
        key, secret, token = self._access_key, self._secret_key, self._session_token
        if not (key and secret) and self.endpoint_url:
            # (AWS's C++ chain would ask the instance-metadata service, as delta-rs would)
            frozen = _chain_credentials(self.endpoint_url)
            if frozen is not None:
                key, secret, token = frozen.access_key, frozen.secret_key, frozen.token
        if key and secret:
            options.update(access_key=key, secret_key=secret)
            if token:
                options["session_token"] = token
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)
            options.update(
                endpoint_override=parts.netloc or parts.path, scheme=parts.scheme or "https"
            )
        return fs.S3FileSystem(**options)

    def arrow_dataset(self, paths: Sequence[str], schema: Any, *, dates: Any = None) -> Any:
        """A lazy `pyarrow.dataset` over these objects, read with `schema` (columns an old file
        lacks read as null), opening nothing until it is scanned. `dates`, one per path, give
        the `date` column (a Delta partition value: it is in the log, not in the files). Sizes
        known from the last listing save a HEAD request per object."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        filesystem = self.arrow_filesystem()
        # pyarrow's pre-buffering stays on: it fetches the column chunks a query needs
        # concurrently, coalesced, which is what a store with tens of milliseconds per request
        # needs. It holds more in memory at once (the report of 1.6M posts peaks at about
        # 1.1 GB, against 0.8 GB without it on a loopback moto server, where latency is nil).
        parquet = ds.ParquetFileFormat()
        dates = list(dates) if dates is not None else [None] * len(paths)
        fragments = [
            parquet.make_fragment(
                path.removeprefix("s3://"),
                filesystem=filesystem,
                file_size=self._sizes.get(path),
                partition_expression=(
                    ds.field("date") == pa.scalar(day, pa.date32()) if day is not None else None
                ),
            )
            for path, day in zip(paths, dates, strict=True)
        ]
        return ds.FileSystemDataset(fragments, string_views(schema), parquet, filesystem)

    def exists(self, path: str) -> bool:
        """True when the object `path` exists."""
        return self.has_prefix(path, exact=True)

    def has_prefix(self, prefix: str, *, exact: bool = False) -> bool:
        """True when some object's key starts with `prefix` (one listing request)."""
        bucket, key = split_url(prefix)
        if prefix.endswith("/"):
            key += "/"
        with self._errors("list", prefix):
            page = self.client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        found = [obj["Key"] for obj in page.get("Contents", ())]
        return bool(found) and (not exact or found[0] == key)


def string_views(schema: Any) -> Any:
    """`schema` with every string (also inside lists) as string_view. delta-rs writes the files
    of a MERGE or OPTIMIZE with string_view columns, appends with string ones; pyarrow casts
    either to string_view when scanning, but a filter DuckDB pushes into the scan is bound to
    the dataset's type and has no kernel comparing string with string_view."""
    import pyarrow as pa

    def view(arrow_type: Any) -> Any:
        if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
            return pa.string_view()
        if pa.types.is_list(arrow_type):
            return pa.list_(pa.field(arrow_type.value_field.name, view(arrow_type.value_type)))
        return arrow_type

    return pa.schema(
        [pa.field(f.name, view(f.type), f.nullable, f.metadata) for f in schema],
        metadata=schema.metadata,
    )


def configure_duckdb(con: Any, lake: str) -> None:
    """Prepare a DuckDB connection to read the S3 lake `lake`.

    DuckDB reads S3 through pyarrow here (see the module docstring), so the connection needs no
    extension or secret; this checks that the S3 support is there and fails with the fix when it
    is not, before any view is made.
    """
    check_lake_url(lake)
    _boto3()
    try:
        from pyarrow import fs
    except ImportError as exc:  # pragma: no cover
        raise MissingDependency("pyarrow", "s3") from exc
    if not getattr(fs, "S3FileSystem", None):  # pragma: no cover
        raise LakeError("This pyarrow was built without S3 support; install pyarrow from PyPI")
