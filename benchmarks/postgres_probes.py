"""What one child process of ``benchmarks.postgres`` does: prepare the PostgreSQL tables,
or load one of them into a fresh DuckDB file by one path.

As in ``probes.py``, every probe imports what it needs inside the function, before its
timer starts, and returns a JSON-able dict whose ``seconds`` is the timed part only. A
load's ``seconds`` runs from connecting to PostgreSQL until the DuckDB file is closed
(closing checkpoints the new table into the file); ``close_seconds`` is that last part.

``pg`` is always the server as ``{"host", "port", "user", "database"}``; a password, if
any, comes from ``PGPASSWORD``, which every driver here reads.
"""

import json
import os
import time
from pathlib import Path
from urllib.parse import quote

PIPELINE = "pg_events"
JOB = f"{PIPELINE}_job"
TABLE_KEY = f"{PIPELINE}/events"
GENERATOR_VERSION = 1
EVENT_TYPES = ("view", "view", "view", "click", "click", "add_to_cart", "purchase", "refund")

# Columns of one generated row, a function of its id g only, so any row can be made again.
ROW_COLUMNS = (
    "g",
    "1 + abs(mod(hashint8extended(g, 1), 50000))",
    f"(ARRAY[{', '.join(repr(t) for t in EVENT_TYPES)}])[1 + abs(mod(hashint8extended(g, 2), {len(EVENT_TYPES)}))]",
    "CASE WHEN mod(hashint8extended(g, 3), 10) <> 0 THEN abs(mod(hashint8extended(g, 3), 10000000)) / 100.0 END",
    "CASE WHEN mod(hashint8extended(g, 4), 25) <> 0"
    " THEN left(md5(g::text) || md5((g + 1)::text), 20 + abs(mod(hashint8extended(g, 4), 41))::int) END",
    "timestamptz '2024-01-01 00:00:00+00' + g * interval '15 seconds'",
    "timestamptz '2024-01-01 00:00:00+00' + g * interval '15 seconds' + abs(mod(hashint8extended(g, 5), 86400)) * "
    "interval '1 second'",
)
ROW_SQL = ", ".join(ROW_COLUMNS)
COLUMNS_SQL = """(id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL, event_type TEXT NOT NULL, amount NUMERIC(12,2),
    note TEXT, occurred_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)"""
# What the fingerprint compares: a table changed or left half-restored differs in one of these.
STATE_SQL = "SELECT count(*), max(id), max(updated_at)::text, sum(amount)::text FROM {table}"


# -- connections ------------------------------------------------------------------------


def _uri(pg: dict, scheme: str = "postgresql") -> str:
    password = os.environ.get("PGPASSWORD")
    auth = quote(pg["user"], safe="") + (":" + quote(password, safe="") if password else "")
    return f"{scheme}://{auth}@{pg['host']}:{pg['port']}/{quote(pg['database'], safe='')}"


def _psycopg2(pg: dict, database: str | None = None):
    import psycopg2

    return psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"], dbname=database or pg["database"])


def _qualified(table: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in table.split("."))


# -- preparing the source ---------------------------------------------------------------


def _state(cur, table: str) -> list:
    cur.execute(STATE_SQL.format(table=_qualified(table)))
    return list(cur.fetchone())


def _fingerprint(cur, table: str) -> dict | None:
    """The fingerprint recorded when the table was generated (its comment), if it still holds."""
    cur.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", [table])
    comment = cur.fetchone()[0]
    try:
        recorded = json.loads(comment) if comment else None
    except ValueError:
        return None
    if not isinstance(recorded, dict) or recorded.get("generator") != GENERATOR_VERSION:
        return None
    return recorded if recorded.get("state") == _state(cur, table) else None


def _generate(cur, table: str, rows: int) -> dict:
    name = _qualified(table)
    cur.execute(f"DROP TABLE IF EXISTS {name}")
    cur.execute(f"CREATE TABLE {name} {COLUMNS_SQL}")
    cur.execute(f"INSERT INTO {name} SELECT {ROW_SQL} FROM generate_series(1, %s::bigint) g", [rows])
    cur.execute(f"CREATE INDEX ON {name} (updated_at)")
    fingerprint = {"generator": GENERATOR_VERSION, "rows": rows, "state": _state(cur, table)}
    cur.execute(f"COMMENT ON TABLE {name} IS %s", [json.dumps(fingerprint)])
    return fingerprint


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


