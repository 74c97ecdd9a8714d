"""Sessions to a PostgreSQL destination whose errors never carry the connection's credentials."""

import json
from collections.abc import Iterator
from contextlib import closing, contextmanager
from urllib.parse import quote as url_quote

import adbc_driver_manager
import psycopg2
from psycopg2.extensions import connection as PgConnection
from psycopg2.extensions import parse_dsn

from etl_platform.destinations.postgres.columns import PostgresDestinationError, _Names
from etl_platform.failure_codes import with_codes
from etl_platform.secrets import references as secrets


def _secrets_in(dsn: str) -> list[str]:
    try:
        password = parse_dsn(dsn).get("password")
    except psycopg2.Error:
        # libpq's parse error quotes the text around the fault, which may be the password
        raise PostgresDestinationError(
            "the PostgreSQL connection string is not valid (not shown: it may hold a password)"
        ) from None
    return [password, url_quote(password, safe="")] if password else []


def _connect(dsn: str, failure: str, hidden: list[str]) -> PgConnection:
    """A psycopg2 connection with fixed settings; a driver error leaves as PostgresDestinationError, scrubbed."""
    connected = False
    try:
        pg = psycopg2.connect(dsn)
        connected = True
        with pg.cursor() as cur:
            # the cursor is saved as text: fixed settings spell it the same whatever the server's defaults
            cur.execute("SET TIME ZONE 'UTC'; SET DateStyle TO ISO, YMD")
        pg.commit()
        return pg
    except psycopg2.Error as err:
        failed = PostgresDestinationError(secrets.scrub(f"{failure}: {str(err).strip()}", extra=hidden))
        # the driver's error may hold the password: dropped, its codes kept
        raise with_codes(failed, err, connected=connected) from None


@contextmanager
def _session(dsn: str, failure: str) -> Iterator[PgConnection]:
    """A psycopg2 connection; any driver error leaves as PostgresDestinationError, scrubbed, with its codes."""
    hidden = _secrets_in(dsn)
    pg = _connect(dsn, failure, hidden)
    connected = True  # a driver error without a code from here on is a connection that broke
    try:
        with closing(pg):
            yield pg
    except (psycopg2.Error, adbc_driver_manager.Error) as err:
        failed = PostgresDestinationError(secrets.scrub(f"{failure}: {str(err).strip()}", extra=hidden))
        # the driver's error may hold the password: dropped, its codes kept
        raise with_codes(failed, err, connected=connected) from None


def _lock(pg: PgConnection, names: _Names) -> None:
    """Loads into one table take turns; the lock ends with the session, a killed one's too."""
    with pg.cursor() as cur:
        cur.execute(
            "SELECT pg_advisory_lock(hashtextextended(%s, 0))",
            [json.dumps(["etl_platform", names.schema, names.table])],
        )
    pg.commit()
