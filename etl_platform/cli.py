"""``etl-platform``: demo data, pipeline validation, saved cursors, connection discovery, the spec's JSON schema."""

import argparse
import json
import sys
from pathlib import Path

from etl_platform import settings
from etl_platform.settings import PROJECT_DEFS
from etl_platform.automation.file_retries import add_files_commands
from etl_platform.replay import add_rejected_commands

SCHEMA_PATH = Path(__file__).parent / "schema" / "pipeline.schema.json"
COMPONENT_TYPE = "etl_platform.components.Pipeline"


def pipeline_file_schema() -> dict:
    """JSON schema of a whole pipeline ``defs.yaml`` (type + attributes), for editors."""
    from etl_platform.spec import PipelineSpec

    attributes = PipelineSpec.model_json_schema(by_alias=True)
    defs = attributes.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "etl_platform pipeline (defs.yaml)",
        "type": "object",
        "properties": {
            "type": {"const": COMPONENT_TYPE, "description": "Always the Pipeline component type."},
            "attributes": attributes,
        },
        "required": ["type", "attributes"],
        "additionalProperties": False,
        "$defs": defs,
    }


def _schema(args: argparse.Namespace) -> int:
    text = json.dumps(pipeline_file_schema(), indent=2, sort_keys=True) + "\n"
    if args.write:
        SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
        SCHEMA_PATH.write_text(text)
        print(f"wrote {SCHEMA_PATH}")
    else:
        sys.stdout.write(text)
    return 0


def _demo_generate(args: argparse.Namespace) -> int:
    from etl_platform import demo

    landing = Path(args.landing) if args.landing else settings.landing_dir()
    if args.if_missing and any((landing / "campaigns").glob("*.csv")):
        print(f"demo data already in {landing}")
        return 0
    written = demo.generate(landing, campaign_rows=args.rows, campaign_files=args.files)
    print(f"wrote {len(written)} demo files under {landing}")
    return 0


