"""A real MLflow store (SQLite + artifact folder) under each test's ETL_HOME."""

import shutil
from pathlib import Path

import pytest

from etl_platform import settings


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store with every migration applied, made once per session: creating
    one runs MLflow's migrations (seconds); each test gets a copy, so no test sees another's runs."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_store(etl_home: Path, migrated_store: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The embedded store the platform uses by default ($ETL_HOME/mlflow/mlflow.db); yields its URI."""
    monkeypatch.delenv("ETL_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("ETL_ML_ESTIMATORS", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    (etl_home / "mlflow").mkdir(parents=True, exist_ok=True)
    shutil.copy(migrated_store, etl_home / "mlflow" / "mlflow.db")
    uri = settings.mlflow_tracking_uri()
    assert uri == f"sqlite:///{etl_home / 'mlflow' / 'mlflow.db'}"
    return uri


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)
