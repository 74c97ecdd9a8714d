"""A PostgreSQL ``replace`` in place (one transaction deletes the old rows and inserts the new
ones, the table kept) against the drop-and-rename swap it replaced (a new table filled, the
old one dropped, the new one renamed): N rows replaced by N other rows, alternating the two
ways, medians of the rounds; then what the dead rows an in-place replace leaves cost.

Run from the repository root, with PostgreSQL on 127.0.0.1:5432 (user postgres):

    .venv/bin/python -m benchmarks.postgres_replace [--rows 1000000,100000] [--rounds 3]

Prints a table and writes the same numbers to benchmarks/.data/postgres_replace_last_run.json.
See benchmarks/README.md, "PostgreSQL replace in place", for what each number means.
"""

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from statistics import median

import duckdb
import psycopg2
from psycopg2 import sql

from benchmarks import workspace
from etl_platform.destinations.postgres import commit as postgres
from etl_platform.destinations.postgres.columns import _definitions
from etl_platform.destinations.warehouse.tables import TableRef
from etl_platform.spec.pipeline import SyncSpec

LAST_RUN = workspace.DATA / "postgres_replace_last_run.json"
SCHEMA, TABLE = "bench_replace", "events"
STAGE = TableRef("p", "stage")
WAYS = {"in_place": "in place (DELETE, INSERT)", "swap": "drop and rename (before)"}
GROWTH_LOADS = 3  # in-place replaces in a row without a vacuum, for the table's growth

# Eight columns of mixed types, each a function of the row's id and a seed, so the new rows
# differ from the old ones in every column.
ROWS_SQL = """
CREATE OR REPLACE TABLE p.stage AS SELECT
    range AS id,
    TIMESTAMP '2024-01-01' + to_seconds((hash(range, {seed}) % 31536000)::BIGINT) AS updated_at,
    'customer ' || (hash(range, {seed}) % 100000) AS name,
    (['view', 'click', 'add_to_cart', 'purchase', 'refund'])[1 + (hash(range + {seed}) % 5)::INTEGER] AS event_type,
    ((hash(range, {seed}) % 10000000) / 100)::DECIMAL(18,2) AS amount,
    hash(range, {seed} + 1) % 2 = 0 AS flagged,
    DATE '2024-01-01' + (hash(range, {seed} + 2) % 365)::INTEGER AS day,
    (hash(range, {seed} + 3) % 1000000) / 7.0 AS score
FROM range({first}, {first} + {rows})
"""


class CountMismatch(RuntimeError):
    """A replace did not leave exactly the new rows: its time would mean nothing."""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.postgres_replace",
        description=__doc__.split("\n\n")[0],
        epilog="See benchmarks/README.md for what each number means.",
    )
    parser.add_argument("--rows", default="1000000,100000", help="comma-separated table sizes (default 1000000,100000)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="measurements of each way per size, alternating (default 3)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres", help="password, if any, from PGPASSWORD")
    parser.add_argument("--database", default="etl_bench", help="created if missing (default etl_bench)")
    args = parser.parse_args(argv)
    args.sizes = [int(n) for n in args.rows.split(",")]
    if args.rounds < 1 or min(args.sizes) < 1:
        parser.error("--rounds and every --rows must be at least 1")
    return args


def _dsn(args: argparse.Namespace, database: str | None = None) -> str:
    return psycopg2.extensions.make_dsn(
        host=args.host,
        port=args.port,
        user=args.user,
        dbname=database or args.database,
        password=os.environ.get("PGPASSWORD"),
    )


def _create_database(args: argparse.Namespace) -> None:
    with closing(psycopg2.connect(_dsn(args, "postgres"))) as admin:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [args.database])
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.database)))


def _execute(dsn: str, *statements: str) -> list[tuple]:
    """Each statement in autocommit (VACUUM and CHECKPOINT need it); the last one's rows."""
    with closing(psycopg2.connect(dsn)) as pg:
        pg.autocommit = True
        with pg.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            return cur.fetchall() if cur.description else []


def _swap(self: postgres._Transaction, existing, kept, table) -> int:
    """The replace as it was: a new table filled beside the old one, the old one dropped, the
    new one renamed into place (without the views, grants, indexes and the rest)."""
    self.run(sql.SQL("CREATE TABLE {} ({})").format(self.names.new, _definitions(table)))
    rows = self.insert(self.names.new, kept, self.names.staging)
    self.run(sql.SQL("DROP TABLE IF EXISTS {}").format(self.names.target))
    self.run(sql.SQL("ALTER TABLE {} RENAME TO {}").format(self.names.new, sql.Identifier(self.names.table)))
    return rows


def _kind(statement: str) -> str:
    """A statement's first two words: DELETE FROM, INSERT INTO, SELECT EXISTS, ..."""
    first, second = (statement.split() + [""])[:2]
    return f"{first} {second.split('(')[0]}"


