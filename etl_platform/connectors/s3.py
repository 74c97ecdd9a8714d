"""The ``s3`` connection kind: files under a prefix of an S3 bucket (AWS, MinIO, any S3-compatible server).

A pipeline names files with the same globs as on a local folder, relative to the
connection's prefix: ``*`` stays within one folder level, ``**`` spans any depth.
``fetch`` downloads the matching objects, streamed to disk, into a temporary folder
that is removed when the load is done. Credentials are references resolved only
when a client is made, and every error names the bucket and prefix with any
credential masked.
"""

import contextlib
import functools
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from etl_platform.connectors.landing import FileConnector, FileSet
from etl_platform.connectors.registry import ConnectorError, register
from etl_platform.failure_codes import FailureCodes, with_codes
from etl_platform.intake import paths
from etl_platform.secrets import references as secrets
from etl_platform.secrets.references import SecretRef
from etl_platform.spec.base import SpecModel

# Error codes worth saying in plain words; anything else is shown as the server sent it.
_PLAIN_REASONS = {
    "NoSuchBucket": "the bucket does not exist",
    "AccessDenied": "access denied: the credentials may not read this bucket or prefix",
    "403": "access denied: the credentials may not read this bucket or prefix",
    "AllAccessDisabled": "access denied: all access to this bucket has been disabled",
    "InvalidAccessKeyId": "the access key id is not known to the server",
    "SignatureDoesNotMatch": "the secret access key does not belong to the access key id",
    "ExpiredToken": "the credentials have expired",
    "PreconditionFailed": "the object was replaced while it was being downloaded; the next load reads the new version",
    "InvalidToken": "the credentials are not valid",
}


_session_lock = threading.Lock()


@functools.cache
def _session():
    import boto3

    return boto3.session.Session()


class S3Error(ConnectorError):
    """Listing or downloading failed; the message names the bucket and prefix, never a credential.
    ``codes`` hold the S3 error code and HTTP status, or the kind of network failure."""

    codes: FailureCodes = FailureCodes()


