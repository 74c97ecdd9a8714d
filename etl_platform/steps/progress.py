"""Live progress of a long load, logged every few seconds while DuckDB works."""

import threading
import time
from collections.abc import Callable

import duckdb


class Progress:
    """Polls DuckDB's progress for the running statement and logs rows so far and rows/s.

    DuckDB reports how far through its input a statement is; rows so far are estimated
    from that share of the current file plus the exact counts of finished files.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, log: Callable[[str], None], interval: float, label: str):
        self._con = con
        self._log = log
        self._interval = interval
        self._label = label
        self._started = time.monotonic()
        self._done_rows = 0
        self._file_estimate = 0
        self._file_name = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress-{label}", daemon=True)

    def __enter__(self) -> "Progress":
        self._con.execute("SET enable_progress_bar = true")
        self._con.execute("SET enable_progress_bar_print = false")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def file_started(self, name: str, estimated_rows: int) -> None:
        self._file_name, self._file_estimate = name, estimated_rows

    def file_finished(self, rows: int) -> None:
        self._done_rows += rows
        self._file_estimate = 0

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            share = self._con.query_progress()
            if share < 0 and not self._done_rows:
                continue  # no statement running yet: nothing worth a log line
            current = int(self._file_estimate * share / 100) if share >= 0 else 0
            rows = self._done_rows + current
            elapsed = time.monotonic() - self._started
            where = f", {self._file_name} {share:.0f}%" if share >= 0 and self._file_name else ""
            self._log(f"{self._label}: ~{rows:,} rows read so far ({rows / elapsed:,.0f} rows/s{where})")
