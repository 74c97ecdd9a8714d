"""A file still being written when a load starts is left for the next run, never loaded with a
torn last row (``4,5,30`` of a line that becomes ``4,5,300``)."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from etl_platform.automation.retries import classify
from etl_platform.connectors.landing import LocalFolder
from etl_platform.connectors.registry import build
from etl_platform.destinations.warehouse.tables import TableRef
from etl_platform.factory.load_results import files_table
from etl_platform.intake import limits
from etl_platform.intake.fingerprints import LEDGER
from etl_platform.intake.settling import LEFT_FOR_LATER, StillBeingWritten
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.steps import ingest, load_result, load_target
from etl_platform_tests.conftest import materializations, query
from etl_platform_tests.s3_server import S3Bucket

pytestmark = pytest.mark.timeout(120)
COLUMNS = {"id": {"type": "bigint"}, "batch": {"type": "bigint"}, "amount": {"type": "bigint"}}


def spec(mode: str = "append", files: str = "*.csv", **source) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "source": {"files": files, "columns": COLUMNS, **source},
            "sync": {"mode": mode},
            "destination": {"table": "t"},
        }
    )


def load(con, landing: Path, pipeline_spec: PipelineSpec, run_id: str) -> load_result.LoadResult:
    folder = LocalFolder(landing)
    return ingest.run(
        con,
        pipeline_spec,
        pipeline="p",
        files=folder.list(pipeline_spec.source.files),
        relative=folder.relative,
        target=load_target.Target(TableRef("p", "t"), TableRef("p", "t_rejected")),
        run_id=run_id,
        log=lambda message: None,
        progress_interval=60,
    )


def rows(con) -> list[tuple]:
    return sorted(con.execute("SELECT id, batch, amount FROM p.t").fetchall())


def ledger(con) -> list[str]:
    try:
        return [r[0] for r in con.execute(f"SELECT file FROM {LEDGER} ORDER BY file").fetchall()]
    except duckdb.CatalogException:  # nothing was ever recorded
        return []


def left(result: load_result.LoadResult) -> dict[str, str]:
    return {f.file: f.left_for_later for f in result.files if f.left_for_later}


WRITER = textwrap.dedent("""
    import sys, time
    path, rows = sys.argv[1], int(sys.argv[2])
    text = "id,batch,amount\\n" + "".join(f"{i},{i % 7},{i * 1000 + 999}\\n" for i in range(rows))
    # Written in blocks, as a buffered writer does: every block but the last ends inside a row.
    cuts, at = [], 0
    while at < len(text):
        at = min(len(text), at + 37)
        while at < len(text) and text[at - 1] == "\\n":
            at += 1
        cuts.append(at)
    done = 0
    with open(path, "w") as f:
        for cut in cuts:
            f.write(text[done:cut])
            f.flush()
            done = cut
            time.sleep(0.02)
