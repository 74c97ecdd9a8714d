"""A snapshot of the graph: every change to assets, checks, jobs or schedules shows up here."""

import gc
import sys

import dagster as dg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl_platform.dagster_private import speedups_enabled
from etl_platform.dagster_private.gc_freeze import garbage_collector_paused, serving_process
from etl_platform.dagster_private.job_resolution import resolve_asset_jobs
from etl_platform.resources.warehouse import WAREHOUSE_POOL
from etl_platform_tests.conftest import PROJECT_ROOT, examples, load_definitions

# Tests of a speed-up itself; with ETL_DAGSTER_SPEEDUPS=0 it steps aside and Dagster's own path runs.
needs_speedups = pytest.mark.skipif(not speedups_enabled(), reason="ETL_DAGSTER_SPEEDUPS=0 turns the speed-ups off")

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
        "marketing_campaigns/campaigns",
        "shop_customers/customers",
        "shop_orders/orders",
        "app_events/events",
        "crm_accounts/accounts",
        "partner_invoices/invoices",
        "store_sales/sales",
    )
    for check in ("rejected_rows_within_limit", "all_files_readable", "schema_drift")
} | {
    "shop_customers/source_files:files_not_loaded",  # evaluated by shop_customers_file_sensor
    # Great Expectations checks of the campaigns demo
    *(
        f"marketing_campaigns/campaigns:{name}"
        for name in (
            "expect_column_mean_to_be_between__spend",
            "expect_column_values_to_be_between__clicks",
            "expect_column_values_to_be_between__conversions",
            "expect_column_values_to_be_between__spend",
            "expect_column_values_to_be_in_set__channel",
            "expect_column_values_to_not_be_null__campaign",
            "expect_table_row_count_to_be_between",
        )
    ),
    "marketing_campaigns/daily_channel_performance:expect_compound_columns_to_be_unique__date__channel",
}
JOBS = {
    "marketing_campaigns_job",
    "marketing_campaigns_train_job",
    "shop_customers_job",
    "shop_orders_job",
    "app_events_job",
    "crm_accounts_job",
    "partner_invoices_job",
    "store_sales_job",
}
SCHEDULES = {
    "marketing_campaigns_schedule": "0 6 * * *",
    "shop_orders_schedule": "*/30 * * * *",
    "app_events_schedule": "*/15 * * * *",
    "store_sales_schedule": "30 1 * * *",  # the latest daily partition, each night
}
SENSORS = {
    "alert_on_run_failure",
    "alert_on_stale_tables",
    "shop_customers_file_sensor",
}


# Tables with a Dagster freshness policy (fail window in hours), evaluated by the daemon.
FRESHNESS = {"shop_customers/customers": 26.0}


def test_graph_snapshot(etl_home):
    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    policies = {
        node.key.to_user_string(): node.freshness_policy.fail_window.to_timedelta().total_seconds() / 3600
        for node in graph.asset_nodes
        if node.freshness_policy is not None
    }
    assert policies == FRESHNESS
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
        "connection_demo_postgres": "postgres",
        "connection_demo_mariadb": "mysql",
        "connection_demo_s3": "s3",
        "connection_demo_pos": "sqlite",
    }
    assert (
        '"host": "db.internal"' in defs.resources["connection_demo_postgres"].options
    )  # a template, filled from the environment
    assert "never-shown-0c41" not in defs.resources["connection_demo_s3"].options
    table = defs.resolve_assets_def(dg.AssetKey(["app_events", "events"])).specs_by_key[
        dg.AssetKey(["app_events", "events"])
    ]
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
        ("date", "DATE"),
        ("campaign", "VARCHAR"),
        ("channel", "VARCHAR"),
        ("spend", "DECIMAL(18,2)"),
        ("clicks", "BIGINT"),
        ("conversions", "BIGINT"),
        ("_source_file", "VARCHAR"),
        ("_load_id", "VARCHAR"),
    ]


def _location_as_dagster_resolves_it() -> tuple[dg.Definitions, dg.Definitions]:
    """The demo location as loaded, and the same definitions with every job left to Dagster."""
    from etl_platform.dagster_private.component_tree import build_tree
    from etl_platform.location import executor as location_executor

    tree = dg.ComponentTree.for_project(PROJECT_ROOT / "etl_platform")
    unresolved = dg.Definitions.merge(build_tree(tree), dg.Definitions(executor=location_executor.chosen_executor()))
    return resolve_asset_jobs(unresolved), unresolved


def test_jobs_resolved_at_load_are_the_jobs_dagster_resolves(etl_home):
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster_shared.serdes import serialize_value

    ours, dagsters = _location_as_dagster_resolves_it()
    assert {j.name for j in ours.jobs} == JOBS
    for job in dagsters.resolve_all_job_defs():
        mine = ours.resolve_job_def(job.name)
        assert mine.get_job_snapshot_id() == job.get_job_snapshot_id(), job.name
        assert mine.asset_layer.external_job_asset_keys == job.asset_layer.external_job_asset_keys, job.name
    # what the webserver and the daemon get from the code server
    assert serialize_value(RepositorySnap.from_def(ours.get_repository_def())) == serialize_value(
        RepositorySnap.from_def(dagsters.get_repository_def())
    )


