"""The ``rest`` connection kind: records from a JSON REST API, written as NDJSON files.

A connection says where the API is and how to authenticate; a pipeline's source says
which endpoint to read and how it pages (``RestEndpoint``). ``fetch`` pages through the
endpoint one response at a time and appends the records to numbered NDJSON files, so
memory stays bounded by one page whatever the API returns. Transient failures
(connection errors, timeouts, 429, 5xx) are retried with backoff, honouring
``Retry-After``; anything else fails at once with a ``RestError`` whose message has
every credential masked.
"""

import base64
import email.utils
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urljoin, urlsplit

import requests
from pydantic import Field, field_validator, model_validator

from etl_platform.connectors.registry import Connector, ConnectorError, register
from etl_platform.secrets import MASK, SecretRef, describe as describe_secret, reveal, scrub
from etl_platform.spec import SpecModel

RECORDS_PER_FILE = 50_000
RETRY_AFTER_CAP_SECONDS = 300.0
BODY_EXCERPT_CHARS = 300

# Injectable so tests can record the waits instead of sleeping through them.
_sleep: Callable[[float], None] = time.sleep
_random: Callable[[], float] = random.random


class RestError(ConnectorError):
    """A request failed for good; the message names the path and status, never a credential."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


# --- connection options ---------------------------------------------------------------


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


class RestOptions(SpecModel):
    base_url: str = Field(
        pattern=r"^https?://[^\s/?#@]+(/[^\s?#]*)?$",
        description="Root of the API, e.g. 'https://api.example.com/v2'. Endpoint paths are appended to it. "
        "No credentials in it: use auth.",
    )
    auth: Auth | None = Field(
        None,
        description="How requests authenticate: {type: bearer, token: ...}, {type: basic, username: ..., "
        "password: ...} or {type: api_key, key: ..., header: X-API-Key | query_param: api_key}. "
        "Credentials are references ({env: VAR} or {secret: name}), never the values.",
    )
    headers: dict[str, str | SecretRef] = Field(
        default_factory=dict,
        description="Extra headers sent with every request. A value may be a secret reference.",
    )
    timeout_seconds: float = Field(30, gt=0, description="Give up on a request that has not answered after this long.")
    max_retries: int = Field(
        5, ge=0, description="Retries of a request after a connection error, timeout, HTTP 429 or 5xx."
    )
    backoff_seconds: float = Field(
        1,
        ge=0,
        description="Base wait before retry n: a random time up to backoff_seconds * 2**n (full jitter). "
        "A Retry-After header from the server is honoured instead (up to 300 s).",
    )
    max_backoff_seconds: float = Field(60, gt=0, description="Longest wait between retries when backing off.")
    page_size: int = Field(
        100,
        gt=0,
        description="Records asked for per page when an endpoint does not say. Keep it at or below the "
        "API's maximum: a page shorter than asked for is read as the last one.",
    )


# --- endpoints and pagination -----------------------------------------------------------


@dataclass(frozen=True)
class PageRequest:
    """One request to make. Credentials are added only when it is sent."""

    url: str
    params: dict[str, str]


@dataclass(frozen=True)
class Page:
    """What a response says that pagination needs."""

    request: PageRequest
    body: Any
    records: int
    next_link: str | None


class NoPagination(SpecModel):
    """The endpoint answers with everything in one response."""

    type: Literal["none"]

    def first(self, request: PageRequest, page_size: int) -> PageRequest:
        return request

    def after(self, page: Page, page_size: int) -> PageRequest | None:
        return None


class PageNumberPagination(SpecModel):
    """Pages numbered 1, 2, 3, ... Stops at a page with fewer records than the page size (or none)."""

    type: Literal["page_number"]
    page_param: str = Field("page", description="Query parameter that carries the page number.")
    start_page: int = Field(1, ge=0, description="Number of the first page.")
    size_param: str | None = Field(
        "per_page", description="Query parameter that carries the page size; null to not send one."
    )
    total_pages_path: str | None = Field(
        None, description="Dot path in the response to the number of pages, e.g. 'meta.total_pages'; stops there."
    )

    def first(self, request: PageRequest, page_size: int) -> PageRequest:
        sizing = {self.size_param: str(page_size)} if self.size_param else {}
        return PageRequest(request.url, request.params | {self.page_param: str(self.start_page)} | sizing)

    def after(self, page: Page, page_size: int) -> PageRequest | None:
        number = int(page.request.params[self.page_param])
        if page.records == 0 or (self.size_param and page.records < page_size):
            return None
        if self.total_pages_path:
            total = _dig(page.body, self.total_pages_path)
            if isinstance(total, int) and number - self.start_page + 1 >= total:
                return None
        return PageRequest(page.request.url, page.request.params | {self.page_param: str(number + 1)})


class OffsetPagination(SpecModel):
    """``offset``/``limit`` parameters. Stops at a page with fewer records than the limit (or none)."""

    type: Literal["offset"]
    offset_param: str = Field("offset", description="Query parameter that carries the offset of the first record.")
    limit_param: str = Field("limit", description="Query parameter that carries the page size.")

    def first(self, request: PageRequest, page_size: int) -> PageRequest:
        return PageRequest(request.url, request.params | {self.offset_param: "0", self.limit_param: str(page_size)})

    def after(self, page: Page, page_size: int) -> PageRequest | None:
        if page.records < page_size:
            return None
        offset = int(page.request.params[self.offset_param]) + page.records
        return PageRequest(page.request.url, page.request.params | {self.offset_param: str(offset)})


class CursorPagination(SpecModel):
    """Each response holds a token for the next page. Stops when the token is missing, null or empty."""

    type: Literal["cursor"]
    next_path: str = Field(description="Dot path in the response to the next page's token, e.g. 'meta.next_cursor'.")
    cursor_param: str = Field(description="Query parameter the token is sent in, e.g. 'cursor'.")
    size_param: str | None = Field(None, description="Query parameter that carries the page size, if the API has one.")

    def first(self, request: PageRequest, page_size: int) -> PageRequest:
        sizing = {self.size_param: str(page_size)} if self.size_param else {}
        return PageRequest(request.url, request.params | sizing)

    def after(self, page: Page, page_size: int) -> PageRequest | None:
        token = _dig(page.body, self.next_path)
        if token is _MISSING or token is None or token == "":
            return None
        token = str(token)
        if page.request.params.get(self.cursor_param) == token:
            raise RestError(f"the API returned the same next-page token twice ({self.next_path}); stopping")
        return PageRequest(page.request.url, page.request.params | {self.cursor_param: token})


class LinkHeaderPagination(SpecModel):
    """Follows the ``Link: <...>; rel="next"`` response header (RFC 8288). Stops when there is none."""

    type: Literal["link_header"]
    size_param: str | None = Field(
        None, description="Query parameter that carries the page size on the first request, if the API has one."
    )

    def first(self, request: PageRequest, page_size: int) -> PageRequest:
        sizing = {self.size_param: str(page_size)} if self.size_param else {}
        return PageRequest(request.url, request.params | sizing)

    def after(self, page: Page, page_size: int) -> PageRequest | None:
        if not page.next_link:
            return None
        following = urljoin(page.request.url, page.next_link)
        if _origin(following) != _origin(page.request.url):
            # Credentials go with every request; never send them to another server.
            raise RestError(f"the next-page link leads to another server ({_origin(following)}); not following it")
        return PageRequest(following, {})


Pagination = Annotated[
    NoPagination | PageNumberPagination | OffsetPagination | CursorPagination | LinkHeaderPagination,
    Field(discriminator="type"),
]


class Incremental(SpecModel):
    """Ask the API only for records at or after the saved cursor."""

    param: str = Field(description="Query parameter that carries the lower bound, e.g. 'updated_since'.")
    cursor_field: str = Field(description="Field of each record that holds its cursor value, e.g. 'updated_at'.")
    since_format: str = Field(
        "%Y-%m-%dT%H:%M:%S%z",
        description="strftime format a timestamp cursor is sent in, e.g. '%Y-%m-%dT%H:%M:%SZ' or '%s' for Unix "
        "seconds. The default is ISO 8601 with the offset (2024-01-31T08:00:00+0000). A numeric cursor is sent as it is.",
    )

    def since_param(self, saved: str) -> str:
        """The saved cursor (as the warehouse wrote it) in the form the API expects."""
        if re.fullmatch(r"-?\d+(\.\d+)?", saved):
            return saved
        try:
            when = datetime.fromisoformat(saved)
        except ValueError:
            return saved  # text whose form the API defines
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return str(int(when.timestamp())) if self.since_format == "%s" else when.strftime(self.since_format)


class RestEndpoint(SpecModel):
    """One endpoint of a REST connection, as a pipeline's source reads it."""

    path: str = Field(
        pattern=r"^[^\s#?]*$",
        description="Path appended to the connection's base_url, e.g. 'customers' or 'v1/orders'. "
        "Query parameters go in params.",
    )
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Query parameters sent with every request, e.g. {status: active}."
    )
    records_path: str = Field(
        "",
        description="Dot path in the JSON response to the list of records, e.g. 'data.items'. "
        "Empty when the response itself is the list.",
    )
    pagination: Pagination = Field(
        default_factory=lambda: NoPagination(type="none"),
        description="How to get the next page: {type: none}, {type: page_number, ...}, {type: offset, ...}, "
        "{type: cursor, next_path: ..., cursor_param: ...} or {type: link_header}.",
    )
    page_size: int | None = Field(None, gt=0, description="Records per page. Defaults to the connection's page_size.")
    incremental: Incremental | None = Field(
        None, description="Send the saved cursor as a lower bound so only new and changed records come back."
    )
    max_pages: int = Field(
        10_000,
        gt=0,
        description="Safety limit: reading fails rather than request more pages than this (an API that never "
        "stops paging).",
    )

    @field_validator("path")
    @classmethod
    def _relative(cls, path: str) -> str:
        if "://" in path:
            raise ValueError("path is relative to the connection's base_url; put the server in base_url")
        return path


