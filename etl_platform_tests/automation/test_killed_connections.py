"""A connection the server kills in the middle of a load is retried, and the run loads every row once.

Each source pauses at a known row on the first read only: the server sleeps inside the query
while a pause row exists. The test waits for that sleep (PostgreSQL's ``pg_stat_activity``,
MariaDB's process list), deletes the pause row and kills the connection from another one, so
the kill lands mid-read every time, after the rows before it have been streamed. The step's
retry then reads the source again from the start; the loads append, so a row loaded by the
killed attempt would show up twice.
"""

import contextlib
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg2
import pymysql

from etl_platform_tests.conftest import failure_message, query, step_attempts
from etl_platform_tests.connectors.test_sources import pg_connection, pipeline_defs, run
from etl_platform_tests.destinations.test_destinations import DAY1, DAY2, Destination, _columns
from etl_platform_tests.destinations.test_destinations import pipeline_defs as destination_pipeline_defs
from etl_platform_tests.destinations.test_destinations import run as run_destination

ROWS = 700_000  # several of ADBC's and of our batches
PAUSE_AT = 600_000
RETRIES = {"max_retries": 2, "delay_seconds": 0.2}


def expected_rows(count: int) -> tuple:
    """count, distinct ids, sum of ids and a digest of every (id, md5(id)) pair, computed here."""
    digest = hashlib.sha256()
    for i in range(1, count + 1):
        digest.update(f"{i}:{hashlib.md5(str(i).encode()).hexdigest()}\n".encode())
    return count, count, count * (count + 1) // 2, digest.hexdigest()


def loaded_rows(etl_home, table: str) -> tuple:
    [(count, distinct, total)] = query(etl_home, f"SELECT count(*), count(DISTINCT id), sum(id) FROM {table}")
    digest = hashlib.sha256()
    for (line,) in query(etl_home, f"SELECT id::VARCHAR || ':' || note || chr(10) FROM {table} ORDER BY id"):
        digest.update(line.encode())
    return count, distinct, int(total), digest.hexdigest()


@contextlib.contextmanager
def killer(find: Callable[[], int | None], kill: Callable[[int], None], timeout: float = 90) -> Iterator[list[int]]:
    """A thread that waits until ``find`` names a connection, then ``kill``s it; yields what it killed."""
    killed: list[int] = []

    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = find()
            if found is not None:
                kill(found)
                killed.append(found)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield killed
    finally:
        thread.join(timeout)


def retried_because(result) -> list[str]:
    """Why each retry happened: the step's failure, with its cause."""
    return [
        e.event_specific_data.error.to_string() for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"
    ]


# --- PostgreSQL ----------------------------------------------------------------------


def pg_admin(db: dict):
    conn = psycopg2.connect(**db)
    conn.autocommit = True
    return conn


def test_a_postgres_connection_killed_mid_read_is_retried_and_every_row_loads_once(
    postgres_database, etl_home, instance
):
    db = postgres_database
    with contextlib.closing(pg_admin(db)) as admin, admin.cursor() as cur:
        cur.execute(
            f"CREATE TABLE big AS SELECT g::bigint AS id, md5(g::text) AS note FROM generate_series(1, {ROWS}) g"
        )
        cur.execute("CREATE TABLE pause (at bigint)")
        cur.execute(f"INSERT INTO pause VALUES ({PAUSE_AT})")
        cur.execute(
            "CREATE FUNCTION pause_here() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN "
            "IF EXISTS (SELECT 1 FROM pause) THEN PERFORM pg_sleep(60); END IF; RETURN true; END $$"
        )
    spec = {
        "source": {
            "connection": "src",
            "query": f"SELECT id, note FROM big WHERE CASE WHEN id = {PAUSE_AT} THEN pause_here() ELSE true END",
        },
        "sync": {"mode": "append"},
        "destination": {"table": "big", "lineage_columns": False},
        "retries": RETRIES,
    }

    def sleeping_reader() -> int | None:
        with contextlib.closing(pg_admin(db)) as admin, admin.cursor() as cur:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep' "
                "AND query LIKE 'COPY%' AND pid <> pg_backend_pid()"
            )
            found = cur.fetchone()
            return found[0] if found else None

    def terminate(pid: int) -> None:
        with contextlib.closing(pg_admin(db)) as admin, admin.cursor() as cur:
            cur.execute("DELETE FROM pause")  # the retry reads straight through
            cur.execute("SELECT pg_terminate_backend(%s)", [pid])

    with killer(sleeping_reader, terminate) as killed:
        result = run(pipeline_defs("pg_killed", spec, pg_connection(db)), "pg_killed", instance)
    assert len(killed) == 1, "the read was never caught sleeping at the pause row"
    assert result.success, failure_message(result)
    assert step_attempts(result) == 2
    [why] = retried_because(result)
    assert "postgres connection src: reading failed" in why and "transient failure" in why
    assert "SQLSTATE 57P01" in why or "connection lost" in why, why
    assert loaded_rows(etl_home, "pg_killed.big") == expected_rows(ROWS)


