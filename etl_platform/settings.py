"""Where the platform keeps its local state.

Every path has one environment variable and one default under ``ETL_HOME``, so the
embedded default needs no configuration and production overrides each piece.
Resolved when called, never at import: definitions stay environment-free.
"""

import os
from pathlib import Path

PROJECT_DEFS = Path(__file__).parent / "defs"  # the project's defs folder: pipelines and connections


def etl_home() -> Path:
    """Root of the local state folder (default ``./.etl_home`` in the working directory)."""
    return Path(os.environ.get("ETL_HOME", ".etl_home")).absolute()


def warehouse_path() -> Path:
    """The DuckDB warehouse file."""
    return Path(os.environ.get("ETL_WAREHOUSE_PATH", etl_home() / "warehouse.duckdb")).absolute()


def landing_dir() -> Path:
    """The local landing folder that file pipelines read from."""
    return Path(os.environ.get("ETL_LANDING_DIR", etl_home() / "landing")).absolute()


def progress_interval_seconds() -> float:
    """How often a long load logs its progress."""
    return float(os.environ.get("ETL_PROGRESS_INTERVAL", "5"))


def mlflow_tracking_uri() -> str:
    """Where MLflow keeps runs and registered models: ETL_MLFLOW_TRACKING_URI (production: the
    tracking server, e.g. http://mlflow:5000), else a SQLite store at ``$ETL_HOME/mlflow/mlflow.db``
    whose artifacts go to ``$ETL_HOME/mlflow/artifacts``."""
    return os.environ.get("ETL_MLFLOW_TRACKING_URI") or f"sqlite:///{etl_home() / 'mlflow' / 'mlflow.db'}"


def check_files_when_loading() -> bool:
    """Whether loading definitions also compares each file pipeline's mapping with the latest
    files in its folder (``etl-platform pipelines validate`` asks for it). Off in the code
    location itself: a file in a landing folder must never keep the definitions from loading."""
    return os.environ.get("ETL_VALIDATE_FILES", "") == "1"
