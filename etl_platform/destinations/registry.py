"""Destination kinds by the kind of connection they load into.

Adding a kind is one module and one line in ``KIND_MODULES``: the module defines a class that
implements ``Destination`` and decorates it with ``@register``, which refuses a class missing any
part of the protocol when the module is imported. A kind's module is imported only when a
pipeline loads into it, so a project that loads nowhere else never imports psycopg or boto3.
"""

import importlib

from etl_platform.destinations.base import WAREHOUSE, Destination

# connection kind -> module that registers its destination
KIND_MODULES: dict[str, str] = {
    WAREHOUSE: "etl_platform.destinations.warehouse.destination",
    "postgres": "etl_platform.destinations.postgres.destination",
    "local": "etl_platform.destinations.files.destination",
    "s3": "etl_platform.destinations.files.destination",
}
DESTINATION_KINDS = tuple(
    kind for kind in KIND_MODULES if kind != WAREHOUSE
)  # connection kinds a pipeline may load into

_KINDS: dict[str, type[Destination]] = {}


def _protocol_members() -> tuple[str, ...]:
    members = {name for name in vars(Destination) if not name.startswith("_")}
    members |= set(Destination.__annotations__)
    return tuple(sorted(members | {"__str__"}))


def register(cls: type) -> type:
    """Register ``cls`` as the destination of each of its ``connection_kinds``."""
    missing = [name for name in _protocol_members() if not hasattr(cls, name)]
    if missing:
        raise TypeError(f"{cls.__qualname__} is not a Destination: it lacks {', '.join(missing)}")
    for kind in cls.connection_kinds:
        _KINDS[kind] = cls
    return cls


def destination_class(connection_kind: str | None) -> type[Destination]:
    """The destination class of a connection kind (None or 'warehouse': the warehouse)."""
    kind = connection_kind or WAREHOUSE
    if kind not in _KINDS:
        module = KIND_MODULES.get(kind)
        if module is None:
            raise ValueError(
                f"a pipeline cannot load into a {kind} connection; it loads into the warehouse or a "
                f"{', '.join(DESTINATION_KINDS)} connection"
            )
        importlib.import_module(module)
    return _KINDS[kind]


def destination_for(
    connection_kind: str, connector, schema: str, table: str, *, file_format: str | None, partition_by
) -> Destination:
    """The destination a pipeline declares; ``connector`` is None for the warehouse."""
    kind = WAREHOUSE if connector is None else connection_kind
    return destination_class(kind).declared(
        connector, schema, table, file_format=file_format, partition_by=tuple(partition_by)
    )
