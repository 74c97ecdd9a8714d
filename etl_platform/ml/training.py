"""Fitting and measuring a scikit-learn model on a feature frame: plain functions, no Dagster, no MLflow."""

from dataclasses import dataclass
from typing import Any

from etl_platform.ml import estimators
from etl_platform.spec.ml import TrainSpec


class TrainingFailed(ValueError):
    """The estimator cannot be built or fitted as specified; the message names the field."""


@dataclass
class Trained:
    model: Any  # a fitted sklearn Pipeline: preparation of the features, then the estimator
    task: estimators.Task
    metrics: dict[str, float]
    X_train: Any
    X_test: Any
    y_test: Any
    params: dict[str, Any]  # the estimator's effective arguments, as logged


def metric_names(train: TrainSpec) -> list[str]:
    return train.metrics or list(estimators.DEFAULT_METRICS[estimators.task_of(train.estimator)])


def rule_metric(train: TrainSpec) -> str:
    return train.promotion.metric or metric_names(train)[0]


def split(frame, train: TrainSpec):
    """(train rows, test rows): a seeded random sample, or the latest rows by the time column."""
    n_test = max(1, round(len(frame) * train.split.test_fraction))
    if len(frame) - n_test < 2:
        raise TrainingFailed(f"train.split: {len(frame)} row(s) with a target are too few to train and test on")
    if train.split.kind == "time":
        ordered = frame.sort_values(train.split.column, kind="stable")
        return ordered.iloc[:-n_test], ordered.iloc[-n_test:]
    shuffled = frame.sample(frac=1.0, random_state=train.split.seed)
    return shuffled.iloc[n_test:], shuffled.iloc[:n_test]


def build_model(train: TrainSpec):
    """The model: numeric features imputed (median), categorical ones one-hot encoded, then the estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    estimator = estimators.estimator_class(train.estimator)()
    accepted = estimator.get_params()
    for name in train.hyperparameters:
        if name not in accepted:
            raise TrainingFailed(
                f"train.hyperparameters.{name}: {train.estimator} takes no argument '{name}'; "
                f"it takes: {', '.join(sorted(accepted))}"
            )
    params = dict(train.hyperparameters)
    if "random_state" in accepted and "random_state" not in params:
        params["random_state"] = train.split.seed  # the same data and seed give the same model
    estimator.set_params(**params)
    numeric = [c for c, kind in train.features.items() if kind == "numeric"]
    categorical = [c for c, kind in train.features.items() if kind == "categorical"]
    parts = []
    if numeric:
        parts.append(("numeric", SimpleImputer(strategy="median"), numeric))
    if categorical:
        parts.append(("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical))
    prepare = ColumnTransformer(parts, remainder="drop")
    return Pipeline([("prepare", prepare), ("estimator", estimator)]), params


def fit(train: TrainSpec, frame) -> Trained:
    """Split, fit and measure on the test rows."""
    task = estimators.task_of(train.estimator)
    train_rows, test_rows = split(frame, train)
    features = list(train.features)
    model, params = build_model(train)
    y_train = _target(train_rows[train.target], task)
    try:
        model.fit(train_rows[features], y_train)
    except (ValueError, TypeError) as err:
        raise TrainingFailed(f"train.estimator: {train.estimator} could not be fitted: {err}") from err
    X_test, y_test = test_rows[features], _target(test_rows[train.target], task)
    metrics = measure(model.predict(X_test), y_test, metric_names(train), task)
    return Trained(model, task, metrics, train_rows[features], X_test, y_test, params)


def _target(values, task: estimators.Task):
    return values.astype("float64") if task == "regression" else values.astype(str)


def measure(predicted, actual, names: list[str], task: estimators.Task) -> dict[str, float]:
    """Each named metric of predictions (an array, Series or one-column frame) against the actual values."""
    import numpy as np
    from sklearn import metrics as m

    predicted = np.asarray(predicted).ravel()
    predicted = predicted.astype("float64") if task == "regression" else predicted.astype(str)
    kinds = {
        "r2": lambda: m.r2_score(actual, predicted),
        "rmse": lambda: m.root_mean_squared_error(actual, predicted),
        "mae": lambda: m.mean_absolute_error(actual, predicted),
        "accuracy": lambda: m.accuracy_score(actual, predicted),
        "f1": lambda: m.f1_score(actual, predicted, average="weighted", zero_division=0),
        "precision": lambda: m.precision_score(actual, predicted, average="weighted", zero_division=0),
        "recall": lambda: m.recall_score(actual, predicted, average="weighted", zero_division=0),
    }
    return {name: float(kinds[name]()) for name in names}
