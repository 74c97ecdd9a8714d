"""Every call the harness makes into the platform, in one place.

When the platform's internals move, this is the one file of the harness that changes. A load
goes through the plain step function the load asset calls (``steps.extract.load_source``),
with the connector, destination and target built the way ``factory.load_rows`` builds them;
``dagster_load`` runs the same spec as a real Dagster job, to show that both agree.
"""

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from etl_platform.connectors.landing import landing_connector
from etl_platform.connectors.registry import ConnectorError, build
from etl_platform.destinations.base import DestinationError
from etl_platform.destinations.files.reading import read_table
from etl_platform.destinations.files.storage import FilesLocation
from etl_platform.destinations.registry import destination_for
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.destinations.warehouse.tables import TableRef
from etl_platform.intake import fingerprints
from etl_platform.secrets.references import MissingSecret
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.steps import extract, ingest, load_result, load_target

DESTINATION_KINDS = ("warehouse", "postgres", "parquet", "csv")


@dataclass(frozen=True)
class Destination:
    """Where a case loads: the warehouse, a PostgreSQL database, or a folder of file tables."""

    kind: str  # one of DESTINATION_KINDS
    postgres: dict | None = None  # psycopg2 settings of the destination database
    folder: Path | None = None  # root folder of file tables

    def spec(self) -> dict:
        """The pipeline's destination section, without the table."""
        if self.kind == "warehouse":
            return {}
        if self.kind == "postgres":
            return {"connection": "dest"}
        return {"connection": "lake", "format": self.kind}

    def platform_destination(self, schema: str, table: str):
        if self.kind == "warehouse":
            return destination_for(None, None, schema, table, file_format=None, partition_by=[])
        if self.kind == "postgres":
            pg = self.postgres
            options = {"host": pg["host"], "port": pg["port"], "database": pg["dbname"], "user": pg["user"]}
            return destination_for(
                "postgres", build("dest", "postgres", options), schema, table, file_format=None, partition_by=[]
            )
        return destination_for(
            "local",
            build("lake", "local", {"path": str(self.folder)}),
            schema,
            table,
            file_format=self.kind,
            partition_by=[],
        )


def source_connector(connection: tuple[str, dict] | None):
    """The connector of a source connection (kind, options); None is the landing folder."""
    if connection is None:
        return landing_connector()
    kind, options = connection
    return build("src", kind, dict(options))


@dataclass
class Outcome:
    """What one load did: its result, or the error that failed it (as a user reads it)."""

    result: load_result.LoadResult | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


LOAD_ERRORS = (load_result.LoadFailed, ConnectorError, DestinationError, MissingSecret, warehouse_tables.SchemaMismatch)


def load(
    spec: dict,
    *,
    pipeline: str,
    schema: str,
    table: str,
    connection,
    destination: Destination,
    con: duckdb.DuckDBPyConnection,
    run_id: str,
) -> Outcome:
    """One load of ``spec`` (a pipeline's YAML as a dict) into ``schema.table``, as the load asset runs it."""
    parsed = PipelineSpec.model_validate(spec)
    target = load_target.Target(
        TableRef(schema, table), TableRef(schema, f"{table}_rejected"), destination.platform_destination(schema, table)
    )
    try:
        result = extract.load_source(
            parsed,
            pipeline=pipeline,
            connector=source_connector(connection),
            con=con,
            target=target,
            run_id=run_id,
            log=lambda message: None,
            progress_interval=3600,
        )
    except LOAD_ERRORS as err:
        return Outcome(error=f"{type(err).__name__}: {err}")
    return Outcome(result=result)


@dataclass
class Stored:
    """A destination table as read back: its columns (name, type) and rows (name -> value)."""

    columns: list[tuple[str, str]] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    exists: bool = True
    error: str | None = None  # the table exists but cannot be read back


