"""The harness's world: one warehouse, PostgreSQL and MariaDB database per test module, one S3
server and one loopback REST server per session; and the run's one-line summary.

Run it alone with ``bash scripts/test -m fidelity``; ``ETL_TEST_EXAMPLES_SCALE=20`` for a long
local run; ``ETL_FIDELITY_REPORT=<folder>`` to write the type table and every finding there.
"""

import os
import threading
import uuid
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from etl_platform_tests.conftest import _service_unavailable, fresh_postgres_database
from etl_platform_tests.fidelity import platform
from etl_platform_tests.fidelity.harness import Env
from etl_platform_tests.fidelity.tally import TALLY, report_folder, write_report
from etl_platform_tests.s3_server import ACCESS_KEY_ENV, SECRET_KEY_ENV, S3Bucket


@contextmanager
def fresh_mariadb_database():
    """A new MariaDB/MySQL database on 127.0.0.1:3306 (or ETL_TEST_MYSQL_*), dropped afterwards."""
    import pymysql

    settings = {
        "host": os.environ.get("ETL_TEST_MYSQL_HOST", "127.0.0.1"),
        "port": int(os.environ.get("ETL_TEST_MYSQL_PORT", "3306")),
        "user": os.environ.get("ETL_TEST_MYSQL_USER", "root"),
        "password": os.environ.get("ETL_TEST_MYSQL_PASSWORD", ""),
    }
    try:
        admin = pymysql.connect(connect_timeout=3, autocommit=True, **settings)
    except pymysql.err.OperationalError as err:
        _service_unavailable(
            "MariaDB or MySQL on 127.0.0.1:3306", f"start it (or set ETL_TEST_MYSQL_*) to run this test ({err})"
        )
    name = f"etl_fidelity_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    try:
        yield {**settings, "database": name}
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


class RestServer:
    """JSON pages on loopback: ``pages[path]`` holds record texts, served 'per_page' at a time as {"data": [...]}."""

    def __init__(self):
        self.pages: dict[str, list[str]] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                records = pages.get(parts.path)
                if records is None:
                    self.send_error(404)
                    return
                query = parse_qs(parts.query)
                page, size = int(query.get("page", ["1"])[0]), int(query.get("per_page", ["25"])[0])
                body = ('{"data":[' + ",".join(records[(page - 1) * size : page * size]) + "]}").encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def rest_server():
    server = RestServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def env(request, tmp_path_factory):
    """The module's world. Services start when a case first asks for them."""
    root = tmp_path_factory.mktemp("fidelity")
    (root / "etl_home" / "landing").mkdir(parents=True)
    started: dict[str, object] = {}
    with pytest.MonkeyPatch.context() as patch, ExitStack() as stack:
        patch.setenv("ETL_HOME", str(root / "etl_home"))
        patch.delenv("ETL_LANDING_DIR", raising=False)
        patch.delenv("ETL_WAREHOUSE_PATH", raising=False)

        def service(name: str):
            if name not in started:
                if name == "postgres":
                    started[name] = stack.enter_context(fresh_postgres_database("etl_fidelity"))
                elif name == "mariadb":
                    started[name] = stack.enter_context(fresh_mariadb_database())
                elif name == "rest":
                    started[name] = request.getfixturevalue("rest_server")
                elif name == "s3":
                    server = request.getfixturevalue("s3_server")
                    patch.setenv(ACCESS_KEY_ENV, server.access_key_id)
                    patch.setenv(SECRET_KEY_ENV, server.secret_access_key)
                    client = server.client()
                    bucket = S3Bucket(server, f"fidelity-{uuid.uuid4().hex[:12]}", client)
                    client.create_bucket(Bucket=bucket.name)
                    started[name] = bucket
            return started[name]

        module = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "")[:10]
        con = stack.enter_context(platform.warehouse(root / "warehouse.duckdb"))
        yield Env(root=root, con=con, services=service, module=module)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not TALLY.cases:
        return
    folder = report_folder()
    if folder is not None:
        write_report(TALLY, folder)
    terminalreporter.write_line(TALLY.summary())
