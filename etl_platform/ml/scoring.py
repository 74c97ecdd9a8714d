"""Batch scoring: the champion predicts every row of the feature set into a warehouse table, each
row stamped with the model name and version that produced it."""

from dataclasses import dataclass

import duckdb

from etl_platform.ml.features import FeatureSet
from etl_platform.spec.ml import TrainSpec
from etl_platform.sql import qualified


@dataclass(frozen=True)
class Scored:
    rows: int
    model_version: str


def prediction_column(train: TrainSpec) -> str:
    return f"predicted_{train.target}"


def score(
    con: duckdb.DuckDBPyConnection,
    frame,
    train: TrainSpec,
    *,
    model_name: str,
    version: str,
    run_id: str,
    features: FeatureSet,
    table: str,
    load_id: str,
) -> Scored:
    """Load version ``version`` of the registered model, predict ``frame`` and replace
    ``features.schema.table`` with the id columns, the prediction and its lineage in one transaction."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    predicted = model.predict(frame[list(train.features)])
    out = frame[list(dict.fromkeys([*train.id_columns, *train.features]))].copy()
    out[prediction_column(train)] = list(
        predicted.iloc[:, 0] if hasattr(predicted, "iloc") and predicted.ndim == 2 else predicted
    )
    out["model_name"] = model_name
    out["model_version"] = int(version)
    out["mlflow_run_id"] = run_id
    out["_load_id"] = load_id
    target = qualified(features.schema, table)
    con.register("_scored", out)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT *, now() AS scored_at FROM _scored")
            rows = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.unregister("_scored")
    return Scored(rows=rows, model_version=str(version))