@needs_speedups
def test_schedules_and_sensors_target_the_resolved_jobs(etl_home):
    defs = load_definitions()
    jobs = {j.name: j for j in defs.jobs}
    assert all(isinstance(job, dg.JobDefinition) for job in jobs.values())
    for schedule in defs.schedules:
        assert schedule.job is jobs[schedule.job.name], schedule.name
    sensor = next(s for s in defs.sensors if s.name == "shop_customers_file_sensor")
    assert sensor.job is jobs["shop_customers_job"]


@needs_speedups
def test_jobs_selected_other_than_by_key_are_left_to_dagster():
    @dg.asset(group_name="sales")
    def orders(): ...

    @dg.asset(deps=[orders], group_name="sales")
    def revenue(): ...

    by_key = dg.define_asset_job("by_key", selection=dg.AssetSelection.assets(revenue))
    by_group = dg.define_asset_job("by_group", selection=dg.AssetSelection.groups("sales"))
    dagsters = dg.Definitions(
        assets=[orders, revenue],
        jobs=[by_key, by_group],
        schedules=[dg.ScheduleDefinition(name="nightly", cron_schedule="0 1 * * *", job=by_key)],
    )
    defs = resolve_asset_jobs(dagsters)
    kinds = {job.name: type(job).__name__ for job in defs.jobs}
    assert kinds == {"by_key": "JobDefinition", "by_group": "UnresolvedAssetJobDefinition"}
    assert defs.resolve_schedule_def("nightly").job is defs.resolve_job_def("by_key")
    graph = defs.resolve_job_def("by_key").asset_layer.asset_graph
    assert graph.executable_asset_keys == {dg.AssetKey("revenue")} and graph.has(dg.AssetKey("orders"))
    for name in ("by_key", "by_group"):
        assert defs.resolve_job_def(name).get_job_snapshot_id() == dagsters.resolve_job_def(name).get_job_snapshot_id()


def test_a_job_selecting_an_unknown_asset_fails_with_dagsters_message():
    @dg.asset
    def orders(): ...

    job = dg.define_asset_job("broken", selection=dg.AssetSelection.assets("order"))
    defs = resolve_asset_jobs(dg.Definitions(assets=[orders], jobs=[job]))
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="Failed to resolve asset job broken"):
        defs.resolve_job_def("broken")


def test_loading_in_a_test_or_the_cli_leaves_the_collector_on_and_nothing_frozen(etl_home):
    assert gc.isenabled() and gc.get_freeze_count() == 0
    defs = load_definitions()
    assert gc.isenabled() and gc.get_freeze_count() == 0 and defs.resolve_job_def("marketing_campaigns_job")


@needs_speedups
def test_a_serving_process_freezes_what_the_load_built(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/dagster", "api", "grpc", "-m", "etl_platform.definitions"])
    with garbage_collector_paused():
        assert not gc.isenabled()
        built = [{"n": i} for i in range(20_000)]
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    assert gc.isenabled() and frozen >= 20_000 and built


@pytest.mark.parametrize(
    ("argv", "serving"),
    [
        (["/v/bin/dagster", "api", "grpc", "-m", "etl_platform.definitions"], True),
        (["/v/bin/dagster-webserver", "-w", "workspace.yaml"], True),
        (["/v/bin/dagster-daemon", "run"], True),
        (["/v/bin/dagster", "api", "execute_run", "{}"], True),
        (["/v/bin/dagster", "code-server", "start", "-m", "x"], True),
        (["/v/bin/dagster", "job", "execute", "-m", "etl_platform.definitions"], False),
        (["/v/bin/dg", "check", "defs"], False),
        (["/v/bin/etl-platform", "pipelines", "validate"], False),
        (["/v/bin/python", "-m", "pytest"], False),
    ],
)
def test_serving_processes_are_told_from_their_command_line(argv, serving):
    assert serving_process(argv) is serving


@st.composite
def asset_graphs(draw):
    """Assets with dependencies on earlier ones, checks on some, and asset jobs selecting some
    by key (a schedule on one of them), as pipelines of any shape give them."""
    count = draw(st.integers(1, 7))
    assets, checks = [], []
    for i in range(count):
        deps = draw(st.lists(st.sampled_from([f"a{j}" for j in range(i)]), unique=True, max_size=3)) if i else []
        group = draw(st.sampled_from(["g0", "g1"]))
        assets.append(dg.AssetSpec(f"a{i}", deps=deps, group_name=group))
        if draw(st.booleans()):
            checks.append(dg.AssetCheckSpec(f"c{i}", asset=f"a{i}"))
    jobs = []
    for k in range(draw(st.integers(1, 4))):
        keys = draw(st.lists(st.sampled_from([f"a{i}" for i in range(count)]), min_size=1, unique=True))
        jobs.append(dg.define_asset_job(f"job{k}", selection=dg.AssetSelection.assets(*keys)))
    if draw(st.booleans()):
        jobs.append(dg.define_asset_job("by_group", selection=dg.AssetSelection.groups("g0")))
    return assets, checks, jobs


@needs_speedups
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=asset_graphs(), with_schedule=st.booleans())
def test_generated_asset_jobs_resolve_as_dagster_resolves_them(graph, with_schedule):
    specs, check_specs, jobs = graph

    @dg.multi_asset(specs=specs[:1], check_specs=[c for c in check_specs if c.asset_key == specs[0].key])
    def first(): ...

    singles = []
    for spec in specs[1:]:
        mine = [c for c in check_specs if c.asset_key == spec.key]

        @dg.multi_asset(specs=[spec], check_specs=mine, name=f"build_{spec.key.path[0]}")
        def built(): ...

        singles.append(built)
    schedules = [dg.ScheduleDefinition(name="nightly", cron_schedule="0 1 * * *", job=jobs[0])] if with_schedule else []
    dagsters = dg.Definitions(assets=[first, *singles], jobs=jobs, schedules=schedules)
    ours = resolve_asset_jobs(dagsters)
    for job in dagsters.resolve_all_job_defs():
        mine = ours.resolve_job_def(job.name)
        assert mine.get_job_snapshot_id() == job.get_job_snapshot_id(), job.name
        assert mine.asset_layer.external_job_asset_keys == job.asset_layer.external_job_asset_keys, job.name
    if with_schedule:
        assert ours.resolve_schedule_def("nightly").job is ours.resolve_job_def(jobs[0].name)


