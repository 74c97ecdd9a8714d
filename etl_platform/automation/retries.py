"""Which failures are worth trying again, and the retry policy of a pipeline's steps.

Transient failures (a connection reset or refused, a timeout, HTTP 429 or 5xx, a locked
warehouse file) are retried by the step's retry policy: exponential backoff with jitter.
Permanent ones (bad credentials, bad data, a spec or schema mismatch) fail at once with
``dg.Failure(allow_retries=False)``: trying again would fail the same way and only delay
the alert; so do errors of no known kind. ``classify`` is the one place that decides.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import dagster as dg

from etl_platform.secrets import scrub

Kind = Literal["transient", "permanent", "unknown"]

# Credentials and access: checked first, a refused login is permanent whatever else it says.
_BAD_CREDENTIALS = re.compile(
    r"password authentication failed|authentication failed|access denied|permission denied|unauthori[sz]ed"
    r"|forbidden|invalid ?access ?key|signaturedoesnotmatch|does not belong to the access key|invalid ?token"
    r"|expired ?token|credentials (have expired|are not valid)|not known to the server|\bHTTP 40[13]\b",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(
    r"connection (reset|refused|aborted|closed|timed out)|server closed the connection|broken pipe"
    r"|timed? ?out|timeout|temporar(il)?y|try again|too many (requests|connections)|slow ?down|throttl"
    r"|service unavailable|bad gateway|gateway time|internal ?error|\bHTTP (429|5\d\d)\b|\((429|5\d\d)\)"
    r"|could not set lock on file|database is locked|lock (contention|timeout|wait)|deadlock"
    r"|could not connect|network is unreachable|name or service not known|max retries exceeded"
    r"|connectionerror|remotedisconnected|protocolerror",
    re.IGNORECASE,
)


def classify(err: BaseException) -> Kind:
    """Whether ``err`` may go away by itself (transient), never will (permanent), or is not known."""
    from etl_platform.secrets import MissingSecret
    from etl_platform.spec_errors import SpecError
    from etl_platform.steps.load import SchemaMismatch

    if isinstance(err, (MissingSecret, SchemaMismatch, SpecError)):
        return "permanent"
    status = getattr(err, "status", None)  # a REST source's HTTP status
    if isinstance(status, int):
        return "transient" if status == 429 or status >= 500 else "permanent"
    text = f"{type(err).__name__}: {err}"
    if _BAD_CREDENTIALS.search(text):
        return "permanent"
    if isinstance(err, (ConnectionError, TimeoutError)) or _TRANSIENT.search(text):
        return "transient"
    try:
        import duckdb
    except ImportError:  # pragma: no cover - duckdb is a dependency
        duckdb = None
    if duckdb is not None and isinstance(err, duckdb.Error):
        return "permanent"  # bad SQL, a value that does not convert, a constraint: the same next time
    from etl_platform.connectors.registry import ConnectorError
    from etl_platform.destinations import DestinationError
    from etl_platform.steps.ingest import LoadFailed

    if isinstance(err, (LoadFailed, ConnectorError, DestinationError, ValueError)):
        return "permanent"
    return "unknown"


def failure_for(err: BaseException, metadata: dict | None = None) -> dg.Failure:
    """The step failure for ``err``: retried by the policy when transient, final when permanent."""
    kind = classify(err)
    message = scrub(str(err) or type(err).__name__)
    if kind == "transient":
        return dg.Failure(f"{message}\n(transient failure: retried by the step's retry policy)", metadata=metadata)
    if kind == "permanent":
        return dg.Failure(f"{message}\n(permanent failure: not retried)", metadata=metadata, allow_retries=False)
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
        raise failure_for(err) from None


def retry_policy(max_retries: int, delay_seconds: float) -> dg.RetryPolicy | None:
    """Exponential backoff with jitter: delay, 2x delay, 4x delay, ... each give or take a random share."""
    if max_retries <= 0:
        return None
    return dg.RetryPolicy(
        max_retries=max_retries, delay=delay_seconds, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )
