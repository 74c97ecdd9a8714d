"""PostgreSQL columns and names for a warehouse_tables.

DuckDB types map to the PostgreSQL types a table is created with; names are checked
against PostgreSQL's limits before anything is changed; the staging and replacement
tables are named beside the target; and the load's columns are reconciled with an
existing table's by schema policy.
"""

import dataclasses
import hashlib
import re

from psycopg2 import sql

from etl_platform.destinations.base import DestinationError
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.spec.pipeline import SchemaChanges

MAX_NAME_BYTES = 63  # PostgreSQL cuts longer names short without an error


class PostgresDestinationError(DestinationError):
    """A PostgreSQL load or state change failed. The message never holds the password."""


@dataclasses.dataclass(frozen=True)
class Column:
    """A load column as PostgreSQL stores it."""

    name: str
    pg_type: str  # spelled as format_type() prints it, so it compares with an existing table's
    send_as: str | None = None  # DuckDB type it is cast to for the copy when the copy cannot carry it as it is

    @property
    def staged_type(self) -> str:
        return "text" if self.send_as else self.pg_type


_PG_TYPES = {
    "BOOLEAN": "boolean",
    "TINYINT": "smallint",
    "UTINYINT": "smallint",
    "SMALLINT": "smallint",
    "USMALLINT": "integer",
    "INTEGER": "integer",
    "UINTEGER": "bigint",
    "BIGINT": "bigint",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "DATE": "date",
    "TIME": "time without time zone",
    "TIMESTAMP": "timestamp without time zone",
    "TIMESTAMP_S": "timestamp without time zone",
    "TIMESTAMP_MS": "timestamp without time zone",
    "TIMESTAMP_NS": "timestamp without time zone",  # PostgreSQL keeps microseconds
    "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
    "VARCHAR": "text",
    "BLOB": "bytea",
    "INTERVAL": "interval",
}
# Types the binary copy cannot encode from Arrow: they travel as text and PostgreSQL casts them.
_SENT_AS_TEXT = {
    "JSON": ("jsonb", "JSON"),
    "UUID": ("uuid", "VARCHAR"),
    "UBIGINT": ("numeric(20,0)", "VARCHAR"),
    "HUGEINT": ("numeric(39,0)", "VARCHAR"),
    "UHUGEINT": ("numeric(39,0)", "VARCHAR"),
    "TIME WITH TIME ZONE": ("time with time zone", "VARCHAR"),
}
_DECIMAL = re.compile(r"DECIMAL\((\d+),(\d+)\)")
_NESTED = re.compile(r"^(STRUCT|MAP|UNION)\(|\]$")


def pg_column(name: str, duckdb_type: str) -> Column:
    """The PostgreSQL column for a DuckDB one; lists, structs and maps become jsonb."""
    if duckdb_type in _PG_TYPES:
        return Column(name, _PG_TYPES[duckdb_type])
    if duckdb_type in _SENT_AS_TEXT:
        return Column(name, *_SENT_AS_TEXT[duckdb_type])
    if decimal := _DECIMAL.fullmatch(duckdb_type):
        return Column(name, f"numeric({decimal[1]},{decimal[2]})")
    if duckdb_type.startswith("ENUM("):
        return Column(name, "text")
    if _NESTED.search(duckdb_type):
        return Column(name, "jsonb", "JSON")
    raise PostgresDestinationError(
        f"column {name!r} has DuckDB type {duckdb_type}, which has no PostgreSQL type here; cast it in the mapping"
    )


def _check_name(name: str) -> None:
    if "\x00" in name:
        raise PostgresDestinationError(f"name {name!r} contains a NUL byte")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise PostgresDestinationError(f"name {name!r} is longer than PostgreSQL's {MAX_NAME_BYTES} bytes")


def _beside(prefix: str, table: str) -> str:
    """The name of a work table next to ``table``, short enough not to be cut."""
    name = prefix + table
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    return prefix + hashlib.sha256(table.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class _Names:
    schema: str
    table: str

    @property
    def target(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.table)

    @property
    def staging_name(self) -> str:
        return _beside("__stage_", self.table)

    @property
    def staging(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.staging_name)

    @property
    def new(self) -> sql.Identifier:
        return sql.Identifier(self.schema, _beside("__new_", self.table))

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}"


def _names(columns: list[str] | list[Column]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c.name if isinstance(c, Column) else c) for c in columns)


def _definitions(columns: list[Column], staged: bool = False) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.staged_type if staged else c.pg_type))
        for c in columns
    )


def _reconcile(
    columns: list[Column], existing: dict[str, str] | None, policy: SchemaChanges, where: str, *, keep_dropped: bool
) -> tuple[warehouse_tables.Drift, list[Column], list[Column]]:
    """How the load differs from the table, the load columns that are written, and the
    table's columns after the load (as ``warehouse_tables.apply_schema_policy``).

    With ``keep_dropped`` (a replace) the new table keeps the old one's columns that the
    load lacks, NULL in every row. Raises SchemaMismatch before anything is changed.
    """
    if existing is None:
        return warehouse_tables.Drift(), columns, columns
    loaded = {c.name: c.pg_type for c in columns}
    found = warehouse_tables.Drift.between(loaded, existing)
    found.refuse(policy, where)
    kept = [c for c in columns if c.name in existing or policy == "evolve"]
    if keep_dropped:  # the new table: the load's columns, then the old table's the load lacks
        return found, kept, kept + [Column(name, pg_type) for name, pg_type in existing.items() if name not in loaded]
    new = [c for c in kept if c.name not in existing]
    return found, kept, [Column(name, pg_type) for name, pg_type in existing.items()] + new
