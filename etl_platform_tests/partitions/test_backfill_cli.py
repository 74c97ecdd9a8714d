"""Backfills and single partitions from the real command lines, on an instance configured by
the project's dagster.yaml: `dagster job backfill` queues one run per partition and the
daemon runs them; `dagster asset materialize --partition` runs one partition at once."""

import os
import re
import subprocess
import time
from pathlib import Path

import dagster as dg

from etl_platform_tests.conftest import BIN, PROJECT_ROOT, cli
from etl_platform_tests.partitions.sources import DAYS, fingerprint, source_rows, warehouse_rows, write_sales

CODE_LOCATION = """\
from pathlib import Path

import dagster as dg

from etl_platform.connectors.connections import as_resource, resource_key
from etl_platform.connectors.registry import build
from etl_platform.location.executor import chosen_executor
from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
from etl_platform.resources.warehouse import WarehouseResource
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import table_names

spec = PipelineSpec.model_validate({spec!r})
source = build("src", "sqlite", {{"path": str(Path(__file__).parent / "shop.sqlite")}})
ctx = PipelineContext(name="shop", names=table_names(spec, "shop"), defined_at={{}}, connection_kind="sqlite")
defs = dg.Definitions.merge(
    build_pipeline_defs(spec, ctx),
    dg.Definitions(
        resources={{"warehouse": WarehouseResource(), resource_key("src"): as_resource(source)}},
        executor=chosen_executor(),  # in-process, as every job of the project
    ),
)
"""


def code_location(folder: Path) -> Path:
    from etl_platform_tests.partitions.sources import daily_spec

    write_sales(folder / "shop.sqlite")
    path = folder / "shop_defs.py"
    path.write_text(CODE_LOCATION.format(spec=daily_spec()))
    return path


def dagster_home(folder: Path) -> Path:
    home = folder / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").symlink_to(PROJECT_ROOT / "dagster.yaml")
    return home


def backfill(defs_file: Path, env: dict, partitions: list[str]) -> str:
    launched = cli(
        "dagster",
        "job",
        "backfill",
        "-f",
        str(defs_file),
        "-j",
        "shop_job",
        "--partitions",
        ",".join(partitions),
        "--noprompt",
        env=env,
        cwd=defs_file.parent,
    )
    assert launched.returncode == 0, launched.stdout + launched.stderr
    return re.search(r"Launched backfill job `(\w+)`", launched.stdout).group(1)


def wait_for_runs(
    instance: dg.DagsterInstance, backfill_id: str, count: int, timeout: float = 240
) -> list[dg.DagsterRun]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        if len(runs) == count and all(r.is_finished for r in runs):
            return runs
        time.sleep(0.5)
    raise AssertionError(
        f"backfill {backfill_id}: runs not finished in {timeout}s: {[(r.run_id, r.status) for r in runs]}"
    )


def test_backfill_through_the_daemon_then_rerun_one_partition_from_the_cli(etl_home, tmp_path):
    defs_file = code_location(tmp_path)
    home = dagster_home(tmp_path)
    env = {"DAGSTER_HOME": str(home)}
    instance = dg.DagsterInstance.from_config(str(home))
    wanted = DAYS[:3]
    expected = fingerprint([r for r in source_rows(tmp_path / "shop.sqlite") if r[1][:10] in wanted])

    backfill_id = backfill(defs_file, env, wanted)
    queued = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert sorted(r.tags["dagster/partition"] for r in queued) == wanted
    assert {r.status for r in queued} == {dg.DagsterRunStatus.QUEUED}  # the daemon runs them

    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-f", str(defs_file)],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        runs = wait_for_runs(instance, backfill_id, 3)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    assert fingerprint(warehouse_rows(etl_home)) == expected  # EQ

    # One partition again, from the command line: replaced, nothing doubled, nothing else touched.
    rerun = cli(
        "dagster",
        "asset",
        "materialize",
        "-f",
        str(defs_file),
        "--select",
        "shop/sales,shop/sales_rejected",
        "--partition",
        DAYS[1],
        env=env,
        cwd=tmp_path,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert fingerprint(warehouse_rows(etl_home)) == expected  # NODUP
    event = instance.get_latest_materialization_event(dg.AssetKey(["shop", "sales"]))
    assert event.asset_materialization.partition == DAYS[1]
    metadata = event.asset_materialization.metadata
    assert metadata["rows_deleted"].value == metadata["rows_inserted"].value == 40
