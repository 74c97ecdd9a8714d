"""The `train` section of a pipeline: what model to train on which columns, and when it becomes champion.

Every field description is the user's documentation (shown by editors from the JSON schema).
Checks that need the rest of the pipeline (declared columns, tables) are in ``ml/checks.py``.
"""

from typing import Literal

from pydantic import Field, model_validator

from etl_platform.spec.base import IDENTIFIER, SpecModel

FeatureType = Literal["numeric", "categorical"]


class SplitSpec(SpecModel):
    """How rows are divided into training rows and the test rows every metric is measured on."""

    kind: Literal["random", "time"] = Field(
        "random",
        description="random: a seeded random sample of rows is held out for testing (the same data and seed "
        "always give the same split). time: the latest rows by `column` are held out, so the model is "
        "tested on a period it has not seen, as it will be used.",
    )
    test_fraction: float = Field(0.2, gt=0, lt=1, description="Share of rows held out for testing, e.g. 0.2.")
    seed: int = Field(42, description="Seed of the random split and of estimators that take a random_state.")
    column: str | None = Field(
        None,
        description="For a time split: the date or timestamp column that orders the rows; the latest "
        "test_fraction of rows (by this column) are the test rows.",
    )

    @model_validator(mode="after")
    def _column_only_for_time(self) -> "SplitSpec":
        if self.kind == "time" and not self.column:
            raise ValueError("a time split needs column: the date or timestamp column that orders the rows")
        if self.kind == "random" and self.column:
            raise ValueError("column is for a time split (kind: time); a random split does not use it")
        return self


class PromotionSpec(SpecModel):
    """When a newly trained model becomes the champion (MLflow alias `champion`) that scores new rows.

    The newly trained model and the current champion are both measured on this run's test rows.
    A model that does not qualify stays registered, with the reason, but does not score.
    """

    metric: str | None = Field(
        None,
        description="Metric the rule compares, one of `metrics` (e.g. r2). Defaults to the first of `metrics`. "
        "Whether higher or lower is better follows from the metric (r2, accuracy: higher; rmse, mae: lower).",
    )
    min_improvement: float = Field(
        0.0,
        ge=0,
        description="How much the new model must beat the champion by on `metric`, in the metric's unit "
        "(0.01 with r2: at least 0.01 higher). 0: at least as good as the champion. The first model only "
        "needs to pass `floor`.",
    )
    floor: float | None = Field(
        None,
        description="The worst value of `metric` a champion may have (r2: at least this; rmse: at most this). "
        "A model below it is never promoted, however the champion does.",
    )


class TrainSpec(SpecModel):
    """A model trained on a warehouse table or query each time the pipeline's train job runs.

    The job loads the pipeline's table first; when a blocking check on it fails, nothing is trained.
    Each training is an MLflow run (parameters, metrics, model, data row count and hash) and a new
    version of the registered model `<pipeline>_<name>`; the promotion rule decides whether it becomes
    the champion, and the champion scores every row into the `<name>_predictions` table.
    """

    name: str | None = Field(
        None,
        pattern=IDENTIFIER,
        description="Name of the model within the pipeline; its assets and tables are <name>_features, "
        "<name>_model, <name>_champion and <name>_predictions. Defaults to the target column's name.",
    )
    table: str | None = Field(
        None,
        description="Warehouse table to train on: one of this pipeline's tables (e.g. 'campaigns' or a "
        "transform) or another pipeline's as '<pipeline>.<table>'. Defaults to the pipeline's loaded table. "
        "Give `table` or `query`, not both.",
    )
    query: str | None = Field(
        None,
        description="One SELECT over warehouse tables (named as in transforms) producing the feature columns, "
        "e.g. to derive day of week: 'SELECT *, dayofweek(date) AS day_of_week FROM campaigns'.",
    )
    target: str = Field(description="Column the model learns to predict, e.g. conversions.")
    features: dict[str, FeatureType] = Field(
        min_length=1,
        description="Columns the model learns from, each 'numeric' (used as a number) or 'categorical' "
        "(one column per value seen in training; values not seen then are ignored when scoring).",
    )
    id_columns: list[str] = Field(
        default_factory=list,
        description="Columns copied unchanged into the predictions table so each prediction can be joined "
        "back to its row, e.g. [date, campaign, channel].",
    )
    estimator: str = Field(
        description="Import path of the scikit-learn estimator, e.g. sklearn.ensemble.HistGradientBoostingRegressor. "
        "Only allowed estimators (scikit-learn's common regressors and classifiers; the list can be changed "
        "with ETL_ML_ESTIMATORS) may be used; a regressor predicts a number, a classifier a class.",
    )
    hyperparameters: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict,
        description="Arguments of the estimator, e.g. {max_iter: 200, learning_rate: 0.1}; logged as MLflow "
        "parameters. An argument the estimator does not take fails the run naming it.",
    )
    split: SplitSpec = Field(default_factory=SplitSpec, description="How test rows are held out.")
    metrics: list[str] = Field(
        default_factory=list,
        description="Metrics measured on the test rows and logged to MLflow. Regression: r2, rmse, mae "
        "(default all three); classification: accuracy, f1, precision, recall (default accuracy, f1).",
    )
    promotion: PromotionSpec = Field(
        default_factory=PromotionSpec, description="When a new model replaces the champion."
    )
    model_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name of the registered model in MLflow. Defaults to '<pipeline>_<name>'.",
    )
    cron: str | None = Field(
        None,
        description="Cron schedule of the train job (load, then train), e.g. '0 7 * * 1' for Mondays at 07:00, "
        "in triggers.timezone. Without it the job runs when started from the UI or CLI.",
    )

    @model_validator(mode="after")
    def _table_or_query(self) -> "TrainSpec":
        if self.table is not None and self.query is not None:
            raise ValueError("give table or query, not both")
        return self

    @property
    def model_key(self) -> str:
        """The model's name within the pipeline."""
        return self.name or self.target

    def registered_name(self, pipeline: str) -> str:
        return self.model_name or f"{pipeline}_{self.model_key}"
