"""Where a benchmark run keeps its files, and the environment its child processes get.

Everything lives under ``benchmarks/.data/`` (git-ignored). The campaign CSV is kept
between runs and regenerated only when it is missing or the row count changed;
everything else (logs, per-measurement results, DuckDB files) is replaced every run.
"""

import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / ".data"
HOME = DATA / "home"  # ETL_HOME of every child process
CAMPAIGNS = HOME / "landing" / "campaigns"  # the marketing pipeline reads campaigns/*.csv from here
CSV_NAME = "campaign_export"
CSV = CAMPAIGNS / f"{CSV_NAME}.csv"
CSV_STAMP = DATA / f"{CSV_NAME}.json"  # rows, size and mtime of the CSV as generated
RUNS = DATA / "runs"  # one log and one result file per measurement
FLOOR_DB = DATA / "floor.duckdb"  # plain DuckDB's database file
WAREHOUSE = HOME / "warehouse.duckdb"  # the pipeline's warehouse (the default under ETL_HOME)
LAST_RUN = DATA / "last_run.json"
TEMPLATE = ROOT / "etl_platform" / "defs" / "pipelines" / "marketing_campaigns" / "defs.yaml"
DAGSTER_CLI = Path(sys.executable).parent / "dagster"

# Variables that would point a child somewhere other than the benchmark's own folders.
_OVERRIDDEN = ("ETL_HOME", "ETL_LANDING_DIR", "ETL_WAREHOUSE_PATH", "DAGSTER_HOME")


def child_env() -> dict[str, str]:
    """The caller's environment with ETL_HOME set to the benchmark home and nothing overriding it.

    DAGSTER_HOME is removed so no measurement reads or writes a real Dagster instance.
    """
    env = {k: v for k, v in os.environ.items() if k not in _OVERRIDDEN}
    env["ETL_HOME"] = str(HOME)
    env["ETL_PROGRESS_INTERVAL"] = "5"
    return env


def reset() -> None:
    """Empty the run folder and the benchmark home, keeping only the campaign CSV."""
    shutil.rmtree(RUNS, ignore_errors=True)
    RUNS.mkdir(parents=True)
    remove_database(FLOOR_DB)
    _keep_only(HOME, "landing")
    _keep_only(HOME / "landing", "campaigns")
    _keep_only(CAMPAIGNS, CSV.name)


def _keep_only(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for entry in folder.iterdir():
        if entry.name == name:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def remove_database(path: Path) -> None:
    """Delete a DuckDB file with its write-ahead log and spill folder."""
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(path.with_name(path.name + ".tmp"), ignore_errors=True)


def _fingerprint(rows: int) -> dict:
    stat = CSV.stat()
    return {"rows": rows, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def csv_is_current(rows: int) -> bool:
    """Whether the CSV exists and is the one generated for ``rows`` rows."""
    if not CSV.exists() or not CSV_STAMP.exists():
        return False
    try:
        return json.loads(CSV_STAMP.read_text()) == _fingerprint(rows)
    except ValueError:
        return False


def forget_csv() -> None:
    """Invalidate the CSV before regenerating it, so an interrupted run never reuses half a file."""
    CSV_STAMP.unlink(missing_ok=True)


def remember_csv(rows: int) -> None:
    CSV_STAMP.write_text(json.dumps(_fingerprint(rows)))
