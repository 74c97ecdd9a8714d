"""Secret references in connection options, and scrubbing them out of messages.

A connection option that holds a credential is written as a reference, never as the
value: ``password: {env: SHOP_DB_PASSWORD}`` (an environment variable of the process
running the step) or ``password: {secret: shop_db_password}`` (an entry of the
encrypted vault). References are what definitions, run config, metadata and the UI
see; the value is looked up only inside a running step, and every message that might
echo it (driver errors often print the connection URL) goes through ``scrub`` first.
"""

import os
import re
import threading
from collections.abc import Iterable

from pydantic import Field

from etl_platform.spec.base import SpecModel

MASK = "***"


class EnvRef(SpecModel):
    """The value of an environment variable of the process that runs the step."""

    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Name of the environment variable.")


class VaultRef(SpecModel):
    """An entry of the platform's encrypted vault."""

    secret: str = Field(min_length=1, description="Name of the vault entry.")


SecretRef = EnvRef | VaultRef


class MissingSecret(Exception):
    """A referenced secret cannot be had where the step runs (unset variable, locked or
    damaged vault, no such entry); the message says which and how to fix it."""


_revealed: set[str] = set()
_lock = threading.Lock()


def reveal(ref: SecretRef | str | None) -> str | None:
    """The plaintext of a reference, remembered so ``scrub`` can remove it from messages.

    A plain string is returned as it is (options that are not secret); call only inside
    a running step.
    """
    if ref is None or isinstance(ref, str):
        return ref
    if isinstance(ref, EnvRef):
        value = os.environ.get(ref.env)
        if value is None:
            raise MissingSecret(f"environment variable {ref.env} is not set in the process running this step")
    else:
        from etl_platform.secrets import vault

        try:
            value = vault.lookup(ref.secret)
        except vault.VaultError as err:
            # the vault's error is this message, and reveals nothing by design: nothing more to show
            raise MissingSecret(str(err)) from None
    if value:
        with _lock:
            _revealed.add(value)
    return value


def describe(ref: SecretRef | str | None) -> str:
    """How a reference is shown to people: where the value comes from, never the value."""
    if isinstance(ref, EnvRef):
        return f"${{{ref.env}}}"
    if isinstance(ref, VaultRef):
        return f"vault:{ref.secret}"
    return MASK if ref else ""


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s]*)@")
_KEY_VALUE = re.compile(
    r"(?i)\b(?P<key>password|passwd|pwd|secret|token|api[_-]?key)(?P<sep>\s*[=:]\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;&]+)"
)


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every revealed secret, URL password and ``password=...`` value masked."""
    with _lock:
        values = sorted({*_revealed, *(v for v in extra if v)}, key=len, reverse=True)
    for value in values:
        text = text.replace(value, MASK)
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _KEY_VALUE.sub(lambda m: f"{m['key']}{m['sep']}{MASK}", text)
