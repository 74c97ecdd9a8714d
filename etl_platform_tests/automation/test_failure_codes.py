"""Failures are classified by the codes their drivers give, over real failures of each driver.

Every case provokes a real failure: PostgreSQL through psycopg2 and ADBC, MariaDB through
PyMySQL and SQLAlchemy, S3 through botocore against the test S3 server and loopback servers
that misbehave on purpose, plain sockets, a locked DuckDB file. It checks what ``classify``
makes of the driver's own exception, and of it wrapped as a connector wraps it (message and
codes, the driver's exception dropped). Generated cases then check that a code always wins
over misleading words in a message.
"""

import contextlib
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import adbc_driver_manager
import adbc_driver_postgresql
import duckdb
import psycopg2
import pymysql
import pytest
import sqlalchemy
from botocore.config import Config
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from etl_platform.automation.retries import classify, failure_for
from etl_platform.connectors.registry import ConnectorError, build
from etl_platform.connectors.sql import SourceError
from etl_platform.failure_codes import FailureCodes, codes_of, with_codes
from etl_platform_tests.conftest import examples
from etl_platform_tests.s3_server import _session


def raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except BaseException as err:  # noqa: BLE001 - the failure is what the case is about
        return err
    raise AssertionError("the action did not fail")


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def tcp_server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A loopback server that hands every connection to ``answer`` in a thread; yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def s3_answer(status: int, code: str) -> Callable[[socket.socket], None]:
    """An S3 error response, as S3 writes it."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>said by a test server</Message>'
        "<RequestId>0</RequestId></Error>"
    ).encode()

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(
                f"HTTP/1.1 {status} Whatever\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )

    return answer


def silent(conn: socket.socket) -> None:
    time.sleep(3)
    conn.close()


def hang_up(conn: socket.socket) -> None:
    """Read the request, then close without an answer."""
    conn.recv(65536)
    conn.close()


def reset(conn: socket.socket) -> None:
    """Read the request, then reset the connection (RST instead of FIN)."""
    conn.recv(65536)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def s3_client(
    endpoint_url: str, access_key_id: str = "test-access-key-id", secret_access_key: str = "test-secret-access-key"
):
    """A boto3 client that tries once: the first failure is the one raised."""
    return _session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=1,
            read_timeout=0.5,
            s3={"addressing_style": "path"},
        ),
    )


# --- PostgreSQL ----------------------------------------------------------------------


def pg_run(db: dict, *statements: str) -> None:
    with contextlib.closing(psycopg2.connect(**db)) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        conn.commit()


def pg_lock_not_available(db: dict) -> BaseException:
    pg_run(db, "CREATE TABLE t (id int)", "INSERT INTO t VALUES (1)")
    with contextlib.closing(psycopg2.connect(**db)) as holder, holder.cursor() as cur:
        cur.execute("SELECT * FROM t FOR UPDATE")
        return raised(lambda: pg_run(db, "SELECT * FROM t FOR UPDATE NOWAIT"))


def pg_serialization_failure(db: dict) -> BaseException:
    pg_run(db, "CREATE TABLE t (id int, v int)", "INSERT INTO t VALUES (1, 0)")
    with contextlib.closing(psycopg2.connect(**db)) as first, contextlib.closing(psycopg2.connect(**db)) as second:
        for conn in (first, second):
            conn.set_session(isolation_level="REPEATABLE READ")
        second.cursor().execute("SELECT v FROM t")  # its snapshot is taken here
        first.cursor().execute("UPDATE t SET v = 1")
        first.commit()
        return raised(lambda: second.cursor().execute("UPDATE t SET v = 2"))


def pg_deadlock(db: dict) -> BaseException:
    pg_run(db, "CREATE TABLE t (id int PRIMARY KEY, v int)", "INSERT INTO t VALUES (1, 0), (2, 0)")
    with contextlib.closing(psycopg2.connect(**db)) as a, contextlib.closing(psycopg2.connect(**db)) as b:
        for conn in (a, b):
            conn.cursor().execute("SET deadlock_timeout = '100ms'")
        a.cursor().execute("UPDATE t SET v = 1 WHERE id = 1")
        b.cursor().execute("UPDATE t SET v = 1 WHERE id = 2")
        errors: list[BaseException] = []

        def update(conn, row):
            try:
                conn.cursor().execute(f"UPDATE t SET v = 2 WHERE id = {row}")
            except psycopg2.Error as err:
                errors.append(err)
                conn.rollback()

        crossing = [threading.Thread(target=update, args=(a, 2)), threading.Thread(target=update, args=(b, 1))]
        for thread in crossing:
            thread.start()
        for thread in crossing:
            thread.join(timeout=30)
        [error] = errors  # PostgreSQL breaks the cycle by failing one of the two
        return error


def pg_terminated(db: dict) -> BaseException:
    with contextlib.closing(psycopg2.connect(**db)) as victim:
        pid = victim.get_backend_pid()
        pg_run(db, f"SELECT pg_terminate_backend({pid})")
        time.sleep(0.2)
        return raised(lambda: victim.cursor().execute("SELECT 1"))


def adbc_syntax_error(db: dict) -> BaseException:
    uri = f"postgresql://{db['user']}@{db['host']}:{db['port']}/{db['dbname']}"
    with adbc_driver_postgresql.connect(uri) as database, adbc_driver_manager.AdbcConnection(database) as connection:
        statement = adbc_driver_manager.AdbcStatement(connection)
        try:
            statement.set_sql_query("SELEC 1")
            return raised(statement.execute_query)
        finally:
            statement.close()


def adbc_read_cut_off(db: dict) -> BaseException:
    """The backend terminated while DuckDB reads its rows: the ADBC error kept behind DuckDB's."""
    from etl_platform.connectors.adbc_errors import KeptErrorStream

    pg_run(
        db,
        "CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 600000) g",
        "CREATE FUNCTION pause() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(30); "
        "RETURN true; END $$",
    )
    uri = f"postgresql://{db['user']}@{db['host']}:{db['port']}/{db['dbname']}"
    with adbc_driver_postgresql.connect(uri) as database, adbc_driver_manager.AdbcConnection(database) as connection:
        statement = adbc_driver_manager.AdbcStatement(connection)
        statement.set_sql_query("SELECT id FROM big WHERE CASE WHEN id = 500000 THEN pause() ELSE true END")
        handle, _ = statement.execute_query()
        stream = KeptErrorStream(handle.__arrow_c_stream__())
        with terminating_sleeper(db):
            with duckdb.connect() as duck:
                duck.register("rows", stream.capsule)
                failed = raised(lambda: duck.execute("CREATE TABLE t AS SELECT * FROM rows"))
        stream.close()
        statement.close()
    assert isinstance(failed, duckdb.Error) and stream.error is not None
    return stream.error


