"""The local landing folder: files dropped here are what file pipelines read.

Also the ``local`` connection kind: any local folder, declared like any other connection.
"""

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from etl_platform import settings
from etl_platform.connectors.registry import Connector, register
from etl_platform.intake import paths
from etl_platform.spec.base import SpecModel


@dataclass(frozen=True)
class LocalFolder:
    """Files under one base folder. Globs cannot reach outside it."""

    root: Path

    def list(self, pattern: str) -> list[Path]:
        """Files matching ``pattern`` (relative glob), in name order. A symlink inside the
        folder may point anywhere: it is only followed when it stays inside."""
        return paths.matching_files(self.root, pattern)[0]

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()


def landing_folder() -> LocalFolder:
    return LocalFolder(settings.landing_dir())


@dataclass(frozen=True)
class FileSet:
    """Files of one load, as local paths, and the name each is recorded under."""

    location: str  # where they came from, for logs: a folder, an s3:// prefix
    files: list[Path]
    relative: Callable[[Path], str]


class FileConnector(Connector):
    """A connection that holds files. ``fetch`` yields them as local paths for one load."""

    reads = "files"

    def fetch(self, pattern: str) -> contextlib.AbstractContextManager[FileSet]:
        raise NotImplementedError


class LocalOptions(SpecModel):
    path: str | None = Field(
        None, description="The folder. Defaults to the landing folder (ETL_LANDING_DIR, or ETL_HOME/landing)."
    )


@register
class LocalConnector(FileConnector):
    kind: ClassVar[str] = "local"
    Options = LocalOptions

    def folder(self) -> LocalFolder:
        return LocalFolder(Path(self.options.path).absolute()) if self.options.path else landing_folder()

    def describe(self) -> str:
        return f"local folder {self.options.path or 'ETL_LANDING_DIR'}"

    @contextlib.contextmanager
    def fetch(self, pattern: str) -> Iterator[FileSet]:
        folder = self.folder()
        yield FileSet(str(folder.root), folder.list(pattern), folder.relative)


LANDING = "landing"


def landing_connector() -> LocalConnector:
    """The built-in ``landing`` connection, there even when no connections are declared."""
    return LocalConnector(LANDING, LocalOptions())
