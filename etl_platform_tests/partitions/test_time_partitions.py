"""Daily partitions of a SQL source: each partition loads, reruns and backfills on its own,
into the warehouse and into PostgreSQL."""

import sqlite3

import dagster as dg
import psycopg2
import pytest

from etl_platform_tests.conftest import duckdb_writer, materializations
from etl_platform_tests.partitions.sources import (
    DAYS,
    daily_spec,
    fingerprint,
    pipeline_defs,
    postgres_rows,
    source_rows,
    warehouse_rows,
    write_sales,
)


@pytest.fixture(params=["warehouse", "postgres"])
def destination(request, etl_home):
    """How to read the destination's rows (optionally of one day), and its connection settings."""
    if request.param == "warehouse":
        return (lambda day=None: warehouse_rows(etl_home, day)), None
    db = request.getfixturevalue("postgres_database")
    return (lambda day=None: postgres_rows(db, day)), db


def run_partition(defs, key: str, instance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("shop_job").execute_in_process(
        instance=instance, partition_key=key, raise_on_error=False
    )


def test_partitions_load_rerun_and_take_late_rows_without_touching_others(destination, etl_home, tmp_path, instance):
    read, postgres = destination
    source = tmp_path / "shop.sqlite"
    write_sales(source)
    defs = pipeline_defs(daily_spec(postgres=postgres is not None), source, postgres)

    for day in DAYS[:3]:
        result = run_partition(defs, day, instance)
        assert result.success
        meta = materializations(result)["shop/sales"]
        assert meta["partition"] == day and meta["rows_read"] == meta["rows_inserted"] == 40
        assert meta["rows_deleted"] == 0 and meta["window_start"].startswith(day)
    assert fingerprint(read()) == fingerprint(source_rows(source, None)[: 3 * 40])  # EQ; day 4 not loaded
    assert not read(DAYS[3])

    # A rerun replaces its day: same rows, nothing doubled, the other days untouched.
    others = {day: fingerprint(read(day)) for day in (DAYS[0], DAYS[2])}
    rerun = run_partition(defs, DAYS[1], instance)
    assert rerun.success
    meta = materializations(rerun)["shop/sales"]
    assert meta["rows_deleted"] == meta["rows_inserted"] == 40
    assert fingerprint(read(DAYS[1])) == fingerprint(source_rows(source, DAYS[1]))
    assert {day: fingerprint(read(day)) for day in others} == others
    assert len(read()) == 120  # NODUP

    # Late rows arrive for day 2 (and a row of day 2 changes); rerunning day 2 takes exactly them.
    write_sales(source, rows_per_day=7, days=[DAYS[1]], first_id=10_000)
    with sqlite3.connect(source) as db:
        db.execute("UPDATE sales SET amount = 999.5 WHERE id = 41")
    late = run_partition(defs, DAYS[1], instance)
    assert late.success
    assert materializations(late)["shop/sales"]["rows_inserted"] == 47
    assert fingerprint(read(DAYS[1])) == fingerprint(source_rows(source, DAYS[1]))
    assert {day: fingerprint(read(day)) for day in others} == others
    assert len(read()) == 127


def test_a_single_run_backfill_replaces_the_whole_range_in_one_run(destination, etl_home, tmp_path, instance):
    read, postgres = destination
    source = tmp_path / "shop.sqlite"
    write_sales(source)
    defs = pipeline_defs(daily_spec(postgres=postgres is not None, backfill="single_run"), source, postgres)
    assert run_partition(defs, DAYS[1], instance).success  # one day loaded before the backfill
    write_sales(source, rows_per_day=3, days=[DAYS[1]], first_id=20_000)  # and late rows for it

    ranged = defs.resolve_job_def("shop_job").execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[2]},
        raise_on_error=False,
    )
    assert ranged.success
    loads = [e for e in ranged.get_asset_materialization_events() if e.asset_key == dg.AssetKey(["shop", "sales"])]
    assert sorted(e.partition for e in loads) == DAYS[:3]  # one run, every partition of the range
    meta = materializations(ranged)["shop/sales"]
    assert meta["partition"] == f"{DAYS[0]}...{DAYS[2]}"
    assert meta["rows_deleted"] == 40 and meta["rows_inserted"] == 123
    assert fingerprint(read()) == fingerprint([r for r in source_rows(source) if r[1][:10] in DAYS[:3]])
    assert not read(DAYS[3])


def test_a_failed_partition_load_keeps_the_partitions_old_rows(destination, etl_home, tmp_path, instance):
    read, postgres = destination
    source = tmp_path / "shop.sqlite"
    write_sales(source)
    spec = daily_spec(postgres=postgres is not None)
    defs = pipeline_defs(spec, source, postgres)
    for day in DAYS[:2]:
        assert run_partition(defs, day, instance).success
    before = fingerprint(read())

    # The destination refuses a row of day 2 (a constraint the table's owner added) after the
    # load has deleted day 2's rows: the whole partition load rolls back.
    if postgres is None:
        with duckdb_writer(etl_home) as con:
            con.execute("ALTER TABLE shop.sales ALTER COLUMN store SET NOT NULL")
    else:
        with psycopg2.connect(**postgres) as conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE shop.sales ALTER COLUMN store SET NOT NULL")
    with sqlite3.connect(source) as db:
        db.execute("UPDATE sales SET store = NULL WHERE id = 79")
    broken = run_partition(defs, DAYS[1], instance)
    assert not broken.success
    failure = next(e for e in broken.all_events if e.event_type_value == "STEP_FAILURE")
    assert "store" in failure.event_specific_data.error.message.lower()  # says what the destination refused
    assert fingerprint(read()) == before  # ATOM: the partition's old rows are still there
