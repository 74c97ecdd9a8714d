"""Rejected rows replayed after a rule change or a mapping fix, and exported for people."""

import pytest
import yaml

from etl_platform.cli.main import main
from etl_platform_tests.conftest import cli, materializations, query, scalar
from etl_platform_tests.quality.conftest import marketing_attributes, marketing_defs

SPEND_RULE = "spend is negative"
BAD_DATE = "date: not a valid date in format %Y-%m-%d"
DATE_MISSING = "date is missing"  # a date that does not convert is also missing


def _attributes(fixed: bool) -> dict:
    """The demo pipeline, its dates parsed by a format (so a bad date is rejected with the
    row's raw text), before and after the fix: negative spends allowed (refunds), and the
    export's one impossible date corrected by the mapping."""
    raw = marketing_attributes(expectations=[])
    raw["source"]["columns"]["date"]["format"] = "%Y-%m-%d"
    if fixed:
        raw["rules"] = [r for r in raw["rules"] if r.get("name") != SPEND_RULE]
        raw["source"]["columns"]["date"]["expression"] = "replace(value, '2024-02-30', '2024-02-29')"
    return raw


def _defs_folder(tmp_path, raw: dict):
    folder = tmp_path / "defs"
    (folder / "pipelines" / "marketing_campaigns").mkdir(parents=True)
    (folder / "pipelines" / "marketing_campaigns" / "defs.yaml").write_text(
        yaml.safe_dump({"type": "etl_platform.components.Pipeline", "attributes": raw})
    )
    return folder


def _counts(etl_home) -> tuple[int, int]:
    return (
        scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns"),
        scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns_rejected"),
    )


def test_replay_loads_the_rows_a_fix_accepts_and_keeps_counts_consistent(
    demo_landing, etl_home, instance, tmp_path, capsys
):
    result = (
        marketing_defs(_attributes(fixed=False))
        .resolve_job_def("marketing_campaigns_job")
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    assert result.success
    read = materializations(result)["marketing_campaigns/campaigns"]["rows_read"]
    table_before, rejected_before = _counts(etl_home)
    assert table_before + rejected_before == read  # Q
    fixable = scalar(
        etl_home,
        "SELECT count(*) FROM marketing_campaigns.campaigns_rejected WHERE kind = 'rule' AND list_filter(reasons, "
        "lambda r: r NOT IN (?, ?, ?)) = []",
        [SPEND_RULE, BAD_DATE, DATE_MISSING],
    )
    bad_dates = scalar(
        etl_home,
        "SELECT count(*) FROM marketing_campaigns.campaigns_rejected WHERE list_contains(reasons, ?)",
        [BAD_DATE],
    )
    assert fixable > bad_dates > 0

    defs = _defs_folder(tmp_path, _attributes(fixed=True))
    env = {"ETL_HOME": str(etl_home)}

    # First only the rows of one file, chosen by --where.
    chosen = "source_file = 'campaigns/campaign_export_001.csv'"
    in_chosen = scalar(
        etl_home,
        f"SELECT count(*) FROM marketing_campaigns.campaigns_rejected WHERE kind = 'rule' AND {chosen} "
        "AND list_filter(reasons, lambda r: r NOT IN (?, ?, ?)) = []",
        [SPEND_RULE, BAD_DATE, DATE_MISSING],
    )
    assert 0 < in_chosen < fixable
    assert main(["rejected", "replay", "marketing_campaigns", "--defs", str(defs), "--where", chosen]) == 0
    assert f"{in_chosen:,} now pass" in capsys.readouterr().out
    assert _counts(etl_home) == (table_before + in_chosen, rejected_before - in_chosen)
    # A --where that is not SQL changes nothing and says why.
    with pytest.raises(SystemExit) as bad:
        main(["rejected", "replay", "marketing_campaigns", "--defs", str(defs), "--where", "source_fil = 1"])
    assert "nothing changed" in str(bad.value) and "source_fil" in str(bad.value)
    assert _counts(etl_home) == (table_before + in_chosen, rejected_before - in_chosen)

    # Then all the others, with the console script as a user runs it.
    replayed = cli("etl-platform", "rejected", "replay", "marketing_campaigns", "--defs", str(defs), env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert f"{fixable - in_chosen:,} now pass" in replayed.stdout, replayed.stdout

    table_after, rejected_after = _counts(etl_home)
    assert (table_after, rejected_after) == (table_before + fixable, rejected_before - fixable)
    assert table_after + rejected_after == read  # Q still holds
    # The replayed rows carry their values, their file and a load id of their own.
    assert scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns WHERE spend < 0") > 0
    assert (
        scalar(etl_home, "SELECT count(*) FROM marketing_campaigns.campaigns WHERE date = DATE '2024-02-29'")
        == bad_dates
    )
    assert (
        scalar(
            etl_home,
            "SELECT count(*) FROM marketing_campaigns.campaigns WHERE _load_id LIKE 'replay-%' AND _source_file LIKE "
            "'campaigns/%.csv'",
        )
        == fixable
    )
    # Every row still rejected keeps a reason, its file and line; none for a reason that no longer applies.
    remaining = query(
        etl_home, "SELECT kind, source_file, source_line, reasons FROM marketing_campaigns.campaigns_rejected"
    )
    assert remaining and all(reasons and file and line for _, file, line, reasons in remaining)
    assert not [r for *_, r in remaining if SPEND_RULE in r or BAD_DATE in r]

    # Replaying again finds nothing new: no row is loaded twice.
    assert main(["rejected", "replay", "marketing_campaigns", "--defs", str(defs)]) == 0
    assert "0 now pass" in capsys.readouterr().out
    assert _counts(etl_home) == (table_after, rejected_after)

    assert main(["rejected", "list", "marketing_campaigns", "--defs", str(defs)]) == 0
    assert f"{rejected_after:,} rejected row(s)" in capsys.readouterr().out