@contextlib.contextmanager
def terminating_sleeper(db: dict) -> Iterator[None]:
    """Terminate the backend of ``db`` that sleeps in pg_sleep, as soon as there is one."""

    def kill():
        deadline = time.monotonic() + 30
        with contextlib.closing(psycopg2.connect(**db)) as admin:
            admin.autocommit = True
            while time.monotonic() < deadline:
                with admin.cursor() as cur:
                    cur.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event = 'PgSleep' AND pid <> pg_backend_pid()"
                    )
                    if cur.fetchall():
                        return
                time.sleep(0.05)

    killer = threading.Thread(target=kill)
    killer.start()
    try:
        yield
    finally:
        killer.join()


# --- MariaDB -------------------------------------------------------------------------


def my_connect(db: dict, **overrides) -> pymysql.Connection:
    return pymysql.connect(**{**db, "connect_timeout": 3, "autocommit": True, **overrides})


def my_run(db: dict, *statements: str) -> None:
    with contextlib.closing(my_connect(db)) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def my_killed(db: dict) -> BaseException:
    with contextlib.closing(my_connect(db)) as victim:
        thread_id = victim.thread_id()
        killer = threading.Timer(0.3, lambda: my_run(db, f"KILL CONNECTION {thread_id}"))
        killer.start()
        try:
            return raised(lambda: victim.cursor().execute("SELECT SLEEP(10)"))
        finally:
            killer.join()


