"""`etl-platform demo`: the demo pipelines' files, and the demo servers filled with their tables."""

import argparse
import sys
from pathlib import Path

from etl_platform import settings


def add_commands(sub) -> None:
    """The ``demo`` command group."""
    demo = sub.add_parser("demo", help="demo data").add_subparsers(dest="demo_command", required=True)
    gen = demo.add_parser("generate", help="write the demo pipelines' files into the landing folder")
    gen.add_argument("--rows", type=int, default=30_000, help="campaign rows in all (default 30,000)")
    gen.add_argument("--files", type=int, default=3, help="campaign files to split them over")
    gen.add_argument("--landing", help="landing folder (default: ETL_LANDING_DIR or .etl_home/landing)")
    gen.add_argument("--if-missing", action="store_true", help="do nothing when demo files are already there")
    gen.set_defaults(func=_demo_generate)

    seed = demo.add_parser(
        "seed",
        help="fill the demo servers (PostgreSQL, MariaDB, S3 of defs/connections) with the demo tables and files",
    )
    seed.add_argument("servers", nargs="*", metavar="SERVER", help="postgres, mariadb and/or s3 (default: all three)")
    seed.add_argument("--more", action="store_true", help="add new, updated and late rows, as happens between two runs")
    seed.add_argument(
        "--if-reachable", action="store_true", help="skip a server that cannot be reached instead of failing"
    )
    seed.set_defaults(func=_demo_seed)

    s3 = demo.add_parser(
        "s3-server", help="run an in-memory S3-compatible server for the S3 demo (needs the dev extra)"
    )
    s3.add_argument("--port", type=int, default=9000)
    s3.set_defaults(func=_demo_s3_server)


def _demo_generate(args: argparse.Namespace) -> int:
    from etl_platform.demo import data as demo

    landing = Path(args.landing) if args.landing else settings.landing_dir()
    if args.if_missing and any((landing / "campaigns").glob("*.csv")):
        print(f"demo data already in {landing}")
        return 0
    written = demo.generate(landing, campaign_rows=args.rows, campaign_files=args.files)
    print(f"wrote {len(written)} demo files under {landing}")
    return 0


def _demo_seed(args: argparse.Namespace) -> int:
    from etl_platform.demo import servers as demo_servers
    from etl_platform.secrets.references import scrub

    unknown = sorted(set(args.servers) - set(demo_servers.SEEDERS))
    if unknown:
        print(f"unknown server {', '.join(unknown)}; choose from {', '.join(demo_servers.SEEDERS)}", file=sys.stderr)
        return 2
    try:
        for _, _, what in demo_servers.seed(args.servers or list(demo_servers.SEEDERS), args.more, args.if_reachable):
            print(what)
    except Exception as err:  # noqa: BLE001 - a server's error, shown scrubbed
        print(scrub(f"seeding failed: {err}"), file=sys.stderr)
        return 1
    return 0


def _demo_s3_server(args: argparse.Namespace) -> int:
    """moto's S3 server on loopback, until Ctrl-C; it keeps objects in memory only."""
    import threading

    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        print(
            "needs moto: install the dev extra (uv sync --extra dev), or point ETL_DEMO_S3_ENDPOINT at MinIO",
            file=sys.stderr,
        )
        return 2
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    print(
        f"S3 server on http://127.0.0.1:{args.port} (in memory). In another shell:\n"
        f"  export ETL_DEMO_S3_ENDPOINT=http://127.0.0.1:{args.port} ETL_DEMO_S3_ACCESS_KEY_ID=demo "
        "ETL_DEMO_S3_SECRET_ACCESS_KEY=demo\n"
        "  etl-platform demo seed s3",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
