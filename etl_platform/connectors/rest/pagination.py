"""What a pipeline's rest source reads: the endpoint, how it pages, and the incremental lower bound.

A paginator makes the first request of an endpoint and, from each ``Page`` the API
answers, the next one, or None after the last page.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import Field, field_validator

from etl_platform.connectors.rest.http import PageRequest, RestError
from etl_platform.spec.base import SpecModel


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
        "seconds. The default is ISO 8601 with the offset (2024-01-31T08:00:00+0000). A numeric cursor is sent as it "
        "is.",
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


_MISSING = object()


def _dig(body: Any, path: str) -> Any:
    """The value at a dot path (``data.items``) in a JSON body, or ``_MISSING``."""
    value = body
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port
