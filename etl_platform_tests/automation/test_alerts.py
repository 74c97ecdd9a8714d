"""Alerts reach a real SMTP server and a real webhook on loopback, with no secret in them."""

import datetime
import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from etl_platform.automation.alert_sensors import run_failure_alerts
from etl_platform.components.alerts import AlertsSpec
from etl_platform_tests.conftest import PROJECT_ROOT, cli


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """An aiosmtpd handler that keeps every message it receives, after a login checked against ``password``."""

    def __init__(self):
        self.messages: list[tuple[str, list[str], str]] = []
        self.password = "pw"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == b"etl"
            and auth_data.password == self.password.encode()
        )
        return AuthResult(success=ok)

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode("utf-8", "replace")))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=free_port(), auth_require_tls=False, authenticator=inbox.authenticate
    )
    controller.start()
    yield controller.port, inbox
    controller.stop()


class Hook(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.received = []
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/etl", server.received
    server.shutdown()
    server.server_close()


def alerts_spec(smtp_port: int, webhook_url: str, **extra) -> AlertsSpec:
    return AlertsSpec.model_validate(
        {
            "email": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "starttls": False,
                "from": "etl@test.local",
                "to": ["team@test.local"],
                "username": "etl",
                "password": {"env": "ETL_TEST_SMTP_PASSWORD"},
            },
            "webhook": {"url": {"env": "ETL_TEST_WEBHOOK_URL"}},
            **extra,
        }
    )


def failed_run(instance: dg.DagsterInstance, error: str, job_name: str = "orders_job", step: str = "orders__load"):
    @dg.op(name=step)
    def failing_step():
        raise RuntimeError(error)

    @dg.job(name=job_name)
    def job():
        failing_step()

    result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return result


def evaluate(sensor: dg.SensorDefinition, result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance) -> None:
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()
    sensor(context)


def test_a_failed_run_is_emailed_and_posted_with_its_step_error_and_link_but_no_secret(
    smtp_server, webhook, instance, monkeypatch
):
    port, inbox = smtp_server
    url, received = webhook
    canary = "canary-0f9a8c7e2d"
    monkeypatch.setenv("ETL_TEST_SMTP_PASSWORD", canary)
    inbox.password = canary
    monkeypatch.setenv("ETL_TEST_WEBHOOK_URL", url)
    monkeypatch.setenv("ETL_UI_URL", "https://etl.example.com/")
    error = (
        f"could not reach postgresql://etl:{canary}@db.internal:5432/shop; the server said {canary!r} " + "x" * 2_000
    )
    result = failed_run(instance, error)
    evaluate(run_failure_alerts(alerts_spec(port, url)), result, instance)

    [(sender, to, mail)] = inbox.messages
    assert sender == "etl@test.local" and to == ["team@test.local"]
    [posted] = received
    parsed = email.message_from_string(mail, policy=email.policy.default)
    assert parsed["Subject"] == "[etl] orders: run failed"
    assert canary not in mail
    for text in (parsed.get_content(), posted["text"]):
        assert "Pipeline: orders" in text
        assert "Step: orders__load" in text
        assert "could not reach postgresql://etl:***@db.internal:5432/shop" in text
        assert f"https://etl.example.com/runs/{result.run_id}" in text
        assert "(truncated)" in text and len(text) < 2_500
        assert canary not in text


def test_only_the_chosen_pipelines_are_alerted_on(smtp_server, webhook, instance, monkeypatch):
    port, inbox = smtp_server
    url, received = webhook
    monkeypatch.setenv("ETL_TEST_SMTP_PASSWORD", "pw")
    monkeypatch.setenv("ETL_TEST_WEBHOOK_URL", url)
    sensor = run_failure_alerts(alerts_spec(port, url, pipelines=["shop_orders"]))
    evaluate(sensor, failed_run(instance, "boom", job_name="other_job", step="other__load"), instance)
    assert inbox.messages == [] and received == []
    evaluate(sensor, failed_run(instance, "boom", job_name="shop_orders_job", step="shop_orders__load"), instance)
    assert len(inbox.messages) == 1 and len(received) == 1


def test_an_unreachable_channel_is_a_warning_and_the_other_still_gets_the_alert(webhook, instance, monkeypatch, capfd):
    url, received = webhook
    monkeypatch.setenv("ETL_TEST_SMTP_PASSWORD", "pw")
    monkeypatch.setenv("ETL_TEST_WEBHOOK_URL", url)
    closed_port = free_port()  # nothing listens there: the connection is refused
    evaluate(run_failure_alerts(alerts_spec(closed_port, url)), failed_run(instance, "boom"), instance)
    assert len(received) == 1
    logged = capfd.readouterr().err
    assert "WARNING - alert '[etl] orders: run failed' not sent by email: ConnectionRefusedError" in logged


