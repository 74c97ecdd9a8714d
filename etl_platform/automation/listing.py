"""What a file sensor sees of a folder: one listing interface, a local and an S3 implementation.

The sensor only ever asks two things: which files match the pipeline's glob (name, size,
version, when last changed), and a fingerprint of one file's bytes. Names are relative to the base folder or
prefix, '/'-separated, and are what a per-file partition is called.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from etl_platform.connectors.landing import LocalFolder

# Dagster refuses these in partition keys; a file named so cannot be its own partition.
_UNUSABLE_IN_NAMES = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")


@dataclass(frozen=True)
class ListedFile:
    name: str  # relative to the base folder or prefix
    size: int
    version: str  # modification time in ns (local) or ETag (S3)
    modified: float | None = None  # unix seconds of the last change, where the store says


class FileListing(Protocol):
    """A folder of files the sensor watches."""

    location: str

    def list(self, pattern: str) -> list[ListedFile]:
        """Files matching ``pattern``, a glob relative to the base folder, in name order."""
        ...

    def content_id(self, file: ListedFile) -> str:
        """A fingerprint of the file's bytes; equal bytes give equal fingerprints."""
        ...


def unsafe_name(name: str) -> str | None:
    """Why a listed name cannot be taken up (outside the base folder, unusable as a key), or None."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        return "its path leaves the base folder"
    if any(bad in name for bad in _UNUSABLE_IN_NAMES):
        return "its name holds '...' or a control character, which partition keys may not"
    return None


@dataclass(frozen=True)
class LocalListing:
    """A local folder (the landing folder or a ``local`` connection). Content ids are SHA-256."""

    folder: LocalFolder

    @property
    def location(self) -> str:
        return str(self.folder.root)

    def list(self, pattern: str) -> list[ListedFile]:
        found = []
        # LocalFolder.list resolves symlinks and keeps only files inside the folder.
        for path in self.folder.list(pattern):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # removed between the glob and the look
            found.append(ListedFile(self.folder.relative(path), stat.st_size, str(stat.st_mtime_ns), stat.st_mtime))
        return found

    def content_id(self, file: ListedFile) -> str:
        sha = hashlib.sha256()
        with open(self._path(file), "rb") as handle:
            while chunk := handle.read(1 << 20):
                sha.update(chunk)
        return f"sha256:{sha.hexdigest()}"

    def _path(self, file: ListedFile) -> Path:
        root = self.folder.root.resolve()
        path = (root / file.name).resolve()
        if not path.is_relative_to(root):
            raise ValueError(f"{file.name!r} is outside {root}")
        return path


@dataclass(frozen=True)
class S3Listing:
    """Objects under an ``s3`` connection's prefix, listed page by page (1,000 keys a page).

    The content id is the object's ETag: for an object uploaded in one part it is the MD5 of
    its bytes, so no object is downloaded just to recognise a copy.
    """

    connector: object  # etl_platform.connectors.s3.S3Connector; imported lazily with boto3

    @property
    def location(self) -> str:
        return self.connector.location

    def list(self, pattern: str) -> list[ListedFile]:
        return [
            ListedFile(obj.name, obj.size, obj.etag, obj.last_modified.timestamp())
            for obj in self.connector.list_objects(pattern)
        ]

    def content_id(self, file: ListedFile) -> str:
        return f"etag:{file.version}:{file.size}"
