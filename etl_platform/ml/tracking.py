"""One training as an MLflow run: parameters, metrics, data row count and hash, the model with its
signature and input example, and tags linking the Dagster run. Every value is scrubbed first."""

from dataclasses import dataclass

from etl_platform.ml.features import FeatureSet
from etl_platform.ml.training import Trained
from etl_platform.secrets.references import scrub
from etl_platform.spec.ml import TrainSpec

INPUT_EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    experiment_id: str
    model_uri: str


def _clean(values: dict) -> dict[str, str]:
    """Values as MLflow stores them (text), with anything secret-looking masked: a parameter or
    tag must never carry a credential into the tracking store."""
    return {str(k): scrub("" if v is None else str(v)) for k, v in values.items()}


def log_training(experiment_id: str, train: TrainSpec, trained: Trained, features: FeatureSet, tags: dict) -> LoggedRun:
    """Log a fitted model and what it was fitted on as one MLflow run of the experiment."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    params = {
        "estimator": train.estimator,
        **{f"estimator.{k}": v for k, v in trained.params.items()},
        **{f"feature.{name}": kind for name, kind in train.features.items()},
        "target": train.target,
        "split.kind": train.split.kind,
        "split.test_fraction": train.split.test_fraction,
        "split.seed": train.split.seed,
        "split.column": train.split.column,
        "data.rows": features.rows,
        "data.hash": features.data_hash,
        "data.table": f"{features.schema}.{features.table}",
        "rows.train": len(trained.X_train),
        "rows.test": len(trained.X_test),
    }
    example = trained.X_test.head(INPUT_EXAMPLE_ROWS)
    signature = infer_signature(example, trained.model.predict(example))
    with mlflow.start_run(experiment_id=experiment_id, tags=_clean(tags)) as run:
        mlflow.log_params(_clean(params))
        mlflow.log_metrics(trained.metrics)
        dataset = mlflow.data.from_pandas(
            trained.X_train, name=features.table, digest=features.data_hash[:36], targets=None
        )
        mlflow.log_input(dataset, context="training")
        info = mlflow.sklearn.log_model(
            trained.model,
            name="model",
            signature=signature,
            input_example=example,
            # Listed, not inferred: inference re-imports the model in a subprocess, seconds per run.
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
            skops_trusted_types=_own_types(trained.model),
        )
    return LoggedRun(run.info.run_id, experiment_id, info.model_uri)


def _own_types(model) -> list[str]:
    """The types skops does not trust by default that this model is made of (e.g. the tree
    predictors of gradient boosting). The file is the platform's own output, written just now,
    and the list is stored with it in the MLmodel file; loading still refuses any other type."""
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