class S3Options(SpecModel):
    bucket: str = Field(
        min_length=1,
        pattern=r"^[^/\s]+$",
        description="Name of the bucket, e.g. 'acme-exports' (just the name, no s3:// and no folder).",
    )
    prefix: str = Field(
        "",
        description="Folder inside the bucket that pipelines' file globs are relative to, e.g. 'shop/daily'. "
        "Empty for the whole bucket.",
    )
    region: str = Field("us-east-1", min_length=1, description="Region of the bucket, e.g. 'eu-west-1'.")
    endpoint_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/?#]+/?$",
        description="URL of an S3-compatible server such as MinIO, e.g. 'http://minio:9000'. Leave out for AWS S3.",
    )
    access_key_id: SecretRef | None = Field(
        None,
        description="Access key id, as {env: VAR} or {secret: name}. Leave out both keys to use the default "
        "AWS credential chain (AWS_* variables, ~/.aws, instance or pod role).",
    )
    secret_access_key: SecretRef | None = Field(None, description="Secret access key, as {env: VAR} or {secret: name}.")
    download_concurrency: int = Field(8, ge=1, le=64, description="Files downloaded at the same time.")

    @field_validator("bucket", mode="before")
    @classmethod
    def _bucket_is_a_name(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower().startswith("s3://"):
            raise ValueError("write only the bucket name here; put the folder in 'prefix'")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix_is_a_folder(cls, value: str) -> str:
        parts = PurePosixPath(value.strip("/")).parts
        if ".." in parts:
            raise ValueError("the prefix may not contain '..'")
        return "/".join(parts) + "/" if parts else ""

    @model_validator(mode="after")
    def _both_keys_or_neither(self) -> "S3Options":
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError(
                "give both access_key_id and secret_access_key, or neither for the default AWS credentials"
            )
        return self


@dataclass(frozen=True)
class ObjectInfo:
    """One object under the prefix, as listed (nothing downloaded)."""

    key: str  # the full key in the bucket
    name: str  # the key relative to the prefix: what a load records it as
    size: int
    etag: str
    last_modified: datetime


@register
class S3Connector(FileConnector):
    kind: ClassVar[str] = "s3"
    Options = S3Options

    @property
    def location(self) -> str:
        return f"s3://{self.options.bucket}/{self.options.prefix}"

    def describe(self) -> str:
        o = self.options
        where = f"endpoint {o.endpoint_url}" if o.endpoint_url else f"AWS region {o.region}"
        if o.access_key_id is None:
            credentials = "default AWS credentials"
        else:
            credentials = f"access key {secrets.describe(o.access_key_id)}"
        return secrets.scrub(f"{self.location} ({where}, {credentials})")

    def client(self):
        """A boto3 S3 client; secret references are resolved here, inside the running step."""
        from botocore.config import Config

        o = self.options
        config = Config(
            region_name=o.region,
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=max(10, o.download_concurrency * 2),
            # S3-compatible servers are usually reached by host and port, not per-bucket DNS names.
            s3={"addressing_style": "path"} if o.endpoint_url else None,
        )
        access_key_id, secret_access_key = secrets.reveal(o.access_key_id), secrets.reveal(o.secret_access_key)
        # Making a session loads boto's service models (~0.1 s); clients are cheap to make from a
        # shared one, but not from several threads at once.
        with _session_lock:
            return _session().client(
                "s3",
                endpoint_url=o.endpoint_url,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                config=config,
            )

    def list_objects(self, pattern: str) -> list[ObjectInfo]:
        """Objects whose key, relative to the prefix, matches ``pattern``, in name order."""
        glob = KeyGlob(pattern)
        prefix = self.options.prefix
        found = []
        with self._errors(f"listing {pattern!r}"):
            pages = (
                self.client()
                .get_paginator("list_objects_v2")
                .paginate(Bucket=self.options.bucket, Prefix=prefix + glob.literal_folder)
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"]
                    name = key[len(prefix) :]
                    if key.endswith("/") or not glob.matches(name):
                        continue  # "folder" placeholders hold no data
                    found.append(ObjectInfo(key, name, item["Size"], item["ETag"].strip('"'), item["LastModified"]))
        return sorted(found, key=lambda obj: obj.name.split("/"))

    @contextlib.contextmanager
    def fetch(self, pattern: str) -> Iterator[FileSet]:
        objects = self.list_objects(pattern)
        with tempfile.TemporaryDirectory(prefix="etl-s3-") as folder:
            paths = self._download(objects, Path(folder))
            names = dict(zip(paths, (obj.name for obj in objects), strict=True))

            def relative(path: Path) -> str:
                try:
                    return names[Path(path)]
                except KeyError:  # the cause adds nothing to this message
                    raise ValueError(f"{path} is not one of the files fetched from {self.location}") from None

            yield FileSet(self.location, paths, relative)

    def _download(self, objects: list[ObjectInfo], folder: Path) -> list[Path]:
        """Each object to ``folder/<n>/<file name>``: its own folder per object, so keys that
        differ only in their folders cannot collide and no key can point outside ``folder``."""
        from boto3.s3.transfer import TransferConfig, create_transfer_manager

        paths = []
        for n, obj in enumerate(objects):
            (folder / str(n)).mkdir()
            paths.append(folder / str(n) / _file_name(obj.name))
        if not objects:
            return paths
        config = TransferConfig(max_concurrency=self.options.download_concurrency, preferred_transfer_client="classic")
        # Leaving the block with an error cancels the transfers still queued.
        with create_transfer_manager(self.client(), config) as transfers:
            downloads = [
                transfers.download(self.options.bucket, obj.key, str(path), subscribers=[_AsListed(obj)])
                for obj, path in zip(objects, paths)
            ]
            for obj, path, download in zip(objects, paths, downloads):
                with self._errors(f"downloading {obj.name!r}", missing="the object was deleted after it was listed"):
                    download.result()
                # The copy's time is the object's: intake judges a file still being written by its age.
                modified = obj.last_modified.timestamp()
                os.utime(path, (modified, modified))
        return paths

    @contextlib.contextmanager
    def _errors(self, doing: str, missing: str = "not found") -> Iterator[None]:
        """Turn boto's errors into an ``S3Error`` that names the bucket and prefix, credentials masked."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError
        from s3transfer.exceptions import RetriesExceededError, S3DownloadFailedError

        try:
            yield
        except (ClientError, S3DownloadFailedError, BotoCoreError, Boto3Error, RetriesExceededError) as failure:
            err = failure
            if isinstance(err, S3DownloadFailedError) and isinstance(err.__context__, ClientError):
                err = err.__context__  # the transfer's own wording hides the S3 error code
            reason = _client_error_reason(err, missing) if isinstance(err, ClientError) else str(err)
            # botocore's error may hold credentials (the access key id, a signed URL): dropped, its codes kept
            raise with_codes(S3Error(secrets.scrub(f"{self.location}: {doing} failed: {reason}")), failure) from None


def _client_error_reason(err, missing: str) -> str:
    error = err.response.get("Error", {})
    code = str(error.get("Code") or "")
    said = missing if code in ("404", "NoSuchKey") else _PLAIN_REASONS.get(code) or error.get("Message")
    if not said:
        return str(err)
    return f"{said} ({code})" if code else said


class _AsListed:
    """Gives a download the size and ETag from the listing: no HEAD request per object, and
    a download in parts fails rather than mix two versions if the object is replaced meanwhile."""

    def __init__(self, obj: ObjectInfo):
        self.obj = obj

    def on_queued(self, future, **kwargs) -> None:
        future.meta.provide_transfer_size(self.obj.size)
        future.meta.provide_object_etag(f'"{self.obj.etag}"')


def _file_name(name: str) -> str:
    """A local file name for an object: its last key segment, when that is a usable name.
    Characters DuckDB would read as a glob pattern become '_' (the load records the key, not this name)."""
    last = "".join("_" if c in paths.PATTERN_CHARACTERS else c for c in name.rsplit("/", 1)[-1])
    if last in ("", ".", ".."):
        return "object"
    if len(last.encode()) > 200:
        # Keep the extension: readers detect compression (.gz, .zst) from it.
        return "object" + "".join(PurePosixPath(last).suffixes)[-40:]
    return last


class KeyGlob:
    """A file glob matched against keys, as ``pathlib`` matches it against a folder.

    ``*`` and ``?`` match within one folder level, ``[abc]`` one character of a set and
    ``**`` as a whole segment any number of folder levels (a trailing ``**`` matches
    folders only, so no objects). Absolute patterns and ``..`` are refused.
    """

    def __init__(self, pattern: str):
        parts = PurePosixPath(pattern).parts
        if not parts:
            raise ValueError(f"file pattern {pattern!r} names no files")
        paths.check_relative(pattern, "the connection's prefix")
        if any("**" in part and part != "**" for part in parts):
            raise ValueError(f"file pattern {pattern!r}: '**' can only be a whole path segment, as in 'a/**/*.csv'")
        self.pattern = pattern
        try:
            self.regex = re.compile(
                "".join(_segment_regex(part, last=i == len(parts) - 1) for i, part in enumerate(parts)) + r"\Z"
            )
        except re.error as err:
            raise ValueError(f"file pattern {pattern!r} is not a valid glob: {err}") from err
        # Leading segments without wildcards narrow the listing to their folder.
        literal = []
        for part in parts[:-1]:
            if any(c in part for c in "*?["):
                break
            literal.append(part)
        self.literal_folder = "".join(f"{part}/" for part in literal)

    def matches(self, name: str) -> bool:
        return self.regex.match(name) is not None


def _segment_regex(segment: str, last: bool) -> str:
    if segment == "**":
        return "(?:[^/]+/)*"
    out, i, n = [], 0, len(segment)
    while i < n:
        c = segment[i]
        i += 1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            # As in fnmatch: a leading '!' negates; a ']' just after '[' or '[!' is a member.
            start = i + 1 if segment[i : i + 1] == "!" else i
            if segment[start : start + 1] == "]":
                start += 1
            end = segment.find("]", start)
            if end < 0:
                out.append(re.escape(c))  # no closing bracket: a literal '['
                continue
            body, i = segment[i:end], end + 1
            negate = body.startswith("!")
            body = re.sub(r"([\\\[\]&~|^])", r"\\\1", body[1:] if negate else body)
            out.append(f"[^/{body}]" if negate else f"[{body}]")
        else:
            out.append(re.escape(c))
    return "".join(out) + ("" if last else "/")