def test_a_postgres_destination_session_killed_mid_commit_is_retried_and_loads_every_row_once(
    postgres_database, landing, etl_home, instance
):
    """The commit's transaction waits for a lock the test holds on the target table; the test
    terminates that session, then lets go of the lock: the retry commits."""
    db = postgres_database
    destination = Destination(
        {"kind": "postgres", "host": db["host"], "port": db["port"], "database": db["dbname"], "user": db["user"]},
        list,
        {},
        {"postgres"},
    )
    spec = {
        "source": {"files": "orders/*.csv", "columns": _columns()},
        "sync": {"mode": "append"},
        "destination": {"table": "orders", "connection": "out"},
        "retries": RETRIES,
    }
    defs = destination_pipeline_defs(spec, destination)
    (landing / "orders").mkdir()
    (landing / "orders" / "day1.csv").write_text(DAY1)
    assert run_destination(defs, instance).success
    (landing / "orders" / "day2.csv").write_text(DAY2)

    locker = psycopg2.connect(**db)
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE orders.orders IN ACCESS EXCLUSIVE MODE")

        def waiting_commit() -> int | None:
            with contextlib.closing(pg_admin(db)) as admin, admin.cursor() as cur:
                cur.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
                    "AND wait_event = 'relation' AND pid <> %s",
                    [locker.get_backend_pid()],
                )
                found = cur.fetchone()
                return found[0] if found else None

        def terminate_then_unlock(pid: int) -> None:
            with contextlib.closing(pg_admin(db)) as admin, admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", [pid])
                while True:
                    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
                    if cur.fetchone()[0] == 0:
                        break
                    time.sleep(0.02)
            locker.rollback()

        with killer(waiting_commit, terminate_then_unlock) as killed:
            result = run_destination(defs, instance)
    finally:
        locker.close()
    assert len(killed) == 1, "the commit never waited on the lock"
    assert result.success, failure_message(result)
    assert step_attempts(result) == 2
    [why] = retried_because(result)
    assert "PostgreSQL table orders.orders" in why and "transient failure" in why
    assert "SQLSTATE 57P01" in why or "connection lost" in why, why
    with contextlib.closing(psycopg2.connect(**db)) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, note FROM orders.orders ORDER BY id")
        rows = cur.fetchall()
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'orders' AND tablename <> 'orders'")
        leftovers = cur.fetchone()[0]
    ids = [r[0] for r in rows]
    assert ids == [1, 2, 3, 3, 4, 5, 6, 7]  # day1's five rows, then day2's three (id 3 again: append)
    assert leftovers == 0  # no staging table left behind


def test_bad_postgres_credentials_fail_at_once_as_permanent(password_postgres, etl_home, instance, monkeypatch):
    canary = "canary-wrong-password-5c1e"
    monkeypatch.setenv("SRC_PASSWORD", canary)
    server = password_postgres
    connection = {
        "kind": "postgres",
        "host": server["host"],
        "port": server["port"],
        "database": server["dbname"],
        "user": server["user"],
        "password": {"env": "SRC_PASSWORD"},
    }
    spec = {"source": {"connection": "src", "table": "t"}, "destination": {"table": "t"}, "retries": RETRIES}
    result = run(pipeline_defs("pg_creds", spec, connection), "pg_creds", instance)
    assert not result.success and step_attempts(result) == 1
    message = failure_message(result)
    assert "password authentication failed" in message and "permanent failure: not retried" in message
    assert not any(canary in str(e) for e in instance.all_logs(result.run_id))