def my_lock_wait_timeout(db: dict) -> BaseException:
    my_run(db, "CREATE TABLE t (id int PRIMARY KEY) ENGINE=InnoDB", "INSERT INTO t VALUES (1)")
    with contextlib.closing(my_connect(db)) as holder, contextlib.closing(my_connect(db)) as waiter:
        holder.begin()
        holder.cursor().execute("SELECT * FROM t WHERE id = 1 FOR UPDATE")
        waiter.cursor().execute("SET SESSION innodb_lock_wait_timeout = 1")
        waiter.begin()
        return raised(lambda: waiter.cursor().execute("SELECT * FROM t WHERE id = 1 FOR UPDATE"))


def my_deadlock(db: dict) -> BaseException:
    my_run(db, "CREATE TABLE t (id int PRIMARY KEY, v int) ENGINE=InnoDB", "INSERT INTO t VALUES (1, 0), (2, 0)")
    with contextlib.closing(my_connect(db)) as a, contextlib.closing(my_connect(db)) as b:
        for conn, row in ((a, 1), (b, 2)):
            conn.begin()
            conn.cursor().execute(f"UPDATE t SET v = 1 WHERE id = {row}")
        errors: list[BaseException] = []

        def update(conn, row):
            try:
                conn.cursor().execute(f"UPDATE t SET v = 2 WHERE id = {row}")
            except pymysql.MySQLError as err:
                errors.append(err)
                conn.rollback()

        first = threading.Thread(target=update, args=(a, 2))
        first.start()
        time.sleep(0.2)  # a waits for b's row; b's wait for a's row closes the cycle
        update(b, 1)
        first.join(timeout=30)
        [error] = errors
        return error


# --- locked DuckDB file --------------------------------------------------------------


def duckdb_source_locked(tmp_path) -> BaseException:
    """A ``duckdb`` connection whose file another process has open for writing."""
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        connector = build("src", "duckdb", {"path": str(path)})

        def read():
            with connector.stream("SELECT 1"):
                pass

        return raised(read)
    finally:
        holder.kill()
        holder.wait()


# --- the cases -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    kind: str  # what classify must say
    said: tuple[str, ...]  # one of these is in the codes' description; () when the driver gives no code
    provoke: Callable[[pytest.FixtureRequest], BaseException]
    connected: bool = False  # the wrapper knows the connection was open when it failed


def pg(provoke: Callable[[dict], BaseException]) -> Callable[[pytest.FixtureRequest], BaseException]:
    return lambda request: provoke(request.getfixturevalue("postgres_database"))


def pg_fails(*statements: str):
    return pg(lambda db: raised(lambda: pg_run(db, *statements)))


def mariadb(provoke: Callable[[dict], BaseException]) -> Callable[[pytest.FixtureRequest], BaseException]:
    return lambda request: provoke(request.getfixturevalue("mariadb_database"))


def mariadb_fails(*statements: str):
    return mariadb(lambda db: raised(lambda: my_run(db, *statements)))


def bucket(provoke: Callable) -> Callable[[pytest.FixtureRequest], BaseException]:
    return lambda request: provoke(request.getfixturevalue("s3_bucket"))


def faulty_s3(status: int, code: str) -> Callable[[pytest.FixtureRequest], BaseException]:
    def provoke(request):
        with tcp_server(s3_answer(status, code)) as port:
            return raised(lambda: list_bucket(port))

    return provoke


def fails(action: Callable[[], object]) -> Callable[[pytest.FixtureRequest], BaseException]:
    return lambda request: raised(action)


def list_bucket(port: int) -> object:
    return s3_client(f"http://127.0.0.1:{port}").list_objects_v2(Bucket="b")


def misbehaving(answer: Callable[[socket.socket], None], client: Callable[[int], object]):
    def provoke(request):
        with tcp_server(answer) as port:
            return raised(lambda: client(port))

    return provoke


def unknown_credentials(s3_bucket) -> BaseException:
    with s3_bucket.server.requiring_credentials(s3_bucket.name):
        return raised(
            lambda: s3_client(s3_bucket.server.endpoint_url, "AKIANOTKNOWNTOTHEM00").list_objects_v2(
                Bucket=s3_bucket.name
            )
        )


def wrong_secret(s3_bucket) -> BaseException:
    with s3_bucket.server.requiring_credentials(s3_bucket.name) as (key_id, _):
        client = s3_client(s3_bucket.server.endpoint_url, key_id, "not-the-secret-of-that-key")
        return raised(lambda: client.list_objects_v2(Bucket=s3_bucket.name))