@contextmanager
def _timed(way: str, times: dict[str, float]) -> Iterator[None]:
    """``postgres.commit`` with the replace of ``way``; every statement of the commit transaction
    timed into ``times`` by its first words, and when the transaction's own work began and ended."""
    originals = {name: getattr(postgres._Transaction, name) for name in ("run", "value", "commit", "replace")}

    def timing(method):
        def statement(self, composed):
            started = time.perf_counter()
            try:
                return method(self, composed)
            finally:
                key = _kind(composed.as_string(self.cur))
                times[key] = times.get(key, 0.0) + time.perf_counter() - started

        return statement

    def commit(self, *args, **kwargs):
        times["transaction started"] = time.perf_counter()
        try:
            return originals["commit"](self, *args, **kwargs)
        finally:
            times["transaction statements ended"] = time.perf_counter()

    postgres._Transaction.run = timing(originals["run"])
    postgres._Transaction.value = timing(originals["value"])
    postgres._Transaction.commit = commit
    if way == "swap":
        postgres._Transaction.replace = _swap
    try:
        yield
    finally:
        for name, method in originals.items():
            setattr(postgres._Transaction, name, method)


def _stage(duck: duckdb.DuckDBPyConnection, first: int, rows: int, seed: int) -> None:
    duck.execute(ROWS_SQL.format(first=first, rows=rows, seed=seed))


def _replace(duck: duckdb.DuckDBPyConnection, dsn: str) -> None:
    postgres.commit(
        duck,
        STAGE,
        dsn=dsn,
        schema=SCHEMA,
        table=TABLE,
        sync=SyncSpec(mode="replace"),
        pipeline="bench",
        run_id="bench",
        data_columns=[],
    )


def _table_state(dsn: str) -> tuple[int, int, int, int]:
    """The table's OID, row count, sum of ids and size on disk (with its TOAST, without indexes)."""
    target = f"{SCHEMA}.{TABLE}"
    return _execute(
        dsn, f"SELECT '{target}'::regclass::oid::bigint, count(*), sum(id), pg_table_size('{target}') FROM {target}"
    )[0]


