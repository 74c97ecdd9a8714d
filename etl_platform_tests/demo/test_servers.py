"""The demo pipelines on servers: seeded by `etl-platform demo seed`, run from the project's
own definitions against PostgreSQL, MariaDB and an S3-compatible server on loopback."""

import psycopg2
import pytest

from etl_platform.secrets import vault
from etl_platform_tests.conftest import cli, materializations, query, run_job


@pytest.fixture
def demo_env(postgres_database, mariadb_database, s3_bucket, monkeypatch, tmp_path) -> dict[str, str]:
    """Point the demo connections (templated in defs/connections/defs.yaml) at this test's servers,
    with the PostgreSQL password in a vault of the test's own."""
    pg, maria = postgres_database, mariadb_database
    created = vault.create("demo master password", tmp_path / "vault.json")
    created.set("demo_postgres_password", pg["password"])
    vault.write(created, "demo master password")
    env = {
        "ETL_VAULT_PATH": str(tmp_path / "vault.json"),
        "ETL_MASTER_PASSWORD": "demo master password",
        "ETL_DEMO_PG_HOST": pg["host"],
        "ETL_DEMO_PG_PORT": str(pg["port"]),
        "ETL_DEMO_PG_DATABASE": pg["dbname"],
        "ETL_DEMO_PG_USER": pg["user"],
        "ETL_DEMO_MYSQL_HOST": maria["host"],
        "ETL_DEMO_MYSQL_PORT": str(maria["port"]),
        "ETL_DEMO_MYSQL_DATABASE": maria["database"],
        "ETL_DEMO_MYSQL_USER": maria["user"],
        "ETL_DEMO_S3_ENDPOINT": s3_bucket.server.endpoint_url,
        "ETL_DEMO_S3_BUCKET": s3_bucket.name,
        "ETL_DEMO_S3_ACCESS_KEY_ID": s3_bucket.server.access_key_id,
        "ETL_DEMO_S3_SECRET_ACCESS_KEY": s3_bucket.server.secret_access_key,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _pg(db: dict, sql: str) -> list[tuple]:
    with psycopg2.connect(**db) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_demo_pipelines_on_servers_seed_load_and_follow_changes(demo_env, postgres_database, etl_home, instance):
    seeded = cli("etl-platform", "demo", "seed", env=demo_env)
    assert seeded.returncode == 0, seeded.stderr
    assert "app_events: 20,000 rows" in seeded.stdout and "accounts: 2,000 rows" in seeded.stdout
    assert "invoices/: 18 files" in seeded.stdout
    again = cli("etl-platform", "demo", "seed", env=demo_env)
    assert again.stdout.count("already seeded") == 3  # idempotent

    runs = {job: run_job(job, instance) for job in ("app_events_job", "crm_accounts_job", "partner_invoices_job")}
    assert all(r.success for r in runs.values()), [job for job, r in runs.items() if not r.success]
    invoices = materializations(runs["partner_invoices_job"])["partner_invoices/invoices"]
    # 3 partners x 6 months x 120 invoices; in each file one bad date, one negative amount, one unknown currency
    assert invoices["rows_read"] == 2_160 and invoices["rows_rejected"] == 54 and invoices["files_read"] == 18
    # Run again: every file's bytes are loaded already, so nothing is read twice.
    again = materializations(run_job("partner_invoices_job", instance))["partner_invoices/invoices"]
    assert again["rows_read"] == 0 and again["files_duplicate"] == 18
    assert (
        query(etl_home, "SELECT count(*) FROM crm_accounts.accounts")[0][0]
        + query(etl_home, "SELECT count(*) FROM crm_accounts.accounts_rejected")[0][0]
        == 1_960
    )  # every account not deleted, loaded or rejected

    # Between two runs: 500 new events, 100 purchases turned refunds, one late event at the cursor.
    more = cli("etl-platform", "demo", "seed", "postgres", "--more", env=demo_env)
    assert more.returncode == 0 and "+501 rows, 100 updated" in more.stdout
    second = materializations(run_job("app_events_job", instance))["app_events/events"]
    # Only rows at or after the saved cursor were read: the last old row, 500 new, 100 updated, 1 late.
    assert second["rows_read"] == 602
    loaded = dict(query(etl_home, "SELECT id, event_type FROM app_events.events"))
    rejected = {r[0] for r in query(etl_home, "SELECT (record::JSON->>'id')::BIGINT FROM app_events.events_rejected")}
    source = dict(_pg(postgres_database, "SELECT id, event_type FROM public.app_events"))
    assert set(loaded) | rejected == set(source)  # EQ: every source row is loaded or rejected
    fixed_at_source = {
        r[0] for r in _pg(postgres_database, "SELECT id FROM public.app_events WHERE updated_at > '2025-06-01'")
    }
    assert set(loaded) & rejected <= fixed_at_source  # a row is in both only when rejected first, then fixed and loaded
    assert set(loaded) & rejected  # and the update did fix some purchases that had no amount
    assert all(loaded[i] == source[i] for i in loaded)  # updated rows carry their new values
    assert query(etl_home, "SELECT count(*) = count(DISTINCT id) FROM app_events.events") == [(True,)]  # NODUP
