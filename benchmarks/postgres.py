"""Loading a PostgreSQL table into DuckDB: our pipeline through Dagster against the fastest
plain paths (ADBC, connectorx, COPY to CSV, DuckDB's postgres extension), dlt and pandas,
plus an incremental run and memory at a quarter of the rows and at all of them.

Run from the repository root, with PostgreSQL on 127.0.0.1:5432 (user postgres):

    .venv/bin/python -m benchmarks.postgres [--rows 2000000] [--rounds 3] [--incremental-share 0.01]

Prints a table and writes the same numbers to benchmarks/.data/postgres_last_run.json.
See benchmarks/README.md for what each number means.
"""

import argparse
import json
import os
import platform
import shutil
import sys

from benchmarks import workspace
from benchmarks.postgres_report import CAPPED_MEMORY, MAX_RATIO_TO_PLAIN, LoadPath, measured, summarize, table
from benchmarks.processes import ChildFailed, Measured, own_peak_mib, run_probe

DATA = workspace.DATA / "postgres"
HOME = DATA / "home"  # ETL_HOME of our pipeline: its warehouse is HOME/warehouse.duckdb
WAREHOUSE = HOME / "warehouse.duckdb"
PLAIN_DB = DATA / "plain.duckdb"  # every other path's DuckDB file
COPY_CSV = DATA / "copy.csv"
DLT = DATA / "dlt"  # dlt's pipelines dirs and DuckDB files, one folder per backend
RUNS = DATA / "runs"
WARMUP = DATA / "warmup"
DAGSTER_HOME = DATA / "dagster_home"
LAST_RUN = workspace.DATA / "postgres_last_run.json"

TABLE = "public.events"
QUARTER_TABLE = "public.events_quarter"
WARMUP_TABLE = "public.events_warmup"
WARMUP_ROWS = 1_000
OURS = {"ours", "ours_quarter", "ours_capped"}
INCREMENTAL_SYNC = {"mode": "incremental", "cursor": "updated_at", "primary_key": ["id"]}


class CountMismatch(RuntimeError):
    """A path did not load exactly the rows it should have: its time would mean nothing."""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.postgres",
        description=__doc__.split("\n\n")[0],
        epilog="See benchmarks/README.md for what each number means.",
    )
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows in public.events (default 2,000,000)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each path, alternating (default 3)")
    parser.add_argument(
        "--incremental-share",
        type=float,
        default=0.01,
        help="share of the rows changed before the incremental run, half updated, half new (default 0.01)",
    )
    parser.add_argument("--skip", default="", help="comma-separated paths to leave out, e.g. pandas,dlt_connectorx")
    parser.add_argument("--profile", action="store_true", help="profile one run of ours even if it meets its target")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres", help="password, if any, from PGPASSWORD")
    parser.add_argument("--database", default="etl_bench", help="created if missing (default etl_bench)")
    args = parser.parse_args(argv)
    if args.rows < 8 or args.rounds < 1:
        parser.error("--rows must be at least 8 and --rounds at least 1")
    if not 0 < args.incremental_share < 1:
        parser.error("--incremental-share must be between 0 and 1")
    return args


def _env() -> dict[str, str]:
    env = workspace.child_env(HOME)
    env["DAGSTER_HOME"] = str(DAGSTER_HOME)
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    env["DLT_DATA_DIR"] = str(DLT / "data")
    return env


def _reset() -> None:
    shutil.rmtree(DATA, ignore_errors=True)
    for folder in (RUNS, HOME, DLT, DAGSTER_HOME):
        folder.mkdir(parents=True)