def _fresh_table(duck: duckdb.DuckDBPyConnection, dsn: str, rows: int) -> int:
    """The table made again with ``rows`` old rows, vacuumed and analyzed as a table at rest is,
    and every dirty page written out. Returns its OID."""
    _execute(dsn, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    _stage(duck, 0, rows, seed=1)
    _replace(duck, dsn)
    _execute(dsn, f"VACUUM ANALYZE {SCHEMA}.{TABLE}", "CHECKPOINT")
    return _table_state(dsn)[0]


def _measure_once(duck: duckdb.DuckDBPyConnection, dsn: str, way: str, rows: int) -> dict:
    """One timed replace of ``rows`` old rows by ``rows`` new ones, by ``way``."""
    oid = _fresh_table(duck, dsn, rows)
    _stage(duck, rows, rows, seed=2)  # ids rows .. 2 rows - 1: every row is new
    times: dict[str, float] = {}
    with _timed(way, times):
        started = time.perf_counter()
        _replace(duck, dsn)
        ended = time.perf_counter()
    new_oid, count, ids, size = _table_state(dsn)
    if (count, ids) != (rows, sum(range(rows, 2 * rows))) or (new_oid == oid) != (way == "in_place"):
        raise CountMismatch(f"{WAYS[way]} of {rows:,} rows left {count:,} rows (OID {oid} -> {new_oid})")
    began, finished = times.pop("transaction started"), times.pop("transaction statements ended")
    return {
        "seconds": round(ended - started, 3),
        "copy_seconds": round(began - started, 3),  # bulk copy into the staging table, the same both ways
        "transaction_seconds": round(ended - began, 3),  # the replace's transaction, its COMMIT included
        "commit_seconds": round(ended - finished, 3),  # COMMIT and closing the session
        "statements": {k: round(v, 3) for k, v in sorted(times.items(), key=lambda kv: -kv[1]) if v >= 0.001},
        "table_bytes_after": size,
    }


def _measure_ways(duck: duckdb.DuckDBPyConnection, dsn: str, rows: int, rounds: int) -> dict:
    runs: dict[str, list[dict]] = {way: [] for way in WAYS}
    for n in range(1, rounds + 1):
        for way in WAYS:
            run = _measure_once(duck, dsn, way, rows)
            runs[way].append(run)
            print(
                f"{rows:>11,} rows  round {n}/{rounds}  {WAYS[way]:<26} {run['seconds']:6.2f} s"
                f"   transaction {run['transaction_seconds']:5.2f} s  ({_statements(run['statements'])})",
                flush=True,
            )
    return {way: _medians(r) for way, r in runs.items()}


def _statements(times: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f} s" for k, v in times.items() if v >= 0.01)


def _medians(runs: list[dict]) -> dict:
    keys = ("seconds", "copy_seconds", "transaction_seconds", "commit_seconds")
    return {f"median_{k}": round(median(r[k] for r in runs), 3) for k in keys} | {
        "median_statements": {
            k: round(median(r["statements"].get(k, 0.0) for r in runs), 3) for k in runs[0]["statements"]
        },
        "table_bytes_after": runs[-1]["table_bytes_after"],
        "rounds": runs,
    }


def _measure_growth(duck: duckdb.DuckDBPyConnection, dsn: str, rows: int) -> dict:
    """In-place replaces in a row with no vacuum between them (autovacuum off, or held back by an
    old snapshot), then a VACUUM, then one more replace into the space the VACUUM freed."""
    _fresh_table(duck, dsn, rows)
    sizes, seconds = [_table_state(dsn)[3]], []
    for n in range(1, GROWTH_LOADS + 1):
        _stage(duck, n * rows, rows, seed=n + 1)
        _execute(dsn, "CHECKPOINT")
        started = time.perf_counter()
        _replace(duck, dsn)
        seconds.append(round(time.perf_counter() - started, 3))
        sizes.append(_table_state(dsn)[3])
    _execute(dsn, "CHECKPOINT")
    started = time.perf_counter()
    _execute(dsn, f"VACUUM {SCHEMA}.{TABLE}")
    vacuum_seconds = round(time.perf_counter() - started, 3)
    after_vacuum = _table_state(dsn)[3]
    _stage(duck, (GROWTH_LOADS + 1) * rows, rows, seed=GROWTH_LOADS + 2)
    _replace(duck, dsn)
    return {
        "rows": rows,
        "bytes": sizes,
        "replace_seconds": seconds,
        "vacuum_seconds": vacuum_seconds,
        "bytes_after_vacuum": after_vacuum,
        "bytes_after_next_replace": _table_state(dsn)[3],
    }


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"


def table(summary: dict) -> str:
    lines = [f"{'rows':>11}  {'way':<26} {'median':>8} {'copy':>7} {'transaction':>12} {'COMMIT':>7}  table after"]
    for rows, ways in summary["sizes"].items():
        for way, m in ways.items():
            lines.append(
                f"{int(rows):>11,}  {WAYS[way]:<26} {m['median_seconds']:6.2f} s {m['median_copy_seconds']:5.2f} s"
                f" {m['median_transaction_seconds']:10.2f} s {m['median_commit_seconds']:5.2f} s  "
                f"{_mib(m['table_bytes_after'])}"
            )
            lines.append(f"{'':>13}{'':<26} statements: {_statements(m['median_statements'])}")
        in_place, swap = ways["in_place"], ways["swap"]
        lines.append(
            f"{'':>13}in place / before: {in_place['median_seconds'] / swap['median_seconds']:.2f}x the whole load, "
            f"{in_place['median_transaction_seconds'] / swap['median_transaction_seconds']:.2f}x the transaction"
        )
    g = summary["growth"]
    lines.append(
        f"dead rows, {g['rows']:,} rows replaced {GROWTH_LOADS} times in place without a vacuum: table "
        + " -> ".join(_mib(b) for b in g["bytes"])
        + f" ({', '.join(f'{s:.2f} s' for s in g['replace_seconds'])})"
    )
    lines.append(
        f"  VACUUM then {g['vacuum_seconds']:.2f} s (table stays {_mib(g['bytes_after_vacuum'])}); the next replace "
        f"reuses the space: {_mib(g['bytes_after_next_replace'])}"
    )
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> dict:
    """The whole benchmark: measure both ways at every size, then the growth; print, save, return."""
    args = _parse(argv)
    _create_database(args)
    dsn = _dsn(args)
    server = _execute(
        dsn,
        "SELECT version(), current_setting('autovacuum'), current_setting('shared_buffers'),"
        " current_setting('wal_level')",
    )[0]
    duck = duckdb.connect()
    duck.execute("CREATE SCHEMA p")
    try:
        sizes = {str(rows): _measure_ways(duck, dsn, rows, args.rounds) for rows in args.sizes}
        print("measuring the growth of the table without a vacuum ...", flush=True)
        growth = _measure_growth(duck, dsn, max(args.sizes))
    finally:
        _execute(dsn, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        duck.close()
    summary = {
        "args": {k: v for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },
        "server": dict(zip(["version", "autovacuum", "shared_buffers", "wal_level"], server)),
        "sizes": sizes,
        "growth": growth,
    }
    print()
    print(table(summary))
    LAST_RUN.parent.mkdir(parents=True, exist_ok=True)
    LAST_RUN.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nsaved to {LAST_RUN.relative_to(workspace.ROOT)}")
    return summary


def main(argv: list[str] | None = None) -> None:
    try:
        run(argv)
    except CountMismatch as err:
        sys.exit(f"benchmark failed: {err}")


if __name__ == "__main__":
    main()