def _read_through(cur, table: str) -> None:
    cur.copy_expert(f"COPY (SELECT * FROM {_qualified(table)}) TO STDOUT (FORMAT binary)", _Discard(), size=1 << 20)


def prepare(pg: dict, tables: dict[str, int]) -> dict:
    """Create the database if missing, (re)generate each table whose fingerprint does not
    match its row count, and read every table through once so that all paths find it
    equally cached. ``tables`` maps ``schema.table`` to rows."""
    from psycopg2 import sql

    admin = _psycopg2(pg, "postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [pg["database"]])
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(pg["database"])))
    admin.close()
    started = time.perf_counter()
    generated, sizes = [], {}
    conn = _psycopg2(pg)
    conn.autocommit = True
    with conn.cursor() as cur:
        for table, rows in tables.items():
            found = _fingerprint(cur, table)
            if found is None or found["rows"] != rows:
                _generate(cur, table, rows)
                cur.execute(f"VACUUM (FREEZE, ANALYZE) {_qualified(table)}")
                cur.execute("CHECKPOINT")
                generated.append(table)
            _read_through(cur, table)
            cur.execute("SELECT pg_total_relation_size(%s::regclass)", [table])
            sizes[table] = cur.fetchone()[0]
        cur.execute("SELECT version()")
        version = cur.fetchone()[0]
    conn.close()
    return {"seconds": time.perf_counter() - started, "generated": generated, "bytes": sizes, "server": version}


def change(pg: dict, table: str, share: float) -> dict:
    """Update half of ``share`` of the rows (ids spread evenly) and insert the other half
    as new ids, all with an updated_at after every existing one."""
    conn = _psycopg2(pg)
    with conn, conn.cursor() as cur:
        name = _qualified(table)
        cur.execute(f"SELECT count(*), max(id), max(updated_at) FROM {name}")
        rows, max_id, newest = cur.fetchone()
        changed = max(2, round(rows * share))
        updated, inserted = changed // 2, changed - changed // 2
        cur.execute(
            f"UPDATE {name} SET amount = coalesce(amount, 0) + 1, updated_at = %(newest)s + interval '1 minute' + id * "
            "interval '1 microsecond' "
            f"WHERE id IN (SELECT 1 + (i * %(rows)s) / %(updated)s FROM generate_series(0::bigint, %(updated)s - 1) i)",
            {"newest": newest, "rows": rows, "updated": updated},
        )
        cur.execute(
            f"INSERT INTO {name} SELECT {', '.join(ROW_COLUMNS[:-1])}, %(newest)s + interval '1 minute' + g * interval "
            "'1 microsecond' "
            f"FROM generate_series(%(first)s::bigint, %(last)s::bigint) g",
            {"newest": newest, "first": max_id + 1, "last": max_id + inserted},
        )
    conn.close()
    return {"rows": rows, "updated": updated, "inserted": inserted}


def restore(pg: dict, table: str) -> dict:
    """Undo ``change``: delete the rows it touched and make the original ones again."""
    conn = _psycopg2(pg)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", [table])
        recorded = json.loads(cur.fetchone()[0])
        rows, newest = recorded["rows"], recorded["state"][2]
        name = _qualified(table)
        cur.execute(f"DELETE FROM {name} WHERE id > %s OR updated_at > %s::timestamptz RETURNING id", [rows, newest])
        gone = [row[0] for row in cur.fetchall() if row[0] <= rows]
        cur.execute(f"INSERT INTO {name} SELECT {ROW_SQL} FROM unnest(%s::bigint[]) g", [gone])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"VACUUM (FREEZE, ANALYZE) {_qualified(table)}")
        cur.execute("CHECKPOINT")
        intact = _fingerprint(cur, table) is not None
    conn.close()
    if not intact:
        raise SystemExit(f"{table} does not match its fingerprint after restoring it")
    return {"restored": len(gone)}


# -- our pipeline -----------------------------------------------------------------------