def wrong_pg_password(request) -> BaseException:
    server = request.getfixturevalue("password_postgres")
    return raised(lambda: psycopg2.connect(**{**server, "password": "not-the-password"}, connect_timeout=3))


def http_get(port: int, path: str = "/") -> object:
    import requests

    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=0.5)


def socket_read(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
        conn.sendall(b"hello\r\n")
        return conn.recv(10)


CASES = {
    # PostgreSQL, psycopg2
    "pg syntax error": Case("permanent", ("SQLSTATE 42601",), pg_fails("SELEC 1")),
    "pg no such table": Case("permanent", ("SQLSTATE 42P01",), pg_fails("SELECT * FROM nosuch")),
    "pg division by zero": Case("permanent", ("SQLSTATE 22012",), pg_fails("SELECT 1/0")),
    "pg duplicate key": Case(
        "permanent", ("SQLSTATE 23505",), pg_fails("CREATE TABLE t (id int UNIQUE)", "INSERT INTO t VALUES (1), (1)")
    ),
    "pg lock not available": Case("transient", ("SQLSTATE 55P03",), pg(pg_lock_not_available)),
    "pg serialization failure": Case("transient", ("SQLSTATE 40001",), pg(pg_serialization_failure)),
    "pg deadlock": Case("transient", ("SQLSTATE 40P01",), pg(pg_deadlock)),
    "pg backend terminated": Case(
        "transient", ("SQLSTATE 57P01", "connection lost"), pg(pg_terminated), connected=True
    ),
    "pg connection refused": Case(
        "transient", (), fails(lambda: psycopg2.connect(host="127.0.0.1", port=free_port(), connect_timeout=2))
    ),
    "pg wrong password": Case("permanent", (), wrong_pg_password),
    "pg no such database": Case(
        "permanent", (), pg(lambda db: raised(lambda: psycopg2.connect(**{**db, "dbname": "no_such_db_here"})))
    ),
    # PostgreSQL, ADBC
    "adbc syntax error": Case("permanent", ("SQLSTATE 42601",), pg(adbc_syntax_error)),
    "adbc connection refused": Case(
        "transient",
        ("ADBC status IO",),
        fails(
            lambda: adbc_driver_manager.AdbcConnection(
                adbc_driver_postgresql.connect(f"postgresql://127.0.0.1:{free_port()}/x")
            )
        ),
    ),
    "adbc read cut off": Case(
        "transient", ("SQLSTATE 57P01", "connection lost"), pg(adbc_read_cut_off), connected=True
    ),
    # MariaDB, PyMySQL and SQLAlchemy
    "mariadb syntax error": Case("permanent", ("MySQL error 1064",), mariadb_fails("SELEC 1")),
    "mariadb no such table": Case("permanent", ("MySQL error 1146",), mariadb_fails("SELECT * FROM nosuch")),
    "mariadb unknown database": Case(
        "permanent",
        ("MySQL error 1049",),
        mariadb(lambda db: raised(lambda: my_connect(db, database="no_such_db_here"))),
    ),
    "mariadb access denied": Case(
        "permanent",
        ("MySQL error 1045", "MySQL error 1698"),
        mariadb(lambda db: raised(lambda: my_connect(db, user="nobody_etl_test", password="wrong"))),
    ),
    "mariadb connection refused": Case(
        "transient",
        ("MySQL error 2003",),
        fails(lambda: pymysql.connect(host="127.0.0.1", port=free_port(), connect_timeout=2)),
    ),
    "mariadb connection killed": Case(
        "transient", ("MySQL error 2013", "MySQL error 1927"), mariadb(my_killed), connected=True
    ),
    "mariadb lock wait timeout": Case("transient", ("MySQL error 1205",), mariadb(my_lock_wait_timeout)),
    "mariadb deadlock": Case("transient", ("MySQL error 1213",), mariadb(my_deadlock)),
    "sqlalchemy connection refused": Case(
        "transient",
        ("MySQL error 2003",),
        fails(
            lambda: sqlalchemy.create_engine(
                f"mysql+pymysql://root@127.0.0.1:{free_port()}/x?connect_timeout=2"
            ).connect()
        ),
    ),
    # S3, botocore
    "s3 no such bucket": Case(
        "permanent",
        ("S3 NoSuchBucket",),
        bucket(lambda b: raised(lambda: b.client.list_objects_v2(Bucket=b.name + "-missing"))),
    ),
    "s3 no such key": Case(
        "permanent",
        ("S3 NoSuchKey",),
        bucket(lambda b: raised(lambda: b.client.get_object(Bucket=b.name, Key="missing.csv"))),
    ),
    "s3 unknown access key": Case("permanent", ("S3 InvalidAccessKeyId",), bucket(unknown_credentials)),
    "s3 wrong secret": Case("permanent", ("S3 SignatureDoesNotMatch",), bucket(wrong_secret)),
    "s3 slow down": Case("transient", ("S3 SlowDown, HTTP 503",), faulty_s3(503, "SlowDown")),
    "s3 internal error": Case("transient", ("S3 InternalError, HTTP 500",), faulty_s3(500, "InternalError")),
    "s3 service unavailable": Case("transient", ("S3 ServiceUnavailable",), faulty_s3(503, "ServiceUnavailable")),
    "s3 access denied": Case("permanent", ("S3 AccessDenied, HTTP 403",), faulty_s3(403, "AccessDenied")),
    "s3 unnamed server error": Case("transient", ("HTTP 502",), faulty_s3(502, "SomethingNew")),
    "s3 unnamed refusal": Case("permanent", ("HTTP 400",), faulty_s3(400, "SomethingNew")),
    "s3 endpoint refuses": Case("transient", ("EndpointConnectionError",), fails(lambda: list_bucket(free_port()))),
    "s3 read timeout": Case("transient", ("ReadTimeoutError",), misbehaving(silent, list_bucket)),
    "s3 hang-up": Case("transient", ("ConnectionClosedError",), misbehaving(hang_up, list_bucket)),
    # HTTP through requests, and plain sockets
    "http refused": Case("transient", ("ConnectionError",), fails(lambda: http_get(free_port()))),
    "http read timeout": Case("transient", ("ReadTimeout",), misbehaving(silent, http_get)),
    "socket refused": Case("transient", ("ConnectionRefusedError",), fails(lambda: socket_read(free_port()))),
    "socket reset": Case("transient", ("ConnectionResetError",), misbehaving(reset, socket_read)),
    "socket timeout": Case("transient", ("TimeoutError",), misbehaving(silent, socket_read)),
    # DuckDB
    "duckdb file locked": Case(
        "transient", ("database file locked",), lambda r: duckdb_source_locked(r.getfixturevalue("tmp_path"))
    ),
}


def wrapped(err: BaseException, connected: bool) -> ConnectorError:
    """``err`` as a connector hands it on: its first line for a message, its codes, nothing else."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return with_codes(ConnectorError(f"connection src: reading failed: {first}"), err, connected=connected)


@pytest.mark.parametrize("name", list(CASES))
def test_real_driver_failures_are_classified_by_their_codes(name, request):
    case = CASES[name]
    err = case.provoke(request)
    as_handed_on = wrapped(err, case.connected)
    described = codes_of(as_handed_on).describe()
    if case.said:
        assert any(said in described for said in case.said), (
            f"{name}: {type(err).__name__}: {err!r} has codes {described!r}"
        )
    else:
        assert not codes_of(err), f"{name}: expected no code, got {codes_of(err)}"
    assert classify(as_handed_on) == case.kind, f"{name}: {type(err).__name__}: {err}"
    assert classify(err) == case.kind, f"{name}: the driver's own {type(err).__name__}: {err}"
    failure = failure_for(as_handed_on)
    assert failure.allow_retries == (case.kind == "transient")
    assert f"{case.kind} failure" in failure.description
    assert not case.said or described in failure.description  # the failure says what it rests on


def test_a_killed_postgres_read_through_the_connector_keeps_the_drivers_codes(postgres_database):
    """The connector's own wrapping: DuckDB reads the stream, the SourceError still has the codes."""
    db = postgres_database
    pg_run(
        db,
        "CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 600000) g",
        "CREATE FUNCTION pause() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(30); "
        "RETURN true; END $$",
    )
    connector = build(
        "src", "postgres", {"host": db["host"], "port": db["port"], "database": db["dbname"], "user": db["user"]}
    )

    def read():
        with connector.stream("SELECT id FROM big WHERE CASE WHEN id = 500000 THEN pause() ELSE true END") as stream:
            with duckdb.connect() as duck:
                duck.register("rows", stream.reader)
                duck.execute("CREATE TABLE t AS SELECT * FROM rows")

    with terminating_sleeper(db):
        err = raised(read)
    assert isinstance(err, SourceError), repr(err)
    assert str(err).startswith("postgres connection src: reading failed: ")
    assert err.codes.sqlstate == "57P01" or err.codes.connection_lost, err.codes
    assert classify(err) == "transient"


# --- generated: a code always wins over the words ------------------------------------

MISLEADING = [
    "connection reset by peer",
    "password authentication failed for user",
    "timeout expired",
    "HTTP 503",
    "please reduce your request rate (SlowDown)",
    "access denied",
    "deadlock detected",
    "could not set lock on file",
    "Forbidden",
    "server closed the connection unexpectedly",
    "",
]
# The classes and codes of the README's contract, written out here independently of the code under test.
PG_TRANSIENT = {"57P01", "57P02", "57P03", "40001", "40P01", "55P03"}
MYSQL_TRANSIENT = {2002, 2003, 2006, 2013, 1205, 1213, 1040}
MYSQL_PERMANENT = {1045, 1049, 1064, 1146}
S3_TRANSIENT = {"SlowDown", "Throttling", "RequestTimeout", "InternalError", "ServiceUnavailable"}
S3_PERMANENT = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket", "NoSuchKey"}

sqlstates = st.one_of(
    st.sampled_from(sorted(PG_TRANSIENT)),
    st.tuples(
        st.sampled_from(["08", "53", "28", "42", "22", "23", "0A", "25", "XX", "P0"]),
        st.text("0123456789ABCDEFP", min_size=3, max_size=3),
    ).map("".join),
)


def pg_oracle(state: str) -> str:
    return "transient" if state[:2] in ("08", "53") or state in PG_TRANSIENT else "permanent"


@hypothesis_settings(max_examples=examples(150))
@given(
    state=sqlstates,
    message=st.sampled_from(MISLEADING),
    status=st.sampled_from(list(adbc_driver_manager.AdbcStatusCode)),
)
def test_a_sqlstate_decides_whatever_the_message_says(state, message, status):
    err = adbc_driver_manager.OperationalError(message, status_code=status, sqlstate=state)
    assert classify(err) == pg_oracle(state)
    assert classify(wrapped(err, connected=True)) == pg_oracle(state)


@hypothesis_settings(max_examples=examples(150))
@given(
    errno=st.one_of(st.sampled_from(sorted(MYSQL_TRANSIENT | MYSQL_PERMANENT)), st.integers(1000, 4100)),
    message=st.sampled_from(MISLEADING),
)
def test_a_mysql_error_number_decides_whatever_the_message_says(errno, message):
    # The packet a server sends for an error, read by PyMySQL's own code.
    packet = b"\xff" + errno.to_bytes(2, "little") + b"#HY000" + message.encode()
    err = raised(lambda: pymysql.err.raise_mysql_exception(packet))
    expected = "transient" if errno in MYSQL_TRANSIENT else "permanent" if errno in MYSQL_PERMANENT else None
    via_sqlalchemy = sqlalchemy.exc.OperationalError("SELECT 1", {}, err)
    for seen in (err, via_sqlalchemy, wrapped(err, connected=True)):
        assert codes_of(seen).mysql_errno == errno
        if expected:
            assert classify(seen) == expected
        else:
            assert classify(seen) in ("transient", "permanent")  # never "unknown": the server answered with a number


@hypothesis_settings(max_examples=examples(150))
@given(
    code=st.one_of(
        st.sampled_from(sorted(S3_TRANSIENT | S3_PERMANENT)), st.from_regex(r"[A-Z][A-Za-z]{3,20}", fullmatch=True)
    ),
    status=st.sampled_from([400, 403, 404, 409, 412, 429, 500, 502, 503, 504]),
    message=st.sampled_from(MISLEADING),
)
def test_an_s3_code_decides_and_an_unknown_one_goes_by_its_status(code, status, message):
    err = ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "ListObjectsV2"
    )
    if code in S3_TRANSIENT:
        expected = "transient"
    elif code in S3_PERMANENT:
        expected = "permanent"
    else:
        expected = "transient" if status == 429 or status >= 500 else "permanent"
    assert classify(err) == expected
    assert classify(wrapped(err, connected=False)) == expected