def stored(destination: Destination, con: duckdb.DuckDBPyConnection, schema: str, table: str) -> Stored:
    """The committed rows of the destination table, read the way a user reads them."""
    if destination.kind == "warehouse":
        ref = TableRef(schema, table)
        if not warehouse_tables.table_exists(con, ref):
            return Stored(exists=False)
        return _duckdb_rows(con, ref.sql)
    if destination.kind == "postgres":
        return _postgres_rows(destination.postgres, schema, table)
    try:
        relation = read_table(con, FilesLocation.local(destination.folder), schema, table)
    except FileNotFoundError:
        return Stored(exists=False)
    try:
        return _duckdb_rows(con, relation)
    except duckdb.Error as err:
        return Stored(error=f"{type(err).__name__}: {str(err).splitlines()[0]} {' '.join(str(err).splitlines()[1:2])}")


# Dates and timestamps are read as numbers and turned into Python values here, so a value
# outside Python's range (year 1 to 9999) shows as what it is instead of failing the read.
_DUCKDB_READ = {
    "JSON": "{}::VARCHAR",
    "DATE": "({} - DATE '1970-01-01')",
    "TIMESTAMP": "epoch_us({})",
    "TIMESTAMP WITH TIME ZONE": "epoch_us({})",
}


def _duckdb_rows(con: duckdb.DuckDBPyConnection, relation: str) -> Stored:
    cur = con.cursor()
    try:
        columns = [(r[0], r[1]) for r in cur.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
        selects = [_DUCKDB_READ.get(t, "{}").format('"' + n.replace('"', '""') + '"') for n, t in columns]
        rows = cur.execute(f"SELECT {', '.join(selects)} FROM {relation}").fetchall()
    finally:
        cur.close()
    names = [n for n, _ in columns]
    converters = [_FROM_NUMBER.get(t) for _, t in columns]
    return Stored(
        columns, [{n: (c(v) if c and v is not None else v) for n, c, v in zip(names, converters, row)} for row in rows]
    )


@dataclass(frozen=True)
class OutOfRange:
    """A stored date or timestamp Python cannot hold (before year 1 or after 9999)."""

    text: str


def _days(value: int):
    try:
        return dt.date(1970, 1, 1) + dt.timedelta(days=value)
    except OverflowError:
        return OutOfRange(f"{value} days from 1970-01-01")


def _micros(value: int, zone=None):
    try:
        moment = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=value)
    except OverflowError:
        return OutOfRange(f"{value} microseconds from 1970-01-01")
    return moment.replace(tzinfo=zone)


_FROM_NUMBER = {
    "DATE": _days,
    "TIMESTAMP": _micros,
    "TIMESTAMP WITH TIME ZONE": lambda v: _micros(v, dt.UTC),
}


def _pg_temporal(value: str, pg_type: str):
    """A PostgreSQL date/time value from its text (session time zone UTC)."""
    try:
        if pg_type == "date":
            return dt.date.fromisoformat(value)
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return OutOfRange(value)


def _postgres_rows(pg: dict, schema: str, table: str) -> Stored:
    from etl_platform_tests.fidelity.sources import postgres_session

    with postgres_session(pg) as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            ['"' + schema.replace('"', '""') + '"."' + table.replace('"', '""') + '"'],
        )
        columns = cur.fetchall()
        if not columns:
            return Stored(exists=False)
        as_text = ("json", "jsonb", "uuid", "date", "timestamp without time zone", "timestamp with time zone")
        selects = [f'"{n.replace(chr(34), chr(34) * 2)}"' + ("::text" if t in as_text else "") for n, t in columns]
        cur.execute(f'SELECT {", ".join(selects)} FROM "{schema}"."{table}"')
        names = [n for n, _ in columns]
        temporal = {n: t for n, t in columns if t in as_text[3:]}
        rows = [
            {n: (_pg_temporal(v, temporal[n]) if n in temporal and v is not None else v) for n, v in zip(names, row)}
            for row in cur.fetchall()
        ]
        return Stored(list(columns), rows)


