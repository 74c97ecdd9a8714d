"""Demo data on servers: the tables and files the app_events (PostgreSQL), crm_accounts
(MariaDB) and partner_invoices (S3) pipelines read.

The servers are the ones the declared demo connections point at (defs/connections), so
the same environment variables move both. Seeding is deterministic and idempotent: a table
that already holds rows is left alone. ``more`` changes the sources the way production
does between two runs (new rows, updated rows, a late row), so the next incremental or
merge run has something to do. About 1% of rows break a rule, for the rejected tables.
"""

import contextlib
import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path

from etl_platform.connectors.connections import declared_options
from etl_platform.connectors.registry import build
from etl_platform.errors import first_line
from etl_platform.secrets import references as secrets
from etl_platform.settings import PROJECT_DEFS

POSTGRES, MARIADB, S3 = "demo_postgres", "demo_mariadb", "demo_s3"
EVENTS = 20_000
ACCOUNTS = 2_000
PARTNERS = ("northwind", "contoso", "globex")
MONTHS = 6

APP_EVENTS = """
CREATE TABLE IF NOT EXISTS public.app_events (
    id BIGINT PRIMARY KEY,
    user_id BIGINT,
    event_type TEXT NOT NULL,
    amount NUMERIC(10, 2),
    occurred_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS app_events_updated_at ON public.app_events (updated_at)
"""
# Row g of the demo: deterministic values from g; every 101st row breaks a rule.
EVENT_ROWS = """
INSERT INTO public.app_events
SELECT g,
       CASE WHEN mod(g, 101) = 7 THEN NULL ELSE 1 + mod(g * 7919, 1500) END,
       CASE WHEN mod(g, 101) = 13 THEN 'clicked'
            ELSE (ARRAY['signup','login','view','view','view','purchase','refund'])[1 + mod(g * 31, 7)] END,
       CASE WHEN mod(g * 31, 7) IN (5, 6) AND mod(g, 101) <> 29 THEN round((mod(g * 131, 20000)) / 100.0, 2) END,
       timestamptz '2025-01-01 00:00:00+00' + g * interval '2 minutes',
       timestamptz '2025-01-01 00:00:00+00' + g * interval '2 minutes' + interval '5 seconds'
FROM generate_series(%(first)s, %(last)s) g
"""


def connector(name: str, defs_root: Path = PROJECT_DEFS):
    kind, options = declared_options(defs_root)[name]
    return build(name, kind, options)


def _server(name: str) -> dict:
    o = connector(name).options
    return {
        "host": o.host,
        "port": o.port,
        "user": o.user,
        "password": secrets.reveal(o.password) or None,
        "database": o.database,
    }


def seed_postgres(more: bool = False) -> str:
    import psycopg2

    server = _server(POSTGRES)
    database = server.pop("database")
    args = {
        "host": server["host"],
        "port": server["port"] or 5432,
        "user": server["user"],
        "password": server["password"],
        "connect_timeout": 3,
    }
    admin = psycopg2.connect(dbname="postgres", **args)
    admin.autocommit = True
    with contextlib.closing(admin), admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{database.replace(chr(34), chr(34) * 2)}"')
    with contextlib.closing(psycopg2.connect(dbname=database, **args)) as pg, pg, pg.cursor() as cur:
        cur.execute(APP_EVENTS)
        cur.execute("SELECT count(*), coalesce(max(id), 0) FROM public.app_events")
        count, top = cur.fetchone()
        if count == 0:
            cur.execute(EVENT_ROWS, {"first": 1, "last": EVENTS})
            return f"PostgreSQL {database}.public.app_events: {EVENTS:,} rows"
        if not more:
            return f"PostgreSQL {database}.public.app_events: already seeded ({count:,} rows)"
        # 500 new events, 100 refunds recorded late on old ones, one event arriving with an old timestamp
        cur.execute(EVENT_ROWS, {"first": top + 1, "last": top + 500})
        cur.execute(
            "UPDATE public.app_events SET event_type = 'refund', amount = coalesce(amount, 9.99), updated_at = now() "
            "WHERE id IN (SELECT id FROM public.app_events WHERE event_type = 'purchase' ORDER BY id LIMIT 100)"
        )
        cur.execute(
            "INSERT INTO public.app_events SELECT %s, 42, 'login', NULL, max(updated_at), max(updated_at) FROM "
            "public.app_events",
            [top + 501],
        )
        return f"PostgreSQL {database}.public.app_events: +501 rows, 100 updated"