def _pipeline_job(pg: dict, table: str, sync: dict, memory_limit: str | None = None):
    """Our pipeline reading ``table`` through a postgres connection, built by the factory as
    a code location builds it, and its job; ``memory_limit`` overrides the warehouse's."""
    import dagster as dg

    from etl_platform.connectors.connections import as_resource, resource_key
    from etl_platform.connectors.registry import build
    from etl_platform.dagster_private.io_manager import deferred_io_manager
    from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
    from etl_platform.resources.warehouse import WarehouseResource
    from etl_platform.spec.pipeline import PipelineSpec
    from etl_platform.spec.tables import table_names

    spec = PipelineSpec.model_validate(
        {
            "source": {"connection": "src", "table": table},
            "sync": sync,
            "destination": {"table": "events", "lineage_columns": False},
        }
    )
    options = {"host": pg["host"], "port": pg["port"], "database": pg["database"], "user": pg["user"]}
    if os.environ.get("PGPASSWORD"):
        options["password"] = {"env": "PGPASSWORD"}
    connector = build("src", "postgres", options)
    ctx = PipelineContext(
        name=PIPELINE, names=table_names(spec, PIPELINE), defined_at={}, connection_kind=connector.kind
    )
    warehouse = WarehouseResource(memory_limit=memory_limit) if memory_limit else WarehouseResource()
    resources = {"warehouse": warehouse, resource_key("src"): as_resource(connector), "io_manager": deferred_io_manager}
    defs = dg.Definitions.merge(build_pipeline_defs(spec, ctx), dg.Definitions(resources=resources))
    return defs.resolve_job_def(JOB)


def _run_job(job) -> tuple[float, dict]:
    """Execute the job on an ephemeral instance; the seconds of execute_in_process and the
    load's metadata. A failed run ends the process with Dagster's message."""
    import dagster as dg

    instance = dg.DagsterInstance.ephemeral()
    started = time.perf_counter()
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    seconds = time.perf_counter() - started
    if not result.success:
        failures = [e.message for e in result.all_events if e.is_failure]
        raise SystemExit("our pipeline failed: " + "\n".join(str(f) for f in failures))
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key.to_user_string() == TABLE_KEY:
            return seconds, {k: v.value for k, v in materialization.metadata.items()}
    raise SystemExit(f"no materialization of {TABLE_KEY}")


def ours(pg: dict, table: str, sync: dict, memory_limit: str | None = None) -> dict:
    """A Dagster run of our pipeline into the warehouse under ETL_HOME. Building the
    definitions and the instance is not timed, the whole execute_in_process is."""
    import dagster as dg

    job = _pipeline_job(pg, table, sync, memory_limit)
    seconds, metadata = _run_job(job)
    fields = (
        "duration_seconds",
        "rows_read",
        "rows_accepted",
        "rows_rejected",
        "rows_written",
        "dagster/row_count",
        "cursor_before",
        "cursor_after",
    )
    return {
        "seconds": seconds,
        **{name.removeprefix("dagster/"): metadata[name] for name in fields if name in metadata},
        "column_types": _warehouse_types(),
        "dagster_version": dg.__version__,
    }


PROFILE_PHASES = {
    "dagster": "Dagster around the step (run and step events, resources, asset checks)",
    "warehouse_connect": "opening the warehouse",
    "driver_import": "importing the PostgreSQL driver (adbc_driver_postgresql, low-level API)",
    "pg_connect": "connecting to PostgreSQL and starting the query",
    "read": "reading: the driver's next batch (binary COPY decoded to Arrow), inside the stage insert",
    "stage_insert": "staging: DuckDB's side of the stage insert (casts, writing the stage table)",
    "validate_commit": "rules, rejected rows, swap and COMMIT (one transaction)",
    "other_sql": "other statements (describe, create stage, counts, summary)",
    "warehouse_close": "closing the warehouse (checkpoint)",
    "python": "the step's remaining Python (spec copies, metadata)",
}


