"""The adapter behaves like the product: the same generated table, loaded by the plain step
function and by the pipeline's real Dagster job, lands the same rows and rejects the same rows."""

import dagster as dg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_platform_tests.conftest import examples
from etl_platform_tests.fidelity import harness, platform
from etl_platform_tests.fidelity.compare import Finding

pytestmark = pytest.mark.fidelity

# One source of each kind; csv also into every destination.
CASES = [
    (s, "warehouse")
    for s in (
        "csv",
        "ndjson",
        "json-array",
        "parquet",
        "xlsx",
        "sqlite",
        "duckdb",
        "postgres",
        "mariadb",
        "rest",
        "s3-csv",
    )
] + [("csv", d) for d in ("postgres", "parquet", "csv")]


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _comparable(stored: platform.Stored) -> list[str]:
    return sorted(repr(sorted(row.items(), key=lambda kv: kv[0])) for row in stored.rows)


def _rejections(rows) -> list[tuple]:
    return sorted((r.source_line, r.kind, tuple(r.reasons or ())) for r in rows)


@pytest.mark.parametrize(("source", "destination"), CASES)
def test_a_dagster_run_lands_what_the_step_function_lands(env, instance, source, destination):
    kind = harness.SOURCE_KINDS[source]
    for needed in (*kind.needs, *(("postgres",) if destination == "postgres" else ())):
        env.services(needed)

    @settings(max_examples=examples(1), phases=harness.phases())
    @given(data=st.data())
    def case(data):
        table = data.draw(harness.table_strategy(kind, max_rows=12), label="table")
        written = harness.write(env, kind, table, env.fresh(), data)
        place = env.destination(destination)
        by_step, by_job = env.fresh(), env.fresh()
        spec = harness.pipeline_spec(written, table, place, schema=env.module, name=by_step, implicit=kind.implicit)
        step = platform.load(
            spec,
            pipeline=by_step,
            schema=env.module,
            table=by_step,
            connection=written.connection,
            destination=place,
            con=env.con,
            run_id=f"run-{by_step}",
        )
        job_spec = harness.pipeline_spec(written, table, place, schema=env.module, name=by_job, implicit=kind.implicit)
        ok, message = platform.dagster_load(
            job_spec,
            pipeline=by_job,
            connection=written.connection,
            destination=place,
            warehouse_path=env.root / "warehouse.duckdb",
            instance=instance,
        )
        findings: list[Finding] = []
        if step.failed != (not ok):
            findings.append(
                Finding(
                    "loud",
                    f"{source}, {destination}: the step {'failed' if step.failed else 'succeeded'}, "
                    f"the Dagster run {'succeeded' if ok else 'failed'}: {step.error or message}",
                    "adapter differs",
                )
            )
        else:
            a, b = (
                platform.stored(place, env.con, env.module, by_step),
                platform.stored(place, env.con, env.module, by_job),
            )
            if _comparable(a) != _comparable(b):
                findings.append(
                    Finding(
                        "loud",
                        f"{source}, {destination}: the step stored {a.rows[:3]}..., the job {b.rows[:3]}...",
                        "adapter differs",
                    )
                )
            ra, rb = platform.rejected(env.con, env.module, by_step), platform.rejected(env.con, env.module, by_job)
            if _rejections(ra) != _rejections(rb):
                findings.append(
                    Finding(
                        "loud",
                        f"{source}, {destination}: the step rejected {_rejections(ra)[:3]}, the job "
                        f"{_rejections(rb)[:3]}",
                        "adapter differs",
                    )
                )
        # Not a case of the summary: this compares the adapter with the product, not with the oracle.
        if findings:
            raise AssertionError("\n".join(f.message for f in findings))

    case()
