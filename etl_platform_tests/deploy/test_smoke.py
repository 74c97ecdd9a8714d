"""Production smoke test: the deployment of deploy/ as real processes, driven through Dagster's GraphQL API.

One deployment per module (startup is most of the cost): Dagster instance on a fresh
PostgreSQL database, compute logs and MLflow artifacts in the S3 test server, Celery on
Redis with two workers, the daemon, an operators' and a viewers' (read-only) webserver.

The tests run in the order written. A new customers export is dropped into the landing
folder as soon as the stack is up: the file sensor looks every 30 s and wants a file
unchanged across two looks, so its run happens while the tests before the sensor's own
test run. The Celery test waits until no other run is in progress, so both workers are idle.
"""

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import requests
import yaml

from etl_platform.automation.ledger import TAG_CONTENTS, content_digest
from etl_platform.automation.listing import LocalListing
from etl_platform.connectors.landing import LocalFolder
from etl_platform.demo import data as demo
from etl_platform_tests.conftest import PROJECT_ROOT, _service_unavailable
from etl_platform_tests.deploy import graphql as gql
from etl_platform_tests.deploy.read_only import MUTATIONS, rejected, schedule_id, sensor_id
from etl_platform_tests.deploy.stack import WORKERS, deployment

SHOP = [
    ["shop_customers", "customers"],
    ["shop_customers", "customers_rejected"],
    ["shop_orders", "orders"],
    ["shop_orders", "orders_rejected"],
    ["shop_orders", "daily_revenue"],
]
EVIDENCE = PROJECT_ROOT / "etl_platform_tests" / "deploy" / "evidence"
CUSTOMERS = yaml.safe_load(
    (PROJECT_ROOT / "etl_platform" / "defs" / "pipelines" / "shop_customers" / "defs.yaml").read_text()
)["attributes"]
FILE_SENSOR = "shop_customers_file_sensor"
DEMO_CUSTOMERS, NEW_CUSTOMERS = 2_000, 2_500  # demo.generate's export, and the new one


@pytest.fixture(scope="module")
def stack(s3_server, tmp_path_factory):  # noqa: F811
    with deployment(s3_server, tmp_path_factory.mktemp("deploy")) as running:
        yield running


@dataclass(frozen=True)
class Export:
    name: str  # relative to the landing folder
    rows: int
    content_digest: str  # as the sensor tags its runs
    dropped_at: float  # time.monotonic()


@pytest.fixture(scope="module", autouse=True)
def customers_export(stack) -> Export:
    """A new customers export with 500 more customers, dropped into the landing folder as the shop would.

    Written next to the landing folder, then renamed into place: the sensor never sees half a file.
    """
    landing = stack.etl_home / "landing"
    name = CUSTOMERS["source"]["files"]
    staging = stack.etl_home / "incoming"
    demo.write_shop(staging, customers=NEW_CUSTOMERS, orders=10, files=1)
    os.replace(staging / "customers.parquet", landing / name)
    dropped_at = time.monotonic()
    listing = LocalListing(LocalFolder(landing))
    (listed,) = listing.list(name)
    return Export(name, NEW_CUSTOMERS, content_digest(listing.content_id(listed)).hex(), dropped_at)


@pytest.fixture(scope="module")
def campaigns_run(stack) -> str:
    """The demo pipeline marketing_campaigns, launched as an operator would from the UI."""
    run_id = gql.launch(stack.webserver, "marketing_campaigns_job")
    status = gql.wait_for_run(stack.webserver, run_id)
    assert status == "SUCCESS", gql.failure_messages(stack.webserver, run_id) + "\n" + stack.processes.report()
    return run_id


