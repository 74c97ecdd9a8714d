"""Run one measurement in a fresh child process; read back its wall time, peak memory and result.

Peak memory is the child's maximum resident set size as the kernel reports it when the
child is reaped: ``os.wait4`` returns the resource usage of exactly that child (and of
any grandchildren it waited for), unlike ``getrusage(RUSAGE_CHILDREN)``, which is a
maximum over every child the driver ever had. On Linux a child started with vfork/exec
inherits the driver's own peak as a floor, so the driver imports nothing heavy (no
DuckDB, no Dagster) and its peak is recorded in last_run.json for comparison.
"""

import json
import os
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.workspace import ROOT

_RSS_BYTES = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
MIB = 2**20


class ChildFailed(RuntimeError):
    """A measured process exited with an error; the message ends with the tail of its log."""


@dataclass
class Measured:
    wall_seconds: float  # from starting the process to reaping it
    peak_mib: float  # the process's maximum resident set size
    result: dict = field(default_factory=dict)  # what a probe reported (empty for plain commands)


def own_peak_mib() -> float:
    """This process's maximum resident set size."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _RSS_BYTES / MIB


def run_command(argv: list[str], *, env: dict[str, str], log: Path) -> Measured:
    """Run ``argv`` from the repository root with output to ``log``; fail loudly on a non-zero exit."""
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    if proc.returncode != 0:
        raise ChildFailed(f"`{' '.join(argv)}` exited with {proc.returncode}; last lines of {log}:\n{_tail(log)}")
    return Measured(wall, usage.ru_maxrss * _RSS_BYTES / MIB)


def run_probe(kind: str, params: dict, *, env: dict[str, str], log: Path) -> Measured:
    """Run one probe of ``benchmarks.probes`` in a fresh interpreter and return what it measured."""
    out = log.with_suffix(".json")
    out.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "benchmarks.child", kind, str(out), json.dumps(params)]
    measured = run_command(argv, env=env, log=log)
    measured.result = json.loads(out.read_text())
    return measured


def _tail(log: Path, lines: int = 40) -> str:
    with log.open(errors="replace") as f:
        return "".join(deque(f, maxlen=lines))
