"""The rest connection kind against a real HTTP server on loopback.

The server holds 1,234 customers (``id``, ``updated_at``; 50 share each ``updated_at``)
and serves them under every pagination style, behind every auth style, filtered by
``updated_since``, and with scripted failures (429 with Retry-After, 503, 500, slow
answers) put in front of the normal answers.
"""

import base64
import email.utils
import json
import logging
import math
import secrets as token_source
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pydantic
import pytest

from etl_platform.connectors.registry import build
from etl_platform.connectors.rest import connector as rest
from etl_platform.connectors.rest.connector import RestConnector, RestFetch
from etl_platform.connectors.rest.http import RestError
from etl_platform.connectors.rest.pagination import RestEndpoint
from etl_platform.secrets.references import MissingSecret

CUSTOMERS = [
    {"id": i, "updated_at": f"2024-01-{1 + (i - 1) // 50:02d}T00:00:00Z", "name": f"customer {i}"}
    for i in range(1, 1235)
]
ALL_IDS = {c["id"] for c in CUSTOMERS}


@dataclass
class Api:
    """What the server expects and has seen. ``failures`` are answered first, one per request."""

    auth: tuple | None = None  # ("bearer", token) | ("basic", user, password) | ("header"|"query", name, key)
    failures: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    delay_once: float = 0.0
    seen: list[str] = field(default_factory=list)


