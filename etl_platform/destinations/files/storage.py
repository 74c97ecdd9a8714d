"""How a file table is stored, in a local folder or under an S3 prefix, and its manifest.

A table is the folder ``<base>/<schema>/<table>/`` (on S3, the same keys under a prefix)::

    _manifest.json                                   the table: which files make it up
    v00000007-3f2a9c01b7e4/part_0.parquet
    v00000007-3f2a9c01b7e4/region=EU/part_0.parquet  with partition_by (hive-style folders)

Files have no transactions, so the manifest is the commit point. It lists the data files
of the current version, the column schema, the saved cursor, the pipeline and run that
wrote it and a version number.

A new manifest replaces ``_manifest.json`` in one atomic step: locally a temp file, fsync,
``os.replace``; on S3 one PUT, made conditional on the manifest being the one the commit
read.

On S3, DuckDB writes into a local scratch folder and boto3 uploads the files (multipart when
large); merge and incremental download the listed files they need to read. pyarrow's S3
filesystem also reads from a custom endpoint, but it needs the credentials taken out of the
caller's boto3 client and read a 3M-row file more slowly than a download did.

One writer per table at a time (the pipelines' concurrency pool). A writer that commits
after another one read the manifest makes the later manifest write fail with
``ConcurrentCommit``, changing nothing: on S3 the PUT is conditional, so this always holds;
locally the version is checked just before the rename, which narrows the window but does not
close it.
"""

import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import ClientError

from etl_platform.spec.base import IDENTIFIER

FileFormat = Literal["parquet", "csv"]

MANIFEST = "_manifest.json"
MANIFEST_FORMAT = "etl_platform.files/1"
_VERSION_FOLDER = re.compile(r"v\d{8}-[0-9a-f]{12}")
_STALE_MANIFEST = re.compile(re.escape(MANIFEST) + r"\.[0-9a-f]{32}\.tmp")


class ConcurrentCommit(Exception):
    """Another commit replaced the manifest after this one read it; this one changed nothing."""


@dataclass(frozen=True)
class DataFile:
    """A listed file: its path under the table folder, its row count and, per measured
    column (the cursor), its highest value as text (None when every value is NULL)."""

    path: str
    rows: int
    maxima: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    version: int
    file_format: FileFormat
    columns: tuple[tuple[str, str], ...]
    files: tuple[DataFile, ...]
    cursor: str | None = None
    partition_by: tuple[str, ...] = ()
    pipeline: str = ""
    run_id: str = ""
    committed_at: str = ""
    token: str | None = field(default=None, compare=False)  # the store's version tag (S3 ETag)
    pending: str | None = None  # what the next load must do differently: steps.load.FULL_REFRESH or REWIND
    rewind_from: str | None = None
    # The table's last committed loads, resets and rewinds, newest last (see steps.load.HistoryEntry):
    # a load interrupted after its warehouse commit is known committed by its load id here.
    history: tuple[dict, ...] = ()

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "format": MANIFEST_FORMAT,
                "version": self.version,
                "pipeline": self.pipeline,
                "run_id": self.run_id,
                "committed_at": self.committed_at,
                "file_format": self.file_format,
                "partition_by": list(self.partition_by),
                "columns": [{"name": n, "type": t} for n, t in self.columns],
                "cursor": self.cursor,
                "pending": self.pending,
                "rewind_from": self.rewind_from,
                "history": list(self.history),
                "rows": sum(f.rows for f in self.files),
                "files": [{"path": f.path, "rows": f.rows, "max": f.maxima} for f in self.files],
            },
            indent=1,
            ensure_ascii=False,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str, token: str | None = None) -> "Manifest":
        raw = json.loads(data)
        if raw.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"{where} is not a table manifest this version can read (format {raw.get('format')!r})")
        return cls(
            version=raw["version"],
            file_format=raw["file_format"],
            columns=tuple((c["name"], c["type"]) for c in raw["columns"]),
            files=tuple(DataFile(_inside_table(f["path"], where), f["rows"], f.get("max", {})) for f in raw["files"]),
            cursor=raw.get("cursor"),
            partition_by=tuple(raw.get("partition_by", ())),
            pipeline=raw.get("pipeline", ""),
            run_id=raw.get("run_id", ""),
            committed_at=raw.get("committed_at", ""),
            token=token,
            pending=raw.get("pending"),
            rewind_from=raw.get("rewind_from"),
            history=tuple(raw.get("history", ())),
        )


def _inside_table(path: str, where: str) -> str:
    """A listed path, refused unless it names a file inside one of the table's version folders."""
    parts = path.split("/")
    if not _VERSION_FOLDER.fullmatch(parts[0]) or any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
        raise ValueError(f"{where} lists {path!r}, which is not a data file inside the table folder")
    return path


def _version(manifest: Manifest | None) -> int:
    return manifest.version if manifest else 0


