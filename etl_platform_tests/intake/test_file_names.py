"""A file's name is data, never a pattern: a file named ``*.csv``, ``?.csv``, ``[ab].csv`` or
``a{b,c}.csv`` beside other files is read once, as itself, by every format and every file
connection, and is recorded under its real name."""

import json
import os
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_platform.connectors.formats.base import file_format
from etl_platform.connectors.landing import LocalFolder
from etl_platform.connectors.registry import build
from etl_platform.destinations.warehouse.tables import Committed, TableRef
from etl_platform.intake.fingerprints import LEDGER
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.sources import CsvOptions
from etl_platform.steps import ingest, load_result, load_target
from etl_platform_tests.conftest import examples
from etl_platform_tests.intake import corpus
from etl_platform_tests.s3_server import S3Bucket

pytestmark = pytest.mark.timeout(120)

GLOBBY_NAMES = ["*.csv", "?.csv", "[ab].csv", "a{b,c}.csv", "**.csv", "a[!x].csv", "back\\slash.csv"]
PLAIN_NAMES = ["a.csv", "b.csv", "ab.csv", "ac.csv", "o'brien.csv", "two words.csv", "naïve ünïcödé.csv", "100%.csv"]


def spec_for(files: str, fmt: str = "csv", mode: str = "append") -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "source": {"files": files, "format": fmt, "columns": {"id": {"type": "bigint"}, "name": {}}},
            "sync": {"mode": mode},
            "destination": {"table": "t"},
        }
    )


def load(con, spec: PipelineSpec, files: list[Path], relative, run_id: str = "run-1") -> load_result.LoadResult:
    return ingest.run(
        con,
        spec,
        pipeline="p",
        files=files,
        relative=relative,
        target=load_target.Target(TableRef("p", "t"), TableRef("p", "t_rejected")),
        run_id=run_id,
        log=lambda message: None,
        progress_interval=60,
    )


def loaded(con) -> list[tuple[str, int, str]]:
    return sorted(con.execute("SELECT _source_file, id, name FROM p.t").fetchall())


def write(folder: Path, name: str, fmt: str, rows: list[tuple[int, str]]) -> None:
    path = folder / name
    if fmt == "csv":
        path.write_text(
            "id,name\n" + "".join(f'{i},"{n.replace(chr(34), chr(34) * 2)}"\n' for i, n in rows), encoding="utf-8"
        )
    elif fmt == "ndjson":
        path.write_text("".join(json.dumps({"id": i, "name": n}) + "\n" for i, n in rows), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps([{"id": i, "name": n} for i, n in rows]), encoding="utf-8")
    elif fmt == "parquet":
        path.write_bytes(corpus.parquet(pa.table({"id": [i for i, _ in rows], "name": [n for _, n in rows]})))
    else:
        path.write_bytes(corpus.xlsx([["id", "name"], *[[i, n] for i, n in rows]]))