# --- MariaDB -------------------------------------------------------------------------


def my_admin(db: dict):
    return pymysql.connect(**db, autocommit=True)


def test_a_mariadb_connection_killed_mid_read_is_retried_and_every_row_loads_once(mariadb_database, etl_home, instance):
    db = mariadb_database
    rows = 300_000
    pause_at = 250_000
    with contextlib.closing(my_admin(db)) as admin, admin.cursor() as cur:
        cur.execute("CREATE TABLE big (id BIGINT PRIMARY KEY, note VARCHAR(32)) ENGINE=InnoDB")
        cur.execute(f"INSERT INTO big SELECT seq, md5(seq) FROM seq_1_to_{rows}")
        cur.execute("CREATE TABLE pause (at BIGINT PRIMARY KEY)")
        cur.execute(f"INSERT INTO pause VALUES ({pause_at})")
    spec = {
        "source": {
            "connection": "src",
            "query": "SELECT b.id, b.note FROM big b LEFT JOIN pause p ON p.at = b.id "
            "WHERE p.at IS NULL OR SLEEP(60) = 0",
        },
        "sync": {"mode": "append"},
        "destination": {"table": "big", "lineage_columns": False},
        "retries": RETRIES,
    }
    connection = {
        "kind": "mysql",
        "host": db["host"],
        "port": db["port"],
        "database": db["database"],
        "user": db["user"],
    }

    def sleeping_reader() -> int | None:
        with contextlib.closing(my_admin(db)) as admin, admin.cursor() as cur:
            cur.execute(
                "SELECT id FROM information_schema.processlist WHERE db = %s AND state = 'User sleep'", [db["database"]]
            )
            found = cur.fetchone()
            return found[0] if found else None

    def kill(thread_id: int) -> None:
        with contextlib.closing(my_admin(db)) as admin, admin.cursor() as cur:
            cur.execute("DELETE FROM pause")
            cur.execute(f"KILL CONNECTION {thread_id}")

    with killer(sleeping_reader, kill) as killed:
        result = run(pipeline_defs("my_killed", spec, connection), "my_killed", instance)
    assert len(killed) == 1, "the read was never caught sleeping at the pause row"
    assert result.success, failure_message(result)
    assert step_attempts(result) == 2
    [why] = retried_because(result)
    assert "mysql connection src: reading failed" in why and "transient failure" in why
    assert "MySQL error 2013" in why or "MySQL error 1927" in why, why
    assert loaded_rows(etl_home, "my_killed.big") == expected_rows(rows)


def test_bad_mariadb_credentials_fail_at_once_as_permanent(mariadb_database, etl_home, instance, monkeypatch):
    canary = "canary-wrong-password-77ad"
    monkeypatch.setenv("SRC_PASSWORD", canary)
    db = mariadb_database
    user = f"etl_reader_{uuid.uuid4().hex[:8]}"
    with contextlib.closing(my_admin(db)) as admin, admin.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'the-right-password'")
    try:
        connection = {
            "kind": "mysql",
            "host": db["host"],
            "port": db["port"],
            "database": db["database"],
            "user": user,
            "password": {"env": "SRC_PASSWORD"},
        }
        spec = {"source": {"connection": "src", "table": "t"}, "destination": {"table": "t"}, "retries": RETRIES}
        result = run(pipeline_defs("my_creds", spec, connection), "my_creds", instance)
    finally:
        with contextlib.closing(my_admin(db)) as admin, admin.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'%'")
    assert not result.success and step_attempts(result) == 1
    message = failure_message(result)
    assert "permanent failure: not retried; MySQL error 1045" in message
    assert not any(canary in str(e) for e in instance.all_logs(result.run_id))
