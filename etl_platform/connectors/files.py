"""File formats DuckDB reads natively, one class per format, in a string-keyed registry.

A format turns one file into a FROM-clause that DuckDB scans in parallel batches;
nothing here materializes rows in Python. Adding a format is one class and one
``register_format`` call.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import duckdb

from etl_platform.intake import paths
from etl_platform.spec import ColumnSpec, CsvOptions
from etl_platform.sql import literal


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
    # True when the reader itself casts mapped columns (and records rows it cannot cast).
    reader_converts_types: ClassVar[bool] = False
    # True when the scan delivers stage.ROW_ERRORS: per row, why the reader could not give its values.
    reports_row_errors: ClassVar[bool] = False

    def __init__(self, options: CsvOptions):
        self.options = options

    def first_data_line(self) -> int:
        """1-based line (or record) number of the first data row."""
        return 1

    def columns(self, con: duckdb.DuckDBPyConnection, path: Path, dialect: dict | None = None) -> list[str]:
        """Column names the file offers, without reading its rows."""
        scan = self.scan(path, {}, dialect=dialect)
        return [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]

    def inspect(self, con: duckdb.DuckDBPyConnection, path: Path, wanted: dict[str, ColumnSpec]) -> tuple[list[str], dict]:
        """The file's columns and the dialect to read it with."""
        return self.columns(con, path), {}

    def scan(
        self,
        path: Path,
        columns: dict[str, ColumnSpec],
        rejects: ReaderRejects | None = None,
        dialect: dict | None = None,
    ) -> str:
        raise NotImplementedError


class CsvFormat(FileFormat):
    """CSV with a detected (or declared) dialect; the reader casts mapped columns and
    records rows it cannot parse (bad values, ragged rows) instead of failing the file."""

    name = "csv"
    reader_converts_types = True

    def first_data_line(self) -> int:
        return 1 + self.options.skip_lines + (1 if self.options.header else 0)

    CANDIDATE_DELIMITERS = (",", ";", "\t", "|")

    def columns(self, con: duckdb.DuckDBPyConnection, path: Path, dialect: dict | None = None) -> list[str]:
        # Sniff tolerantly: a few ragged rows must not hide the header (they are rejected later, by line).
        scan = f"read_csv({', '.join([*self._arguments(path, {}, dialect), 'ignore_errors=true'])})"
        return [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()]

    def inspect(self, con: duckdb.DuckDBPyConnection, path: Path, wanted: dict[str, ColumnSpec]) -> tuple[list[str], dict]:
        """Detect the dialect; when detection misses the mapped columns (small files with
        ragged rows can fool the sniffer), try the usual delimiters before giving up."""
        offered = self.columns(con, path)
        if self.options.delimiter is not None or not missing_columns(offered, wanted):
            return offered, {}
        for delimiter in self.CANDIDATE_DELIMITERS:
            try:
                candidate = self.columns(con, path, {"delim": delimiter})
            except duckdb.Error:
                continue
            if not missing_columns(candidate, wanted):
                return candidate, {"delim": delimiter}
        return offered, {}

    def scan(
        self,
        path: Path,
        columns: dict[str, ColumnSpec],
        rejects: ReaderRejects | None = None,
        dialect: dict | None = None,
    ) -> str:
        args = self._arguments(path, columns, dialect)
        if rejects:
            args += ["store_rejects=true", f"rejects_table={literal(rejects.errors)}", f"rejects_scan={literal(rejects.scans)}"]
        return f"read_csv({', '.join(args)})"

    def _arguments(self, path: Path, columns: dict[str, ColumnSpec], dialect: dict | None) -> list[str]:
        opts = self.options
        args = [
            scan_path(path),
            f"header={str(opts.header).lower()}",
            f"skip={opts.skip_lines}",
            f"nullstr=[{', '.join(literal(s) for s in opts.null_strings)}]",
            # Unmapped columns stay text so a stray value in a column we do not load rejects nothing.
            "auto_type_candidates=['VARCHAR']",
        ]
        delimiter = opts.delimiter if opts.delimiter is not None else (dialect or {}).get("delim")
        if delimiter is not None:
            args.append(f"delim={literal(delimiter)}")
        if opts.quote is not None:
            args.append(f"quote={literal(opts.quote)}")
        if opts.escape is not None:
            args.append(f"escape={literal(opts.escape)}")
        typed = {
            col.source or name: col.duckdb_type for name, col in columns.items() if not col.parsed_in_sql
        }
        if typed:
            args.append("types={" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in typed.items()) + "}")
        return args


class ParquetFormat(FileFormat):
    name = "parquet"

    def scan(self, path, columns, rejects=None, dialect=None) -> str:
        return f"read_parquet({scan_path(path)})"