def warehouse(stack, sql: str, timeout: float = 30):
    """Query the DuckDB warehouse read-only; a step writing it holds the file for a moment, so wait for it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            con = duckdb.connect(str(stack.etl_home / "warehouse.duckdb"), read_only=True)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
            continue
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


def materialized(stack, run_id: str) -> dict[str, dict]:
    """Each asset a run materialized, with its integer metadata."""
    return {
        "/".join(e["assetKey"]["path"]): {m["label"]: m.get("intValue") for m in e["metadataEntries"]}
        for e in gql.run_events(stack.webserver, run_id)
        if e["__typename"] == "MaterializationEvent"
    }


def test_a_demo_pipeline_launched_through_the_webserver_loads_its_rows(stack, campaigns_run):
    loaded = materialized(stack, campaigns_run)["marketing_campaigns/campaigns"]
    assert loaded["rows_read"] == 3_000
    assert warehouse(stack, "SELECT count(*) FROM marketing_campaigns.campaigns") == [(loaded["rows_accepted"],)]
    assert warehouse(stack, "SELECT count(*) FROM marketing_campaigns.campaigns_rejected") == [
        (loaded["rows_rejected"],)
    ]
    assert warehouse(stack, "SELECT count(*) > 0 FROM marketing_campaigns.daily_channel_performance") == [(True,)]


def test_compute_logs_of_a_run_are_in_s3(stack, campaigns_run):
    client = stack.s3.client()
    keys = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=stack.bucket, Prefix="dagster/compute-logs/"
        )
        for item in page.get("Contents", [])
        if campaigns_run in item["Key"]
    ]
    assert keys, f"no compute logs of run {campaigns_run} in s3://{stack.bucket}/dagster/compute-logs/"
    text = "".join(client.get_object(Bucket=stack.bucket, Key=key)["Body"].read().decode() for key in keys)
    # The step's own log lines, written in the Celery worker and uploaded from there.
    assert "marketing_campaigns__load" in text and "STEP_SUCCESS" in text


def test_mlflow_server_keeps_runs_and_puts_artifacts_in_s3(stack):
    import mlflow

    mlflow.set_tracking_uri(stack.mlflow)
    client = mlflow.MlflowClient(stack.mlflow)
    experiment = client.create_experiment("deploy-smoke")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "rows", 3_000)
    with tempfile.TemporaryDirectory() as folder:
        note = Path(folder) / "note.txt"
        note.write_text("stored through the tracking server")
        client.log_artifact(run.info.run_id, str(note))
    assert client.get_run(run.info.run_id).data.metrics["rows"] == 3_000
    keys = [
        item["Key"]
        for item in stack.s3.client().list_objects_v2(Bucket=stack.bucket, Prefix="mlflow/").get("Contents", [])
    ]
    assert any(key.endswith(f"{run.info.run_id}/artifacts/note.txt") for key in keys), keys


def test_a_screenshot_of_the_asset_graph(stack, campaigns_run):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        _service_unavailable("Chromium for the asset-graph screenshot", "install it (`apt-get install -y chromium`)")
    EVIDENCE.mkdir(exist_ok=True)
    screenshot = EVIDENCE / "asset_graph.png"
    screenshot.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--screenshot={screenshot}",
                "--window-size=1600,1000",
                "--virtual-time-budget=15000",
                f"{stack.webserver}/asset-groups",
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert screenshot.exists() and screenshot.stat().st_size > 20_000, "no screenshot, or an empty page"
    assert requests.get(f"{stack.webserver}/asset-groups", timeout=10).status_code == 200


def test_a_new_file_in_the_landing_folder_is_loaded_by_the_daemons_file_sensor(stack, customers_export):
    triggers = CUSTOMERS["triggers"]
    assert triggers["on_new_files"] and FILE_SENSOR in gql.sensor_names(stack.webserver)
    # The first look after the drop (at most an interval later) asks for the run, waiting within
    # the look for the file to settle; a minute for the daemon's loop, the queue and the run itself.
    interval, settle = triggers["min_interval_seconds"], triggers["settle_seconds"]
    budget = interval + settle + 60
    deadline = customers_export.dropped_at + budget
    run = None
    while time.monotonic() < deadline:
        runs = [
            r
            for r in gql.runs_with_tag(stack.webserver, "dagster/sensor_name", FILE_SENSOR)
            if customers_export.content_digest in gql.run_tags(r).get(TAG_CONTENTS, "").split(",")
        ]
        run = runs[0] if runs else None
        if run and run["status"] in gql.FINISHED:
            break
        time.sleep(1)
    assert run, f"the sensor asked for no run of {customers_export.name} within {budget} s\n{stack.processes.report()}"
    assert run["status"] == "SUCCESS", f"{run['status']} after {budget} s\n" + gql.failure_messages(
        stack.webserver, run["runId"]
    )
    loaded = materialized(stack, run["runId"])["shop_customers/customers"]
    assert loaded["rows_read"] == NEW_CUSTOMERS
    accepted, new = warehouse(
        stack, f"SELECT count(*), count(*) FILTER (customer_id > {DEMO_CUSTOMERS}) FROM shop_customers.customers"
    )[0]
    rejected_rows = warehouse(stack, "SELECT count(*) FROM shop_customers.customers_rejected")[0][0]
    assert (accepted, rejected_rows) == (loaded["rows_accepted"], loaded["rows_rejected"])
    assert accepted + rejected_rows == NEW_CUSTOMERS and new == NEW_CUSTOMERS - DEMO_CUSTOMERS


def test_celery_spreads_one_runs_steps_over_both_workers(stack, campaigns_run):
    # Each worker here runs one step at a time (--pool=solo). The run's warehouse steps take turns in
    # the single-writer pool, and idle workers wait at Redis in line, so the steps alternate between
    # the workers (deploy/celery.yaml). That holds only while no other run keeps a worker busy: wait
    # for the sensors' runs to finish first.
    gql.wait_until_no_run_is_in_progress(stack.webserver)
    run_id = gql.launch(stack.webserver, gql.ASSET_JOB, assets=SHOP)
    status = gql.wait_for_run(stack.webserver, run_id)
    assert status == "SUCCESS", gql.failure_messages(stack.webserver, run_id) + "\n" + stack.processes.report()
    workers = gql.celery_workers_by_step(gql.run_events(stack.webserver, run_id))
    # The three steps that write the warehouse (shop_customers' freshness is a policy, not a step).
    assert set(workers) == {
        "shop_customers__load",
        "shop_orders__load",
        "shop_orders__transforms",
    }, workers
    assert {name.split("@")[0] for name in workers.values()} == set(WORKERS), workers
    assert warehouse(stack, "SELECT count(*) > 0 FROM shop_orders.daily_revenue") == [(True,)]


def test_the_read_only_webserver_rejects_every_mutation(stack, campaigns_run):
    schedule = "marketing_campaigns_schedule"
    context = {
        "run_id": campaigns_run,
        "schedule": schedule,
        "schedule_id": schedule_id(stack.webserver, schedule),
        "sensor": FILE_SENSOR,
        "sensor_id": sensor_id(stack.webserver, FILE_SENSOR),
    }
    refused = {
        name: rejected(stack.read_only_webserver, query, variables(context)) for name, query, variables in MUTATIONS
    }
    assert all(refused.values()), {name: why for name, why in refused.items() if not why}
    # Nothing changed behind the refusals.
    assert gql.wait_for_run(stack.webserver, campaigns_run) == "SUCCESS"
    assert warehouse(stack, "SELECT count(*) FROM marketing_campaigns.campaigns")[0][0] > 0
    assert FILE_SENSOR in {s["name"] for s in gql.sensors(stack.webserver) if s["sensorState"]["status"] == "RUNNING"}
    # The operators' webserver takes the same kind of request.
    assert gql.launch(stack.webserver, "marketing_campaigns_job")
