"""A bad pipeline spec fails at load with the file, line and field that is wrong."""

from pathlib import Path

import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox

VALID = """\
type: etl_platform.components.Pipeline
attributes:
  source:
    files: c/*.csv
    columns:
      day: {from: Day, type: date}
      spend: {type: "decimal(10,2)"}
  rules:
    - check: spend >= 0
  destination:
    table: costs
  transforms:
    - name: daily
      sql: SELECT day, sum(spend) AS spend FROM costs GROUP BY day
"""


def write_pipeline(sandbox, yaml_text: str) -> None:
    (sandbox.defs_folder_path / "resources.py").write_text("from etl_platform.defs.resources import resources\n")
    folder = sandbox.defs_folder_path / "pipelines" / "costs"
    folder.mkdir(parents=True)
    (folder / "defs.yaml").write_text(yaml_text)


def load_error(yaml_text: str) -> str:
    """Load a one-pipeline defs folder; return the whole error text Dagster reports."""
    with create_defs_folder_sandbox() as sandbox:
        write_pipeline(sandbox, yaml_text)
        with pytest.raises(Exception) as raised:
            with sandbox.build_all_defs():
                pass
    return error_text(raised.value)


def error_text(err: BaseException | None) -> str:
    """An error with every error it was raised from or during, one per line."""
    messages = []
    while err is not None:
        messages.append(str(err))
        err = err.__cause__ or err.__context__
    return "\n".join(messages)


def test_the_valid_spec_loads(etl_home):
    with create_defs_folder_sandbox() as sandbox:
        write_pipeline(sandbox, VALID)
        with sandbox.build_all_defs() as defs:
            keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {"costs/source_files", "costs/costs", "costs/costs_rejected", "costs/daily"}


@pytest.mark.parametrize(
    ("change", "line", "field", "says"),
    [
        pytest.param(("  source:", "  sourse:"), 3, "sourse", "xtra", id="unknown key"),
        pytest.param(
            ('type: "decimal(10,2)"', 'type: "decimal(10,2)x"'),
            7,
            "attributes.source.columns.spend.type",
            "pattern",
            id="bad type name",
        ),
        pytest.param(
            ("    - check: spend >= 0", "    - check: [spend]"),
            9,
            "attributes.rules.0.check",
            "string",
            id="wrong type",
        ),
        pytest.param(("  destination:\n    table: costs\n", ""), 2, "destination", "required", id="missing field"),
        pytest.param(
            ("FROM costs", "FROM cost"),
            14,
            "attributes.transforms.0.sql",
            "refers to table 'cost', which this pipeline does not produce; did you mean 'costs'",
            id="bad SQL reference",
        ),
        pytest.param(("spend >= 0", "spent >= 0"), 9, "attributes.rules.0.check", "spent", id="rule on unknown column"),
        pytest.param(
            ("GROUP BY day", "GROUP BY day; DROP TABLE costs"),
            14,
            "attributes.transforms.0.sql",
            "exactly one SELECT",
            id="two statements",
        ),
        pytest.param(
            ("  rules:", "  sync: {mode: merge}\n  rules:"),
            8,
            "attributes.sync",
            "merge' needs primary_key",
            id="merge without key",
        ),
        pytest.param(
            ("  rules:", "  sync: {mode: merge, primary_key: [id]}\n  rules:"),
            8,
            "attributes.sync.primary_key.0",
            "'id' is not a target column",
            id="key not a column",
        ),
        pytest.param(
            ("FROM costs GROUP BY day", "FROM weekly GROUP BY day\n    - name: weekly\n      sql: SELECT * FROM daily"),
            14,
            "attributes.transforms.0.sql",
            "cycle: daily -> weekly -> daily",
            id="transforms in a cycle",
        ),
    ],
)
def test_spec_error_names_file_line_and_field(etl_home, change, line, field, says):
    old, new = change
    assert old in VALID
    message = load_error(VALID.replace(old, new, 1))
    assert f"costs/defs.yaml:{line}" in message
    assert field in message
    assert says in message


def test_mapping_to_a_column_the_files_do_not_have_is_reported_by_validation(etl_home: Path, monkeypatch):
    (etl_home / "landing" / "c").mkdir(parents=True)
    (etl_home / "landing" / "c" / "export.csv").write_text("Date,spend\n2024-01-01,3\n")
    monkeypatch.setenv("ETL_VALIDATE_FILES", "1")  # as `etl-platform pipelines validate` sets it
    message = load_error(VALID)
    assert "costs/defs.yaml:6" in message
    assert "attributes.source.columns.day.from" in message
    assert "column 'Day' is not in the 1 latest file(s) matching 'c/*.csv'; did you mean 'Date'?" in message


