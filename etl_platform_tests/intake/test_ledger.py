"""The ledger of loaded files: the same bytes load once, a new version loads, a failed load records nothing."""

from pathlib import Path

import duckdb
import pytest

from etl_platform.destinations.warehouse import tables
from etl_platform.intake.fingerprints import LEDGER
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.steps import ingest, load_target
from etl_platform_tests.intake.test_corpus import load

pytestmark = pytest.mark.timeout(30)
COLUMNS = {"id": {"type": "bigint"}, "name": {}}


def spec(mode: str, **source) -> PipelineSpec:
    sync = {
        "mode": mode,
        **({"primary_key": ["id"]} if mode == "merge" else {}),
        **({"cursor": "id"} if mode == "incremental" else {}),
    }
    return PipelineSpec.model_validate(
        {"source": {"files": "*.csv", "columns": COLUMNS, **source}, "sync": sync, "destination": {"table": "t"}}
    )


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield connection
    connection.close()


@pytest.fixture
def landing(tmp_path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


def ledger(con) -> list[tuple]:
    return con.execute(f"SELECT file, bytes, run_id FROM {LEDGER} ORDER BY run_id, file").fetchall()


@pytest.mark.parametrize("mode", ["append", "merge", "incremental"])
def test_content_loaded_in_an_earlier_run_is_skipped_under_any_name(con, landing, mode):
    (landing / "a.csv").write_bytes(b"id,name\n1,x\n2,y\n")
    load(con, spec(mode), landing, "run-1")
    (landing / "a_copy.csv").write_bytes(b"id,name\n1,x\n2,y\n")
    (landing / "b.csv").write_bytes(b"id,name\n3,z\n")

    result = load(con, spec(mode), landing, "run-2")

    duplicates = {f.file: f.duplicate_of for f in result.files_duplicate}
    assert sorted(duplicates) == ["a.csv", "a_copy.csv"]
    assert all(why.startswith("same content as a.csv, loaded by run run-1 at ") for why in duplicates.values())
    assert con.execute("SELECT count(*), count(DISTINCT id) FROM p.t").fetchone() == (3, 3)
    assert ledger(con) == [("a.csv", 16, "run-1"), ("b.csv", 12, "run-2")]


def test_replace_reloads_everything_but_a_copy_within_one_load_once(con, landing):
    (landing / "a.csv").write_bytes(b"id,name\n1,x\n")
    (landing / "b.csv").write_bytes(b"id,name\n1,x\n")
    first = load(con, spec("replace"), landing, "run-1")
    second = load(con, spec("replace"), landing, "run-2")
    for result in (first, second):
        assert [(f.file, f.duplicate_of) for f in result.files_duplicate] == [
            ("b.csv", "same content as a.csv, earlier in this load")
        ]
    assert con.execute("SELECT count(*) FROM p.t").fetchone()[0] == 1


def test_a_changed_file_under_the_same_name_loads_as_a_new_version(con, landing):
    (landing / "a.csv").write_bytes(b"id,name\n1,x\n")
    load(con, spec("append"), landing, "run-1")
    (landing / "a.csv").write_bytes(b"id,name\n1,x\n2,y\n")
    result = load(con, spec("append"), landing, "run-2")
    assert not result.files_duplicate
    assert [r[0] for r in ledger(con)] == ["a.csv", "a.csv"]
    assert con.execute("SELECT count(*) FROM p.t").fetchone()[0] == 3


def test_a_failed_load_records_nothing_so_the_file_loads_next_time(con, landing, monkeypatch):
    (landing / "a.csv").write_bytes(b"id,name\n1,x\n")

    def broken(*args, **kwargs):
        raise RuntimeError("the disk filled up")

    with monkeypatch.context() as patch:
        patch.setattr(tables, "scalar", broken)
        with pytest.raises(RuntimeError):
            load(con, spec("append"), landing, "run-1")
    assert ledger(con) == []
    result = load(con, spec("append"), landing, "run-2")
    assert not result.files_duplicate and ledger(con) == [("a.csv", 12, "run-2")]


def test_a_file_rejected_whole_is_not_recorded_and_loads_once_the_limit_allows(con, landing):
    (landing / "a.csv").write_bytes(b"id,name\n1,x\n2,y\n")
    result = load(con, spec("append", limits={"max_rows": 1}), landing, "run-1")
    assert result.files_rejected and ledger(con) == []
    result = load(con, spec("append"), landing, "run-2")
    assert not result.files_duplicate and con.execute("SELECT count(*) FROM p.t").fetchone()[0] == 2


def test_a_file_that_vanished_after_listing_is_rejected_not_a_crash(con, landing):
    (landing / "a.csv").write_bytes(b"id,name\n1,x\n")
    gone = landing / "gone.csv"
    target = load_target.Target(tables.TableRef("p", "t"), tables.TableRef("p", "t_rejected"))
    result = ingest.run(
        con,
        spec("append"),
        pipeline="p",
        files=[landing / "a.csv", gone],
        relative=lambda p: p.name,
        target=target,
        run_id="run-1",
        log=lambda m: None,
        progress_interval=60,
    )
    assert {f.file: f.rejected_whole for f in result.files_rejected} == {
        "gone.csv": "cannot be opened: No such file or directory"
    }
    assert con.execute("SELECT count(*) FROM p.t").fetchone()[0] == 1