def ours_profile(pg: dict, table: str, sync: dict) -> dict:
    """One run of ``ours`` with the step's parts timed, by wrapping the warehouse connection,
    the PostgreSQL connector and its Arrow stream. Diagnostic only: the wrappers add a
    little Python per statement and per batch."""
    import contextlib
    import dataclasses
    import sys

    import pyarrow as pa

    from etl_platform.connectors import postgres as connectors_postgres
    from etl_platform.resources.warehouse import WarehouseResource

    spent = dict.fromkeys(PROFILE_PHASES, 0.0)
    read_batches = [0]

    class TimedConnection:
        def __init__(self, con):
            self._con, self._in_transaction = con, False

        def execute(self, query: str, *args, **kwargs):
            started = time.perf_counter()
            try:
                return self._con.execute(query, *args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                head = query.lstrip().upper()
                if head.startswith("BEGIN"):
                    self._in_transaction = True
                if self._in_transaction:
                    spent["validate_commit"] += elapsed
                elif head.startswith("INSERT INTO") and "__STAGE_" in head.split(" SELECT ")[0]:
                    spent["stage_insert"] += elapsed
                else:
                    spent["other_sql"] += elapsed
                if head.startswith(("COMMIT", "ROLLBACK")):
                    self._in_transaction = False

        def __getattr__(self, name: str):
            return getattr(self._con, name)

    body = [0.0]
    open_warehouse = WarehouseResource.get_connection

    @contextlib.contextmanager
    def get_connection(self):
        entered = time.perf_counter()
        with open_warehouse(self) as con:
            spent["warehouse_connect"] += time.perf_counter() - entered
            yield TimedConnection(con)
            closing = time.perf_counter()
        spent["warehouse_close"] += time.perf_counter() - closing
        body[0] += time.perf_counter() - entered

    open_stream = connectors_postgres.PostgresConnector.stream

    @contextlib.contextmanager
    def stream(self, query: str):
        started = time.perf_counter()
        if "adbc_driver_postgresql" not in sys.modules:
            import adbc_driver_manager  # noqa: F401
            import adbc_driver_postgresql  # noqa: F401
        imported = time.perf_counter()
        spent["driver_import"] += imported - started
        with open_stream(self, query) as opened:
            spent["pg_connect"] += time.perf_counter() - imported
            yield dataclasses.replace(opened, reader=timed_reader(opened.reader))

    def timed_reader(capsule):
        """The driver's stream read through pyarrow, batch by batch, each pull timed (the
        connector itself hands the stream to DuckDB without pyarrow)."""
        source = pa.RecordBatchReader._import_from_c_capsule(capsule)

        def batches():
            pulled = iter(source)
            while True:
                started = time.perf_counter()
                batch = next(pulled, None)
                spent["read"] += time.perf_counter() - started
                if batch is None:
                    return
                read_batches[0] += 1
                yield batch

        return pa.RecordBatchReader.from_batches(source.schema, batches())

    WarehouseResource.get_connection = get_connection
    connectors_postgres.PostgresConnector.stream = stream
    job = _pipeline_job(pg, table, sync)
    seconds, metadata = _run_job(job)
    spent["stage_insert"] -= spent["read"]
    spent["dagster"] = seconds - body[0]
    spent["python"] = body[0] - sum(v for k, v in spent.items() if k not in ("dagster", "python"))
    return {
        "seconds": seconds,
        "phases": spent,
        "batches": read_batches[0],
        "rows_read": metadata["rows_read"],
        "duration_seconds": metadata["duration_seconds"],
    }


def _warehouse_types() -> list[str]:
    import duckdb

    from etl_platform import settings

    with duckdb.connect(str(settings.warehouse_path()), read_only=True) as con:
        return _types(con, f"{PIPELINE}.events")


# -- plain paths ------------------------------------------------------------------------


def _types(con, table: str) -> list[str]:
    return [f"{name} {dtype}" for name, dtype, *_ in con.execute(f"DESCRIBE {table}").fetchall()]


def _finish(con, started: float, loaded: float, **extra) -> dict:
    """Count and describe the new table t (untimed), then close the file (timed)."""
    import duckdb

    rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
    types = _types(con, "t")
    closing = time.perf_counter()
    con.close()
    close = time.perf_counter() - closing
    return {
        "seconds": loaded - started + close,
        "close_seconds": close,
        "rows": rows,
        "column_types": types,
        "duckdb_version": duckdb.__version__,
        **extra,
    }


def adbc(pg: dict, table: str, database: str) -> dict:
    """ADBC's PostgreSQL driver (binary COPY to Arrow), its record-batch stream scanned by DuckDB."""
    import adbc_driver_postgresql.dbapi
    import duckdb

    con = duckdb.connect(database)
    started = time.perf_counter()
    with adbc_driver_postgresql.dbapi.connect(_uri(pg)) as source, source.cursor() as cur:
        cur.execute(f"SELECT * FROM {_qualified(table)}")
        reader = cur.fetch_record_batch()  # noqa: F841 (scanned by name below)
        con.execute("CREATE TABLE t AS SELECT * FROM reader")
    return _finish(con, started, time.perf_counter())


def connectorx(pg: dict, table: str, database: str, partitions: int = 1) -> dict:
    """connectorx reads the whole table into Arrow (in ``partitions`` parallel id ranges), DuckDB copies it."""
    import connectorx as cx
    import duckdb

    con = duckdb.connect(database)
    started = time.perf_counter()
    options = {"partition_on": "id", "partition_num": partitions} if partitions > 1 else {}
    arrow = cx.read_sql(_uri(pg), f"SELECT * FROM {_qualified(table)}", return_type="arrow", **options)  # noqa: F841
    read = time.perf_counter()
    con.execute("CREATE TABLE t AS SELECT * FROM arrow")
    return _finish(con, started, time.perf_counter(), read_seconds=read - started)


def copy_csv(pg: dict, table: str, database: str, csv: str) -> dict:
    """PostgreSQL's COPY ... TO STDOUT (CSV) into a local file with psycopg2, then DuckDB's read_csv."""
    import duckdb
    import psycopg2  # noqa: F401 (imported before the timer; _psycopg2 connects)

    con = duckdb.connect(database)
    started = time.perf_counter()
    source = _psycopg2(pg)
    with source.cursor() as cur, open(csv, "wb") as out:
        cur.copy_expert(
            f"COPY (SELECT * FROM {_qualified(table)}) TO STDOUT WITH (FORMAT csv, HEADER true)", out, size=1 << 20
        )
    source.close()
    copied = time.perf_counter()
    con.execute("CREATE TABLE t AS SELECT * FROM read_csv(?)", [csv])
    loaded = time.perf_counter()
    size = Path(csv).stat().st_size
    Path(csv).unlink()
    return _finish(con, started, loaded, copy_seconds=copied - started, csv_bytes=size)


def duckdb_postgres(pg: dict, table: str, database: str, check_only: bool = False) -> dict:
    """DuckDB's own postgres extension: ATTACH the database, CREATE TABLE AS SELECT from it.

    The extension is not part of DuckDB's package: INSTALL downloads it, or it comes from a
    pip package (``duckdb-extension-postgres-scanner``) built for this very DuckDB version.
    Without either the result says why, and nothing is timed.
    """
    import duckdb

    con = duckdb.connect(database)
    reason = _load_postgres_extension(con)
    if reason:
        con.close()
        return {"unavailable": reason, "duckdb_version": duckdb.__version__}
    if check_only:
        con.close()
        return {"available": True}
    dsn = f"host={pg['host']} port={pg['port']} user={pg['user']} dbname={pg['database']}"
    started = time.perf_counter()
    con.execute(f"ATTACH '{dsn}' AS pg (TYPE postgres, READ_ONLY)")
    con.execute(f"CREATE TABLE t AS SELECT * FROM pg.{_qualified(table)}")
    loaded = time.perf_counter()
    con.execute("DETACH pg")
    return _finish(con, started, loaded)


def _load_postgres_extension(con) -> str | None:
    """Load the extension if it can be had here; otherwise why not."""
    import duckdb

    try:
        con.execute("LOAD postgres")
        return None
    except duckdb.Error:
        pass
    try:
        con.execute("INSTALL postgres")
        con.execute("LOAD postgres")
        return None
    except duckdb.Error as err:
        download = str(err).strip().splitlines()[0].split(" at URL ")[0]
    version = f"v{duckdb.__version__}"
    try:
        import duckdb_extension_postgres_scanner as bundled
    except ImportError:
        return f"INSTALL postgres: {download}; no duckdb-extension-postgres-scanner package installed"
    built = Path(bundled.__file__).parent / "extensions" / version / "postgres_scanner.duckdb_extension"
    if not built.exists():
        return f"INSTALL postgres: {download}; the installed extension package has no build for DuckDB {version}"
    con.execute(f"LOAD '{built}'")
    return None


def pandas_chunks(pg: dict, table: str, database: str, chunksize: int = 100_000) -> dict:
    """pandas.read_sql in chunks over SQLAlchemy (psycopg2), each chunk appended to a DuckDB table."""
    import duckdb
    import pandas as pd
    import sqlalchemy

    con = duckdb.connect(database)
    engine = sqlalchemy.create_engine(_uri(pg, "postgresql+psycopg2"), poolclass=sqlalchemy.pool.NullPool)
    started = time.perf_counter()
    with engine.connect() as source:
        query = sqlalchemy.text(f"SELECT * FROM {_qualified(table)}")
        for n, chunk in enumerate(pd.read_sql(query, source, chunksize=chunksize)):  # noqa: B007 (scanned by name)
            con.execute("CREATE TABLE t AS SELECT * FROM chunk" if n == 0 else "INSERT INTO t SELECT * FROM chunk")
    engine.dispose()
    return _finish(con, started, time.perf_counter(), pandas_version=pd.__version__)


# -- dlt --------------------------------------------------------------------------------


def dlt_load(pg: dict, table: str, folder: str, backend: str, incremental: bool = False) -> dict:
    """dlt's sql_database source into a DuckDB file under ``folder`` (also its pipelines
    dir). Full: write_disposition replace. Incremental: merge on id, cursor updated_at.
    Timed: making the source (it reflects the table) and pipeline.run."""
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ["DLT_DATA_DIR"] = str(Path(folder) / "data")
    import dlt
    from dlt.sources.sql_database import sql_database

    schema, name = table.split(".")
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{backend}",
        pipelines_dir=str(Path(folder) / "pipelines"),
        destination=dlt.destinations.duckdb(str(Path(folder) / "dlt.duckdb")),
        dataset_name="bench",
    )
    started = time.perf_counter()
    source = sql_database(_uri(pg, "postgresql+psycopg2"), schema=schema, table_names=[name], backend=backend)
    if incremental:
        source.resources[name].apply_hints(
            incremental=dlt.sources.incremental("updated_at"), primary_key="id", write_disposition="merge"
        )
        info = pipeline.run(source)
    else:
        info = pipeline.run(source, write_disposition="replace")
    seconds = time.perf_counter() - started
    if info.has_failed_jobs:
        raise SystemExit(f"dlt reported failed jobs: {info}")
    with pipeline.sql_client() as client:
        rows = client.execute_sql(f"SELECT count(*) FROM {name}")[0][0]
        types = [
            f"{c} {t}"
            for c, t in client.execute_sql(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'bench' "
                "AND table_name = ? ORDER BY ordinal_position",
                name,
            )
        ]
    extracted = (
        pipeline.last_trace.last_normalize_info.row_counts.get(name)
        if pipeline.last_trace.last_normalize_info
        else None
    )
    return {
        "seconds": seconds,
        "rows": rows,
        "rows_extracted": extracted,
        "column_types": types,
        "dlt_version": dlt.__version__,
    }


