"""HTTP for the ``rest`` kind: requests sent with the connection's credentials, retried with backoff.

Transient failures (connection errors, timeouts, 429, 5xx) are retried with full-jitter
backoff, honouring ``Retry-After``; anything else fails at once with a ``RestError``. Every
credential, and the forms it takes inside a URL, is masked in messages and in urllib3's
request-line logs.
"""

import base64
import decimal
import email.utils
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit

import requests
from pydantic import Field, model_validator

from etl_platform.connectors.registry import ConnectorError
from etl_platform.errors import first_line
from etl_platform.failure_codes import FailureCodes, with_codes
from etl_platform.secrets.references import MASK, SecretRef, reveal, scrub
from etl_platform.spec.base import SpecModel

if TYPE_CHECKING:
    from etl_platform.connectors.rest.options import RestOptions

RETRY_AFTER_CAP_SECONDS = 300.0
BODY_EXCERPT_CHARS = 300


class RestError(ConnectorError):
    """A request failed for good; the message names the path and status, never a credential.
    ``codes`` hold the HTTP status, or the kind of network failure, for ``retries.classify``."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status
        self.codes = FailureCodes(http_status=status)


# --- authentication ------------------------------------------------------------------


class BearerAuth(SpecModel):
    """``Authorization: Bearer <token>`` on every request."""

    type: Literal["bearer"]
    token: SecretRef = Field(description="The token, as {env: VAR} or {secret: name}.")


class BasicAuth(SpecModel):
    """HTTP basic authentication."""

    type: Literal["basic"]
    username: str | SecretRef = Field(description="User name, as text or as {env: VAR} / {secret: name}.")
    password: SecretRef = Field(description="Password, as {env: VAR} or {secret: name}.")


class ApiKeyAuth(SpecModel):
    """An API key sent in a request header or in a query parameter. Give exactly one of the two."""

    type: Literal["api_key"]
    key: SecretRef = Field(description="The API key, as {env: VAR} or {secret: name}.")
    header: str | None = Field(None, description="Header that carries the key, e.g. 'X-API-Key'.")
    query_param: str | None = Field(
        None, description="Query parameter that carries the key, e.g. 'api_key'. It is masked in logs and errors."
    )

    @model_validator(mode="after")
    def _one_place(self) -> "ApiKeyAuth":
        if (self.header is None) == (self.query_param is None):
            raise ValueError("api_key auth needs exactly one of header or query_param")
        return self


Auth = Annotated[BearerAuth | BasicAuth | ApiKeyAuth, Field(discriminator="type")]


# --- requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class PageRequest:
    """One request to make. Credentials are added only when it is sent."""

    url: str
    params: dict[str, str]


class _Http:
    """A session that sends page requests with credentials, retries and masked messages.

    ``sleep`` waits between retries; ``random`` gives the fraction of the backoff to wait (full jitter).
    """

    def __init__(
        self,
        options: "RestOptions",
        log: Callable[[str], None],
        *,
        sleep: Callable[[float], None],
        random: Callable[[], float],
    ):
        self.options = options
        self.log = log
        self.sleep = sleep
        self.random = random
        self.session = requests.Session()
        self.headers = {"Accept": "application/json"}
        self.auth_params: dict[str, str] = {}
        self.secrets: set[str] = set()
        for name, value in options.headers.items():
            self.headers[name] = self._reveal(value)
        auth = options.auth
        if isinstance(auth, BearerAuth):
            self.headers["Authorization"] = f"Bearer {self._reveal(auth.token)}"
        elif isinstance(auth, BasicAuth):
            pair = f"{self._reveal(auth.username)}:{self._reveal(auth.password)}"
            encoded = base64.b64encode(pair.encode()).decode()
            self.secrets.add(encoded)
            self.headers["Authorization"] = f"Basic {encoded}"
        elif isinstance(auth, ApiKeyAuth):
            key = self._reveal(auth.key)
            if auth.header:
                self.headers[auth.header] = key
            else:
                self.auth_params[auth.query_param] = key
        _DERIVED_SECRETS.update(self.secrets)

    def _reveal(self, ref: SecretRef | str) -> str:
        value = reveal(ref) or ""
        if not isinstance(ref, str) and value:
            # Also the forms a value takes inside a URL, so those are masked too.
            self.secrets.update({value, quote(value, safe=""), quote_plus(value)})
        return value

    def __enter__(self) -> "_Http":
        return self

    def __exit__(self, *exc) -> None:
        self.session.close()

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)

    def shown(self, request: PageRequest) -> str:
        """The request as logs and errors show it: path and query, API key masked."""
        parts = urlsplit(request.url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True)) | request.params
        query |= {name: MASK for name in self.auth_params}
        return self.scrub(f"GET {parts.path}" + (f"?{urlencode(query, safe='*')}" if query else ""))

    def get(self, request: PageRequest) -> requests.Response:
        """The response to ``request``, retrying connection errors, timeouts, 429 and 5xx."""
        in_url = {name for name, _ in parse_qsl(urlsplit(request.url).query, keep_blank_values=True)}
        params = request.params | {k: v for k, v in self.auth_params.items() if k not in in_url}
        retries = self.options.max_retries
        attempt = 0
        while True:
            try:
                response = self.session.get(
                    request.url, params=params, headers=self.headers, timeout=self.options.timeout_seconds
                )
            except (requests.ConnectionError, requests.Timeout) as err:
                problem, wait = f"{type(err).__name__}: {_first_line(err)}", None
                if attempt == retries:
                    failed = RestError(self.scrub(f"{self.shown(request)} failed after {attempt} retries: {problem}"))
                    # requests' error names the URL with its query, the API key too: dropped, its codes kept
                    raise with_codes(failed, err) from None
            except requests.RequestException as err:
                # requests' error names the URL with its query, the API key too: dropped, its codes kept
                raise with_codes(
                    RestError(self.scrub(f"{self.shown(request)} failed: {_first_line(err)}")), err
                ) from None
            else:
                status = response.status_code
                if status < 400:
                    return response
                if status != 429 and status < 500:
                    raise RestError(self._status_message(request, response), status)
                if attempt == retries:
                    raise RestError(self._status_message(request, response, f" after {attempt} retries"), status)
                problem, wait = f"HTTP {status}", _retry_after(response.headers.get("Retry-After"))
            if wait is None:
                wait = self.random() * min(self.options.max_backoff_seconds, self.options.backoff_seconds * 2**attempt)
            attempt += 1
            self.log(self.scrub(f"{self.shown(request)}: {problem}; retry {attempt} of {retries} in {wait:.1f} s"))
            self.sleep(wait)

    def json(self, response: requests.Response, request: PageRequest) -> Any:
        try:
            # Numbers with a fraction as Decimal: every digit the API sent reaches the table.
            return json.loads(response.content, parse_float=decimal.Decimal)
        except ValueError:  # its document is the whole body, unscrubbed: dropped, a scrubbed excerpt shown
            kind = response.headers.get("Content-Type", "no content type")
            raise RestError(
                self.scrub(f"{self.shown(request)}: the response is not JSON ({kind}): {_excerpt(response)}"),
                response.status_code,
            ) from None

    def _status_message(self, request: PageRequest, response: requests.Response, suffix: str = "") -> str:
        return self.scrub(
            f"{self.shown(request)} returned HTTP {response.status_code} {response.reason or ''}".rstrip()
            + f"{suffix}: {_excerpt(response)}"
        )


def _excerpt(response: requests.Response) -> str:
    text = " ".join(response.text.split())
    return (text[:BODY_EXCERPT_CHARS] + " ...") if len(text) > BODY_EXCERPT_CHARS else (text or "(empty body)")


def _first_line(err: Exception) -> str:
    return first_line(err)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), capped."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


# urllib3 logs request lines (with their query strings) at DEBUG; mask API keys there too.
_DERIVED_SECRETS: set[str] = set()


class _ScrubRequestLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg, record.args = scrub(record.getMessage(), _DERIVED_SECRETS), ()
        except (TypeError, ValueError):
            pass  # a malformed record is logging's problem to report, not ours
        return True


_urllib3_log = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, _ScrubRequestLines) for f in _urllib3_log.filters):
    _urllib3_log.addFilter(_ScrubRequestLines())
