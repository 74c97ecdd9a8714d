"""PostgreSQL columns as DuckDB must receive them to hold them exactly, read through ADBC.

ADBC hands most types over exactly: integers, floats, booleans, text, bytea, uuid, json,
time, interval, and dates and timestamps within DuckDB's range. Others would arrive
changed: numeric as text, money as integer cents, oid as a signed integer, bit, inet, xml
and the like as their binary wire format, arrays flattened to one dimension, infinite or
very late timestamps wrapped around to 290279 BC. For those the read asks PostgreSQL for a
form that survives the trip (its own text, or a wider type) and tells DuckDB which type to
cast it to. What DuckDB has no exact type for loads as PostgreSQL's text.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from etl_platform.connectors.arrow_capsule import Column, schema_columns

# DuckDB's latest finite timestamp. ADBC shifts PostgreSQL's timestamps from its 2000 epoch to
# 1970's in an int64, which wraps for anything later, and for ±infinity.
_LAST_TIMESTAMP = "294247-01-10 04:00:54.775806"
# ADBC reads an interval's time part as int64 nanoseconds: up to 2,562,047 hours.
_INTERVAL_HOURS = 2_562_047
_DECIMAL_DIGITS = 38  # DuckDB's widest DECIMAL
_SOURCE = "__etl_source"

NUMERIC_AS_TEXT = (
    "numeric without precision: loaded as text; declare a decimal(p,s) target column to load it as a number"
)


@dataclass
class ExactRead:
    """The SELECT to run on PostgreSQL, and how DuckDB types its result: ``hints`` are the DuckDB
    types text columns are cast to, ``notices`` say what loads differently from its source type."""

    sql: str
    hints: dict[str, str] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


def exact_read(connection, sql: str, quote: Callable[[str], str]) -> ExactRead:
    """Plan the read of ``sql`` on an open ADBC connection.

    Opens a REPEATABLE READ transaction (left open for the read itself), so the range check of
    date and time columns and the read see the same rows and the tables cannot change type in
    between. Raises ValueError, naming the column, for values no form can deliver.
    """
    _execute(connection, "BEGIN ISOLATION LEVEL REPEATABLE READ")
    columns = _result_columns(connection, sql)
    checks = {c.name: check for c in columns if (check := _range_check(c, quote(c.name)))}
    beyond = _failing_checks(connection, sql, checks)
    read = ExactRead(sql)
    exprs, rewritten = [], False
    for c in columns:
        column = f"{_SOURCE}.{quote(c.name)}"
        if c.metadata.get("POSTGRESQL:type") == "interval" and c.name in beyond:
            raise ValueError(
                f"column {c.name!r} holds intervals longer than {_INTERVAL_HOURS:,} hours, which the PostgreSQL "
                f"driver cannot read; cast it in a query, e.g. {quote(c.name)}::text"
            )
        expr, hint, notice = _delivery(
            c, column, as_text=c.name in beyond, money_scale=lambda: _money_scale(connection)
        )
        rewritten |= expr is not None
        exprs.append(f"{expr} AS {quote(c.name)}" if expr else column)
        if hint:
            read.hints[c.name] = hint
        if notice:
            read.notices.append(f"column {c.name!r}: {notice}")
    if rewritten:
        read.sql = f"SELECT {', '.join(exprs)} FROM ({sql}) AS {_SOURCE}"
    return read


def _delivery(
    c: Column, column: str, *, as_text: bool, money_scale: Callable[[], int]
) -> tuple[str | None, str | None, str | None]:
    """How one column travels: the expression PostgreSQL sends instead of the column (None: the
    column as it is), the DuckDB type to cast what arrives to, and a notice for the user."""
    pg_type = c.metadata.get("POSTGRESQL:type", "")
    if c.format.startswith("+"):
        # Arrays (ADBC drops their dimensions and bounds, and reads their elements as it reads
        # top-level ones) and composites: PostgreSQL's own text of them.
        return f"{column}::text", None, None
    if pg_type == "numeric":
        typmod = int(c.metadata.get("POSTGRESQL:typmod") or -1)
        decimal = duckdb_decimal(typmod)
        if decimal:
            return None, decimal, None  # ADBC's text of it, NaN included (a row DuckDB rejects)
        why = (
            NUMERIC_AS_TEXT
            if typmod < 4
            else (f"{_numeric_name(typmod)} is wider than DuckDB's DECIMAL ({_DECIMAL_DIGITS} digits): loaded as text")
        )
        return f"{column}::text", None, why
    if pg_type == "money":
        return f"{column}::numeric", f"DECIMAL(19,{money_scale()})", None  # ADBC reads money as integer cents
    if pg_type == "float4":
        # Exactly widened here: the load's implicit FLOAT columns are DOUBLE, and DuckDB would
        # widen a FLOAT through its shortest text (3.1415927, not 3.1415927410125732).
        return f"{column}::float8", None, None
    if pg_type == "oid":
        return f"{column}::int8", None, None  # unsigned 32-bit: ADBC reads it as a signed one
    if pg_type == "timetz":
        return f"{column}::text", "TIMETZ", None
    if pg_type in ("date", "timestamp", "timestamptz") and as_text:
        return _date_text(column, pg_type), {"date": "DATE", "timestamp": "TIMESTAMP"}.get(pg_type, "TIMESTAMPTZ"), None
    if pg_type in ("json", "jsonb"):
        return None, "JSON", None
    if c.metadata.get("ARROW:extension:name") == "arrow.opaque":
        return f"{column}::text", None, None  # bit, inet, xml, citext, ranges, ...: ADBC sends their wire bytes
    return None, None, None


def duckdb_decimal(typmod: int) -> str | None:
    """The DuckDB DECIMAL that holds every value of numeric(p,s) with this typmod exactly, or None
    (no precision declared, or more than 38 digits). PostgreSQL 15 allows a negative scale (values
    rounded to tens, hundreds, ...) and a scale above the precision (values below 1)."""
    if typmod < 4:
        return None
    precision, scale = _precision_scale(typmod)
    digits = max(precision - scale, 0) + max(scale, 0)
    return f"DECIMAL({digits},{max(scale, 0)})" if digits <= _DECIMAL_DIGITS else None


def _precision_scale(typmod: int) -> tuple[int, int]:
    packed = typmod - 4
    return (packed >> 16) & 0xFFFF, ((packed & 0x7FF) ^ 1024) - 1024  # the scale is an 11-bit signed field


def _numeric_name(typmod: int) -> str:
    precision, scale = _precision_scale(typmod)
    return f"numeric({precision},{scale})"


def _range_check(c: Column, column: str) -> str | None:
    """A predicate over all rows, true when the column holds a value ADBC would not deliver exactly."""
    pg_type = c.metadata.get("POSTGRESQL:type", "")
    if pg_type in ("timestamp", "timestamptz"):
        last = f"'{_LAST_TIMESTAMP}{'+00' if pg_type == 'timestamptz' else ''}'::{pg_type}"
        return f"coalesce(max({column}) > {last} OR min({column}) = '-infinity', false)"
    if pg_type == "date":
        return f"coalesce(NOT isfinite(max({column})) OR NOT isfinite(min({column})), false)"
    if pg_type == "interval":
        return f"coalesce(max(abs(extract(hour FROM {column}))) >= {_INTERVAL_HOURS}, false)"
    return None


def _date_text(column: str, pg_type: str) -> str:
    """The column as text DuckDB parses back exactly, whatever the connection's DateStyle: ISO with
    DuckDB's '(BC)' after the date (DuckDB reads PostgreSQL's trailing ' BC' as AD), UTC for
    timestamptz, and 'infinity' / '-infinity' as they are."""
    bc = f"CASE WHEN {column} < '0001-01-01' THEN ' (BC)' ELSE '' END"
    if pg_type == "date":
        year = f"abs(extract(year FROM {column}))::text"
        part = {"month": 2, "day": 2}
        finite = (
            " || '-' || ".join(
                [f"lpad({year}, greatest(4, length({year})), '0')"]
                + [f"lpad(extract({p} FROM {column})::text, {n}, '0')" for p, n in part.items()]
            )
            + f" || {bc}"
        )
    else:
        wall = f"({column} AT TIME ZONE 'UTC')" if pg_type == "timestamptz" else column
        finite = f"to_char({wall}, 'YYYY-MM-DD') || {bc} || ' ' || to_char({wall}, 'HH24:MI:SS.US')" + (
            " || '+00'" if pg_type == "timestamptz" else ""
        )
    return f"CASE WHEN NOT isfinite({column}) THEN {column}::text ELSE {finite} END"


def _money_scale(connection) -> int:
    """Digits after the point of money on this connection (lc_monetary; 2 for most currencies)."""
    (scale,) = _first_row(connection, "SELECT scale(0::money::numeric) AS scale")
    return int(scale)


def _failing_checks(connection, sql: str, checks: dict[str, str]) -> set[str]:
    if not checks:
        return set()
    quoted = [f'{check} AS "{i}"' for i, check in enumerate(checks.values())]
    row = _first_row(connection, f"SELECT {', '.join(quoted)} FROM ({sql}) AS {_SOURCE}")
    return {name for name, failing in zip(checks, row, strict=True) if failing}


def _result_columns(connection, sql: str) -> list[Column]:
    import adbc_driver_manager

    with adbc_driver_manager.AdbcStatement(connection) as statement:
        statement.set_sql_query(sql)
        schema = statement.execute_schema()
        return schema_columns(schema.__arrow_c_schema__())


def _execute(connection, sql: str) -> None:
    import adbc_driver_manager

    with adbc_driver_manager.AdbcStatement(connection) as statement:
        statement.set_sql_query(sql)
        statement.execute_update()


def _first_row(connection, sql: str) -> tuple:
    # DuckDB reads the small answer from ADBC's Arrow stream; pyarrow stays unimported.
    import adbc_driver_manager
    import duckdb

    with adbc_driver_manager.AdbcStatement(connection) as statement, duckdb.connect() as reader:
        statement.set_sql_query(sql)
        handle, _ = statement.execute_query()
        reader.register("answer", handle.__arrow_c_stream__())
        return reader.execute("SELECT * FROM answer").fetchall()[0]