# -- warm-up ----------------------------------------------------------------------------


def warm_up(pg: dict, table: str, folder: str) -> dict:
    """Run every load once on the small warm-up table, untimed, so the bytecode cache holds
    everything the measurements import and anything broken fails before the long runs."""
    from etl_platform import settings

    base = Path(folder)
    database = str(base / "warm_up.duckdb")

    def fresh() -> str:
        for leftover in (Path(database), Path(database + ".wal")):
            leftover.unlink(missing_ok=True)
        return database

    ours(pg, table, {"mode": "replace"})
    settings.warehouse_path().unlink()
    ours(pg, table, {"mode": "incremental", "cursor": "updated_at", "primary_key": ["id"]})
    adbc(pg, table, fresh())
    connectorx(pg, table, fresh())
    connectorx(pg, table, fresh(), partitions=2)
    copy_csv(pg, table, fresh(), str(base / "warm_up.csv"))
    pandas_chunks(pg, table, fresh())
    dlt_load(pg, table, str(base / "dlt_pyarrow"), "pyarrow")
    dlt_load(pg, table, str(base / "dlt_connectorx"), "connectorx")
    dlt_load(pg, table, str(base / "dlt_incremental"), "pyarrow", incremental=True)
    fresh()
    return {}


PROBES = {
    "pg_prepare": prepare,
    "pg_change": change,
    "pg_restore": restore,
    "pg_ours": ours,
    "pg_ours_profile": ours_profile,
    "pg_adbc": adbc,
    "pg_connectorx": connectorx,
    "pg_copy_csv": copy_csv,
    "pg_duckdb_postgres": duckdb_postgres,
    "pg_pandas": pandas_chunks,
    "pg_dlt": dlt_load,
    "pg_warm_up": warm_up,
}
