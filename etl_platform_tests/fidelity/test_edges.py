"""Edges that need a world of their own: a CSV dialect the spec leaves out, a NUL inside a CSV
value, and loads made by a process whose local time zone is not UTC."""

import csv
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_platform_tests.conftest import examples
from etl_platform_tests.fidelity import harness, platform, sources
from etl_platform_tests.fidelity.tables import Table, tables
from etl_platform_tests.fidelity.values import PLAIN_TYPES

pytestmark = pytest.mark.fidelity

CANDIDATES = ",;\t|"


def _no_candidate_delimiters(sample, column) -> bool:
    value = sample.value
    return not (isinstance(value, str) and (set(value) & set(CANDIDATES) or "\x00" in value))


DETECTED = harness.SourceKind(
    "csv-detected", "csv", allow=_no_candidate_delimiters, name_allowed=lambda name: not set(name) & set(CANDIDATES)
)


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_a_csv_dialect_left_out_of_the_spec_is_detected(env, delimiter):
    """The spec names no delimiter; values may hold quotes and line breaks, not other delimiters."""

    @settings(max_examples=examples(6), phases=harness.phases())
    @given(data=st.data())
    def case(data):
        table = data.draw(tables(allow=DETECTED.allow, name_allowed=DETECTED.name_allowed, max_rows=30), label="table")
        name = env.fresh()
        folder = env.source_folder / name
        folder.mkdir()
        dialect = sources.CsvDialect(
            f"{delimiter!r}, detected", delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, declare=False
        )
        sources.write_csv_python(table, folder / "data.csv", dialect)
        held, lines = sources.held_from_csv((folder / "data.csv").read_bytes(), delimiter, table)
        written = sources.Written(
            "csv",
            dialect.name,
            {"connection": "src", "files": f"{name}/data.csv"},
            ("local", {"path": str(env.source_folder)}),
            held,
            lines,
            f"{name}/data.csv",
        )
        result = _load_and_judge(env, DETECTED, table, written)
        harness.assert_exact(result, table)

    case()


def _load_and_judge(env, kind, table: Table, written, destination_kind: str = "warehouse") -> harness.CaseResult:
    from etl_platform_tests.fidelity.tally import TALLY

    name = env.fresh()
    destination = env.destination(destination_kind)
    spec = harness.pipeline_spec(written, table, destination, schema=env.module, name=name, implicit=False)
    outcome = platform.load(
        spec,
        pipeline=name,
        schema=env.module,
        table=name,
        connection=written.connection,
        destination=destination,
        con=env.con,
        run_id=f"run-{name}",
    )
    context = f"{kind.name} ({written.variant}), replace, {destination_kind}"
    findings = harness.judge(
        env, table, written, destination, name, outcome, context, implicit=False, source_kind="csv"
    )
    TALLY.case(
        source="csv", destination=destination_kind, mode="replace", findings=findings, test=f"edges[{kind.name}]"
    )
    return harness.CaseResult(findings, context)


def test_a_nul_byte_in_a_csv_file_rejects_the_file_with_its_line_and_loads_nothing_of_it(env):
    """A NUL byte makes a file binary data, not text (README "Safe file intake"): the file is
    rejected whole, naming the line, and nothing of it is loaded: loud, never a changed value."""
    from etl_platform_tests.fidelity.tables import Column
    from etl_platform_tests.fidelity.values import Sample

    table = Table(
        (
            Column(
                "note",
                "note",
                "varchar",
                "text",
                (Sample("fine", "word"), Sample("a\x00b", "nul"), Sample("also fine", "word")),
            ),
        ),
        (1, 2, 3),
    )
    name = env.fresh()
    folder = env.source_folder / name
    folder.mkdir()
    sources.write_csv_python(table, folder / "data.csv", sources.CSV_DIALECTS[0])
    written = sources.Written(
        "csv",
        "comma, CRLF",
        {"connection": "src", "files": f"{name}/data.csv", "csv": {"delimiter": ","}},
        ("local", {"path": str(env.source_folder)}),
        {},
        {},
        f"{name}/data.csv",
    )
    destination = env.destination("warehouse")
    spec = harness.pipeline_spec(written, table, destination, schema=env.module, name=name, implicit=False)
    outcome = platform.load(
        spec,
        pipeline=name,
        schema=env.module,
        table=name,
        connection=written.connection,
        destination=destination,
        con=env.con,
        run_id=f"run-{name}",
    )
    assert outcome.failed and "rejected whole" in outcome.error, outcome
    reasons = env.con.execute(f"SELECT kind, reasons FROM {env.module}.{name}_rejected").fetchall()
    assert [(kind, "NUL byte on line 3" in reasons[0]) for kind, reasons in reasons] == [("file", True)], reasons


@pytest.fixture(scope="module", autouse=True)
def _local_time_zone_is_not_utc():
    """Every load of this module runs with the process's local time zone at -03:30 (DST in summer)."""
    import os

    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/St_Johns"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


TEMPORAL = st.sampled_from(["timestamp", "timestamptz", "date", "time"])


@pytest.mark.parametrize("source", ["csv", "parquet", "postgres"])
def test_a_load_in_a_local_time_zone_other_than_utc_stores_the_same_instants(env, source):
    kind = harness.SOURCE_KINDS[source]
    for needed in (*kind.needs, "postgres"):
        env.services(needed)

    @settings(max_examples=examples(4), phases=harness.phases())
    @given(data=st.data())
    def case(data):
        holders = tuple(
            h
            for h in kind.holders
            if h in ("text", *PLAIN_TYPES) and h in ("text", "timestamp", "timestamptz", "date", "time")
        )
        table = data.draw(
            tables(holders=holders or ("text",), allow=kind.allow, types=TEMPORAL, max_rows=20), label="table"
        )
        result = harness.check_replace(
            env, kind, platform.DESTINATION_KINDS, table, data, test=f"edges[time zone {source}]"
        )
        harness.assert_exact(result, table)

    case()
