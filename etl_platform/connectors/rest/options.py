"""The options of a REST connection."""

from pydantic import Field

from etl_platform.connectors.rest.http import Auth
from etl_platform.connectors.rest.pagination import Incremental as Incremental
from etl_platform.secrets.references import SecretRef
from etl_platform.spec.base import SpecModel

# --- connection options ---------------------------------------------------------------


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
