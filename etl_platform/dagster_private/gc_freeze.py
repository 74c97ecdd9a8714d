"""The objects a serving process built while loading the location, frozen for the collector.

Works around a cost of Python's collector, not of a Dagster API: loading creates over a
million objects at 500 pipelines, nearly all of which live as long as the process (parsed
YAML with its source positions, specs, op and asset definitions, jobs). Each automatic
collection of the older generations would walk them all again: about a tenth of the load
time while it runs, and afterwards a pause of about 0.75 s at every full collection, in every
process that serves the location (code server, webserver, daemon, run workers). Frozen
(``gc.freeze``), later collections skip them. The price: cyclic garbage the load left behind
(about 14 MB at 500 pipelines, a fraction of a MB for the demo) is never reclaimed, which is
why only serving processes freeze: the CLI and tests load the location and go on (or load it
many times), and their collector is only paused while a load runs. Which process serves is
read from its command line, as Dagster 1.13.27 starts them (``dagster api grpc``,
``dagster code-server``, ``dagster-webserver``, ``dagster-daemon``, ``dagster api
execute_run``/``execute_step``). Off with ``ETL_DAGSTER_SPEEDUPS=0``.
"""

import gc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from etl_platform.dagster_private import speedups_enabled

_SERVING_COMMANDS = ("dagster-webserver", "dagster-daemon", "dagster-celery")
_SERVING_SUBCOMMANDS = (
    ("api", "grpc"),
    ("code-server", "start"),
    ("api", "execute_run"),
    ("api", "execute_step"),
    ("api", "resume_run"),
)


def serving_process(argv: list[str] | None = None) -> bool:
    """Whether this process serves the code location (and keeps what it loaded until it exits)."""
    argv = sys.argv if argv is None else argv
    program = os.path.basename(argv[0]) if argv else ""
    if program in _SERVING_COMMANDS or any(program == f"{c}.exe" for c in _SERVING_COMMANDS):
        return True
    words = [os.path.basename(a) for a in argv[:3]]
    return any(tuple(words[i : i + 2]) == sub for sub in _SERVING_SUBCOMMANDS for i in range(len(words) - 1))


@contextmanager
def garbage_collector_paused() -> Iterator[None]:
    """The collector paused while the location loads; in a serving process, what the load
    built frozen when it ends."""
    if not speedups_enabled():
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if serving_process():
            gc.freeze()
        if enabled:
            gc.enable()