@pytest.mark.parametrize(
    "bad",
    [b"", b"Date,spend\n2024-01-01,3\n", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"],
    ids=["an empty file", "a renamed header", "a PDF named .csv"],
)
def test_no_file_in_a_landing_folder_keeps_the_code_location_from_loading(etl_home: Path, bad: bytes):
    folder = etl_home / "landing" / "c"
    folder.mkdir(parents=True)
    for name in ("1.csv", "2.csv", "3.csv"):
        (folder / name).write_bytes(bad)
    with create_defs_folder_sandbox() as sandbox:
        write_pipeline(sandbox, VALID)
        with sandbox.build_all_defs() as defs:
            assert defs.resolve_asset_graph().has(dg.AssetKey(["costs", "costs"]))


def test_one_bad_file_among_good_ones_does_not_break_the_code_location(etl_home: Path):
    folder = etl_home / "landing" / "c"
    folder.mkdir(parents=True)
    (folder / "1.csv").write_text("Day,spend\n2024-01-01,3\n")
    (folder / "2.csv").write_text("something else entirely\n")
    with create_defs_folder_sandbox() as sandbox:
        write_pipeline(sandbox, VALID)
        with sandbox.build_all_defs() as defs:
            assert defs.resolve_asset_graph().has(dg.AssetKey(["costs", "costs"]))


CONNECTIONS = """\
type: etl_platform.components.Connections
attributes:
  connections:
    shop_db:
      kind: postgres
      host: 127.0.0.1
      database: shop
      user: etl
      password: {env: SHOP_DB_PASSWORD}
"""

LAKE = """\
    lake:
      kind: local
      path: /tmp/lake
"""

API = """\
    api:
      kind: rest
      base_url: https://api.example.com
"""

DB_PIPELINE = """\
type: etl_platform.components.Pipeline
attributes:
  source:
    connection: shop_db
    table: public.orders
  sync: {mode: incremental, primary_key: [id], cursor: updated_at}
  destination:
    table: orders
"""


def _load_with_connections(connections: str, pipeline: str):
    with create_defs_folder_sandbox() as sandbox:
        write_pipeline(sandbox, pipeline)
        (sandbox.defs_folder_path / "connections").mkdir()
        (sandbox.defs_folder_path / "connections" / "defs.yaml").write_text(connections)
        with sandbox.build_all_defs() as defs:
            return defs.resolve_asset_graph(), defs.resources


def test_a_declared_connection_becomes_a_resource_with_its_secret_as_a_reference(etl_home, monkeypatch):
    monkeypatch.setenv("SHOP_DB_PASSWORD", "s3cret-value")
    graph, resources = _load_with_connections(CONNECTIONS, DB_PIPELINE)
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} >= {"costs/source", "costs/orders"}
    resource = resources["connection_shop_db"]
    assert resource.kind == "postgres" and '"env": "SHOP_DB_PASSWORD"' in resource.options
    assert "s3cret-value" not in resource.options
    assert "${SHOP_DB_PASSWORD}" in resource.connector().describe()


@pytest.mark.parametrize(
    ("connections", "pipeline", "says"),
    [
        pytest.param(
            CONNECTIONS,
            DB_PIPELINE.replace("shop_db", "shop_dbx"),
            "unknown connection 'shop_dbx'; did you mean 'shop_db'",
            id="unknown connection",
        ),
        pytest.param(
            CONNECTIONS,
            DB_PIPELINE.replace("table: public.orders", "files: x/*.csv\n    columns: {id: {type: bigint}}"),
            "is a postgres connection: the source needs table or query",
            id="files from a database",
        ),
        pytest.param(
            CONNECTIONS.replace("kind: postgres", "kind: oracle"),
            DB_PIPELINE,
            "unknown connection kind 'oracle'",
            id="unknown kind",
        ),
        pytest.param(
            CONNECTIONS.replace("password: {env: SHOP_DB_PASSWORD}", "password: plaintext"),
            DB_PIPELINE,
            "connections.shop_db.password",
            id="plaintext password",
        ),
        pytest.param(
            CONNECTIONS.replace("{env: SHOP_DB_PASSWORD}", "\"{{ env('HOME') }}\""),
            DB_PIPELINE,
            "connections.shop_db.password",
            id="password from a template",
        ),
        pytest.param(
            CONNECTIONS.replace("shop_db:", "warehouse:"),
            DB_PIPELINE,
            "connection name 'warehouse' is taken by the built-in warehouse connection",
            id="reserved name",
        ),
        pytest.param(
            CONNECTIONS + LAKE,
            DB_PIPELINE + "    connection: lakes",
            "attributes.destination.connection: unknown connection 'lakes'; did you mean 'lake'",
            id="unknown destination",
        ),
        pytest.param(
            CONNECTIONS,
            DB_PIPELINE + "    connection: landing",
            "the landing folder is where files arrive",
            id="landing as destination",
        ),
        pytest.param(
            CONNECTIONS + API,
            DB_PIPELINE + "    connection: api",
            "connection 'api' is a rest connection; a pipeline loads into the warehouse or a postgres, local, s3 "
            "connection",
            id="rest destination",
        ),
        pytest.param(
            CONNECTIONS,
            DB_PIPELINE + "    format: csv",
            "attributes.destination.format: format is for file destinations (local or s3), not warehouse",
            id="format for the warehouse",
        ),
        pytest.param(
            CONNECTIONS + LAKE,
            DB_PIPELINE.replace(
                "table: public.orders",
                "table: public.orders\n    columns: {id: {type: bigint}, updated_at: {type: timestamp}}",
            )
            + "    connection: lake\n    partition_by: [region]",
            "attributes.destination.partition_by.0: unknown column 'region'",
            id="partition by an unknown column",
        ),
        pytest.param(
            CONNECTIONS,
            DB_PIPELINE + "    connection: shop_db\n  transforms:\n    - {name: daily, sql: SELECT * FROM orders}",
            "attributes.transforms: transforms are built in the warehouse, and this pipeline loads into 'shop_db'",
            id="transforms outside the warehouse",
        ),
    ],
)
def test_connection_errors_are_located(etl_home, connections, pipeline, says):
    with pytest.raises(Exception) as raised:
        _load_with_connections(connections, pipeline)
    assert says in error_text(raised.value)
