"""Great Expectations suites as asset checks, through real Dagster runs on the demo data."""

import json
import subprocess
import sys

from etl_platform.quality.gx_run import HIDDEN
from etl_platform_tests.conftest import PROJECT_ROOT, load_definitions, materializations, query, scalar
from etl_platform_tests.quality.conftest import check_evaluations, folder_text, marketing_attributes, marketing_defs

CAMPAIGNS = "marketing_campaigns/campaigns"
DAILY = "marketing_campaigns/daily_channel_performance"


def test_the_demo_pipelines_expectations_pass_with_their_metadata(demo_landing, etl_home, instance):
    job = load_definitions().resolve_job_def("marketing_campaigns_job")
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    checks = check_evaluations(result)
    gx = {k: v for k, v in checks.items() if k.split(":")[1].startswith("expect_")}
    # The YAML's own expectations, the suite file's three, and the one on the transform.
    assert set(gx) == {
        f"{CAMPAIGNS}:expect_column_values_to_not_be_null__campaign",
        f"{CAMPAIGNS}:expect_column_values_to_be_between__spend",
        f"{CAMPAIGNS}:expect_column_values_to_be_in_set__channel",
        f"{CAMPAIGNS}:expect_table_row_count_to_be_between",
        f"{CAMPAIGNS}:expect_column_values_to_be_between__clicks",
        f"{CAMPAIGNS}:expect_column_values_to_be_between__conversions",
        f"{CAMPAIGNS}:expect_column_mean_to_be_between__spend",
        f"{DAILY}:expect_compound_columns_to_be_unique__date__channel",
    }
    assert all(passed for passed, _ in gx.values()), {k: m for k, (p, m) in gx.items() if not p}
    rows = scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns")
    _, spend = gx[f"{CAMPAIGNS}:expect_column_values_to_be_between__spend"]
    assert spend["evaluated_on"] == f"full table ({rows:,} rows)"
    assert spend["unexpected_count"] == 0 and spend["unexpected_percent"] == 0
    assert spend["element_count"] == rows
    _, row_count = gx[f"{CAMPAIGNS}:expect_table_row_count_to_be_between"]
    assert row_count["observed_value"] == rows
    _, mean = gx[f"{CAMPAIGNS}:expect_column_mean_to_be_between__spend"]
    assert (
        abs(mean["observed_value"] - float(scalar(etl_home, "SELECT avg(spend) FROM marketing_campaigns.campaigns")))
        < 0.01
    )
    # The data docs page of the run, linked from each check, is under ETL_HOME.
    docs = spend["data_docs_file"]
    assert docs.startswith(str(etl_home / "gx" / "data_docs")) and docs.endswith(".html")
    page = open(docs).read()
    assert "marketing_campaigns.campaigns" in page and "values must be greater than or equal to" in page
    assert spend["data_docs"] == f"file://{docs}"


