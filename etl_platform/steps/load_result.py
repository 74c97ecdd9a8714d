"""What a load gives back, per file and in all, and how it fails."""

from dataclasses import dataclass, field
from pathlib import Path

from etl_platform.destinations.warehouse import tables as warehouse_tables


class LoadFailed(Exception):
    """The load could not complete; the destination was left as it was."""


class NothingToReplace(LoadFailed):
    """A load that replaces the table accepted no rows from a source that exists (NOWIPE): the
    table was left as it was. The rejected rows and files are recorded; ``result`` says so."""

    def __init__(self, message: str, result: "LoadResult"):
        super().__init__(message)
        self.result = result


@dataclass
class FileResult:
    file: str
    rows_read: int = 0
    rows_rejected: int = 0
    rejected_whole: str | None = None
    duplicate_of: str | None = None  # skipped: its content was already loaded (says where)
    left_for_later: str | None = None  # not read: still being written (says why)


@dataclass
class LoadResult:
    # Q: rows_read = rows_accepted + rows_rejected. A partition's load counts only rows of its
    # partition (or of none); rows of other partitions are in committed.rows_outside.
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    committed: warehouse_tables.Committed
    files: list[FileResult]
    rejected_by_reason: dict[str, int]
    seconds: float
    table_rows: int | None  # None when the committed table could not be measured afterwards
    columns: list[tuple[str, str]] = field(default_factory=list)
    # Accepted rows a later row with the same key replaced within this load (merge): recorded in
    # the rejected table with kind 'superseded', so rows_accepted = rows_written + rows_superseded
    # (+ an incremental load's rows below the cursor or loaded already).
    rows_superseded: int = 0
    refused: str | None = None  # why the load was not committed (NothingToReplace)
    notices: list[str] = field(default_factory=list)  # what the source said of its columns (a type loaded as text, ...)

    @property
    def files_rejected(self) -> list[FileResult]:
        return [f for f in self.files if f.rejected_whole]

    @property
    def files_duplicate(self) -> list[FileResult]:
        return [f for f in self.files if f.duplicate_of]


@dataclass(frozen=True)
class StagedFile:
    path: Path
    name: str
    first_row: int
    rows: int
    scan_id: int | None
    dialect: dict | None = None  # the CSV dialect it was read with, when one was detected
