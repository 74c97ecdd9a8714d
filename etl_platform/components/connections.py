"""The Connections component type: every connection of the project, one resource each."""

import re
from typing import Any

import dagster as dg
from pydantic import Field, ValidationError, field_validator

from etl_platform.connectors.connections import as_resource, resolve_templates, resource_key, split_entry
from etl_platform.connectors.landing import LANDING
from etl_platform.connectors.registry import Connector, UnknownKind, build
from etl_platform.destinations.base import WAREHOUSE
from etl_platform.secrets import vault
from etl_platform.spec.base import IDENTIFIER, SpecModel
from etl_platform.spec.errors import SpecLocator

RESERVED = (LANDING, WAREHOUSE)


class ConnectionsSpec(SpecModel):
    connections: dict[str, dict[str, Any]] = Field(
        description="Connections by name. Each has a `kind` (local, s3, postgres, mysql, sqlite, duckdb, rest) "
        "and that kind's options; credentials are written as {env: VAR} or {secret: name}, never as values."
    )

    @field_validator("connections")
    @classmethod
    def _names_are_identifiers(cls, connections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, entry in connections.items():
            if not re.match(IDENTIFIER, name):
                raise ValueError(f"connection name {name!r} must be a plain identifier (letters, digits, _)")
            if name in RESERVED:
                raise ValueError(
                    f"connection name {name!r} is taken by the built-in {name} connection; choose another name"
                )
            if "kind" not in entry:
                raise ValueError(f"connection {name!r} needs a kind")
        return connections


class Connections(dg.Component):
    """Every declared connection, validated by its kind, bound as resource ``connection_<name>``."""

    def __init__(self, connectors: list[Connector]):
        self.connectors = connectors

    @classmethod
    def get_model_cls(cls) -> type[ConnectionsSpec]:
        return ConnectionsSpec

    @classmethod
    def load(cls, attributes: ConnectionsSpec | None, context: dg.ComponentLoadContext) -> "Connections":
        if attributes is None:
            return cls([])
        locate = SpecLocator(context.resolution_context.source_position_tree, fallback=str(context.path))
        connectors, secrets = [], {}
        for name, entry in attributes.connections.items():
            kind, options = split_entry(entry)
            options = resolve_templates(options, context.resolution_context.at_path("connections").at_path(name))
            try:
                connectors.append(build(name, kind, options))
            except UnknownKind as err:
                # the message is the cause's own, now with its line: nothing more to show
                raise locate.error(["connections", name, "kind"], str(err)) from None
            except ValidationError as err:
                first = err.errors()[0]
                field = [str(p) for p in first["loc"]]
                # pydantic's error quotes the input, which may be a password written as a value: dropped
                raise locate.error(["connections", name, *field], first["msg"]) from None
            secrets.update({secret: ["connections", name, *at] for secret, at in vault_references(options)})
        _open_vault(secrets, locate)
        return cls(connectors)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return dg.Definitions(resources={resource_key(c.name): as_resource(c) for c in self.connectors})


def vault_references(options: Any, at: tuple = ()) -> list[tuple[str, list]]:
    """Every ``{secret: name}`` in a connection's options, with the option's path."""
    if isinstance(options, dict):
        if set(options) == {"secret"} and isinstance(options["secret"], str):
            return [(options["secret"], list(at))]
        return [ref for key, value in options.items() for ref in vault_references(value, (*at, key))]
    if isinstance(options, list):
        return [ref for i, value in enumerate(options) for ref in vault_references(value, (*at, i))]
    return []


def _open_vault(secrets: dict[str, list], locate: SpecLocator) -> None:
    """Unlock the vault as the code location starts, and name any referenced entry it lacks."""
    try:
        missing = vault.unlock_at_start(set(secrets))
    except vault.VaultError as err:
        # the vault's error is this message, and reveals nothing by design: nothing more to show
        raise locate.error(["connections"], str(err)) from None
    if missing:
        name = sorted(missing)[0]
        raise locate.error(
            secrets[name],
            f"the vault {vault.vault_path()} has no entry {name!r}; add it with `etl-platform vault set {name}`",
        )
