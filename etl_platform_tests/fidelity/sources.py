"""Write a generated table through each source kind, the way other tools write them.

Each writer returns ``Written``: how a pipeline reads it (the source section without
``columns``, and the connection) and, for every row, what the source actually holds per
column (``Held``), learned from the written bytes or read back with the source's own driver,
never from the platform. The oracle starts from what is held.
"""

import contextlib
import csv
import datetime as dt
import io
import json
import math
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from etl_platform_tests.fidelity import csv_text
from etl_platform_tests.fidelity.oracle import JsonValue, NanoTimestamp
from etl_platform_tests.fidelity.tables import RID_SOURCE, Column, Table


@dataclass(frozen=True)
class Held:
    """A value as the source holds it: a text (holder 'text') or a typed value."""

    value: object
    holder: str


@dataclass
class Written:
    kind: str  # source kind: csv, ndjson, json, parquet, xlsx, sqlite, duckdb, postgres, mariadb, rest, s3
    variant: str  # dialect or writer, for messages
    source: dict  # the pipeline's source section, without columns
    connection: tuple[str, dict] | None  # (kind, options) of the source connection; None: the landing folder
    held: dict[int, list[Held]] = field(default_factory=dict)  # rid -> per generated column
    lines: dict[int, int] = field(default_factory=dict)  # rid -> expected source_line (file sources)
    source_file: str | None = None  # expected source_file of the rejected rows
    typed_rid: bool = False

    @property
    def label(self) -> str:
        return f"{self.kind} ({self.variant})" if self.variant else self.kind


def json_text(value) -> str:
    """JSON text of a parsed document, numbers exact (Decimal as its digits)."""
    if isinstance(value, JsonValue):
        value = value.value
    if isinstance(value, Decimal):
        return format(value, "f") if value == value.to_integral_value() or value.adjusted() > -7 else str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


@contextlib.contextmanager
def postgres_session(pg: dict):
    """A cursor in one transaction on a connection that is closed afterwards (psycopg2's own
    ``with connect()`` only ends the transaction; on a shared server the connections add up)."""
    import psycopg2

    conn = psycopg2.connect(**pg)
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


# --- CSV ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvDialect:
    name: str
    delimiter: str = ","
    quoting: int = csv.QUOTE_MINIMAL
    line_end: str = "\r\n"
    encoding: str = "utf-8"  # utf-8, utf-8-sig (BOM), utf-16
    declare: bool = True  # the spec states the delimiter


CSV_DIALECTS = (
    CsvDialect("comma, CRLF"),
    CsvDialect("semicolon, LF", delimiter=";", line_end="\n"),
    CsvDialect("tab, quoted", delimiter="\t", quoting=csv.QUOTE_ALL, line_end="\n"),
    CsvDialect("comma, BOM, quoted", quoting=csv.QUOTE_ALL, encoding="utf-8-sig"),
    CsvDialect("tab, UTF-16", delimiter="\t", encoding="utf-16"),
    CsvDialect("comma, detected", declare=False),
)


def csv_cells(column: Column) -> list[object]:
    return [s.value for s in column.samples]


def write_csv_python(table: Table, path: Path, dialect: CsvDialect) -> None:
    """Python's csv module, as most scripts write CSV."""
    out = io.StringIO(newline="")
    quoting = dialect.quoting
    if dialect.line_end == "\n" and any(
        isinstance(s.value, str) and "\r" in s.value for c in table.columns for s in c.samples
    ):
        quoting = csv.QUOTE_ALL  # Python 3.11 would leave a CR unquoted and the file could not say where a line ends
    writer = csv.writer(out, delimiter=dialect.delimiter, quoting=quoting, lineterminator=dialect.line_end)
    writer.writerow([RID_SOURCE, *(c.source for c in table.columns)])
    for i, rid in enumerate(table.rids):
        writer.writerow([rid, *(s.value for s in table.row(i))])
    path.write_bytes(out.getvalue().encode(dialect.encoding))


def write_csv_pandas(table: Table, path: Path) -> None:
    """pandas ``to_csv``: NULL as an empty field, whole numbers with NULLs as 10.0."""
    import pandas as pd

    data = {RID_SOURCE: list(table.rids)}
    for column in table.columns:
        data[column.source] = [_pandas_value(s.value) for s in column.samples]
    # CRLF line ends: with pandas' default LF a value holding a CR is written unquoted (Python 3.11's csv).
    pd.DataFrame(data).to_csv(path, index=False, lineterminator="\r\n")


def _pandas_value(value):
    if isinstance(value, str) and _plain_int(value) and abs(int(value)) < 2**53:
        return int(value)  # a column of whole numbers and NULLs becomes float64: pandas writes 10.0
    return value