class _JsonFormat(FileFormat):
    """JSON objects. Every field is read as text and cast by our SQL, so a value of the
    wrong type rejects its row instead of turning the whole column into JSON."""

    json_format: ClassVar[str]

    def inspect(self, con, path, wanted):
        offered = self.columns(con, path)
        return offered, {"text_columns": offered}

    def scan(self, path, columns, rejects=None, dialect=None) -> str:
        args = [scan_path(path), f"format={literal(self.json_format)}", "sample_size=-1"]
        text_columns = (dialect or {}).get("text_columns")
        if text_columns:
            args.append("columns={" + ", ".join(f"{literal(c)}: 'VARCHAR'" for c in text_columns) + "}")
        return f"read_json({', '.join(args)})"


class NdjsonFormat(_JsonFormat):
    name = "ndjson"
    json_format = "newline_delimited"


class JsonFormat(_JsonFormat):
    """A JSON array of objects (or newline-delimited objects, detected)."""

    name = "json"
    json_format = "auto"


FORMATS: dict[str, type[FileFormat]] = {}


def register_format(cls: type[FileFormat]) -> type[FileFormat]:
    if not (isinstance(cls, type) and issubclass(cls, FileFormat)):
        raise TypeError(f"{cls!r} is not a FileFormat")
    if cls.name in FORMATS:
        raise ValueError(f"file format {cls.name!r} is registered twice")
    FORMATS[cls.name] = cls
    return cls


for _format in (CsvFormat, ParquetFormat, NdjsonFormat, JsonFormat):
    register_format(_format)


def file_format(name: str, options: CsvOptions) -> FileFormat:
    try:
        return FORMATS[name](options)
    except KeyError:
        raise ValueError(f"unknown file format {name!r}; known: {', '.join(sorted(FORMATS))}") from None


def missing_columns(offered: Sequence[str], columns: dict[str, ColumnSpec]) -> list[str]:
    """Mapped source columns a file does not have."""
    present = set(offered)
    return [col.source or name for name, col in columns.items() if (col.source or name) not in present]




class XlsxFormat(FileFormat):
    """An Excel workbook: one worksheet, row 1 holding the column names (see ``excel``).

    Each workbook is converted once to a Parquet file of text columns, in a temporary
    folder removed by ``close()`` or when this object is dropped. Values are cast by
    our SQL, and rejected rows report their Excel row number. The conversion also
    delivers ``stage.ROW_ERRORS``: a row with a mapped formula cell that has no saved
    result is rejected naming the cell. That column is never one of the file's columns.
    """

    name = "xlsx"
    reports_row_errors = True

    def __init__(self, options):
        super().__init__(options)
        # Excel options name the sheet; options without one (CSV's) read the first sheet.
        self.sheet: str | None = getattr(options, "sheet", None)
        self._converted: dict[tuple, tuple[Path, list[str]]] = {}
        self._folder: Path | None = None
        self._remove_folder = None

    def first_data_line(self) -> int:
        return 2  # row 1 holds the column names

    def columns(self, con, path, dialect=None) -> list[str]:
        from etl_platform.connectors import excel

        return _read_workbook(excel.header, path, self.sheet)

    def inspect(self, con, path, wanted):
        return list(self._convert(path, wanted)[1]), {}

    def scan(self, path, columns, rejects=None, dialect=None) -> str:
        return f"read_parquet({scan_path(self._convert(path, columns)[0])})"

    def close(self) -> None:
        if self._remove_folder is not None:
            self._remove_folder()
            self._folder = self._remove_folder = None
            self._converted.clear()

    def _convert(self, path: Path, columns: dict[str, ColumnSpec]) -> tuple[Path, list[str]]:
        import shutil
        import tempfile
        import weakref

        from etl_platform.connectors import excel

        # Formulas without a result matter only in the columns a pipeline loads.
        checked = frozenset(col.source or name for name, col in columns.items()) or None
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, checked)
        if key not in self._converted:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="etl-xlsx-"))
                self._remove_folder = weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)
            dest = self._folder / f"{len(self._converted)}.parquet"
            self._converted[key] = dest, _read_workbook(excel.to_parquet, path, dest, self.sheet, checked)
        return self._converted[key]


def _read_workbook(read, *args):
    """``read(*args)``, reporting an unreadable workbook the way DuckDB reports an unreadable
    file, so a load rejects that file (or stops, by ``on_bad_file``) as it does any other."""
    from etl_platform.connectors.excel import WorkbookError

    try:
        return read(*args)
    except WorkbookError as err:
        raise duckdb.InvalidInputException(str(err)) from err


register_format(XlsxFormat)