def test_the_demo_alerts_load_with_no_server_configured(etl_home: Path, monkeypatch):
    for name in ("ETL_SMTP_HOST", "ETL_ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    listed = cli("dg", "list", "defs", "--json", cwd=PROJECT_ROOT, timeout=180)
    assert listed.returncode == 0, listed.stderr[-2000:]
    sensors = {s["name"] for s in json.loads(listed.stdout[listed.stdout.index("{") :]).get("sensors", [])}
    assert {"alert_on_run_failure", "alert_on_stale_tables"} <= sensors
    spec = AlertsSpec.model_validate({"email": {"host": ""}, "webhook": {"url": {"env": "ETL_ALERT_WEBHOOK_URL"}}})
    assert not spec.email.switched_on() and not spec.webhook.switched_on()


def test_a_stale_table_turns_its_freshness_to_fail_and_is_alerted_once(
    landing, etl_home, instance, webhook, monkeypatch
):
    """The table carries a Dagster freshness policy; the daemon records its freshness state (here
    the record the freshness daemon writes when the window has passed, reported directly); the
    alert sensor sends one alert per failure, and another after the table was fresh again."""
    from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

    from etl_platform.automation.alert_sensors import stale_table_alerts
    from etl_platform_tests.connectors.test_sources import pipeline_defs, run

    url, received = webhook
    monkeypatch.setenv("ETL_TEST_WEBHOOK_URL", url)
    (landing / "a.csv").write_text("id\n1\n2\n")
    spec = {
        "source": {"files": "*.csv", "columns": {"id": {"type": "bigint"}}},
        "destination": {"table": "things"},
        "freshness": {"max_age_hours": 2, "warn_after_hours": 1},
    }
    alerts = stale_table_alerts(AlertsSpec.model_validate({"webhook": {"url": {"env": "ETL_TEST_WEBHOOK_URL"}}}))
    defs = dg.Definitions.merge(
        pipeline_defs("fresh", spec, {"kind": "local", "path": str(landing)}), dg.Definitions(sensors=[alerts])
    )
    table = dg.AssetKey(["fresh", "things"])
    policy = defs.resolve_assets_def(table).specs_by_key[table].freshness_policy
    assert policy == dg.FreshnessPolicy.time_window(
        fail_window=datetime.timedelta(hours=2), warn_window=datetime.timedelta(hours=1)
    )
    assert not any("freshness" in s.name for s in defs.sensors or [])  # no superseded check sensor
    assert run(defs, "fresh", instance).success
    repository = defs.get_repository_def()

    def tick(cursor: str | None) -> str | None:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=repository)
        alerts(context)
        return context.cursor

    def freshness(new: FreshnessState, old: FreshnessState) -> None:
        instance.report_runless_asset_event(
            FreshnessStateChange(key=table, new_state=new, previous_state=old, state_change_timestamp=time.time())
        )

    cursor = tick(None)
    assert received == []  # no state yet: nothing to say
    freshness(FreshnessState.FAIL, FreshnessState.PASS)
    cursor = tick(tick(cursor))  # two ticks, one alert
    [posted] = received
    text = posted["text"]
    assert "table fresh/things is stale" in text and "last loaded 0.0 h ago" in text
    assert "expected to load at least every 2 h" in text and "http://127.0.0.1:3000/assets/fresh/things" in text
    freshness(FreshnessState.PASS, FreshnessState.FAIL)
    cursor = tick(cursor)
    time.sleep(0.01)
    freshness(FreshnessState.FAIL, FreshnessState.PASS)
    tick(cursor)
    assert len(received) == 2  # stale again after it was fresh: a second alert


def test_a_freshness_window_below_dagsters_minute_is_refused_at_load():
    from pydantic import ValidationError

    from etl_platform.spec.automation import FreshnessSpec

    with pytest.raises(ValidationError, match="greater than or equal to 0.0166"):
        FreshnessSpec.model_validate({"max_age_hours": 0.001})
    with pytest.raises(ValidationError, match="warn_after_hours must be less than max_age_hours"):
        FreshnessSpec.model_validate({"max_age_hours": 1, "warn_after_hours": 1})
