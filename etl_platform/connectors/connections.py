"""Connections declared in ``defs/connections/defs.yaml``: one Dagster resource each.

    type: etl_platform.components.Connections
    attributes:
      connections:
        shop_db:
          kind: postgres
          host: 127.0.0.1
          database: shop
          user: etl
          password: {env: SHOP_DB_PASSWORD}

Each entry is validated by its kind's options model when the code location loads; its
credentials stay references until a step runs (see ``etl_platform.secrets.references``). Other
settings may come from the environment with Dagster's templates, e.g.
``host: "{{ env('SHOP_DB_HOST', '127.0.0.1') }}"``.
"""

import json
from functools import cache
from pathlib import Path

import dagster as dg
import yaml
from pydantic import Field

from etl_platform.connectors.landing import LANDING, landing_connector
from etl_platform.connectors.registry import Connector, build

CONNECTIONS_FILE = Path("connections") / "defs.yaml"


def resource_key(name: str) -> str:
    return f"connection_{name}"


class ConnectionResource(dg.ConfigurableResource):
    """A declared connection, as Dagster shows and binds it: kind and options with secrets
    as references only. ``connector()`` gives the connector to use inside a step."""

    name: str = Field(description="The connection's name in connections/defs.yaml.")
    kind: str = Field(description="The connection kind.")
    options: str = Field(description="The connection's options as JSON; secrets appear as references.")

    def connector(self) -> Connector:
        return build(self.name, self.kind, json.loads(self.options))


def as_resource(connector: Connector) -> ConnectionResource:
    return ConnectionResource(name=connector.name, kind=connector.kind, options=connector.options_json())


def split_entry(entry: dict) -> tuple[str, dict]:
    """A declared connection's kind, and its options (everything but kind and description)."""
    return str(entry.get("kind")), {k: v for k, v in entry.items() if k not in ("kind", "description")}


@cache
def _declared(path: Path, mtime_ns: int) -> dict[str, tuple[str, dict]]:
    raw = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    entries = ((raw.get("attributes") or {}).get("connections")) or {}
    return {name: split_entry(entry) for name, entry in entries.items() if isinstance(entry, dict)}


def resolve_templates(options: dict, resolution_context=None) -> dict:
    """Options with ``{{ env.VAR }}`` / ``{{ env('VAR', 'default') }}`` templates filled in, as
    Dagster fills them in any component's YAML. For settings that differ per environment
    (hosts, ports, buckets); a secret stays a {env:} or {secret:} reference, which keeps it out
    of the definitions (a template would put its value there, and is refused as plaintext)."""
    from dagster.components.resolved.context import ResolutionContext

    return (resolution_context or ResolutionContext.default()).resolve_value(options)


def declared_options(defs_root: Path) -> dict[str, tuple[str, dict]]:
    """Name -> (kind, options) of every declared connection, from the file, templates filled in."""
    path = defs_root / CONNECTIONS_FILE
    if not path.exists():
        return {}
    return {
        name: (kind, resolve_templates(options))
        for name, (kind, options) in _declared(path, path.stat().st_mtime_ns).items()
    }


def declared_kinds(defs_root: Path) -> dict[str, str]:
    """Name -> kind of every connection a pipeline may use: the declared ones and 'landing'.

    Read straight from the file (the Connections component validates it in full), so a
    pipeline can be checked whatever order Dagster loads the defs folder in.
    """
    kinds = {LANDING: landing_connector().kind}
    path = defs_root / CONNECTIONS_FILE
    if path.exists():
        kinds.update({name: kind for name, (kind, _) in _declared(path, path.stat().st_mtime_ns).items()})
    return kinds
