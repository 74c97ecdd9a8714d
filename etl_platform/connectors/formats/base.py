"""File formats DuckDB reads natively, one module per format, in a string-keyed registry.

A format turns one file into a FROM-clause that DuckDB scans in parallel batches;
nothing here materializes rows in Python. Adding a format is one module whose class is
decorated with ``@register_format``, and one line in ``FORMAT_MODULES``."""

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import duckdb

from etl_platform.intake import paths
from etl_platform.spec.columns import ColumnSpec
from etl_platform.spec.sources import CsvOptions
from etl_platform.sql import literal

# Columns a format's scan may deliver beside the data (see FileFormat).
LINE = "__etl_line"  # the row's line (or record) number in its file
PARSE_ERROR = "__etl_parse_error"  # why the line could not be parsed: the row is rejected whole, kind 'parse'
RAW_LINE = "__etl_raw_line"  # the line as it was, for the rejected table


@dataclass(frozen=True)
class ReaderRejects:
    """Names of the temp tables where a reader records rows it could not parse."""

    errors: str = "__reader_rejects"
    scans: str = "__reader_scans"


def scan_path(path: Path) -> str:
    """The SQL literal naming one file to a DuckDB reader. A name is never a pattern: a path
    DuckDB would glob (``[ab].csv``) is refused; intake gives such files a plain name first
    (``intake.paths.without_patterns``)."""
    if not paths.is_plain(path):
        raise duckdb.InvalidInputException(
            f"the path {str(path)!r} holds a glob character, which DuckDB would read as a pattern of file names"
        )
    return literal(str(path))


class FileFormat:
    """How to scan one kind of file."""

    name: ClassVar[str]
    asset_kind: ClassVar[str]  # the kind (icon) the Dagster UI shows on a source asset in this format
    # True when the reader records lines it cannot parse (ragged rows, bad quoting) instead of failing the file.
    records_rejects: ClassVar[bool] = False
    # True when the scan delivers stage.ROW_ERRORS: per row, why the reader could not give its values.
    reports_row_errors: ClassVar[bool] = False
    # True when the scan delivers LINE, each row's line number in the file.
    numbers_lines: ClassVar[bool] = False
    # True when the scan delivers PARSE_ERROR and RAW_LINE for lines it could not parse.
    reports_parse_errors: ClassVar[bool] = False

    def __init__(self, options: CsvOptions):
        self.options = options

    def first_data_line(self) -> int:
        """1-based line (or record) number of the first data row."""
        return 1

    def columns(self, con: duckdb.DuckDBPyConnection, path: Path, dialect: dict | None = None) -> list[str]:
        """Column names the file offers, without reading its rows."""
        scan = self.scan(path, {}, dialect=dialect)
        return [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]

    def inspect(
        self, con: duckdb.DuckDBPyConnection, path: Path, wanted: dict[str, ColumnSpec]
    ) -> tuple[list[str], dict]:
        """The file's columns and the dialect to read it with."""
        return self.columns(con, path), {}

    def prepare(
        self, con: duckdb.DuckDBPyConnection, path: Path, columns: dict[str, ColumnSpec], dialect: dict
    ) -> dict:
        """Work to do on ``con`` before the file is scanned (after its inspection passed);
        returns the dialect to scan it with."""
        return dialect

    def scan(
        self,
        path: Path,
        columns: dict[str, ColumnSpec],
        rejects: ReaderRejects | None = None,
        dialect: dict | None = None,
    ) -> str:
        raise NotImplementedError


# format -> module that registers it; a format's module is imported when a pipeline reads it
FORMAT_MODULES: dict[str, str] = {
    "csv": "etl_platform.connectors.formats.csv",
    "parquet": "etl_platform.connectors.formats.parquet",
    "json": "etl_platform.connectors.formats.json",
    "ndjson": "etl_platform.connectors.formats.json",
    "xlsx": "etl_platform.connectors.formats.xlsx",
}
FORMATS = tuple(FORMAT_MODULES)  # the formats a file source may declare
_REGISTERED: dict[str, type[FileFormat]] = {}


def register_format(cls: type[FileFormat]) -> type[FileFormat]:
    if not (isinstance(cls, type) and issubclass(cls, FileFormat)):
        raise TypeError(f"{cls!r} is not a FileFormat")
    if cls.name in _REGISTERED:
        raise ValueError(f"file format {cls.name!r} is registered twice")
    _REGISTERED[cls.name] = cls
    return cls


def format_class(name: str) -> type[FileFormat]:
    if name not in _REGISTERED:
        if name not in FORMAT_MODULES:
            raise ValueError(f"unknown file format {name!r}; known: {', '.join(sorted(FORMAT_MODULES))}")
        importlib.import_module(FORMAT_MODULES[name])
    return _REGISTERED[name]


def file_format(name: str, options: CsvOptions) -> FileFormat:
    return format_class(name)(options)


def missing_columns(offered: Sequence[str], columns: dict[str, ColumnSpec]) -> list[str]:
    """Source columns the mapping reads that a file does not have."""
    present = set(offered)
    wanted = dict.fromkeys(c for name, col in columns.items() for c in col.source_columns(name))
    return [c for c in wanted if c not in present]
