"""A bad `train` section fails when definitions load, naming the file, line and field."""

import pytest
from dagster.components.testing import create_defs_folder_sandbox

from etl_platform_tests.spec.test_spec_errors import load_error, write_pipeline

PIPELINE = """\
type: etl_platform.components.Pipeline
attributes:
  source:
    files: c/*.csv
    columns:
      day: {from: Day, type: date}
      channel: {type: varchar}
      spend: {type: "decimal(10,2)"}
      sales: {type: bigint}
  destination:
    table: costs
  train:
    target: sales
    features: {spend: numeric, channel: categorical}
    estimator: sklearn.linear_model.Ridge
    split: {kind: time, column: day}
    promotion: {metric: r2, floor: 0.1}
"""


def test_a_valid_train_section_adds_the_model_assets_and_train_job(etl_home):
    with create_defs_folder_sandbox() as sandbox:
        write_pipeline(sandbox, PIPELINE)
        with sandbox.build_all_defs() as defs:
            keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
            job = defs.resolve_job_def("costs_train_job")
            in_job = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    model_assets = {f"costs/sales_{s}" for s in ("features", "model", "champion", "predictions")}
    assert model_assets <= keys
    # The load runs in the same job, so its blocking checks gate the training.
    assert in_job == model_assets | {"costs/costs", "costs/costs_rejected"}


@pytest.mark.parametrize(
    ("change", "line", "field", "says"),
    [
        pytest.param(
            ("sklearn.linear_model.Ridge", "sklearn.svm.SVR"),
            15,
            "attributes.train.estimator",
            "'sklearn.svm.SVR' is not allowed",
            id="estimator not allowed",
        ),
        pytest.param(
            ("spend: numeric", "spnd: numeric"),
            14,
            "attributes.train.features.spnd",
            "'spnd' is not a column of costs; did you mean 'spend'?",
            id="unknown feature",
        ),
        pytest.param(
            ("channel: categorical", "channel: numeric"),
            14,
            "attributes.train.features.channel",
            "'channel' is VARCHAR, not a number",
            id="text as a number",
        ),
        pytest.param(
            ("target: sales", "target: day"),
            13,
            "attributes.train.target",
            "a regressor predicts numbers",
            id="regressor on text",
        ),
        pytest.param(
            ("column: day", "column: dy"),
            16,
            "attributes.train.split.column",
            "'dy' is not a column of costs",
            id="unknown split column",
        ),
        pytest.param(
            ("metric: r2", "metric: accuracy"),
            17,
            "attributes.train.promotion.metric",
            "'accuracy' is not among the measured metrics",
            id="rule on an unmeasured metric",
        ),
        pytest.param(
            ("    target: sales\n", "    target: sales\n    metrics: [r2, auc]\n"),
            14,
            "attributes.train.metrics.1",
            "'auc' is not a regression metric",
            id="unknown metric",
        ),
        pytest.param(
            ("    target: sales\n", "    target: sales\n    query: SELECT * FROM cost\n"),
            14,
            "attributes.train.query",
            "refers to table 'cost', which this pipeline does not produce; did you mean 'costs'?",
            id="query on unknown table",
        ),
        pytest.param(
            ("    target: sales\n", "    target: sales\n    estimators: x\n"),
            14,
            "estimators",
            "xtra",
            id="unknown key",
        ),
    ],
)
def test_a_bad_train_section_names_file_line_and_field(etl_home, change, line, field, says):
    old, new = change
    assert old in PIPELINE
    message = load_error(PIPELINE.replace(old, new, 1))
    assert field in message and says in message, message
    if "xtra" not in says:
        assert f"defs.yaml:{line} - {field}: " in message, message


def test_the_allowed_estimators_can_be_changed_by_the_administrator(etl_home, monkeypatch):
    monkeypatch.setenv("ETL_ML_ESTIMATORS", "sklearn.svm.SVR:regression")
    with create_defs_folder_sandbox() as sandbox:
        write_pipeline(sandbox, PIPELINE.replace("sklearn.linear_model.Ridge", "sklearn.svm.SVR"))
        with sandbox.build_all_defs() as defs:
            assert defs.resolve_job_def("costs_train_job")
    message = load_error(PIPELINE)  # Ridge is no longer on the list
    assert "attributes.train.estimator" in message and "allowed: sklearn.svm.SVR" in message