""")


def test_a_file_appended_to_by_another_process_never_loads_a_torn_row(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    target = landing / "growing.csv"
    count = 120
    expected = [(i, i % 7, i * 1000 + 999) for i in range(count)]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(count)])
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    outcomes = []
    try:
        while writer.poll() is None:
            if target.exists():
                try:
                    result = load(con, landing, spec(), f"run-{len(outcomes)}")
                    outcomes.append(left(result).get("growing.csv") or "loaded")
                except StillBeingWritten as err:  # it changed while DuckDB read it: nothing was loaded
                    outcomes.append(str(err))
                # Nothing of the file, or all of it once the writer wrote its last row (before it exits).
                assert rows(con) in ([], expected), f"rows of a file still being written were loaded: {rows(con)[-3:]}"
        assert writer.wait() == 0
        final = load(con, landing, spec(), "run-final")
        assert rows(con) == expected  # every row once, none torn
        assert not final.files_rejected and not left(final)
        assert ledger(con) == ["growing.csv"]
    finally:
        con.close()
        writer.kill()
    assert sum(o.startswith(LEFT_FOR_LATER) for o in outcomes) >= 3, outcomes


def test_a_torn_last_row_is_left_for_the_next_run_and_loads_once_complete(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "done.csv").write_text("id,batch,amount\n1,1,10\n")
    (landing / "torn.csv").write_text("id,batch,amount\n2,1,20\n3,1,30")  # the writer has not written "0\n" yet
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        first = load(con, landing, spec(), "run-1")
        assert rows(con) == [(1, 1, 10)]
        why = left(first)["torn.csv"]
        assert why.startswith(f"{LEFT_FOR_LATER} (its last line has no line break and it was modified ")
        assert why.endswith("s ago, less than source.settle_seconds: 5)")
        # Not rejected, not in the ledger: the next run reads it.
        assert con.execute("SELECT count(*) FROM p.t_rejected").fetchone() == (0,)
        assert ledger(con) == ["done.csv"]
        assert f"| torn.csv | 0 | 0 | {why} |" in files_table(first)
        assert first.rows_read == first.rows_accepted == 1

        with (landing / "torn.csv").open("a") as f:
            f.write("0\n")
        second = load(con, landing, spec(), "run-2")
        assert rows(con) == [(1, 1, 10), (2, 1, 20), (3, 1, 300)]
        assert not left(second)
    finally:
        con.close()


def test_a_file_without_a_final_line_break_loads_once_it_has_settled(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    old = landing / "old.csv"
    old.write_text("id,batch,amount\n1,1,10")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    (landing / "new.csv").write_text("id,batch,amount\n2,2,20")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        assert left(load(con, landing, spec(), "run-1")).keys() == {"new.csv"}
        assert rows(con) == [(1, 1, 10)]
        assert not left(load(con, landing, spec(settle_seconds=0), "run-2"))  # the rule turned off
        assert rows(con) == [(1, 1, 10), (2, 2, 20)]
    finally:
        con.close()


def test_a_file_that_changes_while_it_is_read_is_left_for_the_next_run(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("id,batch,amount\n1,1,10\n")
    hash_file = limits.hash_file

    def hash_then_append(path, feed=None):
        digest = hash_file(path, feed)
        with open(path, "a") as f:  # another process appends while intake reads
            f.write("2,1,20\n")
        return digest

    monkeypatch.setattr(limits, "hash_file", hash_then_append)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        result = load(con, landing, spec(), "run-1")
        assert left(result) == {"a.csv": f"{LEFT_FOR_LATER} (it changed while it was read)"}
        assert rows(con) == [] and ledger(con) == []
    finally:
        con.close()


def test_a_file_that_changes_while_duckdb_reads_it_fails_the_load_which_changes_nothing(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("id,batch,amount\n1,1,10\n")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        load(con, landing, spec(), "run-1")
        (landing / "b.csv").write_text("id,batch,amount\n2,2,20\n")
        precheck = ingest.precheck

        def precheck_then_append(con, fmt, pipeline_spec, path):
            found = precheck(con, fmt, pipeline_spec, path)
            with open(path, "a") as f:  # after intake examined it, before DuckDB stages it
                f.write("3,2,30\n")
            return found

        with monkeypatch.context() as patch:
            patch.setattr(ingest, "precheck", precheck_then_append)
            with pytest.raises(StillBeingWritten) as failed:
                load(con, landing, spec(), "run-2")
        message = str(failed.value)
        assert message.startswith(
            "b.csv changed while it was being loaded (it is still being written); nothing was loaded"
        )
        assert classify(failed.value) == "transient"  # the step's retry policy tries again
        assert rows(con) == [(1, 1, 10)]
        assert ledger(con) == ["a.csv"]
        assert con.execute("SELECT count(*) FROM p.t_rejected WHERE run_id = 'run-2'").fetchone() == (0,)

        load(con, landing, spec(), "run-3")
        assert rows(con) == [(1, 1, 10), (2, 2, 20), (3, 2, 30)]
    finally:
        con.close()


def test_a_replace_load_with_a_file_still_being_written_keeps_the_table(tmp_path):
    """Loading the other files would replace the table without that file's rows."""
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("id,batch,amount\n1,1,10\n")
    (landing / "b.csv").write_text("id,batch,amount\n2,1,20\n")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        load(con, landing, spec("replace"), "run-1")
        (landing / "b.csv").write_text("id,batch,amount\n2,1,20\n3,1,3")
        with pytest.raises(
            StillBeingWritten,
            match=r"^b\.csv: still being written: left for the next run \(its last line has no line"
            r".*A replace load reads all of its files together, so nothing was loaded",
        ):
            load(con, landing, spec("replace"), "run-2")
        assert rows(con) == [(1, 1, 10), (2, 1, 20)]
    finally:
        con.close()


def test_s3_copies_carry_the_objects_time(s3_bucket: S3Bucket):
    """A downloaded copy is new on disk; its age must be the object's, or a final line without a
    line break would always look freshly written."""
    s3_bucket.put("drop/a.csv", "id,batch,amount\n1,1,10")
    connector = build("lake", "s3", s3_bucket.options(prefix="drop"))
    [listed] = connector.list_objects("*.csv")
    with connector.fetch("*.csv") as fetched:
        [path] = fetched.files
        assert path.stat().st_mtime == pytest.approx(listed.last_modified.timestamp(), abs=1e-3)


def _pipeline_defs(source: dict):
    import dagster as dg

    from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
    from etl_platform.resources.warehouse import WarehouseResource
    from etl_platform.spec.tables import table_names

    parsed = PipelineSpec.model_validate({"source": source, "sync": {"mode": "append"}, "destination": {"table": "t"}})
    ctx = PipelineContext(name="arrivals", names=table_names(parsed, "arrivals"), defined_at={})
    return dg.Definitions.merge(
        build_pipeline_defs(parsed, ctx), dg.Definitions(resources={"warehouse": WarehouseResource()})
    )


def test_the_dagster_run_shows_a_file_left_for_the_next_run(landing: Path, etl_home: Path, instance):
    defs = _pipeline_defs({"files": "*.csv", "columns": COLUMNS})
    (landing / "a.csv").write_text("id,batch,amount\n1,1,10\n")
    (landing / "b.csv").write_text("id,batch,amount\n2,1,2")
    job = defs.resolve_job_def("arrivals_job")

    result = job.execute_in_process(instance=instance)

    meta = materializations(result)["arrivals/t"]
    assert (
        "| b.csv | 0 | 0 | still being written: left for the next run (its last line has no line break" in meta["files"]
    )
    assert meta["files_rejected"] == 0
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(m.startswith("not reading file b.csv now: still being written: left for the next run") for m in logged)
    assert query(etl_home, "SELECT id FROM arrivals.t") == [(1,)]
