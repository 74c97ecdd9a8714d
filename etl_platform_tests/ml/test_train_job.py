"""The demo pipeline's train job through Dagster, on a real MLflow store under the test's ETL_HOME."""

import dagster as dg
import yaml

from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
from etl_platform.resources.mlflow import MLflowResource
from etl_platform.resources.warehouse import WarehouseResource
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import table_names
from etl_platform_tests.conftest import PROJECT_ROOT, check_results, materializations, query, run_job, scalar
from etl_platform_tests.ml.conftest import client

MARKETING_YAML = PROJECT_ROOT / "etl_platform" / "defs" / "pipelines" / "marketing_campaigns" / "defs.yaml"
MODEL = "marketing_campaigns_conversions"
ML_ASSETS = {f"marketing_campaigns/conversions_{s}" for s in ("features", "model", "champion", "predictions")}


def marketing_with(**changes) -> dg.Definitions:
    """The demo pipeline with some sections changed (``train={...}`` replaces keys of the train section)."""
    raw = yaml.safe_load(MARKETING_YAML.read_text())["attributes"]
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values}
    spec = PipelineSpec.model_validate(raw)
    ctx = PipelineContext(name="marketing_campaigns", names=table_names(spec, "marketing_campaigns"), defined_at={})
    resources = {"warehouse": WarehouseResource(), "mlflow": MLflowResource()}
    return dg.Definitions.merge(
        build_pipeline_defs(spec, ctx), dg.Definitions(resources=resources, executor=dg.in_process_executor)
    )


def _failure(result) -> str:
    return "\n".join(
        e.event_specific_data.error.to_string() for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    )


def test_the_train_job_trains_registers_promotes_and_scores(demo_landing, etl_home, instance, mlflow_store):
    import mlflow
    import mlflow.pyfunc
    from mlflow.models import get_model_info

    result = run_job("marketing_campaigns_train_job", instance)
    assert result.success, _failure(result)
    built = materializations(result)
    assert ML_ASSETS | {"marketing_campaigns/campaigns"} <= set(built)
    assert check_results(result)["marketing_campaigns/campaigns:rejected_rows_within_limit"] is True

    # The MLflow run: parameters, metrics, data row count and hash, tags back to the Dagster run.
    model_meta, features_meta = (
        built["marketing_campaigns/conversions_model"],
        built["marketing_campaigns/conversions_features"],
    )
    store = client(mlflow_store)
    run = store.get_run(model_meta["mlflow_run_id"])
    rows = scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.conversions_features")
    assert (
        rows
        == features_meta["dagster/row_count"]
        == scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns WHERE conversions IS NOT NULL")
    )
    assert run.data.params["estimator"] == "sklearn.ensemble.HistGradientBoostingRegressor"
    assert run.data.params["estimator.max_iter"] == "100" and run.data.params["feature.channel"] == "categorical"
    assert run.data.params["data.rows"] == str(rows)
    assert run.data.params["data.hash"] == features_meta["data_hash"] == run.data.tags["etl.data_hash"]
    assert int(run.data.params["rows.train"]) + int(run.data.params["rows.test"]) == rows
    assert (
        set(run.data.metrics) == {"r2", "rmse", "mae"} and round(run.data.metrics["r2"], 6) == model_meta["metric/r2"]
    )
    assert run.data.tags["dagster.run_id"] == result.run_id and run.data.tags["etl.pipeline"] == "marketing_campaigns"
    assert (
        model_meta["mlflow_run"]
        == f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    )
    assert model_meta["model_version_url"] == f"http://127.0.0.1:5000/#/models/{MODEL}/versions/1"
    # Artifacts in the embedded artifact folder, not the working directory.
    assert str(etl_home / "mlflow" / "artifacts") in store.get_experiment(run.info.experiment_id).artifact_location

    # Registered, READY, champion (the demo data clears the floor), loadable by alias, and it predicts.
    version = store.get_model_version(MODEL, "1")
    assert version.status == "READY" and version.run_id == run.info.run_id
    assert str(store.get_model_version_by_alias(MODEL, "champion").version) == "1"
    assert built["marketing_campaigns/conversions_champion"]["promoted"] is True
    info = get_model_info(f"models:/{MODEL}/1")
    assert info.signature is not None and {c.name for c in info.signature.inputs} == {
        "spend",
        "clicks",
        "channel",
        "day_of_week",
        "month",
    }
    assert info.saved_input_example_info is not None
    mlflow.set_tracking_uri(mlflow_store)
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    sample = query(
        etl_home,
        "SELECT spend, clicks, channel, day_of_week, month, predicted_conversions FROM "
        "marketing_campaigns.conversions_predictions ORDER BY ALL LIMIT 20",
    )
    import pandas as pd

    frame = pd.DataFrame(sample, columns=["spend", "clicks", "channel", "day_of_week", "month", "expected"])
    predicted = champion.predict(frame.drop(columns="expected"))
    assert len(predicted) == 20 and abs(pd.Series(predicted) - frame["expected"]).max() < 1e-6

    # Every prediction says which model version made it.
    assert query(
        etl_home,
        "SELECT DISTINCT model_name, model_version, mlflow_run_id FROM marketing_campaigns.conversions_predictions",
    ) == [(MODEL, 1, run.info.run_id)]
    assert scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.conversions_predictions") == rows

    # Retrained on the same data under a rule it cannot meet: registered, not promoted, the alias stays.
    strict = marketing_with(train={"promotion": {"metric": "r2", "min_improvement": 0.5}})
    second = strict.resolve_job_def("marketing_campaigns_train_job").execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert second.success, _failure(second)
    again = materializations(second)
    assert (
        again["marketing_campaigns/conversions_features"]["data_hash"] == features_meta["data_hash"]
    )  # same rows, same hash
    assert again["marketing_campaigns/conversions_champion"]["promoted"] is False
    assert again["marketing_campaigns/conversions_champion"]["champion_version"] == 1
    loser = store.get_model_version(MODEL, "2")
    assert loser.status == "READY" and loser.tags["promotion"] == "rejected"
    assert "does not beat the champion's" in loser.tags["promotion_reason"] and "Not promoted" in loser.description
    assert str(store.get_model_version_by_alias(MODEL, "champion").version) == "1"
    assert query(
        etl_home, "SELECT DISTINCT model_version, _load_id FROM marketing_campaigns.conversions_predictions"
    ) == [(1, second.run_id)]


def test_a_failed_blocking_check_stops_training_in_the_same_run(demo_landing, etl_home, instance, mlflow_store):
    defs = marketing_with(checks={"max_rejected_fraction": 0.001, "blocking": True})
    job = defs.resolve_job_def("marketing_campaigns_train_job")
    assert ML_ASSETS <= {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    assert check_results(result)["marketing_campaigns/campaigns:rejected_rows_within_limit"] is False
    built = set(materializations(result))
    assert "marketing_campaigns/campaigns" in built and not built & ML_ASSETS
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "marketing_campaigns__load" in started and "marketing_campaigns__train_conversions" not in started
    store = client(mlflow_store)
    assert store.search_registered_models() == [] and store.get_experiment_by_name(MODEL) is None
    assert not query(etl_home, "SELECT * FROM duckdb_tables() WHERE table_name LIKE 'conversions_%'")