def _paths(pg: dict, rows: int, skip: set[str]) -> list[LoadPath]:
    plain = {"pg": pg, "table": TABLE, "database": str(PLAIN_DB)}
    paths = [
        LoadPath(
            "ours", "our pipeline", "pg_ours", {"pg": pg, "table": TABLE, "sync": {"mode": "replace"}}, "ours", rows
        ),
        LoadPath("adbc", "plain ADBC", "pg_adbc", plain, "plain", rows),
        LoadPath("connectorx", "connectorx", "pg_connectorx", plain, "plain", rows),
        LoadPath(
            "connectorx_2", "connectorx, 2 partitions", "pg_connectorx", {**plain, "partitions": 2}, "plain", rows
        ),
        LoadPath("copy_csv", "COPY to CSV, read_csv", "pg_copy_csv", {**plain, "csv": str(COPY_CSV)}, "plain", rows),
        LoadPath("duckdb_postgres", "DuckDB postgres", "pg_duckdb_postgres", plain, "plain", rows),
        LoadPath(
            "dlt_pyarrow",
            "dlt pyarrow",
            "pg_dlt",
            {"pg": pg, "table": TABLE, "folder": str(DLT / "pyarrow"), "backend": "pyarrow"},
            "dlt",
            rows,
        ),
        LoadPath(
            "dlt_connectorx",
            "dlt connectorx",
            "pg_dlt",
            {"pg": pg, "table": TABLE, "folder": str(DLT / "connectorx"), "backend": "connectorx"},
            "dlt",
            rows,
        ),
        LoadPath("pandas", "pandas read_sql chunks", "pg_pandas", plain, "other", rows),
        # Memory in table size: DuckDB keeps what it writes cached up to its memory_limit (1 GB for
        # the warehouse), so below that the peak follows the table. With the limit at
        # CAPPED_MEMORY the cache is full at both sizes and what is left is the load's own memory.
        LoadPath(
            "ours_quarter",
            f"ours, N/4 rows, {CAPPED_MEMORY}",
            "pg_ours",
            {"pg": pg, "table": QUARTER_TABLE, "sync": {"mode": "replace"}, "memory_limit": CAPPED_MEMORY},
            "ours",
            rows // 4,
        ),
        LoadPath(
            "ours_capped",
            f"ours, N rows, {CAPPED_MEMORY}",
            "pg_ours",
            {"pg": pg, "table": TABLE, "sync": {"mode": "replace"}, "memory_limit": CAPPED_MEMORY},
            "ours",
            rows,
        ),
    ]
    kept = [p for p in paths if p.key not in skip]
    refused = (skip - {p.key for p in paths}) | (skip & OURS)
    if refused or not any(p.kind == "plain" and p.key != "duckdb_postgres" for p in kept):
        optional = ", ".join(p.key for p in paths if p.key not in OURS)
        raise SystemExit(f"--skip takes some of {optional}, leaving at least one plain path")
    return kept


def _clean_destination(path: LoadPath) -> None:
    workspace.remove_database(WAREHOUSE if path.kind == "ours" else PLAIN_DB)
    if "folder" in path.params:
        shutil.rmtree(path.params["folder"], ignore_errors=True)


def _measure(kind: str, params: dict, env: dict[str, str], name: str) -> Measured:
    """One measurement, after writing back every dirty page, so no measurement pays for
    flushing what the one before it (or the table's generation) wrote."""
    os.sync()
    return run_probe(kind, params, env=env, log=RUNS / f"{name}.log")


def _check(label: str, expected: int, loaded: int, what: str = "loaded") -> None:
    if loaded != expected:
        raise CountMismatch(f"{label}: the table has {expected:,} rows but it {what} {loaded:,}")


def _loaded_rows(path: LoadPath, result: dict) -> int:
    if path.kind == "ours":
        _check(path.label, path.rows, result["rows_read"], "read")
        return result["row_count"]
    return result["rows"]


def _line(n: int, rounds: int, label: str, run: Measured, note: str = "") -> str:
    return (
        f"round {n}/{rounds}  {label:<24} {run.result['seconds']:7.2f} s   (process {run.wall_seconds:.2f} s,"
        f" peak {run.peak_mib:.0f} MiB{note})"
    )


