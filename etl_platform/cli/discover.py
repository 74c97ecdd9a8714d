"""`etl-platform discover`: the tables and columns of a declared database connection."""

import argparse
import json
import sys

from etl_platform import settings
from etl_platform.settings import PROJECT_DEFS


def add_commands(sub) -> None:
    """The ``discover`` command."""
    discover = sub.add_parser("discover", help="list a connection's tables and columns (cached; --refresh to re-read)")
    discover.add_argument("connection")
    discover.add_argument("--refresh", action="store_true")
    discover.set_defaults(func=_discover)


def _discover(args: argparse.Namespace) -> int:
    """Tables and columns of a declared database connection, from a cache under ETL_HOME."""
    from etl_platform.connectors.connections import CONNECTIONS_FILE, declared_options
    from etl_platform.connectors.registry import build

    defs_root = PROJECT_DEFS
    declared = declared_options(defs_root)
    if args.connection not in declared:
        print(
            f"unknown connection {args.connection!r} in {defs_root / CONNECTIONS_FILE}; declared: "
            f"{', '.join(sorted(declared)) or 'none'}",
            file=sys.stderr,
        )
        return 2
    cache = settings.etl_home() / "discover" / f"{args.connection}.json"
    if args.refresh or not cache.exists():
        kind, options = declared[args.connection]
        connector = build(args.connection, kind, options)
        if not hasattr(connector, "discover"):
            print(f"connection {args.connection!r} ({kind}) has no tables to discover", file=sys.stderr)
            return 2
        try:
            found = connector.discover()
        except Exception as err:  # noqa: BLE001 - shown to the user, scrubbed
            from etl_platform.secrets.references import scrub

            print(scrub(str(err)), file=sys.stderr)
            return 1
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(found, indent=2))
    for table, columns in json.loads(cache.read_text()).items():
        print(table)
        for name, dtype in columns:
            print(f"  {name}  {dtype}")
    return 0