@hypothesis_settings(max_examples=examples(100))
@given(status=st.integers(400, 599), message=st.sampled_from(MISLEADING))
def test_an_http_status_decides_whatever_the_body_says(status, message):
    from etl_platform.connectors.rest.http import RestError

    err = RestError(f"GET /x returned HTTP {status}: {message}", status)
    assert classify(err) == ("transient" if status == 429 or status >= 500 else "permanent")


def test_codes_hold_no_text_of_the_drivers_message():
    """NOLEAK: what a wrapped error keeps of the driver's error is codes, never its words."""
    canary = f"canary-{uuid.uuid4().hex}"
    drivers = [
        adbc_driver_manager.OperationalError(
            f"[libpq] password={canary}", status_code=adbc_driver_manager.AdbcStatusCode.IO, sqlstate="08006"
        ),
        raised(
            lambda: pymysql.err.raise_mysql_exception(
                b"\xff" + (1045).to_bytes(2, "little") + b"#28000" + canary.encode()
            )
        ),
        ClientError(
            {"Error": {"Code": "AccessDenied", "Message": canary}, "ResponseMetadata": {"HTTPStatusCode": 403}},
            "GetObject",
        ),
    ]
    for err in drivers:
        codes = wrapped(err, connected=True).codes
        assert codes and canary not in repr(codes) and canary not in codes.describe()
    assert FailureCodes() == codes_of(KeyError(canary))


