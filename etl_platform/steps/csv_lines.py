"""Physical line numbers of CSV records that span lines.

DuckDB numbers a CSV file's records, not its lines: a quoted value holding a line break makes
every later record's number smaller than the line an editor shows. A rejected row names the line
a user can open, so for a file whose records span lines (its line count is larger than its record
count) the record numbers of its rejected rows are turned into the lines they start on, by
reading the file once more with Python's CSV reader in the dialect DuckDB used. Files without
such records, nearly all of them, cost one count of their line breaks.
"""

import csv
from pathlib import Path

import duckdb

from etl_platform.sql import literal

_CHUNK = 1 << 22


def line_breaks(path: Path) -> int:
    """How many lines the file has (a last line without a line break counts)."""
    count, last = 0, b"\n"
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def dialect_of(
    con: duckdb.DuckDBPyConnection, scan_arguments: list[str], declared: tuple[str | None, str | None, str | None]
) -> tuple[str, str, str]:
    """(delimiter, quote, escape) DuckDB reads the file with: as declared, else as its sniffer
    finds them; escape '' when quotes are doubled."""
    found: tuple = (",", '"', "")
    if None in declared:
        try:
            found = con.execute(
                f"SELECT Delimiter, Quote, Escape FROM sniff_csv({', '.join([*scan_arguments, 'ignore_errors=true'])})"
            ).fetchall()[0]
        except duckdb.Error:
            pass  # the reader read the file; the usual dialect is the best guess left
    delimiter, quote, escape = (
        d if d is not None else ("" if f in (None, "(empty)") else f) for d, f in zip(declared, found)
    )
    return delimiter or ",", quote, "" if escape == quote else escape


def record_starts(path: Path, dialect: tuple[str, str, str], wanted: set[int]) -> dict[int, int]:
    """For each wanted record number (1-based, blank lines counted as DuckDB counts them), the
    physical line it starts on."""
    delimiter, quote, escape = dialect
    options = {"delimiter": delimiter, "strict": False}
    if quote:
        options |= {"quotechar": quote, "doublequote": not escape, "escapechar": escape or None}
    else:
        options |= {"quoting": csv.QUOTE_NONE, "escapechar": escape or None}
    starts: dict[int, int] = {}
    last = max(wanted, default=0)
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f, **options)
        start, record = 1, 0
        for _ in reader:
            record += 1
            if record in wanted:
                starts[record] = start
            if record >= last:
                break
            start = reader.line_num + 1
    return starts


def renumber(
    con: duckdb.DuckDBPyConnection,
    rejected_sql: str,
    run_id: str,
    file_name: str,
    path: Path,
    scan_arguments: list[str],
    declared: tuple[str | None, str | None, str | None],
    records: int,
) -> None:
    """Rewrite this run's rejected rows of one file from record numbers to physical lines, when
    the file's ``records`` (header and skipped lines included) are fewer than its lines."""
    if line_breaks(path) <= records:
        return
    numbers = con.execute(
        f"SELECT DISTINCT source_line FROM {rejected_sql} WHERE run_id = ? AND source_file = ? AND source_line IS NOT "
        "NULL",
        [run_id, file_name],
    ).fetchall()
    wanted = {n for (n,) in numbers}
    if not wanted:
        return
    starts = record_starts(path, dialect_of(con, scan_arguments, declared), wanted)
    moved = [(record, line) for record, line in starts.items() if record != line]
    if not moved:
        return
    pairs = ", ".join(f"({record}, {line})" for record, line in moved)
    con.execute(
        f"UPDATE {rejected_sql} r SET source_line = m.line FROM (VALUES {pairs}) m(record, line) "
        f"WHERE r.run_id = {literal(run_id)} AND r.source_file = {literal(file_name)} AND r.source_line = m.record"
    )
