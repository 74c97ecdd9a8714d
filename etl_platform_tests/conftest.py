"""Every test gets its own ETL_HOME: a temp landing folder, warehouse and Dagster instance."""

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from hypothesis import HealthCheck, settings

from etl_platform.demo import data as demo
from etl_platform_tests.s3_server import s3_bucket, s3_server  # noqa: F401 - fixtures every test module may use

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Generated tests: the same examples on every run (a fixed seed) unless ETL_TEST_RANDOM=1, and
# ETL_TEST_EXAMPLES_SCALE times each test's example count (e.g. 20 for a long local run).
EXAMPLES_SCALE = float(os.environ.get("ETL_TEST_EXAMPLES_SCALE", "1"))
settings.register_profile(
    "etl",
    derandomize=os.environ.get("ETL_TEST_RANDOM", "") != "1",
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
settings.load_profile("etl")


def examples(count: int) -> int:
    """A generated test's example count, scaled by ETL_TEST_EXAMPLES_SCALE."""
    return max(1, round(count * EXAMPLES_SCALE))


@pytest.fixture
def etl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "etl_home"
    (home / "landing").mkdir(parents=True)
    monkeypatch.setenv("ETL_HOME", str(home))
    monkeypatch.delenv("ETL_LANDING_DIR", raising=False)
    monkeypatch.delenv("ETL_WAREHOUSE_PATH", raising=False)
    return home


@pytest.fixture
def landing(etl_home: Path) -> Path:
    return etl_home / "landing"


@pytest.fixture
def demo_landing(landing: Path) -> Path:
    demo.generate(landing, campaign_rows=3_000, campaign_files=3)
    return landing


def query(etl_home: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Read the test warehouse the way a user would, in a separate read-only connection."""
    con = duckdb.connect(str(etl_home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@contextmanager
def duckdb_writer(etl_home: Path):
    """A read-write connection to the test warehouse, for a test that changes data behind a pipeline's back."""
    con = duckdb.connect(str(etl_home / "warehouse.duckdb"))
    try:
        yield con
    finally:
        con.close()


def scalar(etl_home: Path, sql: str, params: list | None = None):
    return query(etl_home, sql, params)[0][0]


@pytest.fixture(autouse=True)
def _unfrozen_after_each_test():
    """A test that freezes the collector's objects (as a serving process does after loading,
    etl_platform.dagster_private.gc_freeze) leaves nothing frozen for the next."""
    import gc

    yield
    gc.unfreeze()


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as inst:
        yield inst


def load_definitions() -> dg.Definitions:
    from etl_platform.definitions import defs

    return defs()


def run_job(job_name: str, instance: dg.DagsterInstance, **kwargs) -> dg.ExecuteInProcessResult:
    job = load_definitions().resolve_job_def(job_name)
    return job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Metadata of each materialized asset, by asset key string, values unwrapped."""
    found = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        found[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return found


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed
        for e in (ev.event_specific_data for ev in result.all_events if ev.event_type_value == "ASSET_CHECK_EVALUATION")
    }


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The final step failure's message with its causes: after retries run out, Dagster
    reports "Exceeded max_retries" and keeps the step's own error as the cause."""
    [failure] = result.get_step_failure_events()
    error, parts = failure.step_failure_data.error, []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)


def step_attempts(result: dg.ExecuteInProcessResult) -> int:
    """How many times the run started a step (the first attempt and every retry)."""
    started = (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_RESTARTED)
    return sum(1 for e in result.all_events if e.event_type in started)


def cli(
    *args: str, env: dict | None = None, cwd: Path = PROJECT_ROOT, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run one of the project's console scripts (dagster, dg, etl-platform) as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def _service_unavailable(what: str, how: str) -> None:
    """Under CI a missing service is a failure; on a laptop the test is skipped with how to enable it."""
    message = f"needs {what}; {how}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def fresh_postgres_database(prefix: str = "etl_test"):
    """A new, empty database on the test PostgreSQL server (127.0.0.1:5432, or
    ETL_TEST_PG_HOST/PORT/USER/PASSWORD), dropped afterwards. Yields its settings."""
    import uuid

    import psycopg2

    settings = {
        "host": os.environ.get("ETL_TEST_PG_HOST", "127.0.0.1"),
        "port": int(os.environ.get("ETL_TEST_PG_PORT", "5432")),
        "user": os.environ.get("ETL_TEST_PG_USER", "postgres"),
        "password": os.environ.get("ETL_TEST_PG_PASSWORD", ""),
    }
    try:
        admin = psycopg2.connect(dbname="postgres", connect_timeout=3, **settings)
    except psycopg2.OperationalError as err:
        _service_unavailable(
            "PostgreSQL on 127.0.0.1:5432",
            f"start it (or set ETL_TEST_PG_HOST/PORT/USER/PASSWORD) to run this test ({str(err).strip()})",
        )
    admin.autocommit = True
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**settings, "dbname": name}
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def postgres_database():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards. Yields its settings."""
    with fresh_postgres_database() as settings:
        yield settings


@pytest.fixture
def mariadb_database():
    """A fresh, empty MariaDB/MySQL database on 127.0.0.1:3306, dropped afterwards. Yields its settings."""
    import uuid

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
            "MariaDB or MySQL on 127.0.0.1:3306",
            f"start it (or set ETL_TEST_MYSQL_HOST/PORT/USER/PASSWORD) to run this test ({err})",
        )
    name = f"etl_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield {**settings, "database": name}
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(scope="session")
def password_postgres():
    """A PostgreSQL server of its own on loopback that checks passwords (scram-sha-256), unlike
    the shared test server's trust login. Yields its settings; the password is a random canary."""
    import glob
    import secrets
    import shutil
    import socket
    import tempfile

    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
    if not binaries[-1]:
        _service_unavailable("PostgreSQL's initdb and pg_ctl", "install the PostgreSQL server package to run this test")
    bindir = Path(binaries[-1]).parent
    folder = Path(
        tempfile.mkdtemp(prefix="etl-test-pg-")
    )  # not under pytest's 0700 folders: the server's user must reach it
    password = f"canary-{secrets.token_hex(12)}"
    (folder / "pw").write_text(password)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_owner:
        shutil.chown(folder, "postgres")
        shutil.chown(folder / "pw", "postgres")
    subprocess.run(
        [
            *as_owner,
            str(bindir / "initdb"),
            "-D",
            str(folder / "data"),
            "-U",
            "etl",
            "--auth=scram-sha-256",
            f"--pwfile={folder / 'pw'}",
        ],
        check=True,
        capture_output=True,
    )
    (folder / "pw").unlink()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    # The server outlives pg_ctl: it must not hold a pipe of ours open, so it logs to a file.
    subprocess.run(
        [
            *as_owner,
            str(bindir / "pg_ctl"),
            "-D",
            str(folder / "data"),
            "-o",
            options,
            "-l",
            str(folder / "server.log"),
            "-w",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield {"host": "127.0.0.1", "port": port, "user": "etl", "password": password, "dbname": "postgres"}
    finally:
        subprocess.run(
            [*as_owner, str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)
