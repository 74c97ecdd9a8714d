"""`etl-platform mlflow ui`: the MLflow UI on the store the pipelines log to."""

import sys
from pathlib import Path

from etl_platform import settings
from etl_platform.resources.mlflow import artifact_root, local_store


class NotEmbedded(ValueError):
    """The tracking URI is a server, which serves its own UI."""


def ui_command(port: int = 5000, host: str = "127.0.0.1") -> list[str]:
    """The `mlflow ui` command line for the embedded store: its SQLite database for runs and
    registered models, its artifact folder for model files."""
    uri = settings.mlflow_tracking_uri()
    store = local_store(uri)
    if store is None:
        raise NotEmbedded(
            f"ETL_MLFLOW_TRACKING_URI points at a tracking server ({uri.split('@')[-1]}); open its own UI"
        )
    store.parent.mkdir(parents=True, exist_ok=True)
    mlflow = Path(sys.executable).parent / "mlflow"
    return [
        str(mlflow),
        "ui",
        "--backend-store-uri",
        uri,
        "--registry-store-uri",
        uri,
        "--default-artifact-root",
        artifact_root(uri) or "",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",  # one user on a laptop; each worker costs seconds and memory to start
    ]