def _demo_seed(args: argparse.Namespace) -> int:
    from etl_platform import demo_servers
    from etl_platform.secrets import scrub

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
        print("needs moto: install the dev extra (uv sync --extra dev), or point ETL_DEMO_S3_ENDPOINT at MinIO", file=sys.stderr)
        return 2
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    print(f"S3 server on http://127.0.0.1:{args.port} (in memory). In another shell:\n"
          f"  export ETL_DEMO_S3_ENDPOINT=http://127.0.0.1:{args.port} ETL_DEMO_S3_ACCESS_KEY_ID=demo ETL_DEMO_S3_SECRET_ACCESS_KEY=demo\n"
          "  etl-platform demo seed s3", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _master_password(confirm: bool = False, variable: str | None = None, prompt: str = "Master password: ") -> str:
    """From ETL_MASTER_PASSWORD / ETL_MASTER_PASSWORD_FILE (or ``variable``), else a prompt on the terminal."""
    import getpass
    import os

    from etl_platform import vault

    found = os.environ.get(variable) if variable else vault.password_from_environment()
    if found:
        return found
    password = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again: ") != password:
        raise vault.VaultError("the two passwords differ")
    return password


def _vault_command(run) -> int:
    from etl_platform.vault import VaultError

    try:
        message = run()
    except VaultError as err:
        print(f"vault: {err}", file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        print("vault: cancelled, nothing changed", file=sys.stderr)
        return 1
    if message:
        print(message)
    return 0


def _vault_init(args: argparse.Namespace) -> int:
    import os
    import secrets as random_source

    from etl_platform import vault

    def run():
        path = vault.vault_path()
        if args.if_missing and path.exists():
            return f"vault already at {path}"
        if args.generate_password_file:
            password_file = Path(args.generate_password_file)
            if not password_file.exists():
                password_file.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(random_source.token_urlsafe(32) + "\n")
            password = password_file.read_text().rstrip("\r\n")
        else:
            password = _master_password(confirm=True)
        vault.create(password, path)
        return f"created the vault {path}"

    return _vault_command(run)


def _vault_set(args: argparse.Namespace) -> int:
    import getpass

    from etl_platform import vault

    def run():
        password = _master_password()
        if sys.stdin.isatty():
            value = getpass.getpass(f"Value of {args.name}: ")
        else:
            value = sys.stdin.read()
            value = value[:-1] if value.endswith("\n") else value
        with vault.changing(password) as opened:
            replaced = args.name in opened.entries
            opened.set(args.name, value)
        return f"{'replaced' if replaced else 'stored'} {args.name}"

    return _vault_command(run)


def _vault_list(args: argparse.Namespace) -> int:
    from etl_platform import vault

    return _vault_command(lambda: "\n".join(sorted(vault.entry_names())) or "the vault is empty")


def _vault_delete(args: argparse.Namespace) -> int:
    from etl_platform import vault

    def run():
        with vault.changing(_master_password()) as opened:
            opened.delete(args.name)
        return f"deleted {args.name}"

    return _vault_command(run)


def _vault_rotate(args: argparse.Namespace) -> int:
    from etl_platform import vault

    def run():
        with vault.changing(_master_password()) as opened:
            opened.rotate()
            count = len(opened.entries)
        return f"new data key; {count} secret(s) re-encrypted"

    return _vault_command(run)


def _vault_change_password(args: argparse.Namespace) -> int:
    from etl_platform import vault

    def run():
        old = _master_password(prompt="Current master password: ")
        new = _master_password(confirm=True, variable="ETL_NEW_MASTER_PASSWORD", prompt="New master password: ")
        vault.change_password(old, new)
        return "master password changed; set the new one wherever ETL_MASTER_PASSWORD(_FILE) is configured"

    return _vault_command(run)


def _validate(args: argparse.Namespace) -> int:
    """Load the code location the way Dagster does, with each file pipeline's mapping compared
    with its latest files too; print the first error with its file and line."""
    import os

    import dagster as dg

    os.environ["ETL_VALIDATE_FILES"] = "1"

    from etl_platform.definitions import defs

    try:
        loaded = defs()
        graph = loaded.resolve_asset_graph()
    except dg.DagsterError as err:
        print(str(err), file=sys.stderr)
        return 1
    print(f"ok: {len(graph.get_all_asset_keys())} assets, {len(list(loaded.jobs or []))} jobs")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etl-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="demo data").add_subparsers(dest="demo_command", required=True)
    gen = demo.add_parser("generate", help="write the demo pipelines' files into the landing folder")
    gen.add_argument("--rows", type=int, default=30_000, help="campaign rows in all (default 30,000)")
    gen.add_argument("--files", type=int, default=3, help="campaign files to split them over")
    gen.add_argument("--landing", help="landing folder (default: ETL_LANDING_DIR or .etl_home/landing)")
    gen.add_argument("--if-missing", action="store_true", help="do nothing when demo files are already there")
    gen.set_defaults(func=_demo_generate)

    seed = demo.add_parser("seed", help="fill the demo servers (PostgreSQL, MariaDB, S3 of defs/connections) with the demo tables and files")
    seed.add_argument("servers", nargs="*", metavar="SERVER", help="postgres, mariadb and/or s3 (default: all three)")
    seed.add_argument("--more", action="store_true", help="add new, updated and late rows, as happens between two runs")
    seed.add_argument("--if-reachable", action="store_true", help="skip a server that cannot be reached instead of failing")
    seed.set_defaults(func=_demo_seed)

    s3 = demo.add_parser("s3-server", help="run an in-memory S3-compatible server for the S3 demo (needs the dev extra)")
    s3.add_argument("--port", type=int, default=9000)
    s3.set_defaults(func=_demo_s3_server)

    vault = sub.add_parser("vault", help="the encrypted vault of connection secrets").add_subparsers(dest="vault_command", required=True)
    init = vault.add_parser("init", help="create the vault (ETL_VAULT_PATH, default $ETL_HOME/vault.json)")
    init.add_argument("--generate-password-file", metavar="PATH",
                      help="make a random master password, store it in PATH (mode 0600) and use it; for local set-ups")
    init.add_argument("--if-missing", action="store_true", help="do nothing when the vault exists")
    init.set_defaults(func=_vault_init)
    put = vault.add_parser("set", help="store a secret; the value is read from stdin or a prompt, never from the command line")
    put.add_argument("name")
    put.set_defaults(func=_vault_set)
    vault.add_parser("list", help="names of the stored secrets (never their values)").set_defaults(func=_vault_list)
    delete = vault.add_parser("delete", help="remove a secret")
    delete.add_argument("name")
    delete.set_defaults(func=_vault_delete)
    vault.add_parser("rotate", help="new data key; every secret re-encrypted with it").set_defaults(func=_vault_rotate)
    vault.add_parser("change-password", help="new master password (from a prompt, or ETL_NEW_MASTER_PASSWORD)").set_defaults(
        func=_vault_change_password
    )

    pipelines = sub.add_parser("pipelines", help="pipelines").add_subparsers(dest="pipelines_command", required=True)
    pipelines.add_parser("validate", help="load every pipeline and report spec errors").set_defaults(func=_validate)

    state = sub.add_parser("state", help="saved incremental cursors").add_subparsers(dest="state_command", required=True)
    listing = state.add_parser("list", help="every pipeline's saved cursor, wherever its destination keeps it")
    listing.add_argument("--defs", default=str(PROJECT_DEFS), help="defs folder of the pipelines (default: this project's)")
    listing.set_defaults(func=_state_list)
    reset = state.add_parser(
        "reset",
        help="make a pipeline's next load a full refresh (it replaces every row, reading all its files and rows), "
        "or with --to / --to-run a rewind (it replaces the rows from that cursor value on); says what will happen first",
    )
    reset.add_argument("pipeline")
    reset.add_argument("--defs", default=str(PROJECT_DEFS), help="defs folder of the pipelines (default: this project's)")
    target = reset.add_mutually_exclusive_group()
    target.add_argument("--to", default=None, help="cursor value to rewind to (inclusive: rows at this value are read again)")
    target.add_argument("--to-run", default=None, metavar="RUN_ID", help="rewind to where this run's load started (see state history)")
    reset.add_argument("--yes", action="store_true", help="do it without asking (needed when not on a terminal)")
    reset.set_defaults(func=_state_reset)
    history = state.add_parser("history", help="a pipeline's committed loads, resets and rewinds: run, cursor before and after, rows")
    history.add_argument("pipeline")
    history.add_argument("--defs", default=str(PROJECT_DEFS), help="defs folder of the pipelines (default: this project's)")
    history.add_argument("--limit", type=int, default=50, help="entries to show, newest first (default 50)")
    history.set_defaults(func=_state_history)

    discover = sub.add_parser("discover", help="list a connection's tables and columns (cached; --refresh to re-read)")
    discover.add_argument("connection")
    discover.add_argument("--refresh", action="store_true")
    discover.set_defaults(func=_discover)

    add_rejected_commands(sub, str(PROJECT_DEFS))
    add_files_commands(sub, str(PROJECT_DEFS))

    mlflow = sub.add_parser("mlflow", help="MLflow, where models are tracked").add_subparsers(dest="mlflow_command", required=True)
    mlflow_ui = mlflow.add_parser("ui", help="serve the MLflow UI on the embedded store ($ETL_HOME/mlflow) until Ctrl-C")
    mlflow_ui.add_argument("--port", type=int, default=5000)
    mlflow_ui.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    mlflow_ui.set_defaults(func=_mlflow_ui)

    schema = sub.add_parser("schema", help="print (or --write) the JSON schema of pipeline defs.yaml files")
    schema.add_argument("--write", action="store_true", help="write it to etl_platform/schema/pipeline.schema.json")
    schema.set_defaults(func=_schema)
    return parser


def _mlflow_ui(args: argparse.Namespace) -> int:
    import os

    from etl_platform.ml.ui import NotEmbedded, ui_command

    try:
        command = ui_command(args.port, args.host)
    except NotEmbedded as err:
        print(err, file=sys.stderr)
        return 2
    print(f"MLflow UI on http://{args.host}:{args.port} (store {command[command.index('--backend-store-uri') + 1]})", flush=True)
    os.execv(command[0], command)  # becomes the server: Ctrl-C and signals reach it directly


def _warehouse():
    import duckdb

    path = settings.warehouse_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path))


