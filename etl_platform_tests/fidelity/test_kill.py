"""kill -9 in the middle of a load: afterwards the table holds the old rows or the new rows,
never a mix; the saved cursor is never ahead of the committed rows; and the next load works.

The load runs in a child process (the same adapter call as every other case) and is killed
at a generated moment of its run; the warehouse is opened by this process only while the
child is not running (DuckDB allows one writing process per file).
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_platform_tests.conftest import examples
from etl_platform_tests.fidelity import harness, platform
from etl_platform_tests.fidelity.compare import Finding
from etl_platform_tests.fidelity.modes import csv_bytes
from etl_platform_tests.fidelity.tally import TALLY

pytestmark = pytest.mark.fidelity

EXAMPLES = 1  # per destination and mode
ROWS = 20_000  # enough for a load to take a moment
LOAD_SECONDS = {}  # how long the last in-process load of the new rows took, per destination and mode

CHILD = """
import json, sys
from pathlib import Path
from etl_platform_tests.fidelity import platform
args = json.loads(sys.argv[1])
destination = platform.Destination(args["kind"], postgres=args["postgres"],
                                   folder=Path(args["folder"]) if args["folder"] else None)
with platform.warehouse(Path(args["warehouse"])) as con:
    print("loading", flush=True)
    outcome = platform.load(args["spec"], pipeline=args["name"], schema="killed", table=args["name"],
                            connection=args["connection"], destination=destination, con=con, run_id=args["run_id"])
print("done", outcome.error, flush=True)
"""


def _rows(first_id: int, count: int, seq: int, tag: str) -> list[tuple]:
    return [(first_id + i, seq + i, f"{tag} {i}", str(i)) for i in range(count)]


@pytest.mark.parametrize("mode", ["replace", "incremental"])
@pytest.mark.parametrize("destination_kind", platform.DESTINATION_KINDS)
def test_a_load_killed_at_any_moment_leaves_old_or_new_data(env, tmp_path, mode, destination_kind):
    if destination_kind == "postgres":
        env.services("postgres")

    @settings(max_examples=examples(EXAMPLES), phases=harness.phases())
    @given(moment=st.floats(0.0, 1.0))
    def case(moment):
        # The kill comes at a generated share of how long such a load takes (measured by the previous case).
        delay = moment * LOAD_SECONDS.get((destination_kind, mode), 1.0)
        name = env.fresh()
        folder = env.source_folder / name
        folder.mkdir()
        warehouse = tmp_path / f"{name}.duckdb"
        destination = env.destination(destination_kind)
        sync = {"mode": mode, **({"primary_key": ["id"], "cursor": "seq"} if mode == "incremental" else {})}
        columns = {
            "id": {"type": "bigint"},
            "seq": {"type": "bigint"},
            "v": {"type": "varchar"},
            "n": {"type": "bigint"},
        }
        spec = {
            "source": {"connection": "src", "files": f"{name}/*.csv", "columns": columns},
            "sync": sync,
            "destination": {**destination.spec(), "schema": "killed", "table": name, "lineage_columns": False},
        }
        connection = ("local", {"path": str(env.source_folder)})
        old = _rows(1, 50, 1, "old")
        (folder / "001.csv").write_bytes(csv_bytes(old))
        with platform.warehouse(warehouse) as con:
            first = platform.load(
                spec,
                pipeline=name,
                schema="killed",
                table=name,
                connection=connection,
                destination=destination,
                con=con,
                run_id="first",
            )
        assert not first.failed, first.error
        new = _rows(1, ROWS, 100, "new")
        if mode == "replace":
            (folder / "001.csv").write_bytes(csv_bytes(new))
        else:
            (folder / "002.csv").write_bytes(csv_bytes(new))
        expected_new = new  # replace: the new file; incremental: keys 1..50 updated, the rest added
        args = {
            "kind": destination.kind,
            "postgres": destination.postgres,
            "folder": str(destination.folder or ""),
            "warehouse": str(warehouse),
            "spec": spec,
            "name": name,
            "connection": connection,
            "run_id": "killed",
        }
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(args)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ},
            start_new_session=True,
        )
        child.stdout.readline()  # "loading": the child is inside the load
        time.sleep(delay)
        killed = child.poll() is None
        if killed:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=120)
        child.stdout.close()
        findings = _check(
            env,
            warehouse,
            destination,
            name,
            old,
            expected_new,
            mode,
            f"{destination_kind}, {mode}, {'killed' if killed else 'not killed (done)'} after {delay:.2f}s",
        )
        # The next load works and lands the new rows.
        started = time.monotonic()
        with platform.warehouse(warehouse) as con:
            again = platform.load(
                spec,
                pipeline=name,
                schema="killed",
                table=name,
                connection=connection,
                destination=destination,
                con=con,
                run_id="again",
            )
        LOAD_SECONDS[(destination_kind, mode)] = time.monotonic() - started
        if again.failed:
            findings.append(
                Finding(
                    "loud",
                    f"{destination_kind}, {mode}: the load after the kill failed: {again.error}",
                    "load after kill failed",
                )
            )
        else:
            findings += _check(
                env,
                warehouse,
                destination,
                name,
                None,
                expected_new,
                mode,
                f"{destination_kind}, {mode}, the load after the kill",
            )
        TALLY.case(
            source="csv",
            destination=destination_kind,
            mode=mode,
            findings=findings,
            test=f"kill[{destination_kind}-{mode}]",
        )
        if findings and not harness.collecting():
            raise AssertionError("\n".join(f.message for f in findings))

    case()


def _check(env, warehouse, destination, name, old, new, mode, where) -> list[Finding]:
    with platform.warehouse(warehouse) as con:
        stored = platform.stored(destination, con, "killed", name)
        cursor = platform.saved_cursor(destination, con, "killed", name, name) if mode == "incremental" else None
    if stored.error:
        return [Finding("loud", f"{where}: the table cannot be read: {stored.error}", "unreadable after kill")]
    got = Counter((r["id"], r["seq"], r["v"], r["n"]) for r in stored.rows)
    as_stored = lambda rows: Counter((i, s, harness_text(v, destination.kind), int(n)) for i, s, v, n in rows)  # noqa: E731
    states = [as_stored(new)] + ([as_stored(old)] if old is not None else [])
    findings = []
    if got not in states:
        findings.append(
            Finding(
                "silent",
                f"{where}: the table holds {sum(got.values())} rows, neither the old "
                f"{len(old or [])} nor the new {len(new)} (a mix)",
                "mix after kill",
            )
        )
    if cursor is not None:
        top = max((r["seq"] for r in stored.rows), default=None)
        if top is None or int(cursor) > top:
            findings.append(
                Finding(
                    "silent",
                    f"{where}: saved cursor {cursor} is ahead of the committed rows (top {top})",
                    "WM after kill",
                )
            )
    return findings


def harness_text(value: str, destination_kind: str) -> str:
    from etl_platform_tests.fidelity.compare import csv_file_form

    return csv_file_form(value, "varchar") if destination_kind == "csv" else value