@dataclass(frozen=True)
class RejectedRow:
    run_id: str
    source_file: str | None
    source_line: int | None
    kind: str
    reasons: list[str]
    record: str | None


def rejected(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[RejectedRow]:
    """Every row of the warehouse's rejected table of ``schema.table`` (none when it does not exist)."""
    ref = TableRef(schema, f"{table}_rejected")
    if not warehouse_tables.table_exists(con, ref):
        return []
    rows = con.execute(f"SELECT run_id, source_file, source_line, kind, reasons, record FROM {ref.sql}").fetchall()
    return [RejectedRow(*row) for row in rows]


def saved_cursor(destination: Destination, con, schema: str, table: str, pipeline: str) -> str | None:
    return destination.platform_destination(schema, table).saved_cursor(con, pipeline)


def reset_state(destination: Destination, con, schema: str, table: str, pipeline: str, to: str | None) -> None:
    """``etl-platform state reset PIPELINE [--to V]``: the cursor forgotten or rewound, the loaded files forgotten."""
    destination.platform_destination(schema, table).reset_state(con, pipeline, to)
    fingerprints.forget(con, pipeline)


def lookback_supported() -> bool:
    """Whether the spec has ``warehouse_tables.lookback`` yet."""
    from etl_platform.spec.pipeline import SyncSpec

    return "lookback" in SyncSpec.model_fields


def superseded_supported() -> bool:
    """Whether a merge records the rows it supersedes within one load (kind 'superseded')."""
    import inspect

    from etl_platform.steps import staging

    return "superseded" in inspect.getsource(staging) or "superseded" in inspect.getsource(ingest)


@contextlib.contextmanager
def warehouse(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse connection of a module's cases, opened the way the warehouse resource opens it."""
    from etl_platform.resources.warehouse import WarehouseResource

    with WarehouseResource(database=str(path)).get_connection() as con:
        yield con


# --- the same load as a Dagster run ------------------------------------------------------


def dagster_load(
    spec: dict,
    *,
    pipeline: str,
    connection: tuple[str, dict] | None,
    destination: Destination,
    warehouse_path: Path,
    instance,
) -> tuple[bool, str]:
    """Run ``spec`` as the pipeline's Dagster job, in process; returns (success, failure message)."""
    import dagster as dg

    from etl_platform.connectors.connections import as_resource, resource_key
    from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
    from etl_platform.resources.warehouse import WarehouseResource
    from etl_platform.spec.tables import table_names

    parsed = PipelineSpec.model_validate(spec)
    resources: dict = {"warehouse": WarehouseResource(database=str(warehouse_path))}
    kind = "local"
    if connection is not None:
        connector = source_connector(connection)
        kind = connector.kind
        resources[resource_key("src")] = as_resource(connector)
    destination_kind = None
    if destination.kind != "warehouse":
        name = parsed.destination.connection
        dest_connector = destination.platform_destination("x", "x").connector
        destination_kind = dest_connector.kind
        resources[resource_key(name)] = as_resource(dest_connector)
    ctx = PipelineContext(
        name=pipeline,
        names=table_names(parsed, pipeline),
        defined_at={},
        connection_kind=kind,
        destination_kind=destination_kind,
    )
    defs = dg.Definitions.merge(build_pipeline_defs(parsed, ctx), dg.Definitions(resources=resources))
    result = defs.resolve_job_def(f"{pipeline}_job").execute_in_process(instance=instance, raise_on_error=False)
    if result.success:
        return True, ""
    messages = []
    for failure in result.get_step_failure_events():
        error = failure.step_failure_data.error
        while error is not None:
            messages.append(error.message.strip())
            error = error.cause
    return False, "\n".join(messages)


def rest_connection(base_url: str) -> tuple[str, dict]:
    return "rest", {"base_url": base_url, "max_retries": 0, "page_size": 25}