def _pipeline_specs(defs_root: Path) -> dict[str, "PipelineSpec"]:  # noqa: F821
    """Every pipeline of a defs folder by name, read from its defs.yaml."""
    import yaml

    from etl_platform.spec import PipelineSpec

    specs = {}
    for path in sorted((defs_root / "pipelines").glob("*/defs.yaml")):
        attributes = (yaml.safe_load(path.read_text()) or {}).get("attributes") or {}
        specs[path.parent.name] = PipelineSpec.model_validate(attributes)
    return specs


def _destination_of(pipeline: str, spec, defs_root: Path):
    """Where a pipeline's cursor lives: its destination (the warehouse unless it says otherwise)."""
    from etl_platform.connections import declared_options
    from etl_platform.connectors.registry import build
    from etl_platform.destinations import WAREHOUSE, WarehouseTable, destination_for
    from etl_platform.spec_checks import table_names
    from etl_platform.steps.load import TableRef

    names = table_names(spec, pipeline)
    dest = spec.destination
    if dest.connection == WAREHOUSE:
        return WarehouseTable(TableRef(names.schema, names.table))
    kind, options = declared_options(defs_root)[dest.connection]
    return destination_for(
        kind, build(dest.connection, kind, options), names.schema, names.table, file_format=dest.format, partition_by=dest.partition_by
    )


