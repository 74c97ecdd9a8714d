"""A snapshot of the graph: every change to assets, checks, jobs or schedules shows up here."""

import dagster as dg

from etl_platform.resources.warehouse import WAREHOUSE_POOL
from etl_platform_tests.conftest import load_definitions

ASSETS = {
    "marketing_campaigns/source_files",
    "marketing_campaigns/campaigns",
    "marketing_campaigns/campaigns_rejected",
    "marketing_campaigns/daily_channel_performance",
    "marketing_campaigns/rejected_rows_by_reason",
    "marketing_campaigns/conversions_features",
    "marketing_campaigns/conversions_model",
    "marketing_campaigns/conversions_champion",
    "marketing_campaigns/conversions_predictions",
    "shop_customers/source_files",
    "shop_customers/customers",
    "shop_customers/customers_rejected",
    "shop_orders/source_files",
    "shop_orders/orders",
    "shop_orders/orders_rejected",
    "shop_orders/daily_revenue",
    "app_events/source",
    "app_events/events",
    "app_events/events_rejected",
    "app_events/daily_events",
    "crm_accounts/source",
    "crm_accounts/accounts",
    "crm_accounts/accounts_rejected",
    "crm_accounts/revenue_by_plan",
    "partner_invoices/source_files",
    "partner_invoices/invoices",
    "partner_invoices/invoices_rejected",
    "partner_invoices/monthly_invoiced",
    "store_sales/source",
    "store_sales/sales",
    "store_sales/sales_rejected",
    "store_sales/daily_store_revenue",
}
CHECKS = {
    f"{table}:{check}"
    for table in (
        "marketing_campaigns/campaigns", "shop_customers/customers", "shop_orders/orders",
        "app_events/events", "crm_accounts/accounts", "partner_invoices/invoices", "store_sales/sales",
    )
    for check in ("rejected_rows_within_limit", "all_files_readable", "schema_drift")
} | {
    "shop_customers/customers:freshness_check",
    # Great Expectations checks of the campaigns demo
    *(f"marketing_campaigns/campaigns:{name}" for name in (
        "expect_column_mean_to_be_between__spend",
        "expect_column_values_to_be_between__clicks",
        "expect_column_values_to_be_between__conversions",
        "expect_column_values_to_be_between__spend",
        "expect_column_values_to_be_in_set__channel",
        "expect_column_values_to_not_be_null__campaign",
        "expect_table_row_count_to_be_between",
    )),
    "marketing_campaigns/daily_channel_performance:expect_compound_columns_to_be_unique__date__channel",
}
JOBS = {
    "marketing_campaigns_job", "marketing_campaigns_train_job", "shop_customers_job", "shop_orders_job",
    "app_events_job", "crm_accounts_job", "partner_invoices_job", "store_sales_job",
}
SCHEDULES = {
    "marketing_campaigns_schedule": "0 6 * * *",
    "shop_orders_schedule": "*/30 * * * *",
    "app_events_schedule": "*/15 * * * *",
    "store_sales_schedule": "30 1 * * *",  # the latest daily partition, each night
}
SENSORS = {"alert_on_run_failure", "alert_on_stale_tables", "shop_customers_file_sensor", "shop_customers_freshness_sensor"}


def test_graph_snapshot(etl_home):
    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ASSETS
    assert {f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys} == CHECKS
    assert {j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")} == JOBS
    assert {s.name: s.cron_schedule for s in defs.schedules} == SCHEDULES
    assert {s.name for s in defs.sensors} == SENSORS


def test_lineage_reaches_across_pipelines(etl_home):
    graph = load_definitions().resolve_asset_graph()
    parents = {k.to_user_string() for k in graph.get(dg.AssetKey(["shop_orders", "daily_revenue"])).parent_keys}
    assert parents == {"shop_orders/orders", "shop_customers/customers"}
    assert {k.to_user_string() for k in graph.get(dg.AssetKey(["marketing_campaigns", "campaigns"])).parent_keys} == {
        "marketing_campaigns/source_files"
    }


def test_demo_connections_are_bound_with_kinds_and_no_secret_values(etl_home, monkeypatch):
    monkeypatch.setenv("ETL_DEMO_S3_SECRET_ACCESS_KEY", "never-shown-0c41")
    monkeypatch.setenv("ETL_DEMO_PG_HOST", "db.internal")
    defs = load_definitions()
    kinds = {name: r.kind for name, r in defs.resources.items() if name.startswith("connection_")}
    assert kinds == {
        "connection_demo_postgres": "postgres", "connection_demo_mariadb": "mysql", "connection_demo_s3": "s3",
        "connection_demo_pos": "sqlite",
    }
    assert '"host": "db.internal"' in defs.resources["connection_demo_postgres"].options  # a template, filled from the environment
    assert "never-shown-0c41" not in defs.resources["connection_demo_s3"].options
    table = defs.resolve_assets_def(dg.AssetKey(["app_events", "events"])).specs_by_key[dg.AssetKey(["app_events", "events"])]
    assert set(table.kinds) == {"duckdb"} and table.metadata["sync_mode"] == "incremental"


def test_every_warehouse_writer_is_in_the_single_writer_pool(etl_home):
    defs = load_definitions()
    for asset in defs.assets:
        if isinstance(asset, dg.AssetsDefinition) and asset.is_executable:
            assert asset.op.pool == WAREHOUSE_POOL, asset.keys


def test_runs_execute_in_process_by_default(etl_home):
    defs = load_definitions()
    assert defs.resolve_job_def("marketing_campaigns_job").executor_def.name == "in_process"
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"


def test_column_schema_is_declared_before_the_first_run(etl_home):
    graph = load_definitions().resolve_asset_graph()
    schema = graph.get(dg.AssetKey(["marketing_campaigns", "campaigns"])).metadata["dagster/column_schema"]
    assert [(c.name, c.type) for c in schema.columns] == [
        ("date", "DATE"), ("campaign", "VARCHAR"), ("channel", "VARCHAR"), ("spend", "DECIMAL(18,2)"),
        ("clicks", "BIGINT"), ("conversions", "BIGINT"), ("_source_file", "VARCHAR"), ("_load_id", "VARCHAR"),
    ]
