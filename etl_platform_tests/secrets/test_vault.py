"""The encrypted vault: key strength, tampering, password change, rotation, crash safety,
the CLI, and a canary password that appears nowhere after pipelines used it."""

import base64
import json
import os
import subprocess
import threading
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from etl_platform.connectors.connections import as_resource, resource_key
from etl_platform.connectors.registry import build
from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
from etl_platform.resources.mlflow import MLflowResource
from etl_platform.resources.warehouse import WarehouseResource
from etl_platform.secrets import vault
from etl_platform.spec.errors import SpecLocator
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import table_names
from etl_platform.validation.expectations import resolve_expectations
from etl_platform_tests.conftest import BIN, PROJECT_ROOT

PASSWORD = "correct horse battery staple"


@pytest.fixture
def vault_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "vault.json"
    monkeypatch.setenv("ETL_VAULT_PATH", str(path))
    monkeypatch.delenv(vault.PASSWORD_FILE_ENV, raising=False)
    monkeypatch.setenv(vault.PASSWORD_ENV, PASSWORD)
    vault._unlocking.clear()
    created = vault.create(PASSWORD, path)
    for name, value in {"shop_db_password": "pg-secret-1", "api_token": "tok-2", "empty": ""}.items():
        created.set(name, value)
    vault.write(created, PASSWORD)
    return path


def _entries(path: Path) -> dict[str, str]:
    return json.loads(path.read_text())["entries"]


