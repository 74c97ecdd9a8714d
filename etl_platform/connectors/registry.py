"""Connection kinds by name. Adding a kind is one module and one line in ``KIND_MODULES``.

A kind's module defines a ``Connector`` subclass with its typed ``Options`` and decorates
it with ``@register``. Modules are imported only when a connection of their kind is
declared, so the drivers a project does not use (boto3, ADBC, PyMySQL, ...) are never
imported while the code location loads.
"""

import importlib
import json
from typing import ClassVar, Literal

from etl_platform.spec.base import SpecModel

# kind -> module that registers it
KIND_MODULES: dict[str, str] = {
    "local": "etl_platform.connectors.landing",
    "s3": "etl_platform.connectors.s3",
    "postgres": "etl_platform.connectors.postgres",
    "mysql": "etl_platform.connectors.mysql",
    "sqlite": "etl_platform.connectors.sqlite",
    "duckdb": "etl_platform.connectors.duckdb_file",
    "rest": "etl_platform.connectors.rest.connector",
}

Reads = Literal["files", "sql", "rest"]  # the keys of READ_METHODS


class Connector:
    """One declared connection. ``options`` holds secret references, never secret values."""

    kind: ClassVar[str]
    Options: ClassVar[type[SpecModel]]
    reads: ClassVar[Reads]
    # the kinds (icons) the Dagster UI shows on a source asset read through it; default: its kind
    asset_kinds: ClassVar[frozenset[str] | None] = None

    def __init__(self, name: str, options: SpecModel):
        self.name = name
        self.options = options

    def describe(self) -> str:
        """One line for people (UI, logs): where it points, with credentials masked."""
        return f"{self.kind} connection {self.name}"

    def options_json(self) -> str:
        return json.dumps(self.options.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=True)


_KINDS: dict[str, type[Connector]] = {}


# what a connector of each read shape must offer to steps.extract
READ_METHODS: dict[str, tuple[str, ...]] = {"files": ("fetch",), "sql": ("select", "stream"), "rest": ("fetch",)}
# the source fields a pipeline gives for each read shape, as an error names them
READ_FIELDS: dict[str, str] = {"files": "files", "sql": "table or query", "rest": "endpoint"}


def register(cls: type[Connector]) -> type[Connector]:
    """Register ``cls`` as its ``kind``; refuses, when its module is imported, a class that is not a
    ``Connector`` with a ``kind``, typed ``Options`` and the methods its read shape needs."""
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise TypeError(f"{cls!r} is not a Connector subclass")
    problems = [f"no {name}" for name in ("kind", "Options", "reads") if not hasattr(cls, name)]
    if not problems:
        if not (isinstance(cls.Options, type) and issubclass(cls.Options, SpecModel)):
            problems.append("Options is not a SpecModel")
        if cls.reads not in READ_METHODS:
            problems.append(f"reads {cls.reads!r}, not one of {', '.join(READ_METHODS)}")
        else:
            problems += [f"no {m}()" for m in READ_METHODS[cls.reads] if not callable(getattr(cls, m, None))]
    if problems:
        raise TypeError(f"{cls.__qualname__} cannot be registered as a connection kind: {'; '.join(problems)}")
    _KINDS[cls.kind] = cls
    return cls


class UnknownKind(ValueError):
    pass


class ConnectorError(Exception):
    """Reading or writing through a connection failed. The message names the connection and
    what failed, and has been scrubbed of credentials."""


def connector_class(kind: str) -> type[Connector]:
    if kind not in _KINDS:
        module = KIND_MODULES.get(kind)
        if module is None:
            raise UnknownKind(f"unknown connection kind {kind!r}; known kinds: {', '.join(sorted(KIND_MODULES))}")
        importlib.import_module(module)
    return _KINDS[kind]


def build(name: str, kind: str, options: dict) -> Connector:
    """A connector from declared options (raises pydantic's ValidationError on bad options)."""
    cls = connector_class(kind)
    return cls(name, cls.Options.model_validate(options))