@dataclass(frozen=True)
class FilesLocation:
    """Where file tables live: a local folder, or a bucket and key prefix on S3.

    ``client_factory`` returns a boto3 S3 client; the caller decides endpoint and credentials.
    """

    folder: Path | None = None
    bucket: str | None = None
    prefix: str = ""
    client_factory: Callable[[], Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if (self.folder is None) == (self.bucket is None):
            raise ValueError("a files location is either a local folder or an S3 bucket")
        if self.bucket is not None and self.client_factory is None:
            raise ValueError("an S3 files location needs a client_factory")

    @classmethod
    def local(cls, folder: Path | str) -> "FilesLocation":
        return cls(folder=Path(folder))

    @classmethod
    def s3(cls, bucket: str, prefix: str = "", *, client_factory: Callable[[], Any]) -> "FilesLocation":
        return cls(bucket=bucket, prefix=prefix.strip("/"), client_factory=client_factory)

    def table(self, schema: str, table: str) -> "_LocalTable | _S3Table":
        for name in (schema, table):
            if not re.match(IDENTIFIER, name):
                raise ValueError(f"{name!r} must be a plain identifier (letters, digits, _) to name a folder")
        if self.folder is not None:
            return _LocalTable(self.folder / schema / table)
        assert self.bucket is not None and self.client_factory is not None
        return _S3Table(self.client_factory(), self.bucket, "/".join(p for p in (self.prefix, schema, table) if p))


class _LocalTable:
    """A table folder on this machine. DuckDB writes straight into its version folders."""

    def __init__(self, folder: Path):
        self.folder = folder

    def __str__(self) -> str:
        return str(self.folder)

    def read_manifest(self) -> tuple[Manifest | None, float]:
        """The current manifest (None before the first commit) and this clock's time."""
        now = time.time()
        try:
            data = (self.folder / MANIFEST).read_bytes()
        except FileNotFoundError:
            return None, now
        return Manifest.from_json(data, str(self.folder / MANIFEST)), now

    def output_folder(self, name: str, scratch: Path) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / name

    def publish(self, written: Path, files: Iterable[DataFile]) -> None:
        """Make the new files durable before a manifest can list them."""
        paths = [self.folder / listed.path for listed in files]
        for path in [*paths, *{p.parent for p in paths}]:
            _fsync(path)

    def local_paths(self, files: Iterable[DataFile], scratch: Path) -> dict[str, str]:
        return {str(self.folder / f.path): f.path for f in files}

    def put_manifest(self, manifest: Manifest, replacing: Manifest | None) -> None:
        current, _ = self.read_manifest()
        if _version(current) != _version(replacing):
            raise ConcurrentCommit(f"{self} changed to version {_version(current)} while this commit ran")
        temp = self.folder / f"{MANIFEST}.{uuid.uuid4().hex}.tmp"
        with temp.open("wb") as out:
            out.write(manifest.to_json())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.folder / MANIFEST)
        _fsync(self.folder)

    def remove_unlisted(self, keep: set[str], older_than: float) -> None:
        for root, folders, names in os.walk(self.folder, topdown=False):
            for name in names:
                path = Path(root, name)
                relative = path.relative_to(self.folder).as_posix()
                if _removable(relative, keep) and path.lstat().st_mtime < older_than:
                    path.unlink()
            for name in folders:
                path = Path(root, name)
                if _VERSION_FOLDER.fullmatch(path.relative_to(self.folder).parts[0]):
                    with contextlib.suppress(OSError):
                        path.rmdir()  # only when empty


def _removable(relative: str, keep: set[str]) -> bool:
    """A file a commit may delete: unlisted data or a manifest a crashed commit never renamed."""
    if relative in keep:
        return False
    return bool(_VERSION_FOLDER.fullmatch(relative.split("/")[0]) and "/" in relative) or bool(
        _STALE_MANIFEST.fullmatch(relative)
    )


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class _S3Table:
    """A table under an S3 prefix. DuckDB writes into a local scratch folder that is then uploaded."""

    def __init__(self, client: Any, bucket: str, key: str):
        self.client, self.bucket, self.key = client, bucket, key

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def _key(self, relative: str) -> str:
        return f"{self.key}/{relative}" if self.key else relative

    def read_manifest(self) -> tuple[Manifest | None, float]:
        """The current manifest (None before the first commit) and the S3 server's time."""
        try:
            got = self.client.get_object(Bucket=self.bucket, Key=self._key(MANIFEST))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
            return None, _server_time(err.response)
        return Manifest.from_json(got["Body"].read(), f"{self}/{MANIFEST}", token=got["ETag"]), _server_time(got)

    def output_folder(self, name: str, scratch: Path) -> Path:
        (scratch / "write").mkdir(exist_ok=True)
        return scratch / "write" / name

    def publish(self, written: Path, files: Iterable[DataFile]) -> None:
        for listed in files:
            local = written.parent / listed.path
            self.client.upload_file(str(local), self.bucket, self._key(listed.path))  # multipart when large

    def local_paths(self, files: Iterable[DataFile], scratch: Path) -> dict[str, str]:
        copies = {}
        for listed in files:
            local = scratch / "read" / listed.path
            if not local.exists():
                local.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(self.bucket, self._key(listed.path), str(local))
            copies[str(local)] = listed.path
        return copies

    def put_manifest(self, manifest: Manifest, replacing: Manifest | None) -> None:
        condition = {"IfMatch": replacing.token} if replacing and replacing.token else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(MANIFEST),
                Body=manifest.to_json(),
                ContentType="application/json",
                **condition,
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                # S3's answer adds nothing to this message (its error responses may hold the access key id): dropped
                raise ConcurrentCommit(f"{self} was committed by another run while this commit ran") from None
            raise

    def remove_unlisted(self, keep: set[str], older_than: float) -> None:
        base = self._key("")
        doomed = [
            {"Key": item["Key"]}
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base)
            for item in page.get("Contents", [])
            if _removable(item["Key"][len(base) :], keep) and item["LastModified"].timestamp() < older_than
        ]
        for start in range(0, len(doomed), 1000):
            self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": doomed[start : start + 1000], "Quiet": True}
            )


def _server_time(response: dict) -> float:
    """The storage's own clock, so "older than this commit" compares like with like."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    return parsedate_to_datetime(date).timestamp() if date else time.time()
