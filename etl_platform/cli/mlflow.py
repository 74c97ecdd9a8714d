"""`etl-platform mlflow`: the MLflow UI on the embedded store."""

import argparse
import sys


def add_commands(sub) -> None:
    """The ``mlflow`` command group."""
    mlflow = sub.add_parser("mlflow", help="MLflow, where models are tracked").add_subparsers(
        dest="mlflow_command", required=True
    )
    mlflow_ui = mlflow.add_parser(
        "ui", help="serve the MLflow UI on the embedded store ($ETL_HOME/mlflow) until Ctrl-C"
    )
    mlflow_ui.add_argument("--port", type=int, default=5000)
    mlflow_ui.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    mlflow_ui.set_defaults(func=_mlflow_ui)


def _mlflow_ui(args: argparse.Namespace) -> int:
    import os

    from etl_platform.ml.ui import NotEmbedded, ui_command

    try:
        command = ui_command(args.port, args.host)
    except NotEmbedded as err:
        print(err, file=sys.stderr)
        return 2
    print(
        f"MLflow UI on http://{args.host}:{args.port} (store {command[command.index('--backend-store-uri') + 1]})",
        flush=True,
    )
    os.execv(command[0], command)  # becomes the server: Ctrl-C and signals reach it directly
