"""Nothing secret reaches MLflow parameters or tags."""

from etl_platform.ml.tracking import _clean
from etl_platform.secrets.references import EnvRef, reveal


def test_revealed_secrets_and_credentials_are_masked_before_logging(monkeypatch):
    canary = "canary-7c1e0b55f2"
    monkeypatch.setenv("ETL_TEST_ML_SECRET", canary)
    assert reveal(EnvRef(env="ETL_TEST_ML_SECRET")) == canary  # as a step does when it opens a connection
    cleaned = _clean(
        {
            "estimator.note": f"trained with {canary}",
            "source": "postgresql://etl:hunter2@db:5432/shop",
            "dagster.partition": None,
            "alpha": 0.5,
        }
    )
    assert canary not in str(cleaned) and "hunter2" not in str(cleaned)
    assert cleaned == {
        "estimator.note": "trained with ***",
        "source": "postgresql://etl:***@db:5432/shop",
        "dagster.partition": "",
        "alpha": "0.5",
    }
