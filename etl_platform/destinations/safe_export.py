"""Files for humans (CSV, XLSX) that a spreadsheet opens as data, never as formulas.

A text cell starting with ``=``, ``+``, ``-``, ``@``, tab or CR could run as a formula when
the file is opened (CSV injection); it is written with a leading ``'``, which spreadsheets
show as text. Every writer of such files uses this module: the rejected-rows export and
CSV file destinations (in SQL, through ``neutralised_sql``).
"""

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from etl_platform.sql import literal

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """``value`` as a spreadsheet must show it: text that could start a formula gets a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralised_sql(column: str) -> str:
    """The same as ``neutralise``, as a DuckDB expression over a text column."""
    starts = ", ".join(literal(c) for c in FORMULA_STARTS)
    return f"CASE WHEN left({column}, 1) IN ({starts}) THEN '''' || {column} ELSE {column} END"


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write a CSV (RFC 4180 quoting, UTF-8) with every cell neutralised; returns the rows written."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([neutralise(h) for h in header])
        for row in rows:
            writer.writerow([neutralise(v) for v in row])
            count += 1
    return count


def write_xlsx(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], sheet: str = "rows") -> int:
    """Write an .xlsx workbook (one worksheet) with every text cell neutralised; returns the rows written."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(sheet)
    worksheet.append([neutralise(h) for h in header])
    count = 0
    for row in rows:
        # openpyxl stores any text starting with '=' as a formula: neutralise first.
        worksheet.append([neutralise(_cell(v)) for v in row])
        count += 1
    workbook.save(path)
    return count


def _cell(value: Any) -> Any:
    """A value openpyxl can store: lists (a rejected row's reasons) become text."""
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    if hasattr(value, "tzinfo") and getattr(value, "tzinfo", None) is not None:
        return value.replace(tzinfo=None)  # Excel has no time zones; the export's times are UTC
    return value