def test_a_failed_blocking_expectation_keeps_the_transforms_from_running(demo_landing, etl_home, instance):
    raw = marketing_attributes(
        checks={"max_rejected_fraction": 0.5},
        expectations=[
            {"expect_column_values_to_be_between": {"column": "spend", "max_value": 100}, "blocking": True},
            {"expect_column_values_to_match_regex": {"column": "campaign", "regex": "^[A-Z]"}},
        ],
    )
    result = (
        marketing_defs(raw)
        .resolve_job_def("marketing_campaigns_job")
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    assert not result.success
    built = set(materializations(result))
    assert CAMPAIGNS in built
    assert DAILY not in built and "marketing_campaigns/rejected_rows_by_reason" not in built
    assert not query(etl_home, "SELECT * FROM duckdb_tables() WHERE table_name = 'daily_channel_performance'")

    checks = check_evaluations(result)
    passed, meta = checks[f"{CAMPAIGNS}:expect_column_values_to_be_between__spend"]
    assert not passed
    over = scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns WHERE spend > 100")
    rows = scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns")
    assert meta["unexpected_count"] == over > 0
    assert abs(meta["unexpected_percent"] - 100 * over / rows) < 0.001
    assert len(meta["unexpected_examples"]) == 5 and all(v > 100 for v in meta["unexpected_examples"])
    assert meta["arguments"] == {"column": "spend", "max_value": 100}
    # A non-blocking expectation that passes says so, whatever the blocking one did.
    assert checks[f"{CAMPAIGNS}:expect_column_values_to_match_regex__campaign"][0] is True


def test_a_sensitive_columns_values_never_appear(demo_landing, etl_home, instance):
    raw = marketing_attributes(
        expectations=[
            {"expect_column_values_to_be_in_set": {"column": "campaign", "value_set": ["Nothing like it"]}},
            {"expect_column_distinct_values_to_be_in_set": {"column": "campaign", "value_set": ["Nothing like it"]}},
            {"expect_column_values_to_be_in_set": {"column": "channel", "value_set": ["Search"]}},
        ]
    )
    raw["source"]["columns"]["campaign"]["sensitive"] = True
    result = (
        marketing_defs(raw)
        .resolve_job_def("marketing_campaigns_job")
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    checks = check_evaluations(result)
    campaigns = [r[0] for r in query(etl_home, "SELECT DISTINCT campaign FROM marketing_campaigns.campaigns")]
    rows = scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns")

    passed, in_set = checks[f"{CAMPAIGNS}:expect_column_values_to_be_in_set__campaign"]
    assert not passed and in_set["unexpected_count"] == rows  # counts are shown ...
    assert in_set["observed_value"] == HIDDEN and "unexpected_examples" not in in_set  # ... values are not
    passed, distinct = checks[f"{CAMPAIGNS}:expect_column_distinct_values_to_be_in_set__campaign"]
    assert not passed and distinct["observed_value"] == HIDDEN  # GX observes the distinct values themselves
    shown = json.dumps([m for k, (_, m) in checks.items() if "campaign" in k], default=str)
    docs = folder_text(etl_home / "gx" / "data_docs")
    for name in campaigns:
        assert name not in shown and name not in docs, name
    # A column that is not sensitive shows its examples, in the check and the data docs.
    _, channel = checks[f"{CAMPAIGNS}:expect_column_values_to_be_in_set__channel"]
    assert (
        set(channel["unexpected_examples"]) <= {"Social", "Display", "Video", "Email"}
        and channel["unexpected_examples"]
    )
    assert "Social" in docs or "Display" in docs


def test_a_large_table_is_checked_by_duckdb_aggregates_or_on_a_sample(demo_landing, etl_home, instance, monkeypatch):
    monkeypatch.setenv("ETL_GX_MAX_ROWS", "500")
    raw = marketing_attributes(
        expectations=[
            {"expect_column_values_to_be_between": {"column": "spend", "max_value": 100}},
            {"expect_column_values_to_be_unique": {"column": "campaign"}},
            {"expect_column_max_to_be_between": {"column": "spend", "max_value": 1000}},
            {"expect_column_value_lengths_to_be_between": {"column": "campaign", "min_value": 1}},
        ]
    )
    result = (
        marketing_defs(raw)
        .resolve_job_def("marketing_campaigns_job")
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    checks = check_evaluations(result)
    rows = scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns")
    assert rows > 500
    passed, between = checks[f"{CAMPAIGNS}:expect_column_values_to_be_between__spend"]
    assert not passed
    assert between["evaluated_on"] == f"full table ({rows:,} rows)" and between["evaluated_by"] == "duckdb aggregates"
    assert between["unexpected_count"] == scalar(
        etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns WHERE spend > 100"
    )
    assert all(v > 100 for v in between["unexpected_examples"])
    passed, unique = checks[f"{CAMPAIGNS}:expect_column_values_to_be_unique__campaign"]
    assert not passed and unique["unexpected_count"] == rows  # a few campaigns, each on many rows
    passed, maximum = checks[f"{CAMPAIGNS}:expect_column_max_to_be_between__spend"]
    assert passed and maximum["observed_value"] == float(
        scalar(etl_home, "SELECT max(spend) FROM marketing_campaigns.campaigns")
    )
    passed, lengths = checks[f"{CAMPAIGNS}:expect_column_value_lengths_to_be_between__campaign"]
    assert passed
    assert lengths["evaluated_on"] == "sample of 500 rows" and lengths["evaluated_by"] == "great_expectations"
    assert lengths["element_count"] == 500


def test_loading_definitions_does_not_import_great_expectations(etl_home):
    """GX's import costs seconds; only a step that runs expectations may pay it."""
    code = "import sys, etl_platform.definitions as d; d.defs(); print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
