"""Excel workbooks (.xlsx) as tables of text, read one row at a time.

The ``xlsx`` file format (``files.XlsxFormat``) streams one worksheet into a Parquet
file of text columns that DuckDB then scans like any other file; the pipeline casts
the text in SQL, so a cell that does not fit its column rejects its row instead of
failing the file. openpyxl reads the sheet in read-only mode and rows are written in
batches, so memory stays bounded by one batch whatever the size of the sheet.

Rules of the conversion, in the user's words:

- Row 1 holds the column names. An empty name cell is named ``column<i>`` (0-based
  position) and a repeated name gets ``_1``, ``_2``... as DuckDB names CSV columns.
  Cells to the right of the last name are not read.
- Every row below is a data row, so the n-th data row is Excel row n + 1. A blank row
  between data rows is kept (all values empty) to keep that numbering; blank rows
  after the last data row are dropped.
- Values are text as a person reads them: ``3`` not ``3.0``, ``0.1`` not
  ``0.1000000000000000055``, dates ``2024-01-31``, date-times
  ``2024-01-31T10:30:00``, times ``08:15:00``, durations ``26:00:00``, booleans
  ``true``/``false``; dates in the 1904 date system as the workbook declares. Formulas
  give the result Excel saved with the file. A formula saved without a result (by a
  program that does not calculate, such as openpyxl), or in a workbook marked to be
  recalculated when opened (the result saved is then a placeholder, XlsxWriter's 0),
  rejects its row with the reason and the cell (``formula without a cached value: D7``)
  instead of loading it empty; only cells of the pipeline's mapped columns count. A
  formula whose result is an empty string loads empty. Error values such as ``#N/A``
  stay text.
- Numbers are the numbers the file holds: an integer written as ``12345678901234567``
  loads as written; one written in floating-point form (``1.2345678901234567E+16``) loads
  as the nearest double, ``12345678901234568``, the value Excel itself holds (it shows 15
  significant digits: ``12345678901234500``).
- A merged range keeps its value in its top-left cell; the other cells of the range are
  empty (Excel stores them so), so a merged label down a column fills only its first row.
- Before any of this, ``etl_platform.intake.workbooks`` refuses encrypted and macro
  workbooks and any part declaring XML entities; openpyxl parses through defusedxml."""

import contextlib
import datetime
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from etl_platform.connectors.excel_archive import WorkbookError as WorkbookError
from etl_platform.connectors.excel_archive import _formula_check, _FormulaResults
from etl_platform.connectors.reader_columns import ROW_ERRORS

ROWS_PER_BATCH = 10_000


def header(path: Path, sheet: str | None = None) -> list[str]:
    """Column names of the sheet, reading only its first row."""
    with _open_sheet(path, sheet) as worksheet:
        return column_names(next(_rows(worksheet, max_row=1), None))


def to_parquet(path: Path, dest: Path, sheet: str | None = None, columns: set[str] | None = None) -> list[str]:
    """Write the sheet to ``dest`` as Parquet, every column text; returns the column names.

    Beside the columns, ``stage.ROW_ERRORS`` holds per row why its values cannot be given
    (a formula without a cached value in one of ``columns``, default all), else NULL.
    """
    with _open_sheet(path, sheet) as worksheet:
        rows = _rows(worksheet)
        names = column_names(next(rows, None))
        checked = {i + 1 for i, name in enumerate(names) if columns is None or name in columns}
        formulas = _formula_check(path, worksheet, checked)
        try:
            _write_parquet(rows, names, dest, formulas)
        finally:
            if formulas is not None:
                formulas.close()
    return names


