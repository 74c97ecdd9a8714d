"""The demo pipelines materialized through Dagster against a temp warehouse."""

from pathlib import Path

import dagster as dg
import yaml

from etl_platform.demo import data as demo
from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
from etl_platform.resources.mlflow import MLflowResource
from etl_platform.resources.warehouse import WarehouseResource
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import table_names
from etl_platform_tests.conftest import (
    PROJECT_ROOT,
    check_results,
    duckdb_writer,
    load_definitions,
    materializations,
    query,
    run_job,
    scalar,
)

MARKETING_YAML = PROJECT_ROOT / "etl_platform" / "defs" / "pipelines" / "marketing_campaigns" / "defs.yaml"


def test_all_demo_pipelines_materialize_and_account_for_every_row(demo_landing, etl_home, instance):
    defs = load_definitions()
    file_pipelines = ("marketing_campaigns", "shop_customers", "shop_orders")  # the others need their servers
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.executable_asset_keys if k.path[0] in file_pipelines]
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, raise_on_error=False, asset_selection=keys)
    assert result.success

    mats = materializations(result)
    for table in ("marketing_campaigns/campaigns", "shop_customers/customers", "shop_orders/orders"):
        meta = mats[table]
        assert meta["rows_accepted"] + meta["rows_rejected"] == meta["rows_read"] > 0  # Q
        assert meta["dagster/row_count"] > 0
        assert meta["rows_per_second"] > 0 and meta["duration_seconds"] > 0
        assert meta["dagster/column_schema"].columns
    campaigns = mats["marketing_campaigns/campaigns"]
    assert campaigns["rows_read"] == 3_000
    assert campaigns["dagster/row_count"] == scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns")
    assert campaigns["rows_rejected"] == scalar(
        etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns_rejected WHERE run_id = ?", [result.run_id]
    )
    reasons = mats["marketing_campaigns/campaigns_rejected"]["rejected_by_reason"]
    assert {"spend is negative", "more conversions than clicks", "date: not a valid date"} <= set(reasons)

    # Merge sync: every order once, with its latest status.
    orders = mats["shop_orders/orders"]
    assert orders["rows_written"] < orders["rows_accepted"]  # later files repeat earlier orders
    assert scalar(etl_home, "SELECT count(*) - count(DISTINCT order_id) FROM shop_orders.orders") == 0
    # The cross-pipeline mart joined orders with customers.
    assert scalar(etl_home, "SELECT count(*) FROM shop_orders.daily_revenue") > 0
    assert (
        scalar(etl_home, "SELECT sum(rows) FROM marketing_campaigns.rejected_rows_by_reason")
        >= campaigns["rows_rejected"]
    )

    checks = check_results(result)
    assert all(checks.values()), [name for name, passed in checks.items() if not passed]
    assert {
        f"{t}:{c}"
        for t in ("marketing_campaigns/campaigns", "shop_customers/customers", "shop_orders/orders")
        for c in ("rejected_rows_within_limit", "all_files_readable", "schema_drift")
    } <= set(checks)
    assert sum(name.split(":")[1].startswith("expect_") for name in checks) == 8  # the campaigns' expectations
    # The demo model trained on the campaigns and scored them, each prediction naming its model version.
    assert mats["marketing_campaigns/conversions_predictions"]["dagster/row_count"] > 0


def test_rejected_rows_carry_file_line_reason_and_run(demo_landing, etl_home, instance):
    result = run_job("marketing_campaigns_job", instance)
    assert result.success
    rows = query(
        etl_home,
        "SELECT source_file, source_line, reasons, run_id FROM marketing_campaigns.campaigns_rejected ORDER BY ALL",
    )
    assert rows and all(run_id == result.run_id and reasons for _, _, reasons, run_id in rows)
    # The generator plants a bad row wherever the global row number i has i % 97 == 13; three
    # files of 1,000 rows, header on line 1: line L of file k holds row i = (k-1)*1000 + L - 2.
    for source_file, line, _, _ in rows:
        k = int(source_file[-7:-4])
        assert ((k - 1) * 1_000 + line - 2) % demo.BAD_ROW_EVERY == 13, (source_file, line)
    assert ("campaigns/campaign_export_001.csv", 15, ["spend is negative"], result.run_id) in rows