def seed_mariadb(more: bool = False) -> str:
    import pymysql

    server = _server(MARIADB)
    database = server.pop("database")
    conn = pymysql.connect(
        host=server["host"],
        port=server["port"] or 3306,
        user=server["user"] or "root",
        password=server["password"] or "",
        connect_timeout=3,
        autocommit=True,
    )
    with contextlib.closing(conn), conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database.replace('`', '``')}`")
        cur.execute(f"USE `{database.replace('`', '``')}`")
        cur.execute(
            "CREATE TABLE IF NOT EXISTS accounts (account_id BIGINT PRIMARY KEY, name VARCHAR(200), country CHAR(2), "
            "plan VARCHAR(20), monthly_fee DECIMAL(10,2), created_at DATETIME, updated_at DATETIME, deleted TINYINT "
            "NOT NULL DEFAULT 0)"
        )
        cur.execute("SELECT count(*) FROM accounts")
        count = cur.fetchone()[0]
        if count and not more:
            return f"MariaDB {database}.accounts: already seeded ({count:,} rows)"
        if count == 0:
            cur.executemany(
                "INSERT INTO accounts VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [_account(i) for i in range(1, ACCOUNTS + 1)],
            )
            return f"MariaDB {database}.accounts: {ACCOUNTS:,} rows"
        cur.executemany(
            "INSERT INTO accounts VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [_account(i) for i in range(count + 1, count + 51)],
        )
        cur.execute(
            "UPDATE accounts SET plan = 'business', monthly_fee = 249.00, updated_at = NOW() WHERE account_id % 97 = 1"
        )
        return f"MariaDB {database}.accounts: +50 rows, plans changed"


def _account(i: int) -> tuple:
    plans = {"free": 0, "team": 49, "business": 249, "enterprise": 1990}
    plan = list(plans)[(i * 13) % 4]
    country = ["DE", "FR", "NL", "US", "GB", "ES", "IT", "SE"][(i * 7) % 8]
    return (
        i,
        f"{['Acme', 'Initech', 'Umbrella', 'Hooli', 'Stark', 'Wayne', 'Tyrell'][i % 7]} {i}",
        country.lower() if i % 103 == 5 else country,
        "legacy" if i % 103 == 17 else plan,
        -plans[plan] if i % 103 == 31 else plans[plan],
        f"2024-{1 + i % 12:02d}-{1 + i % 28:02d} 09:00:00",
        f"2025-01-{1 + i % 28:02d} 12:00:00",
        1 if i % 50 == 0 else 0,
    )


def seed_s3(more: bool = False) -> str:
    s3 = connector(S3)
    client, bucket, prefix = s3.client(), s3.options.bucket, s3.options.prefix
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}invoices/").get("KeyCount", 0)
    if listed and not more:
        return f"S3 {s3.location}invoices/: already seeded ({listed} files)"
    months = range(MONTHS + 1, MONTHS + 2) if listed else range(1, MONTHS + 1)
    written = 0
    for partner in PARTNERS:
        for month in months:
            client.put_object(
                Bucket=bucket, Key=f"{prefix}invoices/{partner}/2025-{month:02d}.csv", Body=_invoices(partner, month)
            )
            written += 1
    return f"S3 {s3.location}invoices/: {written} files"


def _invoices(partner: str, month: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Invoice ID", "Partner", "Issued", "Net", "VAT", "Currency"])
    for n in range(1, 121):
        net = round(((n * 7919 + month * 31) % 90000) / 100 + 10, 2)
        writer.writerow(
            [
                f"{partner[:3].upper()}-2025{month:02d}-{n:04d}",
                partner.title(),
                "31.02.2025" if n == 77 else f"{1 + n % 28:02d}.{month:02d}.2025",
                -net if n == 55 else net,
                round(net * 0.19, 2),
                "CHF" if n == 99 else ["EUR", "EUR", "USD", "GBP"][n % 4],
            ]
        )
    return out.getvalue().encode()


SEEDERS: dict[str, Callable[[bool], str]] = {"postgres": seed_postgres, "mariadb": seed_mariadb, "s3": seed_s3}


def seed(which: list[str], more: bool = False, if_reachable: bool = False) -> Iterator[tuple[str, bool, str]]:
    """Seed each server named in ``which``; yields (server, seeded, what happened). With
    ``if_reachable`` a server that cannot be reached is reported and skipped, not an error."""
    for name in which:
        try:
            yield name, True, SEEDERS[name](more)
        except Exception as err:  # noqa: BLE001 - any driver's connection error, shown scrubbed
            if not if_reachable:
                raise
            first = secrets.scrub(first_line(err))
            yield name, False, f"skipped {name}: {first}"
