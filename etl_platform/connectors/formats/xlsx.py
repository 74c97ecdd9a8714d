"""Excel workbooks, converted once to Parquet text columns and cast by our SQL."""

from pathlib import Path

import duckdb

from etl_platform.connectors.formats.base import FileFormat, register_format, scan_path
from etl_platform.spec.columns import ColumnSpec


@register_format
class XlsxFormat(FileFormat):
    """An Excel workbook: one worksheet, row 1 holding the column names (see ``excel``).

    Each workbook is converted once to a Parquet file of text columns, in a temporary
    folder removed by ``close()`` or when this object is dropped. Values are cast by
    our SQL, and rejected rows report their Excel row number. The conversion also
    delivers ``stage.ROW_ERRORS``: a row with a mapped formula cell that has no saved
    result is rejected naming the cell. That column is never one of the file's columns.
    """

    name = "xlsx"
    asset_kind = "excel"
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