def _plain_int(text: str) -> bool:
    return text.isascii() and text.lstrip("-").isdigit() and text == text.strip() and not text.startswith("+")


def write_csv_postgres(table: Table, path: Path, pg: dict, name: str) -> None:
    """PostgreSQL's ``COPY ... TO STDOUT (FORMAT csv, HEADER)``: NULL unquoted empty, '' as \"\"."""
    from psycopg2 import sql

    columns = [RID_SOURCE, *(c.source for c in table.columns)]
    with postgres_session(pg) as cur:
        ident = sql.Identifier(name)
        cur.execute(
            sql.SQL("CREATE TEMP TABLE {} ({})").format(
                ident, sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns)
            )
        )
        rows = [[str(rid), *(s.value for s in table.row(i))] for i, rid in enumerate(table.rids)]
        if rows:
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES ({})").format(
                    ident, sql.SQL(", ").join(sql.Placeholder() * len(columns))
                ),
                rows,
            )
        out = io.StringIO()
        cur.copy_expert(sql.SQL("COPY {} TO STDOUT (FORMAT csv, HEADER)").format(ident).as_string(cur), out)
    path.write_bytes(out.getvalue().encode("utf-8"))


def held_from_csv(
    data: bytes, delimiter: str, table: Table, null_strings=("",)
) -> tuple[dict[int, list[Held]], dict[int, int]]:
    """What each CSV cell says, by our own reader: an unquoted null string is NULL."""
    parsed = csv_text.records(csv_text.decode(data), delimiter)
    header_line, header = parsed[0]
    names = [f.text for f in header]
    assert names == [RID_SOURCE, *(c.source for c in table.columns)], names
    held: dict[int, list[Held]] = {}
    lines: dict[int, int] = {}
    for line, fields in parsed[1:]:
        rid = int(fields[0].text)
        held[rid] = [Held(None if (not f.quoted and f.text in null_strings) else f.text, "text") for f in fields[1:]]
        lines[rid] = line
    return held, lines


# --- JSON --------------------------------------------------------------------------------

_JSON_NUMBER = __import__("re").compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def json_cell(text: str | None, target: str, choice: int) -> tuple[str, str | None]:
    """(JSON value text, the text a reader must see) for one cell; ``choice`` picks among the
    ways a writer could hold it (string, bare number, true/false, embedded document)."""
    if text is None:
        return "null", None
    if choice % 2 and _JSON_NUMBER.fullmatch(text):
        return text, text  # a number's value is its literal text
    if choice % 2 and text in ("true", "false"):
        return text, text
    if choice % 2 and target == "json":
        try:
            parsed = json.loads(text, parse_float=Decimal)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict | list):
            return text.strip(), text.strip()
    return json.dumps(text, ensure_ascii=bool(choice % 3 == 0)), text


def json_records(table: Table, choices: list[int]) -> tuple[list[str], dict[int, list[Held]]]:
    records, held = [], {}
    for i, rid in enumerate(table.rids):
        parts = [f"{json.dumps(RID_SOURCE)}:{rid}"]
        row = []
        for j, (column, sample) in enumerate(zip(table.columns, table.row(i))):
            written, seen = json_cell(sample.value, column.type.split("(")[0], choices[(i * 7 + j) % len(choices)])
            parts.append(f"{json.dumps(column.source, ensure_ascii=False)}:{written}")
            row.append(Held(seen, "text"))
        records.append("{" + ",".join(parts) + "}")
        held[rid] = row
    return records, held


# --- typed files and databases -----------------------------------------------------------


