"""Start the production processes as a user would, each in a process group of its own, logging to a file."""

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from etl_platform_tests.conftest import BIN, PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = 10) -> None:
        """SIGTERM to the whole group (dagster-celery and dagster-webserver start children), then SIGKILL."""
        if not self.alive():
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
        except ProcessLookupError:
            pass


def _signal_group(process: Process, signum: int) -> None:
    try:
        os.killpg(process.popen.pid, signum)
    except ProcessLookupError:
        pass


class Processes:
    """The processes of one deployment; stops them all, newest first."""

    def __init__(self, logs: Path, env: dict[str, str]):
        self.logs = logs
        self.env = env
        self.started: list[Process] = []

    def start(self, name: str, *command: str, extra_env: dict[str, str] | None = None) -> Process:
        log = self.logs / f"{name}.log"
        executable = str(BIN / command[0]) if (BIN / command[0]).exists() else command[0]
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [executable, *command[1:]],
                cwd=PROJECT_ROOT,
                env={**self.env, **(extra_env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.started.append(process)
        return process

    def stop_all(self, grace: float = 10) -> None:
        """SIGTERM to every group at once; SIGKILL to each group after ``grace`` seconds or once its leader is gone."""
        running = [p for p in reversed(self.started) if p.alive()]
        for process in running:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)  # and whatever the leader started and left behind
            process.popen.wait(5)

    def report(self, tail: int = 40) -> str:
        """The end of every log, for an assertion message when something did not come up."""
        parts = []
        for process in self.started:
            lines = process.output().splitlines()[-tail:]
            state = "running" if process.alive() else f"exited {process.popen.returncode}"
            parts.append(f"--- {process.name} ({state})\n" + "\n".join(lines))
        return "\n".join(parts)


def wait_until(what: str, ready, processes: Processes, timeout: float = 120, interval: float = 0.5):
    """Poll ``ready()`` until it returns something truthy; fail with every process's log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = ready()
        except (requests.RequestException, OSError):
            value = None
        if value:
            return value
        if any(not p.alive() for p in processes.started):
            raise AssertionError(f"a process exited while waiting for {what}\n{processes.report()}")
        time.sleep(interval)
    raise AssertionError(f"{what} not ready after {timeout:.0f} s\n{processes.report()}")


def http_ok(url: str) -> bool:
    return requests.get(url, timeout=5).status_code == 200
