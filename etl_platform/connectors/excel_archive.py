"""A workbook as the zip archive it is: its parts, and the saved results of its formula cells (and
whether those can be trusted)."""

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

# Formulas saved without a result. openpyxl gives such a cell as empty, like an empty cell;
# the sheet's XML tells them apart, so it is read a second time alongside, only when it has formulas.


class WorkbookError(ValueError):
    """The workbook cannot be read: not an .xlsx file, no such sheet, no column names."""


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