# --- reading ------------------------------------------------------------------------------


@dataclass
class RestFetch:
    """What one fetch wrote: NDJSON files in order, and the highest cursor value seen."""

    files: list[Path]
    records: int
    pages: int
    max_cursor: str | None


@register
class RestConnector(Connector):
    kind: ClassVar[str] = "rest"
    reads = "rest"
    Options = RestOptions

    def describe(self) -> str:
        parts = urlsplit(self.options.base_url)
        host = parts.hostname or ""
        where = f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
        return scrub(f"REST API {where} ({_describe_auth(self.options.auth)})")

    def fetch(
        self,
        endpoint: RestEndpoint,
        dest: Path,
        *,
        since: str | None,
        log: Callable[[str], None],
        records_per_file: int = RECORDS_PER_FILE,
    ) -> RestFetch:
        """Read every page of ``endpoint`` into ``dest/page_000001.ndjson``, ``page_000002.ndjson``, ...

        With ``endpoint.incremental`` and ``since``, ``since`` is sent as the inclusive lower
        bound. Page files left in ``dest`` by an earlier attempt are removed first.
        """
        page_size = endpoint.page_size or self.options.page_size
        params = {name: _param_text(value) for name, value in endpoint.params.items()}
        if endpoint.incremental and since is not None:
            params[endpoint.incremental.param] = endpoint.incremental.since_param(since)
        url = self.options.base_url.rstrip("/") + "/" + endpoint.path.lstrip("/")
        request: PageRequest | None = endpoint.pagination.first(PageRequest(url, params), page_size)
        cursor_field = endpoint.incremental.cursor_field if endpoint.incremental else None
        highest = _HighestValue(cursor_field)
        pages = records = 0
        with _Http(self.options, log) as http, _NdjsonFiles(dest, records_per_file, log) as files:
            log(f"reading {http.shown(request)} from {self.describe()}")
            while request is not None:
                if pages == endpoint.max_pages:
                    raise RestError(http.scrub(f"{http.shown(request)}: more than max_pages={endpoint.max_pages} pages"))
                response = http.get(request)
                body = http.json(response, request)
                page_records = _dig(body, endpoint.records_path) if endpoint.records_path else body
                if not isinstance(page_records, list):
                    found = "nothing" if page_records is _MISSING else type(page_records).__name__
                    where = f"records_path {endpoint.records_path!r}" if endpoint.records_path else "the response"
                    raise RestError(http.scrub(f"{http.shown(request)}: {where} is {found}, not a list of records"))
                for record in page_records:
                    if not isinstance(record, dict):
                        raise RestError(http.scrub(f"{http.shown(request)}: a record is {type(record).__name__}, not an object"))
                    highest.see(record)
                    files.write(record)
                pages += 1
                records += len(page_records)
                next_link = response.links.get("next", {}).get("url")
                request = endpoint.pagination.after(Page(request, body, len(page_records), next_link), page_size)
        log(f"read {records} records in {pages} pages into {len(files.paths)} files")
        return RestFetch(files.paths, records, pages, highest.text())


