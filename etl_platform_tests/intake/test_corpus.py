"""Every case of the bad-input corpus through the real ingest functions (no Dagster).

For each case a good file is loaded first (append mode); then the bad file arrives
beside it. Whatever the bad file is, the load finishes in time, the outcome is the
one the corpus states, the message names the file (and line, where there is one),
and the good rows are still there. Cases rejected whole also run with
``on_bad_file: fail``: the load stops naming the file and the table is unchanged.
"""

import re
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from etl_platform.connectors.landing import LocalFolder
from etl_platform.destinations.warehouse.tables import TableRef
from etl_platform.intake.paths import PathOutsideFolder
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.steps import ingest, load_result, load_target
from etl_platform_tests.intake import corpus
from etl_platform_tests.intake.corpus import CASES, Case, Duplicate, Refused, Rejected

pytestmark = pytest.mark.timeout(30)
HANDLED: dict[str, bool] = {}  # case name -> outcome as expected (read by conftest's summary)

_GOOD_VALUES = {
    "BIGINT": ("1", "2"),
    "DOUBLE": ("1.5", "2.5"),
    "DATE": ("2024-01-01", "2024-01-02"),
    "TIMESTAMPTZ": ("2024-01-01 00:00:00+00", "2024-01-02 00:00:00+00"),
    "VARCHAR": ("alpha", "beta"),
}


def spec_for(case: Case, on_bad_file: str = "skip") -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "source": {
                "files": case.glob or "*.csv",
                "columns": case.columns,
                "on_bad_file": on_bad_file,
                **case.source,
            },
            "sync": {"mode": "append"},
            "destination": {"table": "t"},
        }
    )


def good_file(case: Case, spec: PipelineSpec) -> tuple[str, bytes]:
    fmt = spec.source.file_format
    if case.good is not None:
        return (
            f"good.{ {'ndjson': 'ndjson', 'json': 'json', 'parquet': 'parquet', 'xlsx': 'xlsx'}.get(fmt, 'csv') }",
            case.good,
        )
    if case.columns is corpus.COLUMNS:
        return "good.csv", corpus.GOOD_CSV
    cols = spec.source.columns
    header = ",".join(c.source or n for n, c in cols.items())
    rows = [",".join(_GOOD_VALUES[c.duckdb_type][i] for c in cols.values()) for i in (0, 1)]
    return "good.csv", corpus.csv(header, *rows)


def load(con, spec: PipelineSpec, landing: Path, run_id: str) -> load_result.LoadResult:
    folder = LocalFolder(landing)
    return ingest.run(
        con,
        spec,
        pipeline="p",
        files=folder.list(spec.source.files),
        relative=folder.relative,
        target=load_target.Target(TableRef("p", "t"), TableRef("p", "t_rejected")),
        run_id=run_id,
        log=lambda msg: None,
        progress_interval=60,
    )


def ids(con) -> list[int]:
    return sorted(r[0] for r in con.execute("SELECT id FROM p.t").fetchall())


def start(case: Case, folder: Path, on_bad_file: str):
    """A warehouse holding the good file's rows, and the bad file written beside the good one."""
    landing = folder / "landing"
    landing.mkdir(parents=True)
    spec = spec_for(case, on_bad_file)
    good_name, good = good_file(case, spec)
    (landing / good_name).write_bytes(good)
    con = duckdb.connect(str(folder / "w.duckdb"))
    first_spec = spec_for(replace(case, glob=None)) if isinstance(case.expect, Refused) else spec
    first = load(con, first_spec, landing, "run-1")
    assert not first.files_rejected, first.files_rejected
    assert ids(con) == [1, 2]
    (landing / case.file).write_bytes(case.data())
    return con, spec, landing


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path):
    HANDLED[case.name] = False
    con, spec, landing = start(case, tmp_path / "skip", "skip")
    try:
        expect = case.expect
        if isinstance(expect, Refused):
            with pytest.raises(PathOutsideFolder, match=re.escape(expect.message)) as refused:
                load(con, spec, landing, "run-2")
            assert case.glob in str(refused.value)
        else:
            result = load(con, spec, landing, "run-2")
            check(case, expect, con, result)
        assert {1, 2} <= set(ids(con)), "rows loaded before the bad file were lost"
    finally:
        con.close()
    if isinstance(case.expect, Rejected):
        stops_the_load_with_fail(case, tmp_path / "fail")
    HANDLED[case.name] = True


def check(case: Case, expect, con, result: load_result.LoadResult) -> None:
    rejected = con.execute(
        "SELECT source_line, kind, reasons FROM p.t_rejected WHERE run_id = 'run-2' AND source_file = ? ORDER BY "
        "source_line",
        [case.file],
    ).fetchall()
    if isinstance(expect, Rejected):
        whole = {f.file: f.rejected_whole for f in result.files_rejected}
        assert case.file in whole, f"{case.file} was not rejected whole: {result.files}"
        assert re.search(expect.reason, whole[case.file]), whole[case.file]
        assert [(kind, reasons) for _, kind, reasons in rejected] == [("file", [whole[case.file]])]
        assert ids(con) == [1, 2]
    elif isinstance(expect, Duplicate):
        dup = {f.file: f.duplicate_of for f in result.files_duplicate}
        assert f"same content as {expect.of}" in dup[case.file]
        assert not rejected and ids(con) == [1, 2]
    else:
        assert not result.files_rejected, result.files_rejected
        added = con.execute(
            "SELECT * EXCLUDE (_source_file, _load_id) FROM p.t WHERE _load_id = 'run-2' ORDER BY id"
        ).fetchall()
        if isinstance(expect.rows, int):
            assert len(added) == expect.rows, added
        else:
            assert [(r[0], r[1]) for r in added] == expect.rows
        lines = {line: reasons for line, _, reasons in rejected}
        assert set(lines) == set(expect.rejected), lines
        for line, pattern in expect.rejected.items():
            assert any(re.search(pattern, r) for r in lines[line]), (line, lines[line])
        assert result.rows_accepted + result.rows_rejected == result.rows_read


def stops_the_load_with_fail(case: Case, folder: Path) -> None:
    con, spec, landing = start(case, folder, "fail")
    try:
        with pytest.raises(load_result.LoadFailed) as failed:
            load(con, spec, landing, "run-2")
        assert str(failed.value).startswith(f"{case.file}: ")
        assert re.search(case.expect.reason, str(failed.value))
        assert ids(con) == [1, 2]
        assert con.execute("SELECT count(*) FROM p.t_rejected WHERE run_id = 'run-2'").fetchone()[0] == 0
    finally:
        con.close()


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
