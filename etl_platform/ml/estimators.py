"""Which estimators a pipeline may train, what task each solves, and the metrics of each task.

Nothing here imports scikit-learn: definitions are checked against these names when the code
location loads, and the estimator class is imported only inside the training step.
"""

import importlib
import os
from dataclasses import dataclass
from typing import Literal

Task = Literal["regression", "classification"]

# Import path -> task. The defaults: scikit-learn's common regressors and classifiers.
DEFAULT_ESTIMATORS: dict[str, Task] = {
    "sklearn.linear_model.LinearRegression": "regression",
    "sklearn.linear_model.Ridge": "regression",
    "sklearn.linear_model.Lasso": "regression",
    "sklearn.linear_model.ElasticNet": "regression",
    "sklearn.ensemble.RandomForestRegressor": "regression",
    "sklearn.ensemble.GradientBoostingRegressor": "regression",
    "sklearn.ensemble.HistGradientBoostingRegressor": "regression",
    "sklearn.tree.DecisionTreeRegressor": "regression",
    "sklearn.neighbors.KNeighborsRegressor": "regression",
    "sklearn.linear_model.LogisticRegression": "classification",
    "sklearn.ensemble.RandomForestClassifier": "classification",
    "sklearn.ensemble.GradientBoostingClassifier": "classification",
    "sklearn.ensemble.HistGradientBoostingClassifier": "classification",
    "sklearn.tree.DecisionTreeClassifier": "classification",
    "sklearn.neighbors.KNeighborsClassifier": "classification",
}

# Environment variable that replaces the allowed list: comma-separated import paths, each
# optionally followed by ':regression' or ':classification' when the class name does not say.
ALLOWED_ESTIMATORS_ENV = "ETL_ML_ESTIMATORS"


@dataclass(frozen=True)
class Metric:
    task: Task
    higher_is_better: bool
    description: str


METRICS: dict[str, Metric] = {
    "r2": Metric("regression", True, "coefficient of determination (1 is perfect)"),
    "rmse": Metric("regression", False, "root mean squared error, in the target's unit"),
    "mae": Metric("regression", False, "mean absolute error, in the target's unit"),
    "accuracy": Metric("classification", True, "share of rows predicted right"),
    "f1": Metric("classification", True, "F1 score, weighted by class frequency"),
    "precision": Metric("classification", True, "precision, weighted by class frequency"),
    "recall": Metric("classification", True, "recall, weighted by class frequency"),
}
DEFAULT_METRICS: dict[Task, tuple[str, ...]] = {
    "regression": ("r2", "rmse", "mae"),
    "classification": ("accuracy", "f1"),
}


class EstimatorNotAllowed(ValueError):
    pass


def _task_from_name(path: str) -> Task | None:
    name = path.rsplit(".", 1)[-1]
    if "Classifier" in name or name.endswith("LogisticRegression"):
        return "classification"
    if "Regress" in name or name in ("Ridge", "Lasso", "ElasticNet"):
        return "regression"
    return None


def allowed_estimators() -> dict[str, Task]:
    """The allowed import paths and their tasks: ETL_ML_ESTIMATORS when set, else the defaults."""
    configured = os.environ.get(ALLOWED_ESTIMATORS_ENV, "").strip()
    if not configured:
        return dict(DEFAULT_ESTIMATORS)
    allowed: dict[str, Task] = {}
    for entry in (e.strip() for e in configured.split(",")):
        if not entry:
            continue
        path, _, task = entry.partition(":")
        task = task or DEFAULT_ESTIMATORS.get(path) or _task_from_name(path) or ""
        if task not in ("regression", "classification"):
            raise EstimatorNotAllowed(
                f"{ALLOWED_ESTIMATORS_ENV}: cannot tell whether {path!r} is a regressor or a classifier; "
                f"write it as '{path}:regression' or '{path}:classification'"
            )
        allowed[path] = task  # type: ignore[assignment]
    return allowed


def task_of(path: str) -> Task:
    """The task of an allowed estimator; raises EstimatorNotAllowed naming the allowed ones."""
    allowed = allowed_estimators()
    if path not in allowed:
        raise EstimatorNotAllowed(
            f"estimator {path!r} is not allowed; allowed: {', '.join(sorted(allowed))} "
            f"(an administrator can change the list with {ALLOWED_ESTIMATORS_ENV})"
        )
    return allowed[path]


def estimator_class(path: str) -> type:
    """Import an allowed estimator class (only allowed paths are ever imported)."""
    task_of(path)
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)
