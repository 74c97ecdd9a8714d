"""Checks of a pipeline's `train` section when definitions load: each error names the file, line and field."""

import difflib

import duckdb

from etl_platform.errors import first_line
from etl_platform.ml import estimators
from etl_platform.spec.errors import SpecLocator
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import TableNames, transform_references

# Declared types a numeric feature or a regression target may have.
_NUMERIC_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "DOUBLE",
    "FLOAT",
    "REAL",
    "DECIMAL",
    "BOOLEAN",
)


def _suggest(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _is_numeric(duckdb_type: str) -> bool:
    return duckdb_type.upper().startswith(_NUMERIC_TYPES)


def training_columns(spec: PipelineSpec, names: TableNames) -> dict[str, str] | None:
    """Declared columns (name -> type) of the table the model trains on, when they are known before
    any run: the pipeline's own loaded table with a column mapping. None otherwise (a query, a
    transform, another pipeline's table: checked when the step reads it)."""
    train = spec.train
    if train is None or train.query is not None or not spec.source.columns:
        return None
    if train.table not in (None, names.table):
        return None
    return {name: col.duckdb_type for name, col in spec.source.columns.items()}


def check_train(spec: PipelineSpec, locate: SpecLocator, names: TableNames) -> None:
    """Raise a SpecError naming the field of the first mistake in ``spec.train``."""
    train = spec.train
    if train is None:
        return
    _check_reads(train, locate, names)
    try:
        task = estimators.task_of(train.estimator)
    except estimators.EstimatorNotAllowed as err:
        # the message is the cause's own, now with its line: nothing more to show
        raise locate.error(["train", "estimator"], str(err)) from None
    for i, metric in enumerate(train.metrics):
        known = {m for m, d in estimators.METRICS.items() if d.task == task}
        if metric not in known:
            raise locate.error(
                ["train", "metrics", i],
                f"'{metric}' is not a {task} metric{_suggest(metric, known)}; use {', '.join(sorted(known))}",
            )
    metrics = train.metrics or list(estimators.DEFAULT_METRICS[task])
    rule_metric = train.promotion.metric
    if rule_metric is not None and rule_metric not in metrics:
        raise locate.error(
            ["train", "promotion", "metric"],
            f"'{rule_metric}' is not among the measured metrics ({', '.join(metrics)})",
        )
    if train.target in train.features:
        raise locate.error(["train", "features", train.target], "the target cannot also be a feature")
    columns = training_columns(spec, names)
    if columns is None:
        return
    known = set(columns)

    def must_exist(path: list, column: str) -> None:
        if column not in known:
            raise locate.error(
                ["train", *path], f"'{column}' is not a column of {names.table}{_suggest(column, known)}"
            )

    must_exist(["target"], train.target)
    if task == "regression" and not _is_numeric(columns[train.target]):
        raise locate.error(
            ["train", "target"], f"a regressor predicts numbers, and '{train.target}' is {columns[train.target]}"
        )
    for column, kind in train.features.items():
        must_exist(["features", column], column)
        if kind == "numeric" and not _is_numeric(columns[column]):
            raise locate.error(
                ["train", "features", column],
                f"'{column}' is {columns[column]}, not a number; declare it categorical or derive a number in `query`",
            )
    for i, column in enumerate(train.id_columns):
        must_exist(["id_columns", i], column)
    if train.split.column:
        must_exist(["split", "column"], train.split.column)


def _check_reads(train, locate: SpecLocator, names: TableNames) -> None:
    """The table or query refers to tables that exist: this pipeline's by name, others' as '<pipeline>.<table>'."""
    if train.table is not None:
        parts = train.table.split(".")
        if len(parts) > 2 or not all(parts):
            raise locate.error(["train", "table"], "write the table as '<table>' or '<pipeline>.<table>'")
        if len(parts) == 1 and train.table not in names.own:
            raise locate.error(
                ["train", "table"],
                f"'{train.table}' is not a table of this pipeline{_suggest(train.table, names.own)} "
                "(another pipeline's table is written '<pipeline>.<table>')",
            )
        return
    if train.query is None:
        return
    try:
        statements = duckdb.extract_statements(train.query)
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise locate.error(["train", "query"], "must be exactly one SELECT statement")
        refs = transform_references(train.query)
    except duckdb.Error as err:
        raise locate.error(["train", "query"], first_line(err)) from err
    for ref in sorted(refs):
        parts = ref.split(".")
        if len(parts) == 1 and ref not in names.own:
            raise locate.error(
                ["train", "query"],
                f"refers to table '{ref}', which this pipeline does not produce{_suggest(ref, names.own)} "
                "(another pipeline's table is written '<pipeline>.<table>')",
            )
        if len(parts) > 2:
            raise locate.error(["train", "query"], f"'{ref}': write tables as '<table>' or '<pipeline>.<table>'")
