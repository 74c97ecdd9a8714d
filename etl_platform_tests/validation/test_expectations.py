"""Bad expectations fail when definitions load, naming the file, line and field."""

import json

import pytest
from dagster.components.testing import create_defs_folder_sandbox

from etl_platform.quality.catalog import CATALOG, build_catalog, expectation_kinds
from etl_platform_tests.spec.test_spec_errors import VALID, error_text, load_error, write_pipeline

EXPECTATIONS_AT = VALID.count("\n") + 2  # the section is appended: its first entry is on this line


def _with(expectations: str) -> str:
    return VALID + "  expectations:\n" + expectations


@pytest.mark.parametrize(
    "expectations, line, field, says",
    [
        (
            "    - expect_column_values_to_be_betwen: {column: spend, min_value: 0}\n",
            0,
            "expectations.0.expect_column_values_to_be_betwen",
            "unknown expectation 'expect_column_values_to_be_betwen'; did you mean "
            "'expect_column_values_to_be_between'?",
        ),
        (
            "    - expect_column_values_to_not_be_null: {column: spent}\n",
            0,
            "expectations.0.expect_column_values_to_not_be_null.column",
            "table costs has no column 'spent'; did you mean 'spend'?",
        ),
        (
            "    - expect_table_row_count_to_be_between: {min_value: 1}\n"
            "    - expect_column_values_to_be_between:\n        column: spend\n        minimum: 0\n",
            3,
            "expectations.1.expect_column_values_to_be_between.minimum",
            "expect_column_values_to_be_between has no argument 'minimum'",
        ),
        (
            "    - expect_column_values_to_be_in_set: {column: spend, value_set: 5}\n",
            0,
            "expectations.0.expect_column_values_to_be_in_set.value_set",
            "value_set must be array, not integer (5)",
        ),
        (
            "    - expect_column_values_to_be_in_set: {column: spend}\n",
            0,
            "expectations.0.expect_column_values_to_be_in_set",
            "expect_column_values_to_be_in_set needs value_set",
        ),
        (
            "    - asset: weekly\n      expect_table_row_count_to_be_between: {min_value: 1}\n",
            0,
            "expectations.0.asset",
            "'weekly' is not a table of this pipeline",
        ),
        (
            "    - suite: suites/missing.json\n",
            0,
            "expectations.0.suite",
            "cannot read suite file",
        ),
    ],
)
def test_a_bad_expectation_names_file_line_and_field(etl_home, expectations, line, field, says):
    text = load_error(_with(expectations))
    assert f"defs.yaml:{EXPECTATIONS_AT + line} - attributes.{field}: {says}" in text, text


def test_a_suite_file_is_checked_and_its_expectations_become_checks(etl_home):
    suite = {
        "name": "costs",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "day"}},
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "spend", "min_value": 0}},
        ],
    }
    with create_defs_folder_sandbox() as sandbox:
        write_pipeline(sandbox, _with("    - suite: suites/costs.json\n      blocking: true\n"))
        folder = sandbox.defs_folder_path / "pipelines" / "costs"
        (folder / "suites").mkdir()
        (folder / "suites" / "costs.json").write_text(json.dumps(suite))
        with sandbox.build_all_defs() as defs:
            specs = {spec.name: spec for checks in defs.asset_checks or [] for spec in checks.check_specs}
        assert {"expect_column_values_to_not_be_null__day", "expect_column_values_to_be_between__spend"} <= set(specs)
        assert specs["expect_column_values_to_be_between__spend"].blocking

        suite["expectations"][1]["kwargs"]["column"] = "amount"
        (folder / "suites" / "costs.json").write_text(json.dumps(suite))
        with pytest.raises(Exception) as raised:
            with sandbox.build_all_defs():
                pass
    text = error_text(raised.value)
    assert f"defs.yaml:{EXPECTATIONS_AT} - attributes.expectations.0.suite: suites/costs.json: " in text
    assert "expectations[1].expect_column_values_to_be_between.column: table costs has no column 'amount'" in text


def test_the_catalog_matches_the_installed_great_expectations():
    """The spec is checked against a catalog kept beside the code (GX is slow to import);
    after an upgrade, regenerate it with `python -m etl_platform.quality.catalog`."""
    assert json.loads(CATALOG.read_text()) == json.loads(json.dumps(build_catalog()))
    assert "expect_column_values_to_be_between" in expectation_kinds()


def test_a_misspelt_key_of_an_entry_is_refused_with_its_line(etl_home):
    text = load_error(_with("    - expect_column_values_to_not_be_null: {column: spend}\n      blocked: true\n"))
    assert "attributes.expectations.0.blocked at " in text and f"defs.yaml:{EXPECTATIONS_AT + 1}" in text
    assert "Extra inputs are not permitted" in text
