"""Intake on the real sources: paths that try to leave the landing folder, files fetched
from S3, and a few corpus files through a real Dagster run."""

import gzip
import os
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from etl_platform.connectors.landing import LocalFolder
from etl_platform.connectors.registry import build
from etl_platform.destinations.warehouse.tables import TableRef
from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
from etl_platform.intake.paths import PathOutsideFolder, inside, matching_files
from etl_platform.resources.warehouse import WarehouseResource
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import table_names
from etl_platform.steps import ingest, load_target
from etl_platform_tests.conftest import materializations, query
from etl_platform_tests.intake import corpus
from etl_platform_tests.s3_server import S3Bucket

pytestmark = pytest.mark.timeout(60)


def test_a_symlink_pointing_outside_the_folder_is_not_read(tmp_path):
    landing, outside = tmp_path / "landing", tmp_path / "secret"
    landing.mkdir()
    outside.mkdir()
    (outside / "passwd.csv").write_text("id,name\n666,root\n")
    (landing / "good.csv").write_text("id,name\n1,alpha\n")
    os.symlink(outside / "passwd.csv", landing / "link.csv")
    os.symlink(outside, landing / "linked_folder")
    (landing / "inner.csv").symlink_to(landing / "good.csv")  # inside: followed

    found, refused = matching_files(landing, "**/*.csv")
    assert [p.name for p in found] == ["good.csv"]
    assert refused == ["link.csv"]  # '**' does not descend into symlinked folders
    assert matching_files(landing, "linked_folder/*.csv") == ([], ["linked_folder/passwd.csv"])
    assert LocalFolder(landing).list("*.csv") == [(landing / "good.csv").resolve()]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../secret/passwd.csv", "'..' is not allowed"),
        ("/etc/passwd", "not an absolute path"),
        ("a/../../x.csv", "'..' is not allowed"),
        ("C:\\Windows\\win.ini", "not an absolute path"),
        ("link.csv", "outside"),
        ("~/x.csv", "not an absolute path"),
    ],
)
def test_a_name_from_a_sensor_cannot_leave_its_folder(tmp_path, name, message):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "link.csv").symlink_to("/etc/hostname")
    with pytest.raises(PathOutsideFolder, match=message):
        inside(landing, name)
    (landing / "sub").mkdir()
    assert inside(landing, "sub/new.csv") == (landing / "sub" / "new.csv").resolve()


