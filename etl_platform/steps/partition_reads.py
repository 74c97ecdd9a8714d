"""What one partition's run reads: its file, or the window of its rows in a SQL source."""

from collections.abc import Callable
from pathlib import Path

from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.steps.load_result import LoadFailed


class PartitionNotFound(LoadFailed):
    """The run's partition names a file that is not (or no longer) in the source: the same
    next time, so not retried."""


def source_window(spec: PipelineSpec, part: warehouse_tables.Slice | None) -> tuple[str, str, str] | None:
    """(source column, start, end) a SQL source filters on, or None. Bounds are the window's
    local date (date and time for hourly partitions) as text, which compares right with DATE,
    TIMESTAMP and ISO text columns in every database."""
    if part is None or part.value is not None or spec.partitions is None:
        return None
    mapped = spec.source.columns.get(part.column)
    column = (mapped.source or part.column) if mapped else part.column
    hourly = spec.partitions.by == "hourly"
    start, end = (b.strftime("%Y-%m-%d %H:%M:%S" if hourly else "%Y-%m-%d") for b in (part.start, part.end))
    return column, start, end


def files_of_run(
    files: list[Path], relative: Callable[[Path], str], part: warehouse_tables.Slice | None, where: str
) -> list[Path]:
    """The files a run reads: all of them, or for a per-file partition only its file."""
    if part is None or part.value is None:
        return files
    mine = [f for f in files if relative(f) == part.value]
    if not mine:
        raise PartitionNotFound(
            f"partition {part.value!r}: no such file matches the source's pattern in {where}; "
            "its rows in the table were left as they were"
        )
    return mine