def _describe_auth(auth: BearerAuth | BasicAuth | ApiKeyAuth | None) -> str:
    if isinstance(auth, BearerAuth):
        return f"bearer token {describe_secret(auth.token)}"
    if isinstance(auth, BasicAuth):
        user = auth.username if isinstance(auth.username, str) else describe_secret(auth.username)
        return f"basic auth as {user}"
    if isinstance(auth, ApiKeyAuth):
        where = f"header {auth.header}" if auth.header else f"query parameter {auth.query_param}"
        return f"API key {describe_secret(auth.key)} in {where}"
    return "no auth"


class _Http:
    """A session that sends page requests with credentials, retries and masked messages."""

    def __init__(self, options: RestOptions, log: Callable[[str], None]):
        self.options = options
        self.log = log
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
                    raise RestError(self.scrub(f"{self.shown(request)} failed after {attempt} retries: {problem}")) from None
            except requests.RequestException as err:
                raise RestError(self.scrub(f"{self.shown(request)} failed: {_first_line(err)}")) from None
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
                wait = _random() * min(self.options.max_backoff_seconds, self.options.backoff_seconds * 2**attempt)
            attempt += 1
            self.log(self.scrub(f"{self.shown(request)}: {problem}; retry {attempt} of {retries} in {wait:.1f} s"))
            _sleep(wait)

    def json(self, response: requests.Response, request: PageRequest) -> Any:
        try:
            return response.json()
        except ValueError:
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
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


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