def _measure_loads(paths: list[LoadPath], rounds: int, env: dict[str, str]) -> None:
    """Every path once per round, in the same order each round, each on a fresh destination."""
    for n in range(1, rounds + 1):
        for path in paths:
            _clean_destination(path)
            run = _measure(path.probe, path.params, env, f"{path.key}_{n}")
            _check(path.label, path.rows, _loaded_rows(path, run.result))
            path.runs.append(run)
            note = f", load step {run.result['duration_seconds']:.2f} s" if path.kind == "ours" else ""
            print(_line(n, rounds, path.label, run, note), flush=True)
            _clean_destination(path)


def _measure_incremental(pg: dict, rows: int, rounds: int, share: float, with_dlt: bool, env: dict[str, str]) -> dict:
    """Per round: a first incremental run of ours (and of dlt), then ``share`` of the rows
    changed at the source, then the timed second runs; the source is restored afterwards."""
    ours_params = {"pg": pg, "table": TABLE, "sync": INCREMENTAL_SYNC}
    dlt_params = {
        "pg": pg,
        "table": TABLE,
        "folder": str(DLT / "incremental"),
        "backend": "pyarrow",
        "incremental": True,
    }
    first, second, dlt_first, dlt_second = [], [], [], []
    changed: dict = {}
    no_cursor = 0
    for n in range(1, rounds + 1):
        workspace.remove_database(WAREHOUSE)
        shutil.rmtree(DLT / "incremental", ignore_errors=True)
        run = _measure("pg_ours", ours_params, env, f"incremental_first_{n}")
        _check("our first incremental run", rows, run.result["rows_read"], "read")
        first.append(run)
        if not run.result["cursor_after"]:
            # Seen with DuckDB 2.0.0 on a first load of 122,880 rows or more; see benchmarks/README.md.
            print(f"round {n}/{rounds}  our first incremental run saved no cursor; running it again", flush=True)
            no_cursor += 1
            run = _measure("pg_ours", ours_params, env, f"incremental_again_{n}")
            if not run.result["cursor_after"]:
                raise CountMismatch("our pipeline saved no cursor after two incremental runs")
        print(_line(n, rounds, "ours, first incremental", first[-1]), flush=True)
        if with_dlt:
            run = _measure("pg_dlt", dlt_params, env, f"dlt_incremental_first_{n}")
            _check("dlt's first incremental run", rows, run.result["rows"])
            dlt_first.append(run)
            print(_line(n, rounds, "dlt, first incremental", run), flush=True)
        changed = run_probe(
            "pg_change", {"pg": pg, "table": TABLE, "share": share}, env=env, log=RUNS / f"change_{n}.log"
        ).result
        try:
            total = rows + changed["inserted"]
            run = _measure("pg_ours", ours_params, env, f"incremental_{n}")
            r = run.result
            _check("our incremental run", total, r["row_count"])
            if (
                not changed["updated"] + changed["inserted"]
                <= r["rows_read"]
                <= changed["updated"] + changed["inserted"] + 10
            ):
                raise CountMismatch(
                    f"our incremental run read {r['rows_read']:,} rows after "
                    f"{changed['updated'] + changed['inserted']:,} changed"
                )
            second.append(run)
            print(_line(n, rounds, "ours, incremental", run, f", read {r['rows_read']:,} rows"), flush=True)
            if with_dlt:
                run = _measure("pg_dlt", dlt_params, env, f"dlt_incremental_{n}")
                _check("dlt's incremental run", total, run.result["rows"])
                dlt_second.append(run)
                print(_line(n, rounds, "dlt pyarrow, incremental", run), flush=True)
        finally:
            run_probe("pg_restore", {"pg": pg, "table": TABLE}, env=env, log=RUNS / f"restore_{n}.log")
    workspace.remove_database(WAREHOUSE)
    shutil.rmtree(DLT / "incremental", ignore_errors=True)
    summary = {
        "share": share,
        "changed": changed["updated"] + changed["inserted"],
        "updated": changed["updated"],
        "inserted": changed["inserted"],
        "ours": {**measured(second, "duration_seconds"), "rows_read": second[-1].result["rows_read"]},
        "ours_first": measured(first, "duration_seconds"),
        "first_runs_without_cursor": no_cursor,
    }
    if with_dlt:
        summary |= {"dlt_pyarrow": measured(dlt_second), "dlt_pyarrow_first": measured(dlt_first)}
    return summary


