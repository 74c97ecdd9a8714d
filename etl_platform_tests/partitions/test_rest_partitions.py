"""Daily partitions of a REST source, through Dagster against a real HTTP server on loopback:
each partition asks the API for its window only and replaces exactly that day's rows."""

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import pytest

from etl_platform_tests.conftest import failure_message, materializations, query
from etl_platform_tests.connectors.test_sources import pipeline_defs

DAYS = ["2024-05-01", "2024-05-02", "2024-05-03"]
PER_DAY = {"2024-05-01": 5, "2024-05-02": 7, "2024-05-03": 4}


def orders() -> list[dict]:
    """Orders spread over the hours of each day, plus one the day before and one the day after."""
    found, next_id = [], 1
    for day in ["2024-04-30", *DAYS, "2024-05-04"]:
        for i in range(PER_DAY.get(day, 1)):
            found.append(
                {"id": next_id, "created_at": f"{day}T{i * 3:02d}:30:00Z", "amount": round(10 + next_id * 1.5, 2)}
            )
            next_id += 1
    return found


class OrdersApi(BaseHTTPRequestHandler):
    """GET /orders?from=...&to=... answers the orders with from <= created_at < to (ISO 8601)."""

    server: "OrdersServer"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        params = {name: values[0] for name, values in parse_qs(url.query).items()}
        self.server.seen.append(params)
        if self.server.failing:
            return self.answer(500, {"error": "database unavailable"})
        if url.path != "/orders" or "from" not in params or "to" not in params:
            return self.answer(400, {"error": "from and to are required"})
        start, end = datetime.fromisoformat(params["from"]), datetime.fromisoformat(params["to"])
        window = [r for r in self.server.records if start <= datetime.fromisoformat(r["created_at"]) < end]
        self.answer(200, {"orders": window})

    def answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class OrdersServer(ThreadingHTTPServer):
    daemon_threads = True
    records: list[dict]
    seen: list[dict]
    failing: bool = False

    def on_day(self, day: str) -> list[dict]:
        return [r for r in self.records if r["created_at"].startswith(day)]


@pytest.fixture
def api() -> Iterator[OrdersServer]:
    server = OrdersServer(("127.0.0.1", 0), OrdersApi)
    server.records, server.seen = orders(), []
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


SPEC = {
    "source": {
        "connection": "src",
        "endpoint": {"path": "orders", "records_path": "orders"},
        "columns": {
            "id": {"type": "bigint"},
            "created_at": {"type": "timestamptz"},
            "amount": {"type": "decimal(10,2)"},
        },
    },
    "destination": {"table": "orders", "lineage_columns": False},
    "partitions": {
        "by": "daily",
        "start": "2024-05-01",
        "column": "created_at",
        "start_param": "from",
        "end_param": "to",
    },
    "retries": {"max_retries": 0},
}


def defs_for(api: OrdersServer) -> dg.Definitions:
    connection = {"kind": "rest", "base_url": f"http://127.0.0.1:{api.server_address[1]}", "max_retries": 0}
    return pipeline_defs("shop_api", SPEC, connection)


def run_day(defs: dg.Definitions, day: str, instance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("shop_api_job").execute_in_process(
        instance=instance, partition_key=day, raise_on_error=False
    )


def table_rows(etl_home, day: str | None = None) -> list[tuple]:
    where = (
        f"WHERE created_at >= TIMESTAMPTZ '{day} 00:00:00+00' AND created_at < TIMESTAMPTZ '{day} 00:00:00+00' + "
        "INTERVAL 1 DAY"
        if day
        else ""
    )
    return query(
        etl_home,
        "SET TimeZone = 'UTC'; SELECT id, strftime(created_at, '%Y-%m-%dT%H:%M:%SZ'), amount::DOUBLE "
        f"FROM shop_api.orders {where} ORDER BY id",
    )


def server_rows(api: OrdersServer, day: str) -> list[tuple]:
    return sorted((r["id"], r["created_at"], r["amount"]) for r in api.on_day(day))


def test_each_day_asks_for_its_window_and_replaces_only_its_rows(api, etl_home, instance):
    defs = defs_for(api)
    for day in DAYS:
        api.seen.clear()
        result = run_day(defs, day, instance)
        assert result.success, failure_message(result)
        next_day = f"2024-05-{int(day[-2:]) + 1:02d}"
        assert api.seen == [{"from": f"{day}T00:00:00+00:00", "to": f"{next_day}T00:00:00+00:00"}]
        meta = materializations(result)["shop_api/orders"]
        assert meta["partition"] == day
        assert meta["rows_read"] == meta["rows_inserted"] == PER_DAY[day] and meta["rows_deleted"] == 0
        assert table_rows(etl_home, day) == server_rows(api, day)
    assert len(table_rows(etl_home)) == sum(PER_DAY.values())  # the days before and after were not asked for

    # The API's records of May 2 change: one updated, one added, one removed. Rerunning May 2
    # takes exactly that; the other days stay as they were, and nothing is doubled.
    others = {day: table_rows(etl_home, day) for day in (DAYS[0], DAYS[2])}
    may_2 = api.on_day(DAYS[1])
    may_2[0]["amount"] = 999.5
    api.records.remove(may_2[1])
    api.records.append({"id": 500, "created_at": "2024-05-02T23:59:59Z", "amount": 1.25})
    rerun = run_day(defs, DAYS[1], instance)
    assert rerun.success, failure_message(rerun)
    meta = materializations(rerun)["shop_api/orders"]
    assert (meta["rows_deleted"], meta["rows_inserted"]) == (7, 7)
    assert table_rows(etl_home, DAYS[1]) == server_rows(api, DAYS[1])
    assert (999.5 in [r[2] for r in table_rows(etl_home, DAYS[1])]) and may_2[1]["id"] not in [
        r[0] for r in table_rows(etl_home)
    ]
    assert {day: table_rows(etl_home, day) for day in others} == others
    ids = [r[0] for r in table_rows(etl_home)]
    assert len(ids) == len(set(ids)) == sum(PER_DAY.values())  # NODUP

    # The API fails while May 3 reloads: the run fails, saying why, and May 3 keeps its rows.
    before = table_rows(etl_home)
    api.failing = True
    api.records.append({"id": 501, "created_at": "2024-05-03T12:00:00Z", "amount": 2.5})
    broken = run_day(defs, DAYS[2], instance)
    assert not broken.success
    assert "HTTP 500" in failure_message(broken) and "/orders" in failure_message(broken)
    assert table_rows(etl_home) == before

    # Every record of May 1 is deleted at the source: rerunning May 1 empties that day (an
    # empty window is an answer, as for a SQL source), and only that day.
    api.failing = False
    api.records = [r for r in api.records if not r["created_at"].startswith(DAYS[0])]
    emptied = run_day(defs, DAYS[0], instance)
    assert emptied.success, failure_message(emptied)
    meta = materializations(emptied)["shop_api/orders"]
    assert (meta["rows_read"], meta["rows_deleted"], meta["rows_inserted"]) == (0, 5, 0)
    assert table_rows(etl_home, DAYS[0]) == []
    assert table_rows(etl_home) == [r for r in before if not r[1].startswith(DAYS[0])]