def test_a_new_vault_derives_its_key_at_current_strength_with_a_random_salt(tmp_path):
    first, second = (json.loads(vault.create(PASSWORD, tmp_path / n).path.read_text()) for n in ("a.json", "b.json"))
    for content in (first, second):
        kdf = content["kdf"]
        assert (kdf["name"], kdf["n"], kdf["r"], kdf["p"], kdf["length"]) == ("scrypt", 2**17, 8, 1, 32)
        assert len(base64.b64decode(kdf["salt"])) == 16
    assert first["kdf"]["salt"] != second["kdf"]["salt"]
    assert oct((tmp_path / "a.json").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(vault.VaultError, match="at least 12 characters"):
        vault.create("short", tmp_path / "c.json")


def test_entries_decrypt_only_with_the_right_password(vault_file):
    opened = vault.unlock(PASSWORD, vault_file)
    assert {n: opened.get(n) for n in opened.names()} == {
        "api_token": "tok-2",
        "empty": "",
        "shop_db_password": "pg-secret-1",
    }
    assert "pg-secret-1" not in vault_file.read_text()
    with pytest.raises(vault.WrongPassword, match="wrong master password"):
        vault.unlock(PASSWORD + "!", vault_file)


VAULT_CONNECTIONS = """\
type: etl_platform.components.Connections
attributes:
  connections:
    shop_db:
      kind: postgres
      host: 127.0.0.1
      database: shop
      user: etl
      password: {secret: shop_db_password}
"""


def _load_connections(connections: str) -> dict:
    from dagster.components.testing import create_defs_folder_sandbox

    with create_defs_folder_sandbox() as sandbox:
        (sandbox.defs_folder_path / "connections").mkdir()
        (sandbox.defs_folder_path / "connections" / "defs.yaml").write_text(connections)
        with sandbox.build_all_defs() as defs:
            return defs.resources


def test_the_code_location_unlocks_the_vault_as_it_loads(vault_file, monkeypatch):
    derived = []
    real_unlock = vault.unlock
    monkeypatch.setattr(vault, "unlock", lambda *a, **k: derived.append(1) or real_unlock(*a, **k))
    resources = _load_connections(VAULT_CONNECTIONS)
    assert '"secret": "shop_db_password"' in resources["connection_shop_db"].options
    assert vault._unlocking[vault_file][1].result(timeout=30)  # unwrapped in the background at load
    assert vault.lookup("shop_db_password") == "pg-secret-1" and vault.lookup("api_token") == "tok-2"
    assert len(derived) == 1  # the key was derived once, at load, not again by the lookups


def test_a_referenced_entry_missing_from_the_vault_fails_the_load_where_it_is_referenced(vault_file):
    with pytest.raises(Exception) as raised:
        _load_connections(VAULT_CONNECTIONS.replace("shop_db_password", "shop_db_pasword"))
    text = str(raised.value) + str(raised.value.__cause__)
    assert "connections/defs.yaml:9 - attributes.connections.shop_db.password" in text
    assert "has no entry 'shop_db_pasword'; add it with `etl-platform vault set shop_db_pasword`" in text


def test_a_wrong_master_password_fails_each_lookup_with_one_clear_error(vault_file, monkeypatch):
    monkeypatch.setenv(vault.PASSWORD_ENV, PASSWORD + " but wrong")
    _load_connections(VAULT_CONNECTIONS)  # loads: pipelines that need no secret still run
    for _ in range(2):
        with pytest.raises(vault.WrongPassword, match=r"vault entry 'shop_db_password': wrong master password"):
            vault.lookup("shop_db_password")


def _flipped(token: str, position: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[position] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode()


def test_every_flipped_byte_truncation_or_foreign_token_is_refused(vault_file, tmp_path):
    opened = vault.unlock(PASSWORD, vault_file)
    token = opened.entries["shop_db_password"]
    raw_length = len(base64.urlsafe_b64decode(token))
    for position in range(raw_length):
        opened.entries["shop_db_password"] = _flipped(token, position)
        with pytest.raises(vault.Tampered):
            opened.get("shop_db_password")
    for length in range(len(token)):
        opened.entries["shop_db_password"] = token[:length]
        with pytest.raises(vault.Tampered):
            opened.get("shop_db_password")
    # The same name in another vault with the same password: its token is refused here.
    other = vault.create(PASSWORD, tmp_path / "other.json")
    other.set("shop_db_password", "pg-secret-1")
    opened.entries["shop_db_password"] = other.entries["shop_db_password"]
    with pytest.raises(vault.Tampered, match="another vault"):
        opened.get("shop_db_password")
    # A token moved to another name of the same vault is refused too.
    opened.entries["shop_db_password"] = opened.entries["api_token"]
    with pytest.raises(vault.Tampered, match="another entry's value"):
        opened.get("shop_db_password")


def test_damaged_wrapped_keys_or_kdf_settings_fail_as_one_clear_error(vault_file):
    content = json.loads(vault_file.read_text())
    for position in (0, 9, 40, -1):
        damaged = dict(content, data_keys=_flipped(content["data_keys"], position))
        vault_file.write_text(json.dumps(damaged))
        with pytest.raises(vault.WrongPassword):
            vault.unlock(PASSWORD, vault_file)
    vault_file.write_text(json.dumps(dict(content, kdf=dict(content["kdf"], n=2**14))))
    with pytest.raises(vault.WrongPassword):
        vault.unlock(PASSWORD, vault_file)
    vault_file.write_text("{not json")
    with pytest.raises(vault.Tampered, match="cannot be read"):
        vault.unlock(PASSWORD, vault_file)


def test_change_password_rewraps_and_the_old_password_stops_working(vault_file):
    before = json.loads(vault_file.read_text())
    vault.change_password(PASSWORD, "a new long master password", vault_file)
    after = json.loads(vault_file.read_text())
    assert after["entries"] == before["entries"]  # re-wrap only
    assert after["kdf"]["salt"] != before["kdf"]["salt"]
    with pytest.raises(vault.WrongPassword):
        vault.unlock(PASSWORD, vault_file)
    assert vault.unlock("a new long master password", vault_file).get("api_token") == "tok-2"


def test_rotate_reencrypts_every_entry_under_a_new_data_key(vault_file):
    before = _entries(vault_file)
    old_keys = vault.unlock(PASSWORD, vault_file).data_keys
    with vault.changing(PASSWORD, vault_file) as opened:
        opened.rotate()
    reopened = vault.unlock(PASSWORD, vault_file)
    assert reopened.data_keys != old_keys and len(reopened.data_keys) == 1
    assert all(_entries(vault_file)[n] != before[n] for n in before)
    assert {n: reopened.get(n) for n in reopened.names()} == {
        "api_token": "tok-2",
        "empty": "",
        "shop_db_password": "pg-secret-1",
    }
    stale = vault.Vault(vault_file, reopened.kdf, old_keys, _entries(vault_file))
    with pytest.raises(vault.Tampered):
        stale.get("api_token")  # the old data key opens nothing any more


def test_a_crash_before_the_rename_leaves_the_old_vault_whole(vault_file, monkeypatch):
    before = vault_file.read_bytes()

    def crash(src, dst):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        with vault.changing(PASSWORD, vault_file) as opened:
            opened.set("new_entry", "value")
    monkeypatch.undo()
    assert vault_file.read_bytes() == before
    assert not list(vault_file.parent.glob(".vault.json.*.tmp"))
    assert vault.unlock(PASSWORD, vault_file).get("shop_db_password") == "pg-secret-1"


def test_concurrent_writers_lose_no_entry(vault_file):
    def add(prefix):
        for i in range(3):
            with vault.changing(PASSWORD, vault_file) as opened:
                opened.set(f"{prefix}_{i}", prefix)

    threads = [threading.Thread(target=add, args=(p,)) for p in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {f"{p}_{i}" for p in "ab" for i in range(3)} <= set(vault.entry_names(vault_file))


def _cli(*args, stdin: str = "", env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "etl-platform"), "vault", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=PROJECT_ROOT,
        timeout=120,
    )


def test_the_cli_reads_values_from_stdin_and_lists_names_only(tmp_path):
    env = {
        "ETL_VAULT_PATH": str(tmp_path / "v.json"),
        "ETL_MASTER_PASSWORD_FILE": str(tmp_path / "pw"),
        "ETL_MASTER_PASSWORD": "",
    }
    created = _cli("init", "--generate-password-file", str(tmp_path / "pw"), env=env)
    assert created.returncode == 0, created.stderr
    assert oct((tmp_path / "pw").stat().st_mode & 0o777) == "0o600"
    assert _cli("set", "db_password", stdin="value-from-stdin-77\n", env=env).stdout.strip() == "stored db_password"
    listed = _cli("list", env=env)
    assert listed.stdout.strip() == "db_password" and "value-from-stdin-77" not in listed.stdout
    assert _cli("rotate", env=env).returncode == 0
    wrong = _cli("delete", "db_password", env={**env, "ETL_MASTER_PASSWORD": "not the password at all"})
    assert wrong.returncode == 1 and wrong.stderr.count("\n") == 1 and "wrong master password" in wrong.stderr
    changed = _cli("change-password", env={**env, "ETL_NEW_MASTER_PASSWORD": "the second master password"})
    assert changed.returncode == 0, changed.stderr
    assert _cli("list", env=env).returncode == 0  # names need no password
    assert _cli("delete", "db_password", env=env).returncode == 1  # the password file holds the old one
    new = {**env, "ETL_MASTER_PASSWORD": "the second master password"}
    assert _cli("delete", "db_password", env=new).returncode == 0
    assert _cli("list", env=new).stdout.strip() == "the vault is empty"


# --- the canary ------------------------------------------------------------------------------


def _pipeline(name: str, secret: str, server: dict) -> dg.Definitions:
    """A PostgreSQL source read with a vault secret, checked by Great Expectations and trained on,
    so the canary has every chance to reach GX results and data docs and the MLflow store."""
    spec = PipelineSpec.model_validate(
        {
            "source": {
                "connection": "dwh",
                "table": "public.orders",
                "columns": {
                    "id": {"type": "bigint"},
                    "note": {"type": "varchar"},
                    "amount": {"type": "double"},
                    "qty": {"type": "bigint"},
                },
            },
            "destination": {"table": "orders"},
            "expectations": [
                {"expect_column_values_to_not_be_null": {"column": "note"}},
                {"expect_column_values_to_be_between": {"column": "amount", "min_value": 0}},
            ],
            "train": {
                "target": "amount",
                "features": {"qty": "numeric"},
                "estimator": "sklearn.linear_model.LinearRegression",
                "metrics": ["r2"],
            },
            "retries": {"max_retries": 0},
        }
    )
    connector = build(
        "dwh",
        "postgres",
        {
            "host": server["host"],
            "port": server["port"],
            "database": server["dbname"],
            "user": server["user"],
            "password": {"secret": secret},
            "connect_timeout_seconds": 5,
        },
    )
    names = table_names(spec, name)
    expectations = resolve_expectations(spec, SpecLocator(None, fallback=name), Path("."), names)
    ctx = PipelineContext(name=name, names=names, defined_at={}, connection_kind="postgres", expectations=expectations)
    resources = {
        "warehouse": WarehouseResource(),
        "mlflow": MLflowResource(),
        resource_key("dwh"): as_resource(connector),
    }
    return dg.Definitions.merge(build_pipeline_defs(spec, ctx), dg.Definitions(resources=resources))


def _hits(folder: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n!r}" for n in needles if n in data]
    return found


@pytest.mark.parametrize("storage", ["sqlite", "postgres"])
def test_a_canary_password_appears_nowhere_after_a_good_and_a_failed_run(
    storage, password_postgres, vault_file, etl_home, tmp_path, request
):
    server = password_postgres
    with psycopg2.connect(**server) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS orders")
        cur.execute("CREATE TABLE orders (id BIGINT PRIMARY KEY, note TEXT, amount DOUBLE PRECISION, qty BIGINT)")
        cur.execute(
            "INSERT INTO orders SELECT g, 'order ' || g, (g % 7) * 2.5 + 1, g % 7 FROM generate_series(1, 500) g"
        )
    wrong = server["password"][::-1]  # a second canary: sent, refused by the server
    with vault.changing(PASSWORD, vault_file) as opened:
        opened.set("dwh_password", server["password"])
        opened.set("dwh_wrong_password", wrong)
    overrides = {}
    if storage == "postgres":
        db = request.getfixturevalue("postgres_database")
        overrides = {
            "storage": {
                "postgres": {
                    "postgres_db": {
                        "hostname": db["host"],
                        "port": db["port"],
                        "username": db["user"],
                        "password": db["password"],
                        "db_name": db["dbname"],
                        "scheme": "postgresql+psycopg2",  # as deploy/dagster.yaml sets it
                    }
                }
            }
        }
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    with dg.instance_for_test(temp_dir=str(dagster_home), overrides=overrides) as instance:
        good_defs = _pipeline("good", "dwh_password", server)
        good = good_defs.resolve_job_def("good_job").execute_in_process(instance=instance, raise_on_error=False)
        trained = good_defs.resolve_job_def("good_train_job").execute_in_process(
            instance=instance, raise_on_error=False
        )
        bad = (
            _pipeline("bad", "dwh_wrong_password", server)
            .resolve_job_def("bad_job")
            .execute_in_process(instance=instance, raise_on_error=False)
        )
        assert good.success and trained.success and not bad.success
        checks = [e for e in good.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert len(checks) >= 2  # the GX results are in the event log that is searched below
        [failure] = [e for e in bad.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        assert "password authentication failed" in failure.step_failure_data.error.message
        needles = [server["password"], wrong]
        runs = instance.get_runs()
        assert len(runs) == 3 and not any(n in json.dumps(r.run_config) for r in runs for n in needles)
        logged = [e.message + json.dumps(str(e.dagster_event)) for r in runs for e in instance.all_logs(r.run_id)]
        assert not any(n in line for line in logged for n in needles)
    assert not _hits(dagster_home, [n.encode() for n in needles])  # SQLite event log, run storage, compute logs
    # the warehouse, the MLflow store and artifacts, the GX data docs: everything under ETL_HOME
    assert (etl_home / "mlflow").is_dir() and (etl_home / "gx").is_dir()
    assert not _hits(etl_home, [n.encode() for n in needles])
    if storage == "postgres":
        with psycopg2.connect(**db) as conn, conn.cursor() as cur:
            for table, column in (("event_logs", "event"), ("runs", "run_body")):
                cur.execute(
                    f"SELECT count(*) FROM {table} WHERE {column} LIKE %s OR {column} LIKE %s",
                    [f"%{n}%" for n in needles],
                )
                assert cur.fetchone()[0] == 0, table
