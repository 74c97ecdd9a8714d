"""MLflow: where training runs and registered models are kept, and links to them in the MLflow UI.

MLflow is imported only when a step uses the resource: importing it costs seconds, and
every process that loads the code location (webserver, daemon, each run) would pay them.
"""

import os
import threading
from pathlib import Path
from urllib.parse import quote

import dagster as dg
from pydantic import Field

from etl_platform import settings

DEFAULT_UI_URL = "http://127.0.0.1:5000"
_experiments_lock = threading.Lock()


def local_store(tracking_uri: str) -> Path | None:
    """The SQLite file of an embedded store (``sqlite:///path``); None for a tracking server."""
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix) :]) if tracking_uri.startswith(prefix) else None


def artifact_root(tracking_uri: str) -> str | None:
    """Where an embedded store keeps model files: ``artifacts/`` beside its database. A tracking
    server decides for itself (None)."""
    store = local_store(tracking_uri)
    return (store.parent / "artifacts").as_uri() if store else None


class MLflowResource(dg.ConfigurableResource):
    """The MLflow tracking store and model registry that training runs log to."""

    tracking_uri: str = Field(
        default="",
        description="MLflow tracking URI. Empty: ETL_MLFLOW_TRACKING_URI, else the embedded SQLite store "
        "$ETL_HOME/mlflow/mlflow.db (artifacts in $ETL_HOME/mlflow/artifacts). Credentials of a tracking "
        "server go in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, never in the URI.",
    )
    ui_url: str = Field(
        default="",
        description="Base URL of the MLflow UI for links in asset metadata. Empty: ETL_MLFLOW_UI_URL, else "
        f"{DEFAULT_UI_URL} (what `etl-platform mlflow ui` serves).",
    )

    @property
    def uri(self) -> str:
        return self.tracking_uri or settings.mlflow_tracking_uri()

    @property
    def ui(self) -> str:
        return (self.ui_url or os.environ.get("ETL_MLFLOW_UI_URL") or DEFAULT_UI_URL).rstrip("/")

    def client(self):
        """An MlflowClient on this store (also made MLflow's process-wide tracking store, which
        ``mlflow.sklearn.log_model`` logs to). Creates the embedded store's folder."""
        import mlflow
        from mlflow.tracking import MlflowClient

        store = local_store(self.uri)
        if store is not None:
            store.parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def experiment_id(self, client, name: str) -> str:
        """The experiment of that name, created (with the embedded artifact folder) if missing;
        safe when several runs create it at once."""
        from mlflow.exceptions import MlflowException

        with _experiments_lock:
            found = client.get_experiment_by_name(name)
            if found is not None:
                return found.experiment_id
            try:
                return client.create_experiment(name, artifact_location=_experiment_artifacts(self.uri, name))
            except MlflowException:
                found = client.get_experiment_by_name(name)  # another process created it meanwhile
                if found is None:
                    raise
                return found.experiment_id

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui}/#/experiments/{experiment_id}/runs/{run_id}"

    def model_version_url(self, name: str, version: str) -> str:
        return f"{self.ui}/#/models/{quote(name)}/versions/{version}"


def _experiment_artifacts(tracking_uri: str, name: str) -> str | None:
    root = artifact_root(tracking_uri)
    return f"{root}/{name}" if root else None
