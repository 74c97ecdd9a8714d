"""The warehouse tables a pipeline writes, and the tables a SQL transform reads."""

import json
from dataclasses import dataclass
from functools import cache

import duckdb

from etl_platform.spec.pipeline import PipelineSpec


@dataclass(frozen=True)
class TableNames:
    """The warehouse tables one pipeline writes."""

    schema: str
    table: str
    rejected: str
    transforms: tuple[str, ...]

    @property
    def own(self) -> set[str]:
        return {self.table, self.rejected, *self.transforms}


def table_names(spec: PipelineSpec, pipeline: str) -> TableNames:
    dest = spec.destination
    return TableNames(
        schema=dest.schema_name or pipeline,
        table=dest.table,
        rejected=dest.rejected_table or f"{dest.table}_rejected",
        transforms=tuple(t.name for t in spec.transforms),
    )


@cache
@cache
def _scratch_database() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:")


def _scratch() -> duckdb.DuckDBPyConnection:
    """A connection to one in-memory database shared by all checks (opening a database per
    check costs more than the check); a cursor of its own, so threads do not share one."""
    return _scratch_database().cursor()


@cache
def transform_references(sql: str) -> frozenset[str]:
    """Tables a SELECT reads, as 'table' or 'schema.table', from DuckDB's parse tree (no binding,
    so it works before any table exists). Names of CTEs are not tables."""
    parsed = json.loads(_scratch().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    if parsed.get("error"):
        raise duckdb.ParserException(parsed.get("error_message", "cannot parse the SQL"))
    tables: set[str] = set()
    ctes: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("type") == "BASE_TABLE":
                schema, table = node.get("schema_name") or "", node.get("table_name") or ""
                tables.add(f"{schema}.{table}" if schema else table)
            for entry in (node.get("cte_map") or {}).get("map", []):
                ctes.add(entry["key"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(parsed)
    return frozenset(t for t in tables if t not in ctes)