def _state_list(args: argparse.Namespace) -> int:
    from etl_platform.destinations import WAREHOUSE
    from etl_platform.steps import load

    with _warehouse() as con:
        rows = [(p, c, f"{updated}\t{run_id}") for p, c, updated, run_id in load.states(con)]
        defs_root = Path(args.defs)
        for pipeline, spec in _pipeline_specs(defs_root).items():
            if spec.destination.connection != WAREHOUSE and spec.sync.mode == "incremental":
                destination = _destination_of(pipeline, spec, defs_root)
                rows.append((pipeline, _scrubbed(lambda: destination.saved_cursor(con, pipeline)), f"in {destination}"))
    if not rows:
        print("no saved cursors")
    for pipeline, cursor, where in rows:
        print(f"{pipeline}\t{cursor}\t{where}")
    return 0


def _scrubbed(read):
    from etl_platform.secrets import scrub

    try:
        return read()
    except Exception as err:  # noqa: BLE001 - one unreachable destination should not hide the others
        return scrub(f"(unreadable: {err})")


def _state_destination(pipeline: str, defs_root: Path):
    """The pipeline's spec (None for one since removed) and where its state lives."""
    specs = _pipeline_specs(defs_root)
    if pipeline in specs:
        return specs[pipeline], _destination_of(pipeline, specs[pipeline], defs_root)
    # a pipeline since removed: its state can still be cleared from the warehouse
    from etl_platform.destinations import WarehouseTable
    from etl_platform.steps.load import TableRef

    return None, WarehouseTable(TableRef(pipeline, pipeline))