def _marketing_with(etl_home: Path, **changes) -> dg.Definitions:
    raw = yaml.safe_load(MARKETING_YAML.read_text())["attributes"]
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    spec = PipelineSpec.model_validate(raw)
    ctx = PipelineContext(name="marketing_campaigns", names=table_names(spec, "marketing_campaigns"), defined_at={})
    return dg.Definitions.merge(
        build_pipeline_defs(spec, ctx),
        dg.Definitions(resources={"warehouse": WarehouseResource(), "mlflow": MLflowResource()}),
    )


def test_a_failed_blocking_check_keeps_transforms_from_running(demo_landing, etl_home, instance):
    defs = _marketing_with(etl_home, checks={"max_rejected_fraction": 0.001, "blocking": True})
    result = defs.resolve_job_def("marketing_campaigns_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    assert check_results(result)["marketing_campaigns/campaigns:rejected_rows_within_limit"] is False
    built = set(materializations(result))
    assert "marketing_campaigns/campaigns" in built
    assert "marketing_campaigns/daily_channel_performance" not in built
    assert not query(etl_home, "SELECT * FROM duckdb_tables() WHERE table_name = 'daily_channel_performance'")


def test_transforms_build_in_dependency_order_and_alone_when_selected(demo_landing, etl_home, instance):
    # Declared before the table it reads: the order comes from the SQL, not the YAML.
    weekly = {
        "name": "weekly_spend",
        "sql": "SELECT date_trunc('week', date) AS week, sum(spend) AS spend FROM daily GROUP BY 1",
    }
    daily = {"name": "daily", "sql": "SELECT date, sum(spend) AS spend FROM campaigns GROUP BY date"}
    defs = _marketing_with(etl_home, transforms=[weekly, daily])
    result = defs.resolve_job_def("marketing_campaigns_job").execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    built = materializations(result)
    assert built["marketing_campaigns/weekly_spend"]["dagster/row_count"] > 0
    total = scalar(etl_home, "SELECT sum(spend) FROM marketing_campaigns.campaigns")
    assert scalar(etl_home, "SELECT sum(spend) FROM marketing_campaigns.weekly_spend") == total

    # Only `daily` selected: weekly_spend keeps what it had and is not reported as built.
    with duckdb_writer(etl_home) as con:
        con.execute("DELETE FROM marketing_campaigns.campaigns WHERE channel = 'Search'")
    only_daily = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(["marketing_campaigns", "daily"])}
    )
    result = only_daily.execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    assert set(materializations(result)) == {"marketing_campaigns/daily"}
    assert scalar(etl_home, "SELECT sum(spend) FROM marketing_campaigns.daily") < total
    assert scalar(etl_home, "SELECT sum(spend) FROM marketing_campaigns.weekly_spend") == total


def test_a_long_load_logs_progress_while_it_runs(landing, etl_home, instance, monkeypatch):
    monkeypatch.setenv("ETL_PROGRESS_INTERVAL", "0.05")
    demo.write_campaigns(landing / "campaigns", rows=400_000)
    result = run_job("marketing_campaigns_job", instance)
    assert result.success
    progress = [
        e.message for e in instance.all_logs(result.run_id) if e.user_message and "rows read so far" in e.user_message
    ]
    assert progress, "no progress lines in the run's log"
    assert all("rows/s" in line and "campaign_export.csv" in line for line in progress)
    assert any(not line.startswith("campaigns: ~0 rows") for line in progress)


def test_replace_with_no_files_fails_clearly_and_keeps_the_table(demo_landing, etl_home, instance):
    assert run_job("marketing_campaigns_job", instance).success
    before = scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns")
    for path in (demo_landing / "campaigns").glob("*.csv"):
        path.unlink()
    result = run_job("marketing_campaigns_job", instance)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "No files match 'campaigns/*.csv'" in failure.event_specific_data.error.message
    assert scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns") == before