# Kinds the Dagster UI (1.13) draws with an icon, of those our sources and destinations use.
KINDS_WITH_ICONS = {"csv", "json", "parquet", "excel", "postgres", "mysql", "mariadb", "sqlite", "duckdb", "s3"}


def test_every_source_asset_shows_an_icon_of_its_format_or_database(etl_home):
    defs = load_definitions()
    sources = {
        key.path[0]: set(spec.kinds)
        for asset in defs.assets
        for key, spec in ([(asset.key, asset)] if isinstance(asset, dg.AssetSpec) else asset.specs_by_key.items())
        if key.path[-1] in ("source", "source_files")
    }
    assert sources["shop_orders"] == {"file", "json"}  # NDJSON files
    assert sources["app_events"] == {"postgres"}
    for pipeline, kinds in sources.items():
        assert kinds & KINDS_WITH_ICONS, f"{pipeline}: no kind with an icon in {kinds}"


@pytest.mark.parametrize(
    ("source", "connection", "kinds"),
    [
        ({"files": "*.xlsx", "columns": {"id": {}}}, ("landing", "local", {}), {"file", "excel"}),
        ({"files": "*.ndjson", "columns": {"id": {}}}, ("lake", "s3", {"bucket": "b"}), {"file", "json", "s3"}),
        ({"endpoint": {"path": "/orders"}}, ("api", "rest", {"base_url": "https://api.example.com"}), {"rest", "json"}),
    ],
)
def test_excel_ndjson_and_rest_sources_carry_kinds_with_icons(source, connection, kinds):
    from etl_platform.connectors.connections import as_resource, resource_key
    from etl_platform.connectors.landing import LANDING
    from etl_platform.connectors.registry import build
    from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
    from etl_platform.spec.pipeline import PipelineSpec
    from etl_platform.spec.tables import table_names

    name, kind, options = connection
    spec = PipelineSpec.model_validate({"source": {"connection": name, **source}, "destination": {"table": "t"}})
    ctx = PipelineContext(name="p", names=table_names(spec, "p"), defined_at={}, connection_kind=kind)
    defs = build_pipeline_defs(spec, ctx)
    if name != LANDING:
        defs = dg.Definitions.merge(
            defs, dg.Definitions(resources={resource_key(name): as_resource(build(name, kind, options))})
        )
    source_spec = next(
        spec
        for asset in defs.assets
        for key, spec in ([(asset.key, asset)] if isinstance(asset, dg.AssetSpec) else asset.specs_by_key.items())
        if key.path[-1] in ("source", "source_files")
    )
    assert set(source_spec.kinds) == kinds


def test_every_variable_a_defs_file_reads_is_declared_for_dg_list_envs():
    """``requirements.env`` of each defs.yaml lists the variables its templates and {env:} references
    read, so `dg list envs` shows what the location needs; a variable added without it fails here."""
    import re
    from pathlib import Path

    import yaml

    defs = Path(__file__).resolve().parents[2] / "etl_platform" / "defs"
    for path in sorted(defs.rglob("defs.yaml")):
        live = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        read = (
            set(re.findall(r"env\(\s*['\"](\w+)['\"]", live))
            | set(re.findall(r"env\.(\w+)", live))
            | set(re.findall(r"\{env:\s*(\w+)\}", live))
        )
        declared = set(((yaml.safe_load(path.read_text()) or {}).get("requirements") or {}).get("env") or [])
        assert read == declared, f"{path.relative_to(defs)}: reads {sorted(read)}, declares {sorted(declared)}"
