"""The ``rest`` connection kind: records from a JSON REST API, written as NDJSON files.

A connection says where the API is and how to authenticate; a pipeline's source says
which endpoint to read and how it pages (``RestEndpoint``). ``fetch`` pages through the
endpoint one response at a time and appends the records to numbered NDJSON files, so
memory stays bounded by one page whatever the API returns. Transient failures
(connection errors, timeouts, 429, 5xx) are retried with backoff, honouring
``Retry-After``; anything else fails at once with a ``RestError`` whose message has
every credential masked."""

import decimal
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import msgspec

from etl_platform.connectors.registry import Connector, register
from etl_platform.connectors.rest.http import ApiKeyAuth, BasicAuth, BearerAuth, PageRequest, RestError, _Http
from etl_platform.connectors.rest.options import RestOptions
from etl_platform.connectors.rest.pagination import _MISSING, Page, RestEndpoint, _dig
from etl_platform.connectors.rest.pagination import Incremental as Incremental
from etl_platform.secrets.references import describe as describe_secret
from etl_platform.secrets.references import scrub

RECORDS_PER_FILE = 50_000
# Decimal numbers (see rest_http: every digit the API sent) written back as numbers, digit for digit.
_ENCODER = msgspec.json.Encoder(decimal_format="number")

# Injectable so tests can record the waits instead of sleeping through them.
_sleep: Callable[[float], None] = time.sleep
_random: Callable[[], float] = random.random


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
    asset_kinds = frozenset({"rest", "json"})  # Dagster has no icon for an HTTP API; its records are JSON
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
        with (
            _Http(self.options, log, sleep=_sleep, random=_random) as http,
            _NdjsonFiles(dest, records_per_file, log) as files,
        ):
            log(f"reading {http.shown(request)} from {self.describe()}")
            while request is not None:
                if pages == endpoint.max_pages:
                    raise RestError(
                        http.scrub(f"{http.shown(request)}: more than max_pages={endpoint.max_pages} pages")
                    )
                response = http.get(request)
                body = http.json(response, request)
                page_records = _dig(body, endpoint.records_path) if endpoint.records_path else body
                if not isinstance(page_records, list):
                    found = "nothing" if page_records is _MISSING else type(page_records).__name__
                    where = f"records_path {endpoint.records_path!r}" if endpoint.records_path else "the response"
                    raise RestError(http.scrub(f"{http.shown(request)}: {where} is {found}, not a list of records"))
                for record in page_records:
                    if not isinstance(record, dict):
                        raise RestError(
                            http.scrub(f"{http.shown(request)}: a record is {type(record).__name__}, not an object")
                        )
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


def _param_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
        if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal | str):
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
        return str(self.value)


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
        self._handle.write(_ENCODER.encode(record).decode() + "\n")
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