class Handler(BaseHTTPRequestHandler):
    server: "ApiServer"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        api = self.server.api
        api.seen.append(self.path)
        if api.delay_once:
            delay, api.delay_once = api.delay_once, 0.0
            time.sleep(delay)
        if api.failures:
            status, headers, body = api.failures.pop(0)
            return self.answer(status, body, headers)
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if (rejected := self.rejected(api.auth, query)) is not None:
            return self.answer(401, json.dumps({"error": f"invalid credentials: {rejected}"}))
        one = {name: values[0] for name, values in query.items()}
        rows = [c for c in CUSTOMERS if "updated_since" not in one or c["updated_at"] >= one["updated_since"]]
        route = getattr(self, "route_" + url.path.strip("/"), None)
        if route is None:
            return self.answer(404, json.dumps({"error": "no such endpoint"}))
        route(rows, one)

    def rejected(self, auth: tuple | None, query: dict[str, list[str]]) -> str | None:
        """What the client sent when it is not the expected credential (echoed, as careless APIs do)."""
        if auth is None:
            return None
        kind, *expected = auth
        if kind == "bearer":
            sent = self.headers.get("Authorization", "")
            return None if sent == f"Bearer {expected[0]}" else sent
        if kind == "basic":
            sent = self.headers.get("Authorization", "")
            good = "Basic " + base64.b64encode(f"{expected[0]}:{expected[1]}".encode()).decode()
            return None if sent == good else sent
        name, key = expected
        sent = self.headers.get(name, "") if kind == "header" else ",".join(query.get(name, []))
        return None if sent == key else sent

    def route_all(self, rows, query):
        self.answer(200, json.dumps(rows))

    def route_pages(self, rows, query):
        page, size = int(query["page"]), int(query["per_page"])
        items = rows[(page - 1) * size : page * size]
        self.answer(200, json.dumps({"data": {"items": items, "total_pages": math.ceil(len(rows) / size)}}))

    def route_offset(self, rows, query):
        offset, limit = int(query["offset"]), int(query["limit"])
        self.answer(200, json.dumps({"results": rows[offset : offset + limit]}))

    def route_cursor(self, rows, query):
        after, limit = int(query.get("after", 0)), int(query["limit"])
        items = [r for r in rows if r["id"] > after][:limit]
        more = items and items[-1]["id"] < rows[-1]["id"]
        self.answer(200, json.dumps({"items": items, "meta": {"next": str(items[-1]["id"]) if more else None}}))

    def route_link(self, rows, query):
        page, size = int(query.get("page", 1)), int(query["per_page"])
        links = [f'</link?{urlencode(query | {"page": 1})}>; rel="first"']
        if page * size < len(rows):
            origin = "http://elsewhere.invalid" if "foreign" in query else ""
            links.append(f'<{origin}/link?{urlencode(query | {"page": page + 1})}>; rel="next"')
        self.answer(200, json.dumps(rows[(page - 1) * size : page * size]), {"Link": ", ".join(links)})

    def route_html(self, rows, query):
        self.answer(200, "<html><body>Maintenance</body></html>", {"Content-Type": "text/html"})

    def answer(self, status: int, body: str, headers: dict[str, str] | None = None):
        data = body.encode()
        self.send_response(status)
        headers = {"Content-Type": "application/json"} | (headers or {})
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    api: Api

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[ApiServer]:
    httpd = ApiServer(("127.0.0.1", 0), Handler)
    httpd.api = Api()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the connector asked for, instead of waiting."""
    asked: list[float] = []
    monkeypatch.setattr(rest, "_sleep", asked.append)
    return asked


@pytest.fixture
def canary(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "canary-" + token_source.token_hex(12)
    monkeypatch.setenv("API_SECRET", value)
    return value


def connect(base_url: str, **options) -> RestConnector:
    connector = build("api", "rest", {"base_url": base_url, **options})
    assert isinstance(connector, RestConnector)
    return connector


def fetch(
    connector: RestConnector, dest: Path, since: str | None = None, records_per_file: int = 50_000, **endpoint
) -> tuple[RestFetch, list[str]]:
    lines: list[str] = []
    result = connector.fetch(
        RestEndpoint.model_validate(endpoint), dest, since=since, log=lines.append, records_per_file=records_per_file
    )
    return result, lines


def read_records(result: RestFetch) -> list[dict]:
    records = []
    for path in result.files:
        for line in path.read_text(encoding="utf-8").splitlines():
            records.append(json.loads(line))
    return records


def assert_every_record_once(result: RestFetch, expected_ids: set[int] = ALL_IDS) -> None:
    ids = [r["id"] for r in read_records(result)]
    assert len(ids) == result.records == len(expected_ids)
    assert set(ids) == expected_ids


# --- pagination -----------------------------------------------------------------------------

PAGINATIONS = {
    "none": ({"path": "all"}, 1),
    "page_number": (
        {"path": "pages", "records_path": "data.items", "pagination": {"type": "page_number"}, "page_size": 100},
        13,
    ),
    "page_number_total_pages": (
        {
            "path": "pages",
            "records_path": "data.items",
            "pagination": {"type": "page_number", "total_pages_path": "data.total_pages"},
            "page_size": 617,
        },
        2,  # the total tells it to stop without asking for an empty third page
    ),
    "offset_exact_multiple": (
        {"path": "offset", "records_path": "results", "pagination": {"type": "offset"}, "page_size": 617},
        3,  # 617 + 617 + an empty page that says it is over
    ),
    "cursor": (
        {
            "path": "cursor",
            "records_path": "items",
            "pagination": {"type": "cursor", "next_path": "meta.next", "cursor_param": "after", "size_param": "limit"},
            "page_size": 100,
        },
        13,
    ),
    "link_header": (
        {"path": "link", "pagination": {"type": "link_header", "size_param": "per_page"}, "page_size": 100},
        13,
    ),
}


@pytest.mark.parametrize("style", PAGINATIONS)
def test_every_pagination_style_reads_every_record_exactly_once(server, sleeps, tmp_path, style):
    endpoint, pages = PAGINATIONS[style]
    result, _ = fetch(connect(server.base_url), tmp_path / "out", **endpoint)
    assert_every_record_once(result)
    assert result.pages == pages == len(server.api.seen)
    assert result.max_cursor is None  # not incremental
    assert sleeps == []


def test_records_are_split_into_numbered_ndjson_files(server, tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "page_000009.ndjson").write_text("left over from an earlier attempt\n")
    endpoint, _ = PAGINATIONS["page_number"]
    result, lines = fetch(connect(server.base_url), dest, records_per_file=500, **endpoint)

    assert [p.name for p in result.files] == ["page_000001.ndjson", "page_000002.ndjson", "page_000003.ndjson"]
    assert sorted(dest.iterdir()) == result.files
    sizes = [len(p.read_text(encoding="utf-8").splitlines()) for p in result.files]
    assert sizes == [500, 500, 234]
    assert [r["id"] for r in read_records(result)] == sorted(ALL_IDS)  # API order kept
    assert "read 1234 records in 13 pages into 3 files" in lines


def test_a_link_to_another_server_is_not_followed(server, tmp_path, sleeps, canary):
    connector = connect(server.base_url, auth={"type": "bearer", "token": {"env": "API_SECRET"}})
    server.api.auth = ("bearer", canary)
    with pytest.raises(RestError, match="another server"):
        fetch(connector, tmp_path, params={"foreign": 1}, **PAGINATIONS["link_header"][0])
    assert len(server.api.seen) == 1


def test_max_pages_stops_a_runaway_endpoint_with_an_error(server, tmp_path):
    with pytest.raises(RestError, match="max_pages=3"):
        fetch(connect(server.base_url), tmp_path, max_pages=3, **PAGINATIONS["page_number"][0])
    assert len(server.api.seen) == 3


# --- incremental ---------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["page_number", "cursor", "link_header"])
def test_incremental_sends_since_and_gets_records_at_or_after_it(server, tmp_path, style):
    endpoint, _ = PAGINATIONS[style]
    since = CUSTOMERS[574]["updated_at"]  # shared by ids 551..600
    incremental = {"param": "updated_since", "cursor_field": "updated_at"}
    result, _ = fetch(connect(server.base_url), tmp_path, since=since, incremental=incremental, **endpoint)

    assert_every_record_once(result, {c["id"] for c in CUSTOMERS if c["updated_at"] >= since})
    assert min(r["id"] for r in read_records(result)) == 551  # equal to since comes back
    assert result.max_cursor == "2024-01-25T00:00:00Z"
    assert all("updated_since=" in path for path in server.api.seen)


def test_first_incremental_run_reads_everything(server, tmp_path):
    incremental = {"param": "updated_since", "cursor_field": "updated_at"}
    result, _ = fetch(connect(server.base_url), tmp_path, since=None, path="all", incremental=incremental)
    assert_every_record_once(result)
    assert result.max_cursor == "2024-01-25T00:00:00Z"
    assert "updated_since" not in server.api.seen[0]


def test_numeric_cursor_is_compared_as_a_number(server, tmp_path):
    result, _ = fetch(connect(server.base_url), tmp_path, path="all", incremental={"param": "x", "cursor_field": "id"})
    assert result.max_cursor == "1234"  # as text "999" would win


def test_no_records_means_no_files_and_no_cursor(server, tmp_path):
    incremental = {"param": "updated_since", "cursor_field": "updated_at"}
    result, _ = fetch(connect(server.base_url), tmp_path, since="2099-01-01", path="all", incremental=incremental)
    assert (result.files, result.records, result.pages, result.max_cursor) == ([], 0, 1, None)


# --- auth and secrets -------------------------------------------------------------------------

AUTH_STYLES = {
    "bearer": ({"type": "bearer", "token": {"env": "API_SECRET"}}, lambda key: ("bearer", key)),
    "basic": (
        {"type": "basic", "username": "etl", "password": {"env": "API_SECRET"}},
        lambda key: ("basic", "etl", key),
    ),
    "api_key_header": (
        {"type": "api_key", "key": {"env": "API_SECRET"}, "header": "X-API-Key"},
        lambda key: ("header", "X-API-Key", key),
    ),
    "api_key_query": (
        {"type": "api_key", "key": {"env": "API_SECRET"}, "query_param": "api_key"},
        lambda key: ("query", "api_key", key),
    ),
}


@pytest.mark.parametrize("style", AUTH_STYLES)
def test_each_auth_style_reads_with_the_credential_from_the_environment(server, tmp_path, canary, caplog, style):
    options, expects = AUTH_STYLES[style]
    server.api.auth = expects(canary)
    caplog.set_level(logging.DEBUG)  # urllib3 logs request lines, query strings included
    connector = connect(server.base_url, auth=options)

    result, lines = fetch(connector, tmp_path, **PAGINATIONS["link_header"][0])

    assert_every_record_once(result)
    assert canary not in "\n".join(lines) + caplog.text + connector.describe() + connector.options_json()
    if style == "api_key_query":
        assert "api_key=***" in lines[0]
        assert all(parse_qs(urlsplit(p).query)["api_key"] == [canary] for p in server.api.seen)  # sent once


@pytest.mark.parametrize("style", AUTH_STYLES)
def test_a_wrong_credential_fails_at_once_without_leaking_what_the_server_echoes(
    server, tmp_path, sleeps, canary, style
):
    options, expects = AUTH_STYLES[style]
    server.api.auth = expects("the-right-one")
    with pytest.raises(RestError) as raised:
        fetch(connect(server.base_url, auth=options), tmp_path, path="all")

    message = str(raised.value)
    assert raised.value.status == 401
    assert "GET /all" in message and "401" in message and "invalid credentials: " in message
    assert canary not in message
    assert base64.b64encode(f"etl:{canary}".encode()).decode() not in message
    assert sleeps == []  # not worth retrying


def test_a_missing_credential_is_rejected_by_the_server(server, tmp_path):
    server.api.auth = ("bearer", "whatever")
    with pytest.raises(RestError, match="HTTP 401"):
        fetch(connect(server.base_url), tmp_path, path="all")


def test_credentials_are_references_looked_up_only_when_fetching(server, tmp_path, monkeypatch):
    monkeypatch.delenv("API_SECRET", raising=False)
    connector = connect(server.base_url, auth={"type": "bearer", "token": {"env": "API_SECRET"}})
    assert connector.describe() == f"REST API {server.base_url} (bearer token ${{API_SECRET}})"
    with pytest.raises(MissingSecret, match="API_SECRET"):
        fetch(connector, tmp_path, path="all")


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "bearer", "token": "plaintext-token"},
        {"type": "basic", "username": "etl", "password": "plaintext"},
        {"type": "api_key", "key": {"env": "K"}},
        {"type": "api_key", "key": {"env": "K"}, "header": "X-API-Key", "query_param": "api_key"},
        {"type": "digest", "token": {"env": "K"}},
    ],
)
def test_options_refuse_plaintext_credentials_and_incomplete_auth(auth):
    with pytest.raises(pydantic.ValidationError):
        connect("https://api.example.com", auth=auth)


@pytest.mark.parametrize(
    "base_url", ["https://etl:hunter2@api.example.com", "https://api.example.com/v1?key=x", "ftp://x"]
)
def test_base_url_is_a_plain_http_url(base_url):
    with pytest.raises(pydantic.ValidationError, match="base_url"):
        connect(base_url)


def test_header_values_may_be_secret_references(server, tmp_path, canary):
    server.api.auth = ("header", "X-Tenant-Token", canary)
    connector = connect(server.base_url, headers={"X-Tenant-Token": {"env": "API_SECRET"}, "X-Client": "etl"})
    result, _ = fetch(connector, tmp_path, path="all")
    assert result.records == 1234
    assert canary not in connector.options_json()


# --- retries -------------------------------------------------------------------------------


def test_retry_after_seconds_is_waited_exactly(server, tmp_path, sleeps):
    server.api.failures = [(429, {"Retry-After": "2"}, "slow down"), (429, {"Retry-After": "1"}, "slow down")]
    endpoint, pages = PAGINATIONS["page_number"]
    result, lines = fetch(connect(server.base_url), tmp_path, **endpoint)
    assert sleeps == [2.0, 1.0]
    assert_every_record_once(result)
    assert result.pages == pages
    assert any("HTTP 429; retry 1 of 5 in 2.0 s" in line for line in lines)


def test_retry_after_as_an_http_date(server, tmp_path, sleeps):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.api.failures = [(503, {"Retry-After": when}, "")]
    fetch(connect(server.base_url), tmp_path, path="all")
    assert len(sleeps) == 1 and 27 <= sleeps[0] <= 30


def test_retry_after_is_capped(server, tmp_path, sleeps):
    server.api.failures = [(429, {"Retry-After": "86400"}, "")]
    fetch(connect(server.base_url), tmp_path, path="all")
    assert sleeps == [300.0]


def test_503_backs_off_exponentially_up_to_the_cap(server, tmp_path, sleeps, monkeypatch):
    monkeypatch.setattr(rest, "_random", lambda: 1.0)  # the top of each jitter range
    server.api.failures = [(503, {}, "busy")] * 4
    connector = connect(server.base_url, backoff_seconds=1, max_backoff_seconds=5)
    result, _ = fetch(connector, tmp_path, path="all")
    assert sleeps == [1.0, 2.0, 4.0, 5.0]
    assert_every_record_once(result)


def test_backoff_is_full_jitter(server, tmp_path, sleeps):
    server.api.failures = [(502, {}, "")] * 3
    fetch(connect(server.base_url, backoff_seconds=0.5), tmp_path, path="all")
    assert len(sleeps) == 3
    assert all(0 <= wait <= 0.5 * 2**n for n, wait in enumerate(sleeps))


def test_a_persistent_500_gives_up_after_max_retries(server, tmp_path, sleeps):
    server.api.failures = [(500, {}, "internal error: db down")] * 10
    with pytest.raises(RestError) as raised:
        fetch(connect(server.base_url, max_retries=3), tmp_path, path="all")
    assert raised.value.status == 500
    assert "GET /all returned HTTP 500 Internal Server Error after 3 retries: internal error: db down" in str(
        raised.value
    )
    assert len(sleeps) == 3 and len(server.api.seen) == 4


def test_a_timeout_is_retried(server, tmp_path, sleeps):
    server.api.delay_once = 1.0
    result, lines = fetch(connect(server.base_url, timeout_seconds=0.2), tmp_path, path="all")
    assert result.records == 1234
    assert len(sleeps) == 1 and "Timeout" in lines[1]


def test_an_unreachable_server_gives_up_without_leaking_the_key(tmp_path, sleeps, canary):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    auth = {"type": "api_key", "key": {"env": "API_SECRET"}, "query_param": "api_key"}
    connector = connect(f"http://127.0.0.1:{port}", auth=auth, max_retries=2)
    lines: list[str] = []
    with pytest.raises(RestError, match="after 2 retries: ConnectionError") as raised:
        connector.fetch(RestEndpoint(path="all"), tmp_path, since=None, log=lines.append)
    assert len(sleeps) == 2
    assert canary not in str(raised.value) + "\n".join(lines)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


# --- permanent errors -------------------------------------------------------------------------


def test_404_fails_at_once(server, tmp_path, sleeps):
    with pytest.raises(RestError, match="GET /missing returned HTTP 404 Not Found: .*no such endpoint"):
        fetch(connect(server.base_url), tmp_path, path="missing")
    assert sleeps == []


def test_a_body_that_is_not_json_fails_with_an_excerpt(server, tmp_path):
    with pytest.raises(RestError, match=r"GET /html: the response is not JSON \(text/html\): <html><body>Maintenance"):
        fetch(connect(server.base_url), tmp_path, path="html")


@pytest.mark.parametrize(("records_path", "found"), [("data.rows", "nothing"), ("data.total_pages", "int")])
def test_records_path_must_lead_to_a_list(server, tmp_path, records_path, found):
    endpoint = {"path": "pages", "params": {"page": 1, "per_page": 10}, "records_path": records_path}
    with pytest.raises(RestError, match=f"records_path '{records_path}' is {found}, not a list of records"):
        fetch(connect(server.base_url), tmp_path, **endpoint)


def test_a_response_that_is_not_a_list_needs_records_path(server, tmp_path):
    endpoint = {"path": "pages", "params": {"page": 1, "per_page": 10}}
    with pytest.raises(RestError, match=r"GET /pages\?page=1&per_page=10: the response is dict, not a list of records"):
        fetch(connect(server.base_url), tmp_path, **endpoint)


@pytest.mark.parametrize(
    ("saved", "since_format", "sent"),
    [
        ("2024-01-25 00:00:00", "%Y-%m-%dT%H:%M:%SZ", "2024-01-25T00:00:00Z"),
        ("2024-01-25 09:30:00+01", "%Y-%m-%dT%H:%M:%S%z", "2024-01-25T09:30:00+0100"),
        ("2024-01-25 00:00:00", "%s", "1706140800"),
        ("20240125", "%Y-%m-%d", "20240125"),  # a number stays a number
        ("abc-123", "%Y", "abc-123"),
    ],
)
def test_the_saved_cursor_is_sent_in_the_form_the_api_expects(saved, since_format, sent):
    incremental = rest.Incremental(param="since", cursor_field="updated_at", since_format=since_format)
    assert incremental.since_param(saved) == sent