_MISSING = object()


def _dig(body: Any, path: str) -> Any:
    """The value at a dot path (``data.items``) in a JSON body, or ``_MISSING``."""
    value = body
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _param_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


@dataclass
class _HighestValue:
    """The highest cursor value seen: numbers compared as numbers, strings as strings."""

    cursor_field: str | None
    value: int | float | str | None = None

    def see(self, record: dict) -> None:
        if self.cursor_field is None:
            return
        value = record.get(self.cursor_field)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise RestError(f"cursor field {self.cursor_field!r} holds {type(value).__name__}, not a number or text")
        if self.value is None:
            self.value = value
            return
        if isinstance(value, str) != isinstance(self.value, str):
            raise RestError(f"cursor field {self.cursor_field!r} mixes numbers and text")
        self.value = max(self.value, value)

    def text(self) -> str | None:
        if self.value is None or isinstance(self.value, str):
            return self.value
        return json.dumps(self.value)


@dataclass
class _NdjsonFiles:
    """Records appended to ``page_000001.ndjson``, ``page_000002.ndjson``, ... at most ``per_file`` each."""

    dest: Path
    per_file: int
    log: Callable[[str], None]
    paths: list[Path] = field(default_factory=list)
    _handle: Any = None
    _in_file: int = 0

    def __enter__(self) -> "_NdjsonFiles":
        self.dest.mkdir(parents=True, exist_ok=True)
        for stale in self.dest.glob("page_*.ndjson"):
            stale.unlink()
        return self

    def write(self, record: dict) -> None:
        if self._handle is None or self._in_file == self.per_file:
            self._next_file()
        self._handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._in_file += 1

    def _next_file(self) -> None:
        self._close()
        path = self.dest / f"page_{len(self.paths) + 1:06d}.ndjson"
        self._handle = path.open("w", encoding="utf-8")
        self.paths.append(path)
        self._in_file = 0

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self.log(f"wrote {self.paths[-1].name}: {self._in_file} records")
            self._handle = None

    def __exit__(self, *exc) -> None:
        self._close()


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
