"""What a driver said about a failure, as codes: the facts ``retries.classify`` decides by.

Connectors and destinations turn a driver's exception into their own error (``SourceError``,
``RestError``, ``S3Error``, ``DestinationError``) with a scrubbed message, and drop the driver's
exception: its message, arguments and traceback may hold a credential. What they keep, as the
error's ``codes``, is a ``FailureCodes``: the SQLSTATE, the MySQL error number, the S3 error
code, the HTTP status, the kind of network failure. Codes are never free text, so no secret
can leak through them.

No driver is imported here: an exception can only come from a driver that is loaded already.
"""

import sys
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import TypeVar

E = TypeVar("E", bound=BaseException)


@dataclass(frozen=True)
class FailureCodes:
    """The structured codes of one failure; every field is optional."""

    sqlstate: str | None = None  # PostgreSQL's SQLSTATE (psycopg2's pgcode, ADBC's sqlstate), e.g. "57P01"
    adbc_status: str | None = None  # ADBC's status code name, e.g. "IO", "TIMEOUT", "UNAUTHENTICATED"
    mysql_errno: int | None = None  # MySQL/MariaDB server or client error number, e.g. 2013
    s3_code: str | None = None  # the S3 error code of a botocore ClientError, e.g. "SlowDown"
    http_status: int | None = None  # the HTTP status of the response (REST, S3)
    network: str | None = None  # a network failure, by its exception's name: "ConnectionResetError", "ReadTimeoutError"
    connection_lost: bool = False  # a connection that was open broke, and the driver gave no code for it
    file_locked: bool = False  # DuckDB could not lock a database file: another process has it open

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) not in (None, False) for f in fields(self))

    def describe(self) -> str:
        """The codes for people, e.g. ``SQLSTATE 57P01`` or ``S3 SlowDown, HTTP 503``."""
        said = [
            f"SQLSTATE {self.sqlstate}" if self.sqlstate else "",
            f"ADBC status {self.adbc_status}" if self.adbc_status and not self.sqlstate else "",
            f"MySQL error {self.mysql_errno}" if self.mysql_errno is not None else "",
            f"S3 {self.s3_code}" if self.s3_code else "",
            f"HTTP {self.http_status}" if self.http_status is not None else "",
            self.network or "",
            "connection lost" if self.connection_lost else "",
            "database file locked" if self.file_locked else "",
        ]
        return ", ".join(s for s in said if s)


def with_codes(error: E, driver_error: BaseException, *, connected: bool = False) -> E:
    """``error`` (the wrapper about to be raised) carrying the codes of ``driver_error``, the one it
    replaces. ``connected``: the failure came after the driver's connection was open."""
    error.codes = codes_of(driver_error, connected=connected)
    return error


def codes_of(err: BaseException, *, connected: bool = False) -> FailureCodes:
    """The codes of ``err`` and of the errors behind it (those a traceback would show, SQLAlchemy's
    ``orig``, s3transfer's last attempt); the first error that has a field gives it.

    ``connected`` says the failure came after the connection was open: a driver error without
    a code then means the connection broke (libpq gives no SQLSTATE for a connection that drops,
    nor for a refused login, so only where it happened tells the two apart).
    """
    found: dict[str, object] = {}
    for e in _behind(err):
        for name, value in _codes(e, connected).items():
            if value not in (None, False):
                found.setdefault(name, value)
    return FailureCodes(**found)


def _behind(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [err]
    while todo and len(seen) < 20:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for attr in ("orig", "last_exception"):
            inner = getattr(e, attr, None)
            if isinstance(inner, BaseException):
                todo.append(inner)
        if e.__cause__ is not None:
            todo.append(e.__cause__)
        if e.__context__ is not None and not e.__suppress_context__:
            todo.append(e.__context__)


def _loaded(module: str):
    return sys.modules.get(module)


def _codes(e: BaseException, connected: bool) -> dict[str, object]:
    own = getattr(e, "codes", None)
    if isinstance(own, FailureCodes):  # one of our errors, wrapped already
        return {f.name: getattr(own, f.name) for f in fields(own)}
    if (psycopg2 := _loaded("psycopg2")) and isinstance(e, psycopg2.Error):
        lost = e.pgcode is None and connected and isinstance(e, (psycopg2.OperationalError, psycopg2.InterfaceError))
        return {"sqlstate": e.pgcode, "connection_lost": lost}
    if (adbc := _loaded("adbc_driver_manager")) and isinstance(e, adbc.Error):
        sqlstate = (e.sqlstate or "").strip("\0 ") or None
        status = e.status_code.name if e.status_code is not None else None
        lost = sqlstate is None and status == "IO" and connected
        return {"sqlstate": sqlstate, "adbc_status": status, "connection_lost": lost}
    if (pymysql := _loaded("pymysql")) and isinstance(e, pymysql.err.MySQLError):
        errno = e.args[0] if e.args and isinstance(e.args[0], int) and e.args[0] > 0 else None
        lost = errno is None and connected and isinstance(e, (pymysql.err.InterfaceError, pymysql.err.OperationalError))
        return {"mysql_errno": errno, "connection_lost": lost}
    if (boto := _loaded("botocore.exceptions")) and isinstance(e, boto.ClientError):
        response = e.response if isinstance(e.response, dict) else {}
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return {"s3_code": str(response.get("Error", {}).get("Code") or "") or None, "http_status": status}
    if _is_network_failure(e):
        return {"network": type(e).__name__}
    if (duckdb := _loaded("duckdb")) and isinstance(e, duckdb.IOException):
        # DuckDB gives no codes: its exception class and its fixed wording are all there is.
        return {"file_locked": "could not set lock on file" in str(e).lower()}
    return {}


def is_driver_error(err: BaseException) -> bool:
    """Whether ``err`` is a database or S3 driver's own error (psycopg2, ADBC, PyMySQL, SQLAlchemy, botocore)."""
    bases = [
        getattr(_loaded(module), name, None)
        for module, name in (
            ("psycopg2", "Error"),
            ("adbc_driver_manager", "Error"),
            ("pymysql.err", "MySQLError"),
            ("sqlalchemy.exc", "DBAPIError"),
            ("botocore.exceptions", "BotoCoreError"),
            ("botocore.exceptions", "ClientError"),
        )
    ]
    return isinstance(err, tuple(b for b in bases if isinstance(b, type)))


def _is_network_failure(e: BaseException) -> bool:
    """A connection refused, reset, closed or timed out, by whichever library saw it. TLS
    failures (a certificate that does not verify) are not: they stay until someone fixes them."""
    broken: tuple[type, ...] = (ConnectionError, TimeoutError)
    tls: tuple[type, ...] = ()
    if boto := _loaded("botocore.exceptions"):
        broken += (boto.ConnectionError, boto.HTTPClientError)
        tls += (boto.SSLError,)
    if requests := _loaded("requests.exceptions"):
        broken += (requests.ConnectionError, requests.Timeout, requests.ChunkedEncodingError)
        tls += (requests.SSLError,)
    return isinstance(e, broken) and not isinstance(e, tls)
