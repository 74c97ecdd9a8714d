"""Where a benchmark run keeps its files, and the environment its child processes get.

Everything lives under ``benchmarks/.data/`` (git-ignored). The campaign CSV and the
bytecode cache are kept between runs (the CSV is regenerated only when it is missing or
the row count changed); everything else (logs, per-measurement results, DuckDB files)
is replaced every run.
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
DAGSTER_HOME = DATA / "dagster_home"  # an empty instance folder, so the CLI keeps its storage here
PYCACHE = DATA / "pycache"  # compiled bytecode of everything the children import
WARMUP_HOME = DATA / "warmup"  # ETL_HOME of the warm-up, removed after it
TEMPLATE = ROOT / "etl_platform" / "defs" / "pipelines" / "marketing_campaigns" / "defs.yaml"
# The real CLI, from the same virtualenv as the interpreter running the benchmark.
VALIDATE_ARGV = [
    str(Path(sys.executable).parent / "dagster"),
    "definitions",
    "validate",
    "-m",
    "etl_platform.definitions",
]

# Variables that would point a child somewhere other than the benchmark's own folders.
_OVERRIDDEN = ("ETL_HOME", "ETL_LANDING_DIR", "ETL_WAREHOUSE_PATH", "DAGSTER_HOME", "PYTHONDONTWRITEBYTECODE")


def child_env(home: Path = HOME) -> dict[str, str]:
    """The caller's environment with ETL_HOME set to ``home`` and nothing overriding it.

    DAGSTER_HOME points at an empty folder of the benchmark's, so nothing reads or writes a
    real Dagster instance (the probes use ephemeral instances; the CLI would otherwise make
    a temporary folder in the working directory). Bytecode is always cached, under PYCACHE:
    timings are those of an installation whose imports are compiled already, even where
    the caller sets PYTHONDONTWRITEBYTECODE.
    """
    env = {k: v for k, v in os.environ.items() if k not in _OVERRIDDEN}
    env["ETL_HOME"] = str(home)
    env["ETL_PROGRESS_INTERVAL"] = "5"
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["DAGSTER_HOME"] = str(DAGSTER_HOME)
    return env


def reset() -> None:
    """Empty the run folder, the Dagster home and the benchmark home (keeping only the campaign CSV)."""
    shutil.rmtree(RUNS, ignore_errors=True)
    RUNS.mkdir(parents=True)
    remove_database(FLOOR_DB)
    shutil.rmtree(DAGSTER_HOME, ignore_errors=True)
    DAGSTER_HOME.mkdir()
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