# --- S3 through the connector and a pipeline ----------------------------------------


def test_the_s3_connector_keeps_the_code_the_server_answered_with(s3_bucket, monkeypatch):
    from etl_platform.connectors.s3 import S3Error

    connector = build("src", "s3", s3_bucket.options(bucket=s3_bucket.name + "-missing"))
    missing = raised(lambda: connector.list_objects("*.csv"))
    assert isinstance(missing, S3Error) and "the bucket does not exist (NoSuchBucket)" in str(missing)
    assert (missing.codes.s3_code, missing.codes.http_status) == ("NoSuchBucket", 404)
    assert classify(missing) == "permanent"

    # A server asking to slow down, reached with one attempt: botocore's own retries would hide it.
    with tcp_server(s3_answer(503, "SlowDown")) as port:
        monkeypatch.setattr(connector, "client", lambda: s3_client(f"http://127.0.0.1:{port}"))
        throttled = raised(lambda: connector.list_objects("*.csv"))
    assert isinstance(throttled, S3Error) and (throttled.codes.s3_code, throttled.codes.http_status) == (
        "SlowDown",
        503,
    )
    assert classify(throttled) == "transient"

    monkeypatch.setattr(connector, "client", lambda: s3_client(f"http://127.0.0.1:{free_port()}"))
    unreachable = raised(lambda: connector.list_objects("*.csv"))
    assert isinstance(unreachable, S3Error) and unreachable.codes.network == "EndpointConnectionError"
    assert classify(unreachable) == "transient"


def test_a_pipeline_on_a_missing_bucket_fails_at_once_saying_the_code(s3_bucket, etl_home, instance):
    from etl_platform_tests.conftest import failure_message, step_attempts
    from etl_platform_tests.connectors.test_sources import pipeline_defs, run

    spec = {
        "source": {"connection": "src", "files": "*.csv", "columns": {"id": {"type": "bigint"}}},
        "destination": {"table": "t"},
        "retries": {"max_retries": 3, "delay_seconds": 0.2},
    }
    connection = {"kind": "s3", **s3_bucket.options(bucket=s3_bucket.name + "-missing")}
    result = run(pipeline_defs("no_bucket", spec, connection), "no_bucket", instance)
    assert not result.success and step_attempts(result) == 1
    assert "permanent failure: not retried; S3 NoSuchBucket, HTTP 404" in failure_message(result)