def arrow_type(holder: str):
    import pyarrow as pa

    kind = holder.split("(")[0]
    if kind == "decimal":
        p, s = (int(x) for x in holder[holder.index("(") + 1 : -1].split(","))
        return pa.decimal128(p, s)
    return {
        "text": pa.string(),
        "varchar": pa.string(),
        "bigint": pa.int64(),
        "integer": pa.int32(),
        "smallint": pa.int16(),
        "double": pa.float64(),
        "float32": pa.float32(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "time": pa.time64("us"),
        "timestamp": pa.timestamp("us"),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "timestamp_ns": pa.timestamp("ns"),
        "json": pa.json_(),
        "uuid": pa.uuid(),
    }[kind]


def _arrow_value(value, holder: str):
    if value is None:
        return None
    if isinstance(value, NanoTimestamp):
        return value.nanos
    if isinstance(value, JsonValue):
        return json_text(value)
    if isinstance(value, uuid.UUID):
        return value.bytes
    return value


def write_parquet(table: Table, path: Path) -> dict[int, list[Held]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [pa.array(list(table.rids), pa.int64())]
    for column in table.columns:
        values = [_arrow_value(s.value, column.holder) for s in column.samples]
        typ = arrow_type(column.holder)
        if isinstance(typ, pa.ExtensionType):
            arrays.append(pa.ExtensionArray.from_storage(typ, pa.array(values, typ.storage_type)))
        else:
            arrays.append(pa.array(values, typ))
    names = [RID_SOURCE, *(c.source for c in table.columns)]
    pq.write_table(pa.Table.from_arrays(arrays, names=names), path)
    return {
        rid: [Held(_held_typed(c.samples[i].value, c.holder), c.holder) for c in table.columns]
        for i, rid in enumerate(table.rids)
    }


def _held_typed(value, holder: str):
    if holder == "float32" and isinstance(value, float) and not math.isnan(value):
        import struct

        return struct.unpack("f", struct.pack("f", value))[0]
    return value


def xlsx_cell(text: str | None, target: str, choice: int) -> tuple[object, str | None]:
    """(cell value, the text a person reads) for one workbook cell."""
    if text is None or text == "":
        return None, None  # an empty cell
    kind = target.split("(")[0]
    if choice % 2 and _plain_int(text) and abs(int(text)) < 10**15:
        return int(text), str(int(text))
    if choice % 2 and kind in ("double", "decimal") and _JSON_NUMBER.fullmatch(text) and "e" not in text.lower():
        value = float(text)
        if math.isfinite(value) and Decimal(repr(value)) == Decimal(text) and abs(value) < 1e15 and len(text) < 16:
            shown = format(Decimal(repr(value)).normalize(), "f") if value else "0"
            return value, shown
    if choice % 2 and kind in ("boolean",) and text.lower() in ("true", "false"):
        return text.lower() == "true", text.lower()
    if choice % 2 and kind in ("date", "timestamp", "timestamptz"):
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if (
            parsed is not None
            and parsed.tzinfo is None
            and parsed.microsecond == 0
            and len(text) >= 16
            and parsed.year >= 1900
        ):
            shown = parsed.date().isoformat() if parsed.time() == dt.time() else parsed.isoformat(sep=" ")
            return parsed, shown
    return text, text


def write_xlsx(table: Table, path: Path, choices: list[int]) -> dict[int, list[Held]]:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append([RID_SOURCE, *(c.source for c in table.columns)])
    held = {}
    for i, rid in enumerate(table.rids):
        cells, row = [rid], []
        for j, (column, sample) in enumerate(zip(table.columns, table.row(i))):
            value, shown = xlsx_cell(sample.value, column.type, choices[(i * 5 + j) % len(choices)])
            cells.append(value)
            row.append(Held(shown, "text"))
        sheet.append(cells)
        for j, value in enumerate(cells[1:], start=2):
            if isinstance(value, str):
                sheet.cell(row=i + 2, column=j).data_type = "s"  # text, even when it looks like a formula
        held[rid] = row
    workbook.save(path)
    return held


# SQL types of each holder, per database
_PG_TYPES = {
    "text": "text",
    "varchar": "text",
    "bigint": "bigint",
    "integer": "integer",
    "smallint": "smallint",
    "double": "double precision",
    "boolean": "boolean",
    "date": "date",
    "time": "time",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "json": "jsonb",
    "uuid": "uuid",
}
_MARIADB_TYPES = {
    "text": "LONGTEXT",
    "varchar": "LONGTEXT",
    "bigint": "BIGINT",
    "integer": "INT",
    "smallint": "SMALLINT",
    "double": "DOUBLE",
    "date": "DATE",
    "time": "TIME(6)",
    "timestamp": "DATETIME(6)",
}
_DUCKDB_TYPES = {
    "text": "VARCHAR",
    "varchar": "VARCHAR",
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "smallint": "SMALLINT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "json": "JSON",
    "uuid": "UUID",
}
_SQLITE_TYPES = {"text": "TEXT", "bigint": "INTEGER", "double": "REAL"}


def sql_type(database: str, holder: str) -> str:
    if holder.startswith("decimal"):
        return holder.upper() if database != "postgres" else holder.replace("decimal", "numeric")
    return {"postgres": _PG_TYPES, "mariadb": _MARIADB_TYPES, "duckdb": _DUCKDB_TYPES, "sqlite": _SQLITE_TYPES}[
        database
    ][holder]


def _db_value(value, database: str):
    if isinstance(value, Decimal) and database == "duckdb":
        return format(value, "f")  # DuckDB's binding of a Python Decimal rounds; its cast from text does not
    if isinstance(value, JsonValue):
        return json_text(value)
    if isinstance(value, uuid.UUID) and database != "duckdb":
        return str(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None and database == "mariadb":
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _create_sql(database: str, name: str, table: Table, quote: Callable[[str], str]) -> str:
    columns = [f"{quote(RID_SOURCE)} BIGINT"] + [
        f"{quote(c.source)} {sql_type(database, c.holder)}" for c in table.columns
    ]
    return f"CREATE TABLE {quote(name)} ({', '.join(columns)})"


def _rows(table: Table, database: str) -> list[list]:
    return [[rid, *(_db_value(s.value, database) for s in table.row(i))] for i, rid in enumerate(table.rids)]


def _pg_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _my_quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def write_postgres(table: Table, pg: dict, name: str) -> dict[int, list[Held]]:

    with postgres_session(pg) as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute(_create_sql("postgres", name, table, _pg_quote))
        placeholders = ", ".join(["%s"] * (len(table.columns) + 1))
        if table.rids:
            cur.executemany(f"INSERT INTO {_pg_quote(name)} VALUES ({placeholders})", _rows(table, "postgres"))
        # What PostgreSQL holds, read back by its own driver (json as text, parsed exactly here)
        selects = [_pg_quote(RID_SOURCE)] + [
            f"{_pg_quote(c.source)}::text" if c.holder in ("json", "uuid") else _pg_quote(c.source)
            for c in table.columns
        ]
        cur.execute(f"SELECT {', '.join(selects)} FROM {_pg_quote(name)}")
        return {row[0]: [_held_back(v, c.holder) for v, c in zip(row[1:], table.columns)] for row in cur.fetchall()}


def _held_back(value, holder: str) -> Held:
    if value is None:
        return Held(None, holder)
    if holder == "json":
        from etl_platform_tests.fidelity.oracle import parse_json

        return Held(JsonValue(parse_json(value)), holder)
    if holder == "uuid":
        return Held(uuid.UUID(str(value)), holder)
    return Held(value, holder)


def write_mariadb(table: Table, my: dict, name: str) -> dict[int, list[Held]]:
    import pymysql

    conn = pymysql.connect(autocommit=True, charset="utf8mb4", **my)
    try:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            cur.execute(_create_sql("mariadb", name, table, _my_quote) + " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
            if table.rids:
                cur.executemany(
                    f"INSERT INTO {_my_quote(name)} VALUES ({', '.join(['%s'] * (len(table.columns) + 1))})",
                    _rows(table, "mariadb"),
                )
            cur.execute(f"SELECT * FROM {_my_quote(name)}")
            return {
                row[0]: [_mariadb_held(v, c.holder) for v, c in zip(row[1:], table.columns)] for row in cur.fetchall()
            }
    finally:
        conn.close()


def _mariadb_held(value, holder: str) -> Held:
    if isinstance(value, dt.timedelta):  # TIME comes back as a duration
        value = (dt.datetime.min + value).time()
    return Held(value, holder)


def write_sqlite(table: Table, path: Path) -> dict[int, list[Held]]:
    conn = sqlite3.connect(path)
    try:
        conn.execute(_create_sql("sqlite", "data", table, _pg_quote))
        conn.executemany(
            f"INSERT INTO data VALUES ({', '.join(['?'] * (len(table.columns) + 1))})", _rows(table, "sqlite")
        )
        conn.commit()
        # SQLite holds whatever storage class each value ended up in: read back with typeof()
        selects = [_pg_quote(RID_SOURCE)] + [
            f"{_pg_quote(c.source)}, typeof({_pg_quote(c.source)})" for c in table.columns
        ]
        held = {}
        for row in conn.execute(f"SELECT {', '.join(selects)} FROM data"):
            values = row[1:]
            held[row[0]] = [
                Held(
                    values[2 * k],
                    {"integer": "bigint", "real": "double", "text": "text", "null": "text", "blob": "blob"}[
                        values[2 * k + 1]
                    ],
                )
                for k in range(len(table.columns))
            ]
        return held
    finally:
        conn.close()


def write_duckdb(table: Table, path: Path) -> dict[int, list[Held]]:
    import duckdb

    with duckdb.connect(str(path)) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(_create_sql("duckdb", "data", table, _pg_quote))
        if table.rids:
            con.executemany(
                f"INSERT INTO data VALUES ({', '.join(['?'] * (len(table.columns) + 1))})", _rows(table, "duckdb")
            )
        # What the file holds, read back by DuckDB itself (JSON as its text, parsed exactly here)
        selects = [_pg_quote(RID_SOURCE)] + [
            f"{_pg_quote(c.source)}::VARCHAR" if c.holder == "json" else _pg_quote(c.source) for c in table.columns
        ]
        rows = con.execute(f"SELECT {', '.join(selects)} FROM data").fetchall()
    return {row[0]: [_held_back(v, c.holder) for v, c in zip(row[1:], table.columns)] for row in rows}