def _write_parquet(rows: Iterator[tuple], names: list[str], dest: Path, formulas: _FormulaResults | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    width = len(names)
    blank = [None] * (width + 1)
    batch: list[list[str | None]] = []
    blanks_pending = 0
    row_number = 1  # the header's; data rows follow
    with pq.ParquetWriter(dest, pa.schema([(name, pa.string()) for name in [*names, ROW_ERRORS]])) as writer:

        def flush() -> None:
            columns = [pa.array(column, pa.string()) for column in zip(*batch)]
            writer.write_batch(pa.record_batch(columns, names=[*names, ROW_ERRORS]))
            batch.clear()

        def add(values: list[str | None]) -> None:
            batch.append(values)
            if len(batch) >= ROWS_PER_BATCH:
                flush()

        for row in rows:
            row_number += 1
            values = [cell_text(value) for value in row[:width]]
            error = formulas.in_row(row_number) if formulas is not None else None
            if error is None and all(value is None for value in values):
                blanks_pending += 1  # written only if a data row follows
                continue
            for _ in range(blanks_pending):
                add(blank)
            blanks_pending = 0
            add(values + [None] * (width - len(values)) + [error])
        if batch:
            flush()


def column_names(first_row: tuple | None) -> list[str]:
    cells = [cell_text(value) for value in first_row or ()]
    while cells and cells[-1] is None:
        cells.pop()
    if not cells:
        raise WorkbookError("row 1 is empty; it must hold the column names")
    names: list[str] = []
    taken: set[str] = {ROW_ERRORS}  # a sheet's own column of that name gets a suffix
    for position, text in enumerate(cells):
        base = name = text if text is not None else f"column{position}"
        repeat = 0
        while name in taken:
            repeat += 1
            name = f"{base}_{repeat}"
        names.append(name)
        taken.add(name)
    return names


def cell_text(value: object) -> str | None:
    """A cell's value as text (None for an empty cell)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number_text(value)
    if isinstance(value, datetime.datetime):
        # Excel has no date type: a date is a date-time at midnight.
        if value.time() == datetime.time() and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return _duration_text(value)
    return str(value)


def _number_text(value: float) -> str:
    if value == 0:
        return "0"
    # repr is the shortest text that reads back as the same float: no binary noise.
    return format(Decimal(repr(value)).normalize(), "f")


def _duration_text(value: datetime.timedelta) -> str:
    """Hours:minutes:seconds, hours past 24 as Excel shows them with [h]:mm:ss."""
    micros = value // datetime.timedelta(microseconds=1)
    sign = "-" if micros < 0 else ""
    seconds, micros = divmod(abs(micros), 1_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}:{minutes:02}:{seconds:02}" + (f".{micros:06}" if micros else "")


@contextlib.contextmanager
def _open_sheet(path: Path, sheet: str | None) -> Iterator:
    """The worksheet, opened read-only with the values Excel saved (not the formulas)."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as err:
        raise WorkbookError(f"not a readable .xlsx workbook ({_cause(err)})") from err
    try:
        worksheet = _worksheet(workbook, sheet)
        # The size a file declares can be wrong (some programs always write A1): read every cell instead.
        worksheet.reset_dimensions()
        yield worksheet
    finally:
        workbook.close()


def _rows(worksheet, max_row: int | None = None) -> Iterator[tuple]:
    """The sheet's rows as tuples of cell values; row n of the sheet is the n-th tuple."""
    rows = worksheet.iter_rows(values_only=True, max_row=max_row)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as err:
            raise WorkbookError(f"the sheet cannot be read ({type(err).__name__}: {err})") from err
        yield row


def _worksheet(workbook, sheet: str | None):
    worksheets = {ws.title: ws for ws in workbook.worksheets}  # chart sheets hold no rows
    if not worksheets:
        raise WorkbookError("the workbook has no worksheets")
    if sheet is None:
        return next(iter(worksheets.values()))
    if sheet not in worksheets:
        raise WorkbookError(
            f"the workbook has no sheet named {sheet!r}; its sheets are {', '.join(map(repr, worksheets))}"
        )
    return worksheets[sheet]


def _cause(err: Exception) -> str:
    """What went wrong, in words; openpyxl wraps defusedxml's refusal in a generic ValueError."""
    cause = err.__cause__ or err.__context__
    if cause is not None and type(cause).__module__.startswith("defusedxml"):
        return f"{type(cause).__name__}: XML entities or a DTD are refused as a possible entity-expansion attack"
    return f"{type(err).__name__}: {err}"