def _state_reset(args: argparse.Namespace) -> int:
    """Say what the next load will do, ask, then record it as the pipeline's pending state."""
    from etl_platform.intake import fingerprints
    from etl_platform.secrets import scrub

    spec, destination = _state_destination(args.pipeline, Path(args.defs))
    with _warehouse() as con:
        try:
            to = args.to
            if args.to_run is not None:
                started = [e for e in destination.history(con, args.pipeline, 10_000) if e.run_id == args.to_run and e.action == "load"]
                if not started:
                    print(f"{args.pipeline}: no load by run {args.to_run!r} in the history (etl-platform state history {args.pipeline})",
                          file=sys.stderr)
                    return 2
                to = started[-1].cursor_before  # None: that run read from the start, so a full refresh
            rows, _ = destination.summary(con)
            loaded_files = fingerprints.count(con, args.pipeline)
            print(_what_reset_does(args.pipeline, spec, destination, to, rows, loaded_files))
            if not args.yes and not _confirmed():
                print("nothing changed", file=sys.stderr)
                return 1
            before, after = destination.reset_state(con, args.pipeline, to)
            # Files already loaded are skipped by their content: forgetting them lets the next load
            # read them again, and its full refresh or rewind replaces what they loaded.
            forgotten = fingerprints.forget(con, args.pipeline)
        except Exception as err:  # noqa: BLE001 - a destination's error, shown scrubbed
            print(scrub(f"{args.pipeline}: reset failed, nothing changed: {err}"), file=sys.stderr)
            return 1
    print(f"{args.pipeline}: cursor {before!r} -> {after!r} in {destination}; {forgotten} loaded file(s) forgotten; "
          f"next load: {'full refresh' if after is None else f'rewind to {after!r}'}")
    return 0


def _what_reset_does(pipeline: str, spec, destination, to: str | None, rows: int, loaded_files: int) -> str:
    files = f", and reads again the {loaded_files:,} file(s) it loaded" if loaded_files else ""
    if to is None:
        return (f"{pipeline}: the next load is a full refresh: it replaces every row of {destination} ({rows:,} row(s) now) "
                f"with what it reads from the whole source{files}.")
    cursor = spec.sync.cursor if spec is not None else "the cursor"
    return (f"{pipeline}: the next load rewinds to {cursor} = {to!r}: it replaces the rows of {destination} with {cursor} >= {to!r} "
            f"by the source's rows from that value on ({rows:,} row(s) in the table now){files}.")


def _confirmed() -> bool:
    if not sys.stdin.isatty():
        print("not on a terminal: add --yes to confirm", file=sys.stderr)
        return False
    return input("Proceed? [y/N] ").strip().lower() in ("y", "yes")


def _state_history(args: argparse.Namespace) -> int:
    from etl_platform.secrets import scrub

    _, destination = _state_destination(args.pipeline, Path(args.defs))
    with _warehouse() as con:
        try:
            entries = destination.history(con, args.pipeline, args.limit)
        except Exception as err:  # noqa: BLE001 - a destination's error, shown scrubbed
            print(scrub(f"{args.pipeline}: {err}"), file=sys.stderr)
            return 1
    if not entries:
        print(f"{args.pipeline}: no history in {destination}")
        return 0
    print(f"{args.pipeline}: history in {destination}, newest first")
    print("at\taction\trun\tcursor before\tcursor after\trows written\trows replaced")
    for e in entries:
        print(f"{e.at}\t{e.action}\t{e.run_id or '-'}\t{e.cursor_before if e.cursor_before is not None else '-'}\t"
              f"{e.cursor_after if e.cursor_after is not None else '-'}\t{'' if e.rows_written is None else e.rows_written}\t"
              f"{'' if e.rows_deleted is None else e.rows_deleted}")
    return 0


def _discover(args: argparse.Namespace) -> int:
    """Tables and columns of a declared database connection, from a cache under ETL_HOME."""
    from etl_platform.connections import CONNECTIONS_FILE, declared_options
    from etl_platform.connectors.registry import build

    defs_root = PROJECT_DEFS
    declared = declared_options(defs_root)
    if args.connection not in declared:
        print(f"unknown connection {args.connection!r} in {defs_root / CONNECTIONS_FILE}; declared: {', '.join(sorted(declared)) or 'none'}", file=sys.stderr)
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
            from etl_platform.secrets import scrub

            print(scrub(str(err)), file=sys.stderr)
            return 1
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(found, indent=2))
    for table, columns in json.loads(cache.read_text()).items():
        print(table)
        for name, dtype in columns:
            print(f"  {name}  {dtype}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