def run(argv: list[str] | None = None) -> dict:
    """The whole benchmark: prepare, warm up, measure, print the table, save and return the summary."""
    args = _parse(argv)
    pg = {"host": args.host, "port": args.port, "user": args.user, "database": args.database}
    paths = _paths(pg, args.rows, set(filter(None, args.skip.split(","))))
    env = _env()
    _reset()
    tables = {TABLE: args.rows, QUARTER_TABLE: args.rows // 4, WARMUP_TABLE: WARMUP_ROWS}
    print(f"preparing {args.database}: {', '.join(f'{t} ({n:,} rows)' for t, n in tables.items())} ...", flush=True)
    prepared = run_probe("pg_prepare", {"pg": pg, "tables": tables}, env=env, log=RUNS / "prepare.log").result
    if prepared["generated"]:
        print(f"  generated {', '.join(prepared['generated'])} in {prepared['seconds']:.1f} s", flush=True)

    unavailable = {}
    extension = next((p for p in paths if p.key == "duckdb_postgres"), None)
    if extension:
        found = run_probe(
            "pg_duckdb_postgres",
            {**extension.params, "database": ":memory:", "check_only": True},
            env=env,
            log=RUNS / "duckdb_postgres_check.log",
        ).result
        if "unavailable" in found:
            unavailable[extension.label] = found["unavailable"]
            paths.remove(extension)

    print("warming up (untimed) ...", flush=True)
    warm_env = {**env, "ETL_HOME": str(WARMUP / "home")}
    run_probe(
        "pg_warm_up", {"pg": pg, "table": WARMUP_TABLE, "folder": str(WARMUP)}, env=warm_env, log=RUNS / "warm_up.log"
    )
    shutil.rmtree(WARMUP)

    _measure_loads(paths, args.rounds, env)
    incremental = _measure_incremental(
        pg, args.rows, args.rounds, args.incremental_share, any(p.key == "dlt_pyarrow" for p in paths), env
    )

    machine = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "driver_peak_mib": round(own_peak_mib(), 1),
    }
    source = {
        "table": TABLE,
        "rows": args.rows,
        "quarter_table": QUARTER_TABLE,
        "quarter_rows": args.rows // 4,
        "bytes": prepared["bytes"][TABLE],
        "server": prepared["server"],
        "generated": prepared["generated"],
        "generate_seconds": round(prepared["seconds"], 3),
    }
    summary = summarize(
        args=vars(args),
        machine=machine,
        source=source,
        paths=paths,
        unavailable=unavailable,
        incremental=incremental,
        profile=None,
    )
    if args.profile or summary["loads"]["ours"]["ratio_to_fastest_plain"] > MAX_RATIO_TO_PLAIN:
        print("profiling one run of ours ...", flush=True)
        workspace.remove_database(WAREHOUSE)
        profiled = _measure(
            "pg_ours_profile", {"pg": pg, "table": TABLE, "sync": {"mode": "replace"}}, env, "ours_profile"
        )
        workspace.remove_database(WAREHOUSE)
        summary["profile"] = {k: v for k, v in profiled.result.items() if k != "address_space_peak_kib"}
    print()
    print(table(summary))
    LAST_RUN.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nsaved to {LAST_RUN.relative_to(workspace.ROOT)}; logs in {RUNS.relative_to(workspace.ROOT)}/")
    return summary


def main(argv: list[str] | None = None) -> None:
    try:
        run(argv)
    except (ChildFailed, CountMismatch) as err:
        sys.exit(f"benchmark failed: {err}")


if __name__ == "__main__":
    main()