def test_a_file_named_like_a_glob_is_read_once_and_its_neighbours_once(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    expected = []
    for n, name in enumerate(PLAIN_NAMES + GLOBBY_NAMES):
        write(landing, name, "csv", [(n, name)])
        expected.append((name, n, name))
    folder = LocalFolder(landing)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        result = load(con, spec_for("*.csv"), folder.list("*.csv"), folder.relative)
        assert loaded(con) == sorted(expected)
        assert not result.files_rejected and result.rows_read == len(expected)
        # The ledger, lineage and the load's files keep the real names.
        assert sorted(r[0] for r in con.execute(f"SELECT file FROM {LEDGER}").fetchall()) == sorted(
            PLAIN_NAMES + GLOBBY_NAMES
        )
        assert sorted(f.file for f in result.files) == sorted(PLAIN_NAMES + GLOBBY_NAMES)
    finally:
        con.close()


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json", "parquet", "xlsx"])
def test_every_format_reads_a_globby_name_as_one_file(tmp_path, fmt):
    landing = tmp_path / "landing"
    landing.mkdir()
    names = [f"a.{fmt}", f"b.{fmt}", f"[ab].{fmt}", f"*.{fmt}", f"?.{fmt}", f"it's {{a,b}}.{fmt}"]
    for n, name in enumerate(names):
        write(landing, name, fmt, [(n * 10, name), (n * 10 + 1, "second")])
    folder = LocalFolder(landing)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        result = load(con, spec_for(f"*.{fmt}", fmt), folder.list(f"*.{fmt}"), folder.relative)
        assert not result.files_rejected, result.files_rejected
        assert loaded(con) == sorted(
            [(name, n * 10, name) for n, name in enumerate(names)]
            + [(name, n * 10 + 1, "second") for n, name in enumerate(names)]
        )
    finally:
        con.close()


def test_a_rejected_row_of_a_globby_file_names_the_file_and_line(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_text("id,name\n1,a\n")
    (landing / "[ab].csv").write_text("id,name\n2,b\nnot a number,c\n")
    folder = LocalFolder(landing)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        load(con, spec_for("*.csv"), folder.list("*.csv"), folder.relative)
        assert loaded(con) == [("[ab].csv", 2, "b"), ("a.csv", 1, "a")]
        assert con.execute("SELECT source_file, source_line FROM p.t_rejected").fetchall() == [("[ab].csv", 3)]
    finally:
        con.close()


def test_a_path_duckdb_would_glob_never_reaches_it_as_a_pattern(tmp_path):
    """Any caller that hands a format a path with glob characters gets an error, not its neighbours."""
    (tmp_path / "a.csv").write_text("id\n1\n")
    (tmp_path / "[ab].csv").write_text("id\n2\n")
    fmt = file_format("csv", CsvOptions())
    with pytest.raises(duckdb.InvalidInputException, match="holds a glob character"):
        fmt.scan(tmp_path / "[ab].csv", {})
    with duckdb.connect() as con:
        with pytest.raises(duckdb.InvalidInputException, match="holds a glob character"):
            fmt.columns(con, tmp_path / "[ab].csv")


def test_a_temporary_folder_with_glob_characters_rejects_the_file_instead_of_reading_others(tmp_path, monkeypatch):
    landing, scratch = tmp_path / "landing", tmp_path / "tmp[1]"
    landing.mkdir()
    scratch.mkdir()
    (landing / "a.csv").write_text("id,name\n1,a\n")
    (landing / "[ab].csv").write_text("id,name\n2,b\n")
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    folder = LocalFolder(landing)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        result = load(con, spec_for("*.csv"), folder.list("*.csv"), folder.relative)
        assert loaded(con) == [("a.csv", 1, "a")]
        [(name, why)] = [(f.file, f.rejected_whole) for f in result.files_rejected]
        assert name == "[ab].csv" and "set TMPDIR to a folder without them" in why
    finally:
        con.close()


def test_s3_objects_named_like_globs_are_downloaded_and_read_once(s3_bucket: S3Bucket, tmp_path):
    keys = ["drop/a.csv", "drop/b.csv", "drop/[ab].csv", "drop/*.csv", "drop/x/?.csv", "drop/o'brien {1,2}.csv"]
    s3_bucket.put_many(
        {key: f"id,name\n{n},{key.rsplit('/', 1)[-1].replace(',', ';')}\n" for n, key in enumerate(keys)}
    )
    connector = build("lake", "s3", s3_bucket.options(prefix="drop"))
    spec = PipelineSpec.model_validate(
        {
            "source": {"connection": "lake", "files": "**/*.csv", "columns": {"id": {"type": "bigint"}, "name": {}}},
            "sync": {"mode": "append"},
            "destination": {"table": "t"},
        }
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        with connector.fetch(spec.source.files) as fetched:
            assert all("[" not in str(p) and "*" not in str(p) and "{" not in str(p) for p in fetched.files)
            result = load(con, spec, fetched.files, fetched.relative)
        assert loaded(con) == sorted(
            (key.removeprefix("drop/"), n, key.rsplit("/", 1)[-1].replace(",", ";")) for n, key in enumerate(keys)
        )
        assert not result.files_rejected
    finally:
        con.close()


# Generated: names from an alphabet of glob, quote, space and non-ASCII characters, several
# files in one folder; the oracle is what was written, file by file.
NAME_CHARACTERS = "ab*?[]{},!'\" %ü€-_.~\\"
names = (
    st.text(NAME_CHARACTERS, min_size=1, max_size=12)
    .map(lambda stem: f"{stem}.csv")
    .filter(lambda name: not name.startswith("."))
)


@settings(max_examples=examples(25))
@given(file_names=st.lists(names, min_size=1, max_size=8, unique=True), mode=st.sampled_from(["append", "replace"]))
def test_generated_file_names_each_row_loads_exactly_once(tmp_path, file_names, mode):
    landing = Path(tempfile.mkdtemp(dir=tmp_path))
    written = []
    for n, name in enumerate(file_names):
        rows = [(n * 100 + k, f"file {n} row {k}") for k in range(n % 3 + 1)]  # every file its own bytes
        write(landing, name, "csv", rows)
        written += [(name, i, text) for i, text in rows]
    folder = LocalFolder(landing)
    con = duckdb.connect()
    try:
        listed = folder.list("*.csv")
        assert sorted(folder.relative(p) for p in listed) == sorted(file_names)
        result = load(con, spec_for("*.csv", mode=mode), listed, folder.relative)
        assert loaded(con) == sorted(written)
        assert not result.files_rejected and not result.files_duplicate
    finally:
        con.close()


def test_the_files_table_shows_a_name_as_it_is(tmp_path):
    from etl_platform.factory.load_results import files_table

    result = load_result.LoadResult(0, 0, 0, Committed(0), [load_result.FileResult("a|*b*`.csv")], {}, 0.0, None)
    assert "| a\\|\\*b\\*\\`.csv | 0 | 0 |  |" in files_table(result)


def test_hard_links_keep_the_original_untouched(tmp_path):
    """The plain name is a link in intake's own folder; closing the load removes the link only."""
    from etl_platform.intake.intake import FileIntake

    (tmp_path / "[x].csv").write_text("id,name\n1,a\n")
    with duckdb.connect() as con:
        intake = FileIntake(con, spec_for("*.csv"), pipeline="p", table="p.t", run_id="r", relative=lambda p: p.name)
        [read] = intake.examine([tmp_path / "[x].csv"])
        assert read != tmp_path / "[x].csv" and "[" not in str(read) and intake.relative(read) == "[x].csv"
        assert read.read_text() == "id,name\n1,a\n"
        intake.close()
    assert not read.exists() and (tmp_path / "[x].csv").read_text() == "id,name\n1,a\n"
    assert os.stat(tmp_path / "[x].csv").st_nlink == 1
