"""Transient failures are retried with backoff; permanent ones fail on the first attempt."""

import subprocess
import sys
import threading
from collections.abc import Iterator

import dagster as dg
import duckdb
import pytest

from etl_platform.automation.retries import classify, failure_for
from etl_platform.connectors.rest.http import RestError
from etl_platform.secrets.references import MissingSecret
from etl_platform_tests.conftest import materializations, query
from etl_platform_tests.connectors.test_rest import CUSTOMERS, Api, ApiServer, Handler
from etl_platform_tests.connectors.test_sources import pipeline_defs, run

SPEC = {
    "source": {
        "connection": "src",
        "endpoint": {
            "path": "pages",
            "records_path": "data.items",
            "pagination": {"type": "page_number"},
            "page_size": 500,
        },
    },
    "sync": {"mode": "merge", "primary_key": ["id"]},
    "destination": {"table": "customers"},
    "retries": {"max_retries": 3, "delay_seconds": 0.2},
}


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer(("127.0.0.1", 0), Handler)
    server.api = Api()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def attempts(result: dg.ExecuteInProcessResult, step: str) -> int:
    """How many times the step started, from the run's event log."""
    return 1 + sum(1 for e in result.all_events if e.event_type_value == "STEP_RESTARTED" and e.step_key == step)


def connection(api: ApiServer, **extra) -> dict:
    # The connector's own retries are off, so the step's retry policy is what recovers.
    return {"kind": "rest", "base_url": api.base_url, "max_retries": 0, **extra}


def test_a_source_answering_503_twice_recovers_on_the_third_attempt(api, etl_home, instance):
    api.api.failures += [(503, {}, '{"error": "maintenance"}')] * 2
    result = run(pipeline_defs("flaky", SPEC, connection(api)), "flaky", instance)
    assert result.success
    assert attempts(result, "flaky__load") == 3
    assert materializations(result)["flaky/customers"]["rows_written"] == len(CUSTOMERS)
    assert query(etl_home, "SELECT count(*), count(DISTINCT id) FROM flaky.customers") == [
        (len(CUSTOMERS), len(CUSTOMERS))
    ]
    retried = [
        e.event_specific_data.error.to_string() for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"
    ]
    assert len(retried) == 2 and all("transient failure" in m and "HTTP 503" in m for m in retried)


def test_bad_credentials_fail_on_the_first_attempt_without_the_secret(api, etl_home, instance, monkeypatch):
    canary = "canary-token-8c1f3e"
    monkeypatch.setenv("FLAKY_TOKEN", canary)
    api.api.failures += [(401, {}, '{"error": "bad token"}')] * 5
    conn = connection(api, auth={"type": "bearer", "token": {"env": "FLAKY_TOKEN"}})
    result = run(pipeline_defs("flaky", SPEC, conn), "flaky", instance)
    assert not result.success
    assert attempts(result, "flaky__load") == 1
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.event_specific_data.error.message
    assert "401" in message and "permanent failure: not retried" in message
    assert not any(canary in str(e) for e in instance.all_logs(result.run_id))


def test_bad_data_fails_on_the_first_attempt(landing, etl_home, instance, monkeypatch):
    (landing / "broken.csv").write_text("wrong,header\n1,2\n")
    spec = {
        "source": {"files": "*.csv", "columns": {"id": {"type": "bigint"}}, "on_bad_file": "fail"},
        "destination": {"table": "things"},
        "retries": {"max_retries": 3, "delay_seconds": 0.2},
    }
    defs = pipeline_defs("bad_data", spec, {"kind": "local", "path": str(landing)})
    result = run(defs, "bad_data", instance)
    assert not result.success and attempts(result, "bad_data__load") == 1
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "broken.csv" in failure.event_specific_data.error.message


def test_a_locked_warehouse_is_transient(tmp_path):
    """The real error DuckDB raises while another process holds the file."""
    path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(duckdb.IOException) as caught:
            duckdb.connect(str(path))
    finally:
        holder.kill()
        holder.wait()
    assert "lock" in str(caught.value).lower()
    assert classify(caught.value) == "transient"
    assert failure_for(caught.value).allow_retries


@pytest.mark.parametrize(
    "error, kind",
    [
        (ConnectionResetError(104, "Connection reset by peer"), "transient"),
        (TimeoutError("read timed out"), "transient"),
        (RestError("GET /x returned HTTP 429 Too Many Requests", 429), "transient"),
        (RestError("GET /x returned HTTP 502 Bad Gateway", 502), "transient"),
        (RestError("GET /x returned HTTP 403 Forbidden", 403), "permanent"),
        (MissingSecret("environment variable X is not set"), "permanent"),
        (Exception('connection to server failed: FATAL: password authentication failed for user "etl"'), "permanent"),
        (Exception("s3://b/p: listing failed: please reduce your request rate (SlowDown)"), "transient"),
        (duckdb.ConversionException("Could not convert string 'x' to INT64"), "permanent"),
        (KeyError("campaign"), "unknown"),  # a bug, not the weather: fails at once
    ],
)
def test_errors_are_classified(error, kind):
    assert classify(error) == kind
    assert failure_for(error).allow_retries == (kind == "transient")
