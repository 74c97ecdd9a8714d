"""Which failures are worth trying again, and the retry policy of a pipeline's steps.

Transient failures (a connection reset, refused or lost, a timeout, a deadlock, HTTP 429 or
5xx, a locked warehouse file) are retried by the step's retry policy: exponential backoff with
jitter. Permanent ones (bad credentials, bad SQL or data, a spec or schema mismatch) fail at
once with ``dg.Failure(allow_retries=False)``: trying again would fail the same way and only
delay the alert; so do errors of no known kind. ``classify`` is the one place that decides.

It decides by the codes the drivers give (``failure_codes``: SQLSTATE, MySQL error number, S3
error code, HTTP status, the kind of network failure), which connectors and destinations keep
when they wrap a driver's error. Only an error without any code is judged by its wording.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import dagster as dg

from etl_platform.failure_codes import FailureCodes, codes_of, is_driver_error
from etl_platform.secrets.references import scrub

Kind = Literal["transient", "permanent", "unknown"]

# PostgreSQL SQLSTATEs that may pass by themselves: connection exceptions (class 08), an
# administrator's shutdown, a crash or a server still starting (57P01-57P03), serialization
# failures and deadlocks (40001, 40P01), insufficient resources (class 53: disk, memory, too
# many connections) and a lock not available (55P03). Every other SQLSTATE is the database
# refusing the statement for good: 28 authorization, 42 syntax or access rule, 22 data,
# 23 integrity, and the rest.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53")
_TRANSIENT_SQLSTATES = {"57P01", "57P02", "57P03", "40001", "40P01", "55P03"}

# MySQL/MariaDB error numbers that may pass by themselves: a connection refused, gone or lost
# (2002, 2003, 2006, 2013, 2055), killed or shut down on the server (1927, 1053), a lock wait
# timeout or deadlock (1205, 1213), too many connections (1040, 1203), network read/write
# errors on the server (1158-1161) and an idle client cut off (4031). Every other number is
# permanent: access denied (1045, 1044, 1698), unknown database (1049), syntax (1064), no such
# table (1146), bad data, ...
_TRANSIENT_MYSQL_ERRNOS = {
    2002,
    2003,
    2006,
    2013,
    2055,
    1927,
    1053,
    1205,
    1213,
    1040,
    1203,
    1158,
    1159,
    1160,
    1161,
    4031,
}

# S3 error codes, as botocore reports them. A code in neither set is judged by its HTTP status.
_TRANSIENT_S3_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "500",
    "502",
    "503",
    "504",
}
_PERMANENT_S3_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "NoSuchBucket",
    "NoSuchKey",
    "403",
    "404",
}

# ADBC statuses that say enough by themselves when there is no SQLSTATE. "IO" does not: the
# PostgreSQL driver reports a refused login and an unreachable server both as IO, without a
# SQLSTATE (``connection_lost`` covers an IO failure once connected).
_TRANSIENT_ADBC_STATUSES = {"TIMEOUT"}
_PERMANENT_ADBC_STATUSES = {"UNAUTHENTICATED", "UNAUTHORIZED"}

# The last resort, for errors that carry no code at all: libpq gives none for a refused login
# or a server it cannot reach, and some of our own messages repeat a driver's words. Never
# consulted when an error has a code. Credentials first: a refused login is permanent
# whatever else its message says.
_BAD_CREDENTIALS = re.compile(
    r"password authentication failed|authentication failed|access denied|permission denied|unauthori[sz]ed"
    r"|forbidden|invalid ?access ?key|signaturedoesnotmatch|does not belong to the access key|invalid ?token"
    r"|expired ?token|credentials (have expired|are not valid)|not known to the server|\bHTTP 40[13]\b",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(
    r"connection (reset|refused|aborted|closed|timed out)|server closed the connection|broken pipe"
    r"|timed? ?out|timeout|temporar(il)?y|try again|too many (requests|connections|clients)|slow ?down|throttl"
    r"|service unavailable|bad gateway|gateway time|internal ?error|\bHTTP (429|5\d\d)\b|\((429|5\d\d)\)"
    r"|could not set lock on file|database is locked|lock (contention|timeout|wait)|deadlock"
    r"|could not connect|network is unreachable|name or service not known|max retries exceeded"
    r"|the database system is (starting up|shutting down)|terminating connection"
    r"|connectionerror|remotedisconnected|protocolerror",
    re.IGNORECASE,
)


def classify(err: BaseException) -> Kind:
    """Whether ``err`` may go away by itself (transient), never will (permanent), or is not known."""
    from etl_platform.destinations.warehouse.tables import SchemaMismatch
    from etl_platform.secrets.references import MissingSecret
    from etl_platform.spec.errors import SpecError

    if isinstance(err, (MissingSecret, SchemaMismatch, SpecError)):
        return "permanent"
    by_code = _by_codes(codes_of(err))
    if by_code is not None:
        return by_code
    text = f"{type(err).__name__}: {err}"
    if _BAD_CREDENTIALS.search(text):
        return "permanent"
    if _TRANSIENT.search(text):
        return "transient"
    try:
        import duckdb
    except ImportError:  # pragma: no cover - duckdb is a dependency
        duckdb = None
    if duckdb is not None and isinstance(err, duckdb.Error):
        return "permanent"  # bad SQL, a value that does not convert, a constraint: the same next time
    from etl_platform.connectors.registry import ConnectorError
    from etl_platform.destinations.base import DestinationError
    from etl_platform.steps.load_result import LoadFailed

    if isinstance(err, (LoadFailed, ConnectorError, DestinationError, ValueError)) or is_driver_error(err):
        return "permanent"  # a refusal with neither a code nor words that say it may pass
    return "unknown"


def _by_codes(codes: FailureCodes) -> Kind | None:
    """What the codes say, or None when there are none that decide."""
    if codes.sqlstate:
        state = codes.sqlstate.upper()
        return "transient" if state[:2] in _TRANSIENT_SQLSTATE_CLASSES or state in _TRANSIENT_SQLSTATES else "permanent"
    if codes.mysql_errno is not None:
        return "transient" if codes.mysql_errno in _TRANSIENT_MYSQL_ERRNOS else "permanent"
    if codes.s3_code in _TRANSIENT_S3_CODES:
        return "transient"
    if codes.s3_code in _PERMANENT_S3_CODES:
        return "permanent"
    if codes.http_status is not None and codes.http_status >= 400:
        return "transient" if codes.http_status == 429 or codes.http_status >= 500 else "permanent"
    if codes.s3_code:
        return "permanent"  # a refusal we have no name for, without a status that says otherwise
    if codes.network or codes.connection_lost or codes.file_locked:
        return "transient"
    if codes.adbc_status in _TRANSIENT_ADBC_STATUSES:
        return "transient"
    if codes.adbc_status in _PERMANENT_ADBC_STATUSES:
        return "permanent"
    return None


def failure_for(err: BaseException, metadata: dict | None = None) -> dg.Failure:
    """The step failure for ``err``: retried by the policy when transient, final when permanent."""
    kind = classify(err)
    message = scrub(str(err) or type(err).__name__)
    codes = codes_of(err)
    said = f"; {codes.describe()}" if codes else ""  # what the decision rests on
    if kind == "transient":
        return dg.Failure(
            f"{message}\n(transient failure: retried by the step's retry policy{said})", metadata=metadata
        )
    if kind == "permanent":
        return dg.Failure(f"{message}\n(permanent failure: not retried{said})", metadata=metadata, allow_retries=False)
    # Not known to pass by itself: retrying would only delay the alert, so fail now.
    message = f"{type(err).__name__}: {message}"
    return dg.Failure(f"{message}\n(unexpected failure: not retried)", metadata=metadata, allow_retries=False)


@contextmanager
def failures_classified() -> Iterator[None]:
    """Turn what a step raises into a ``dg.Failure`` that says whether it is retried.

    A ``dg.Failure`` raised inside has been decided already and passes through. An error
    of unknown kind fails without retries and keeps its traceback (as the failure's cause)
    for whoever debugs it.
    """
    try:
        yield
    except dg.Failure:
        raise
    except Exception as err:
        if classify(err) == "unknown":
            raise failure_for(err) from err
        # a driver's error may hold a credential in its words: only the scrubbed message and codes are kept
        raise failure_for(err) from None


def retry_policy(max_retries: int, delay_seconds: float) -> dg.RetryPolicy | None:
    """Exponential backoff with jitter: delay, 2x delay, 4x delay, ... each give or take a random share."""
    if max_retries <= 0:
        return None
    return dg.RetryPolicy(
        max_retries=max_retries, delay=delay_seconds, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )
