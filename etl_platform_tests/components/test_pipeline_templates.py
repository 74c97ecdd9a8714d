"""A pipeline file fills in Dagster's templates as the connections file does: per-environment
settings from the environment, never a secret copied into the definitions."""

import dagster as dg
from dagster.components.testing import create_defs_folder_sandbox
from hypothesis import given
from hypothesis import strategies as st

from etl_platform.components.pipeline import fill_templates
from etl_platform_tests.spec.test_spec_errors import VALID, load_error, write_pipeline

TEMPLATED = VALID.replace(
    "    table: costs\n", "    table: costs\n    rejected_table: \"{{ env('ETL_TEST_REJECTED', 'costs_bad') }}\"\n"
).replace("    files: c/*.csv\n", '    files: "{{ env.ETL_TEST_COSTS_FOLDER }}/*.csv"\n')


def _asset_keys(yaml_text: str) -> set[str]:
    with create_defs_folder_sandbox() as sandbox:
        write_pipeline(sandbox, yaml_text)
        with sandbox.build_all_defs() as defs:
            return {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}


def test_templates_in_a_pipeline_file_are_filled_from_the_environment(etl_home, monkeypatch):
    monkeypatch.setenv("ETL_TEST_COSTS_FOLDER", "costs_in")
    monkeypatch.setenv("ETL_TEST_REJECTED", "costs_refused")
    assert "costs/costs_refused" in _asset_keys(TEMPLATED)
    monkeypatch.delenv("ETL_TEST_REJECTED")
    assert "costs/costs_bad" in _asset_keys(TEMPLATED)  # the template's default


def test_a_template_that_reads_a_secret_is_refused_naming_the_field(etl_home, monkeypatch):
    monkeypatch.setenv("SHOP_API_TOKEN", "tok-0c41-never-shown")
    text = VALID.replace("    table: costs\n", '    table: "{{ env.SHOP_API_TOKEN }}"\n')
    error = load_error(text)
    assert "destination.table: the template reads SHOP_API_TOKEN, which holds a secret" in error
    assert "tok-0c41-never-shown" not in error


def test_a_template_naming_an_unset_variable_without_default_names_the_field(etl_home, monkeypatch):
    monkeypatch.delenv("ETL_TEST_NOT_SET", raising=False)
    error = load_error(VALID.replace("    table: costs\n", "    table: \"{{ env('ETL_TEST_NOT_SET') }}\"\n"))
    assert "destination.table" in error and "ETL_TEST_NOT_SET is not set" in error


# Values without a template keep their type and every character: YAML-parsed scalars pass as they are.
_PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text().filter(lambda t: "{{" not in t),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(_PLAIN)
def test_values_without_a_template_are_left_exactly_as_they_are(value):
    filled = fill_templates(value)
    assert filled == value and type(filled) is type(value)


def test_the_component_validates_with_dagsters_own_loader(etl_home, monkeypatch):
    monkeypatch.setenv("ETL_TEST_COSTS_FOLDER", "costs_in")
    with create_defs_folder_sandbox() as sandbox:
        write_pipeline(sandbox, TEMPLATED)
        with sandbox.build_all_defs() as defs:
            spec = defs.resolve_assets_def(dg.AssetKey(["costs", "source_files"])).specs_by_key[
                dg.AssetKey(["costs", "source_files"])
            ]
    assert "costs_in/*.csv" in str(spec.metadata["source"])


def test_braces_that_are_not_an_env_template_are_refused_not_rendered_empty(etl_home):
    """Jinja renders an unknown name as '' silently: a transform's SQL holding '{{ x }}' would load
    other values with a green run. It is refused, naming the field; a quoted literal still works."""
    sql = "      sql: SELECT day, sum(spend) AS spend FROM costs GROUP BY day\n"
    error = load_error(VALID.replace(sql, "      sql: \"SELECT day, '{{ x }}' AS tag FROM costs\"\n"))
    assert "transforms.0.sql: '{{ x }}' is not an env template" in error
    assert fill_templates("SELECT '{{ '{{' }}x}}' AS tag") == "SELECT '{{x}}' AS tag"