def test_s3_files_pass_through_intake_compressed_encoded_and_duplicated(s3_bucket: S3Bucket, tmp_path):
    s3_bucket.put_many(
        {
            "drop/a.csv.gz": gzip.compress(b"id,name\n1,caf\xe9\n"),  # Latin-1 inside gzip
            "drop/b.csv": corpus.csv("id,name", "2,beta", encoding="utf-16"),
            "drop/c.csv": b"id,name\n1,caf\xe9\n",  # the same content as a.csv.gz once unpacked, but other bytes
            "drop/d.csv": corpus.csv("id,name", "2,beta", encoding="utf-16"),  # the same bytes as b.csv
            "drop/e.parquet.csv": corpus.GOOD_PARQUET,
        }
    )
    connector = build("lake", "s3", s3_bucket.options(prefix="drop"))
    spec = PipelineSpec.model_validate(
        {
            "source": {"connection": "lake", "files": "*.csv*", "format": "csv", "columns": corpus.COLUMNS},
            "destination": {"table": "t"},
        }
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        with connector.fetch(spec.source.files) as fetched:
            result = ingest.run(
                con,
                spec,
                pipeline="p",
                files=fetched.files,
                relative=fetched.relative,
                target=load_target.Target(TableRef("p", "t"), TableRef("p", "t_rejected")),
                run_id="run-1",
                log=lambda m: None,
                progress_interval=60,
            )
        rows = con.execute("SELECT _source_file, id, name FROM p.t ORDER BY _source_file").fetchall()
    finally:
        con.close()
    assert rows == [("a.csv.gz", 1, "café"), ("b.csv", 2, "beta"), ("c.csv", 1, "café")]
    assert {f.file: f.duplicate_of for f in result.files_duplicate} == {
        "d.csv": "same content as b.csv, earlier in this load"
    }
    assert {f.file: f.rejected_whole for f in result.files_rejected} == {
        "e.parquet.csv": "is a Parquet file, not CSV text"
    }


def _pipeline(spec: dict) -> dg.Definitions:
    parsed = PipelineSpec.model_validate(spec)
    ctx = PipelineContext(name="intake_demo", names=table_names(parsed, "intake_demo"), defined_at={})
    return dg.Definitions.merge(
        build_pipeline_defs(parsed, ctx), dg.Definitions(resources={"warehouse": WarehouseResource()})
    )


CORPUS_IN_DAGSTER = ["zip bomb", "Latin-1", "NUL bytes", "same bytes renamed", "xlsx XML entity bomb"]


def test_corpus_files_through_a_dagster_run(landing: Path, etl_home: Path, instance):
    """A good file, then five corpus files at once in one run: what the user sees in the UI."""
    cases = {c.name: c for c in corpus.CASES}
    defs = _pipeline(
        {
            "source": {
                "files": "drop/*",
                "format": "csv",
                "columns": corpus.COLUMNS,
                "limits": {"max_decompressed_bytes": 1_000_000},
            },
            "sync": {"mode": "append"},
            "destination": {"table": "t"},
        }
    )
    (landing / "drop").mkdir()
    (landing / "drop" / "good.csv").write_bytes(corpus.GOOD_CSV)
    job = defs.resolve_job_def("intake_demo_job")
    assert job.execute_in_process(instance=instance).success
    for n, name in enumerate(CORPUS_IN_DAGSTER):
        case = cases[name]
        (landing / "drop" / f"{n}_{Path(case.file).stem}{Path(case.file).suffix}").write_bytes(case.data())

    result = job.execute_in_process(instance=instance, raise_on_error=False)

    assert result.success
    meta = materializations(result)["intake_demo/t"]
    assert (meta["files_read"], meta["files_rejected"], meta["files_duplicate"]) == (1, 3, 2)
    table = meta["files"]
    assert (
        "| drop/0_bad.zip | 0 | 0 | rejected whole: holds bomb.csv of 67,108,872 bytes, over the limit of 1,000,000 "
        "(limits.max_decompressed_bytes) |" in table
    )
    assert "| drop/2_bad.csv | 0 | 0 | rejected whole: contains a NUL byte on line 2" in table
    assert (
        "| drop/4_bad.xlsx | 0 | 0 | rejected whole: is an Excel workbook (.xlsx), not a zip archive of one data file"
        in table
    )
    assert "| drop/3_bad.csv | 0 | 0 | skipped as a duplicate: same content as drop/good.csv, loaded by run " in table
    assert "| drop/good.csv | 0 | 0 | skipped as a duplicate: same content as drop/good.csv, loaded by run " in table
    assert query(etl_home, "SELECT id, name FROM intake_demo.t ORDER BY id") == [
        (1, "alpha"),
        (2, "beta"),
        (3, "café"),
        (4, "Müller"),
    ]
    ledger = query(etl_home, "SELECT file, run_id FROM _etl.files ORDER BY loaded_at, file")
    assert [f for f, _ in ledger] == ["drop/good.csv", "drop/1_bad.csv"]


def test_on_bad_file_fail_in_dagster_names_the_file_and_keeps_the_table(landing: Path, etl_home: Path, instance):
    defs = _pipeline(
        {
            "source": {
                "files": "*.csv",
                "columns": corpus.COLUMNS,
                "on_bad_file": "fail",
                "limits": {"max_field_chars": 10},
            },
            "sync": {"mode": "append"},
            "destination": {"table": "t"},
        }
    )
    (landing / "good.csv").write_bytes(corpus.GOOD_CSV)
    job = defs.resolve_job_def("intake_demo_job")
    assert job.execute_in_process(instance=instance).success
    (landing / "long.csv").write_bytes(corpus.csv("id,name", "3,short", "4," + "y" * 11))

    result = job.execute_in_process(instance=instance, raise_on_error=False)

    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert (
        "long.csv: column 'name' of data row 2 is 11 characters long, over the limit of 10 (limits.max_field_chars)"
        in failure.event_specific_data.error.message
    )
    assert query(etl_home, "SELECT id FROM intake_demo.t ORDER BY id") == [(1,), (2,)]
    assert query(etl_home, "SELECT file FROM _etl.files") == [("good.csv",)]
