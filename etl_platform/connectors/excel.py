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
  workbooks and any part declaring XML entities; openpyxl parses through defusedxml.
"""

import contextlib
import datetime
import re
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

from etl_platform.connectors.reader_columns import ROW_ERRORS

ROWS_PER_BATCH = 10_000


class WorkbookError(ValueError):
    """The workbook cannot be read: not an .xlsx file, no such sheet, no column names."""


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


def _write_parquet(rows: Iterator[tuple], names: list[str], dest: Path, formulas: "_FormulaResults | None") -> None:
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


# Formulas saved without a result. openpyxl gives such a cell as empty, like an empty cell;
# the sheet's XML tells them apart, so it is read a second time alongside, only when it has formulas.

_RECALCULATE_ON_OPEN = re.compile(rb"""fullCalcOnLoad\s*=\s*["'](1|true)["']""")
_FORMULA_TAGS = (b"<f>", b"<f ", b"<f/", b":f>", b":f ", b":f/")
_OFFICE_DOCUMENT = re.compile(
    rb"""<Relationship\b(?=[^>]*Type=["'][^"']*/officeDocument["'])[^>]*Target=["']([^"']+)["']"""
)
_CELL = re.compile(r"([A-Z]{1,3})(\d+)$")
_NO_RESULT = "formula without a cached value"
# XlsxWriter saves 0 as every formula's result and marks the workbook for recalculation on opening.
_UNTRUSTED = "formula without a trustworthy cached value (the workbook is marked to be recalculated when opened)"


def _formula_check(path: Path, worksheet, columns: set[int]) -> "_FormulaResults | None":
    """A lockstep reader of the cells of ``columns`` (1-based) whose formula has no result to
    load, or None when the sheet has no formulas (found by a byte scan of its XML, far cheaper
    than parsing it)."""
    part = worksheet._worksheet_path  # openpyxl keeps no public name for the sheet's part
    with zipfile.ZipFile(path) as archive:
        if not columns or not _has_formulas(archive, part):
            return None
        # Read here, not from openpyxl: it reports the mark as set whenever the attribute is absent.
        distrusted = bool(_RECALCULATE_ON_OPEN.search(_read_part(archive, _workbook_part(archive))))
    return _FormulaResults(path, part, columns, distrusted)


def _workbook_part(archive: zipfile.ZipFile) -> str:
    """The workbook's own part, as the package's relationships name it (usually xl/workbook.xml)."""
    found = _OFFICE_DOCUMENT.search(_read_part(archive, "_rels/.rels"))
    return found.group(1).decode().lstrip("/") if found else "xl/workbook.xml"


def _read_part(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        return archive.read(name)
    except KeyError:
        return b""


def _has_formulas(archive: zipfile.ZipFile, part: str) -> bool:
    with archive.open(part) as xml:
        previous = b""
        while chunk := xml.read(1 << 20):
            window = previous + chunk
            if any(tag in window for tag in _FORMULA_TAGS):
                return True
            previous = chunk[-4:]
    return False


class _FormulaResults:
    """Reads the sheet's XML for formula cells without a cached value, row by row, as the
    rows are written: memory holds one row (and the ranges of array formulas)."""

    def __init__(self, path: Path, part: str, columns: set[int], distrusted: bool):
        self.path, self.part, self.columns, self.distrusted = path, part, columns, distrusted
        self._found = self._rows_with_formulas()
        self._next: tuple[int, list[tuple[int, str, str]]] | None = None
        # Array formulas without results: rows and columns of the range, and why.
        self._ranges: list[tuple[int, int, int, int, str]] = []
        self._advance()

    def in_row(self, row: int) -> str | None:
        """The reason row ``row`` (1-based, rising from call to call) cannot be loaded, or None."""
        cells: list[tuple[int, str, str]] = []
        while self._next is not None and self._next[0] < row:
            self._advance()
        if self._next is not None and self._next[0] == row:
            cells += self._next[1]
            self._advance()
        for first_row, last_row, first_col, last_col, why in self._ranges:
            if first_row <= row <= last_row:
                cells += [
                    (c, f"{_column_letter(c)}{row}", why) for c in range(first_col, last_col + 1) if c in self.columns
                ]
        self._ranges = [r for r in self._ranges if r[1] > row]
        by_reason: dict[str, list[str]] = {}
        for _, ref, why in sorted(set(cells)):
            by_reason.setdefault(why, []).append(ref)
        return "; ".join(f"{why}: {', '.join(refs)}" for why, refs in sorted(by_reason.items())) or None

    def close(self) -> None:
        """Stop reading the sheet's XML (the rows after the last one asked for are not needed)."""
        self._found.close()

    def _advance(self) -> None:
        self._next = next(self._found, None)

    def _rows_with_formulas(self) -> Iterator[tuple[int, list[tuple[int, str, str]]]]:
        """Rows (in order) with formula cells of ``columns`` that have no result to load, and those cells.

        An expat parser with handlers for the few elements that matter: ElementTree, and
        defusedxml's parser more so, build every element in Python and cost twice openpyxl's
        read. Like defusedxml, it refuses a DOCTYPE and entity declarations.
        """
        from xml.parsers import expat

        found: list[tuple[int, list[tuple[int, str, str]]]] = []
        # Where the parser is: row and column numbers, the row's cells found, the open cell and its child.
        state = {"row": 0, "column": 0, "cells": [], "cell": None, "open": None}

        def start(name: str, attrs: dict) -> None:
            tag = name.rpartition(":")[2]
            if tag == "c":
                ref = attrs.get("r")
                match = _CELL.match(ref) if ref else None
                state["column"] = _column_index(match.group(1)) if match else state["column"] + 1
                state["cell"] = {"t": attrs.get("t"), "f": None, "v": None}
            elif state["cell"] is not None and tag in ("f", "v"):
                state["cell"][tag] = dict(attrs, text="")
                state["open"] = tag
            elif tag == "row":
                state["row"] = int(attrs.get("r") or state["row"] + 1)
                state["column"], state["cells"] = 0, []

        def text(data: str) -> None:
            if state["open"]:
                state["cell"][state["open"]]["text"] += data

        def end(name: str) -> None:
            tag = name.rpartition(":")[2]
            if tag in ("f", "v"):
                state["open"] = None
            elif tag == "c" and state["cell"] is not None:
                self._cell(state["cell"], state["row"], state["column"], state["cells"])
                state["cell"] = None
            elif tag == "row" and state["cells"]:
                found.append((state["row"], state["cells"]))

        def refuse(*args) -> None:
            raise WorkbookError(
                "the sheet declares a DOCTYPE or XML entities; refused as a possible entity-expansion attack"
            )

        parser = expat.ParserCreate()
        parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = start, end, text
        parser.StartDoctypeDeclHandler = parser.EntityDeclHandler = refuse
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        with zipfile.ZipFile(self.path) as archive, archive.open(self.part) as xml:
            try:
                while True:
                    chunk = xml.read(1 << 16)
                    parser.Parse(chunk, not chunk)
                    yield from found
                    found.clear()
                    if not chunk:
                        return
            except expat.ExpatError as err:  # openpyxl read the same XML: this is not expected
                raise WorkbookError(f"the sheet's formulas cannot be read ({err})") from err

    def _cell(self, cell: dict, row_number: int, column: int, cells: list[tuple[int, str, str]]) -> None:
        """Note the cell if it is a formula without a result (or one not to be trusted)."""
        formula, value = cell["f"], cell["v"]
        if formula is None:
            return
        # An empty string result is saved as an empty value of type 'str': a result, not a missing one.
        saved = value is not None and (bool(value["text"]) or cell["t"] == "str")
        if saved and not self.distrusted:
            return
        why = _UNTRUSTED if saved else _NO_RESULT
        spans = formula.get("ref") if formula.get("t") in ("array", "dataTable") else None
        if spans and ":" in spans:
            first, last = (_CELL.match(end) for end in spans.split(":", 1))
            if first and last:
                self._ranges.append(
                    (
                        int(first.group(2)),
                        int(last.group(2)),
                        _column_index(first.group(1)),
                        _column_index(last.group(1)),
                        why,
                    )
                )
                return
        if column in self.columns:
            cells.append((column, f"{_column_letter(column)}{row_number}", why))


def _column_index(letters: str) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - 64
    return index


def _column_letter(index: int) -> str:
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters
