"""Files destination: every sync mode in Parquet and CSV, in a local folder and on S3,
each commit made visible by its manifest alone."""

import csv
import io
import json
import os
import time
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import boto3
import duckdb
import pytest
from moto.server import ThreadedMotoServer

from etl_platform.destinations.files import commit as files
from etl_platform.destinations.files import reading as files_reading
from etl_platform.destinations.files import state as files_state
from etl_platform.destinations.warehouse import tables as warehouse_tables
from etl_platform.spec.pipeline import SyncSpec

STAGE = warehouse_tables.TableRef("main", "stage")
COLUMNS = "id BIGINT, name VARCHAR, updated_at TIMESTAMP, amount DECIMAL(10, 2)"
FORMATS = ["parquet", "csv"]


def day(n: int) -> datetime:
    return datetime(2024, 1, n)


def stage(duck: duckdb.DuckDBPyConnection, rows: list[tuple], columns: str = COLUMNS) -> None:
    duck.execute(f"CREATE OR REPLACE TABLE {STAGE.sql} ({columns})")
    if rows:
        duck.executemany(f"INSERT INTO {STAGE.sql} VALUES ({', '.join('?' * len(rows[0]))})", rows)


def commit(duck, location, rows, *, mode, columns=COLUMNS, key=("id",), cursor="updated_at", **options):
    stage(duck, rows, columns)
    sync = SyncSpec(mode=mode, primary_key=list(key), cursor=cursor)
    data_columns = [name for name, _ in warehouse_tables.columns_of(duck, STAGE) if not name.startswith("_")]
    return files.commit(
        duck,
        STAGE,
        location=location,
        schema="shop",
        table="orders",
        sync=sync,
        pipeline="shop",
        run_id=uuid.uuid4().hex,
        data_columns=data_columns,
        **options,
    )


def table(duck, location, tmp_path: Path) -> list[tuple]:
    relation = files_reading.read_table(duck, location, "shop", "orders", download_to=tmp_path / "downloads")
    return sorted(duck.execute(f"SELECT * FROM {relation}").fetchall(), key=repr)


def expect(rows: list[tuple], file_format: str = "parquet") -> list[tuple]:
    """Rows as the table returns them; CSV tables hold formula-looking text neutralised."""
    if file_format == "csv":
        rows = [(i, "'" + n if n and n.startswith("=") else n, u, a) for i, n, u, a in rows]
    return sorted(((i, n, u, _amount(a)) for i, n, u, a in rows), key=repr)


def _amount(value):
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


@pytest.fixture
def duck():
    con = duckdb.connect()
    yield con
    con.close()


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _s3_client_factory(endpoint: str):
    def client():
        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return client


@pytest.fixture(params=["local", "s3"])
def location(request, tmp_path: Path) -> files.FilesLocation:
    if request.param == "local":
        return files.FilesLocation.local(tmp_path / "exports")
    client = _s3_client_factory(request.getfixturevalue("s3_endpoint"))
    bucket = f"exports-{uuid.uuid4().hex[:12]}"
    client().create_bucket(Bucket=bucket)
    return files.FilesLocation.s3(bucket, "/daily/", client_factory=client)


@pytest.fixture
def local(tmp_path: Path) -> files.FilesLocation:
    return files.FilesLocation.local(tmp_path / "exports")


def table_folder(location: files.FilesLocation) -> Path:
    assert location.folder is not None
    return location.folder / "shop" / "orders"


def manifest_bytes(location: files.FilesLocation) -> bytes:
    if location.folder is not None:
        return (table_folder(location) / files.MANIFEST).read_bytes()
    key = f"{location.prefix}/shop/orders/{files.MANIFEST}"
    return location.client_factory().get_object(Bucket=location.bucket, Key=key)["Body"].read()


def manifest(location: files.FilesLocation) -> dict:
    return json.loads(manifest_bytes(location))


def stored_data_files(location: files.FilesLocation) -> set[str]:
    """Every file under the table other than its manifest, as the storage holds them."""
    if location.folder is not None:
        folder = table_folder(location)
        found = {
            Path(root, name).relative_to(folder).as_posix() for root, _, names in os.walk(folder) for name in names
        }
    else:
        prefix = f"{location.prefix}/shop/orders/"
        pages = (
            location.client_factory().get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=prefix)
        )
        found = {item["Key"][len(prefix) :] for page in pages for item in page.get("Contents", [])}
    return found - {files.MANIFEST}


def storage_kind(location: files.FilesLocation) -> type:
    return files._LocalTable if location.folder is not None else files._S3Table


FIRST = [(1, "a", day(1), 1.5), (2, "b", day(2), None), (3, "=c", day(3), -3)]


@pytest.mark.parametrize("file_format", FORMATS)
def test_replace_holds_exactly_the_staged_rows(duck, location, tmp_path, file_format):
    commit(duck, location, FIRST, mode="replace", file_format=file_format)
    second = [(7, "g", day(7), 7)]
    committed = commit(duck, location, second, mode="replace", file_format=file_format)

    assert committed.rows_written == 1
    assert table(duck, location, tmp_path) == expect(second)


@pytest.mark.parametrize("file_format", FORMATS)
def test_append_adds_the_staged_rows(duck, location, tmp_path, file_format):
    commit(duck, location, FIRST, mode="append", file_format=file_format)
    commit(duck, location, FIRST[:1], mode="append", file_format=file_format)

    assert table(duck, location, tmp_path) == expect(FIRST + FIRST[:1], file_format)


@pytest.mark.parametrize("file_format", FORMATS)
def test_merge_keeps_the_latest_row_per_key(duck, location, tmp_path, file_format):
    commit(duck, location, FIRST, mode="merge", file_format=file_format)
    updates = [
        (2, "b newest", day(9), 2),  # highest cursor wins over the row read after it
        (2, "b older", day(8), 2),
        (3, "c first", day(5), 3),
        (3, "c read last", day(5), 3),  # same cursor: the row read last wins
        (4, "d", day(4), 4),
    ]
    committed = commit(duck, location, updates, mode="merge", file_format=file_format)

    assert committed.rows_written == 3
    assert table(duck, location, tmp_path) == expect(
        [FIRST[0], (2, "b newest", day(9), 2), (3, "c read last", day(5), 3), (4, "d", day(4), 4)], file_format
    )


SECOND = [
    (3, "=c", day(3), -3),  # loaded already, sent again at the saved cursor
    (4, "late", day(3), 4),  # arrived late with the saved cursor: must not be lost
    (2, "b updated", day(4), 2),
    (5, "e", day(5), 5),
    (6, "too old", day(1), 6),  # below the saved cursor: dropped and counted
]


@pytest.mark.parametrize("file_format", FORMATS)
@pytest.mark.parametrize("key", [("id",), ()], ids=["by-key", "without-key"])
def test_incremental_twice_loses_nothing_and_loads_nothing_twice(duck, location, tmp_path, file_format, key):
    first = commit(duck, location, FIRST, mode="incremental", key=key, file_format=file_format)
    duck.execute("BEGIN TRANSACTION")  # as the ingest step calls it: inside the warehouse transaction
    second = commit(duck, location, SECOND, mode="incremental", key=key, file_format=file_format)
    duck.execute("COMMIT")
    assert duck.execute(f"SELECT count(*) FROM {STAGE.sql}").fetchone() == (len(SECOND),)  # the stage is left as it was
    again = commit(duck, location, SECOND, mode="incremental", key=key, file_format=file_format)

    assert (first.cursor_before, first.cursor_after) == (None, "2024-01-03 00:00:00")
    assert (second.rows_before_cursor, second.cursor_after) == (1, "2024-01-05 00:00:00")
    assert again.cursor_after == "2024-01-05 00:00:00"
    if key:
        expected = [FIRST[0], (2, "b updated", day(4), 2), FIRST[2], (4, "late", day(3), 4), (5, "e", day(5), 5)]
    else:
        expected = FIRST + [(4, "late", day(3), 4), (2, "b updated", day(4), 2), (5, "e", day(5), 5)]
        assert (second.rows_written, again.rows_written) == (3, 0)
    assert table(duck, location, tmp_path) == expect(expected, file_format)
    assert files_state.saved_cursor(location, "shop", "orders") == "2024-01-05 00:00:00"


def test_rows_sent_again_by_another_run_are_recognised_by_their_data_columns(duck, local, tmp_path):
    with_lineage = COLUMNS + ", _load_id VARCHAR"  # differs on every run, so it is not a data column
    commit(duck, local, [r + ("run 1",) for r in FIRST], mode="incremental", key=(), columns=with_lineage)
    again = commit(duck, local, [r + ("run 2",) for r in FIRST], mode="incremental", key=(), columns=with_lineage)

    assert (again.rows_before_cursor, again.rows_written) == (2, 0)
    assert [row[-1] for row in table(duck, local, tmp_path)] == ["run 1"] * 3


def test_cursor_can_be_forgotten_or_rewound(duck, local, tmp_path):
    commit(duck, local, FIRST, mode="incremental")

    assert files_state.reset_state(local, "shop", "orders", to="2024-01-02 00:00:00") == (
        "2024-01-03 00:00:00",
        "2024-01-02 00:00:00",
    )
    # A rewind: the source's rows from the bound on replace the table's, here one of them changed.
    rewound = commit(duck, local, [(2, "b again", day(2), 2), FIRST[2]], mode="incremental")
    assert (rewound.cursor_before, rewound.rows_written, rewound.rows_deleted) == ("2024-01-02 00:00:00", 2, 2)
    assert rewound.cursor_after == "2024-01-03 00:00:00"  # the highest in the table, as in the warehouse
    assert table(duck, local, tmp_path) == expect([FIRST[0], (2, "b again", day(2), 2), FIRST[2]])

    files_state.reset_state(local, "shop", "orders", to=None)
    assert files_state.saved_cursor(local, "shop", "orders") is None
    refreshed = commit(duck, local, [FIRST[0]], mode="incremental")  # a full refresh replaces every row
    assert (refreshed.rows_written, refreshed.rows_deleted) == (1, 3)
    assert table(duck, local, tmp_path) == expect([FIRST[0]])
    assert [e.action for e in files_state.history(local, "shop", "orders")] == [
        "load",
        "reset",
        "load",
        "rewind",
        "load",
    ]


@pytest.mark.parametrize("mode", ["append", "merge", "incremental"])
def test_failure_before_the_manifest_changes_nothing_and_the_next_commit_cleans_up(
    duck, location, tmp_path, monkeypatch, mode
):
    commit(duck, location, FIRST, mode=mode, partition_by=["name"])
    manifest_before = manifest_bytes(location)
    rows_before = table(duck, location, tmp_path)
    listed_before = {f["path"] for f in manifest(location)["files"]}

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    with monkeypatch.context() as patched:
        patched.setattr(storage_kind(location), "put_manifest", crash)
        with pytest.raises(RuntimeError, match="power cut"):
            commit(duck, location, SECOND, mode=mode, partition_by=["name"])

    orphans = stored_data_files(location) - listed_before
    assert orphans, "the failed commit wrote data files before its manifest"
    assert manifest_bytes(location) == manifest_before
    assert table(duck, location, tmp_path) == rows_before
    assert files_state.saved_cursor(location, "shop", "orders") == json.loads(manifest_before)["cursor"]
    assert duck.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '__files%'").fetchone() == (0,)

    if location.bucket:
        time.sleep(1.1)  # S3 times are whole seconds: the orphans must be older than the next commit
    commit(duck, location, SECOND, mode=mode, partition_by=["name"])

    listed_now = {f["path"] for f in manifest(location)["files"]}
    assert not orphans & stored_data_files(location)
    assert listed_now <= stored_data_files(location) <= listed_now | listed_before


def test_a_commit_that_lost_a_race_changes_nothing(duck, location, tmp_path, monkeypatch):
    commit(duck, location, FIRST, mode="append")
    table_kind = storage_kind(location)
    put_manifest = table_kind.put_manifest

    def other_run_commits_first(self, manifest, replacing):
        monkeypatch.setattr(table_kind, "put_manifest", put_manifest)
        commit(duckdb.connect(), location, [(9, "other run", day(9), 9)], mode="append")
        put_manifest(self, manifest, replacing)

    monkeypatch.setattr(table_kind, "put_manifest", other_run_commits_first)
    with pytest.raises(files.ConcurrentCommit):
        commit(duck, location, SECOND, mode="append")

    assert table(duck, location, tmp_path) == expect(FIRST + [(9, "other run", day(9), 9)])


HOSTILE_VALUES = ["../x", "a/b", "'; DROP TABLE orders; --", "..", ".", "a\\b", "x=y", "%2F", "", None]


@pytest.mark.parametrize("file_format", FORMATS)
def test_hostile_partition_values_stay_inside_the_table_folder(duck, local, tmp_path, file_format):
    rows = [(i, value, day(1), i) for i, value in enumerate(HOSTILE_VALUES)]
    columns = 'id BIGINT, "../region" VARCHAR, updated_at TIMESTAMP, amount DECIMAL(10, 2)'
    commit(duck, local, rows, mode="replace", columns=columns, partition_by=["../region"], file_format=file_format)

    folder = table_folder(local).resolve()
    written = [Path(root, name).resolve() for root, _, names in os.walk(tmp_path / "exports") for name in names]
    assert written and all(path.is_relative_to(folder) for path in written)
    assert sorted(os.listdir(tmp_path)) == ["exports"]
    stored = duck.execute(
        f'SELECT id, "../region" FROM {files_reading.read_table(duck, local, "shop", "orders")}'
    ).fetchall()
    assert sorted(stored) == [(i, value) for i, value, *_ in rows]


def test_csv_cells_cannot_start_a_formula(duck, local):
    risky = ['=HYPERLINK("http://x")', "+1", "-1+2", "@SUM(A1)", "\tx", "\rx", 'plain, "quoted"\nnext line', "", None]
    rows = [(i, value, day(1), -i) for i, value in enumerate(risky)]
    commit(duck, local, rows, mode="replace", file_format="csv")

    [listed] = manifest(local)["files"]
    raw = (table_folder(local) / listed["path"]).read_bytes()
    assert raw.startswith(b"id,name,updated_at,amount\r\n")
    cells = {int(r["id"]): (r["name"], r["amount"]) for r in csv.DictReader(io.StringIO(raw.decode(), newline=""))}
    assert [cells[i][0] for i in range(6)] == ["'" + value for value in risky[:6]]
    assert cells[6][0] == risky[6]  # an ordinary cell is quoted, not prefixed
    assert cells[2][1] == "-2.00"  # numbers cannot hold a formula and are left alone
    stored = duck.execute(
        f"SELECT id, name FROM {files_reading.read_table(duck, local, 'shop', 'orders')} ORDER BY id"
    ).fetchall()
    assert [name for _, name in stored] == ["'" + value for value in risky[:6]] + risky[6:]


def test_csv_refuses_a_header_that_starts_a_formula(duck, local):
    with pytest.raises(ValueError, match="spreadsheet formula"):
        commit(
            duck,
            local,
            [(1, "a")],
            mode="replace",
            columns='id BIGINT, "=cmd()" VARCHAR',
            cursor=None,
            file_format="csv",
        )
    assert not stored_data_files(local) and not (table_folder(local) / files.MANIFEST).exists()


@pytest.mark.parametrize("file_format", FORMATS)
def test_hostile_column_names_round_trip(duck, location, tmp_path, file_format):
    names = ['we"ird', "a,b", "sp ace", "select", "x'); DROP TABLE t; --", "ünï"]
    if file_format == "parquet":
        names.append("line\nbreak")  # CSV refuses it: a header cell with a line break does not read back
    columns = ", ".join(f'"{n.replace(chr(34), chr(34) * 2)}" VARCHAR' for n in names)
    rows = [tuple(f"{n}-{i}" for n in names) for i in range(3)]
    commit(
        duck, location, rows, mode="merge", columns=columns, key=['we"ird'], cursor="select", file_format=file_format
    )
    commit(
        duck,
        location,
        rows[:1],
        mode="merge",
        columns=columns,
        key=['we"ird'],
        cursor="select",
        file_format=file_format,
    )

    relation = files_reading.read_table(duck, location, "shop", "orders", download_to=tmp_path / "downloads")
    assert [d[0] for d in duck.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()] == names
    assert sorted(duck.execute(f"SELECT * FROM {relation}").fetchall()) == rows


def test_freeze_refuses_a_changed_schema_naming_every_difference(duck, local, tmp_path):
    commit(duck, local, FIRST, mode="append")
    changed = "id VARCHAR, name VARCHAR, updated_at TIMESTAMP, discount DOUBLE"
    with pytest.raises(warehouse_tables.SchemaMismatch) as refused:
        commit(duck, local, [("1", "a", day(1), 0.5)], mode="append", columns=changed)

    message = str(refused.value)
    assert "new columns: discount DOUBLE" in message
    assert "missing columns: amount DECIMAL(10,2)" in message
    assert "changed types: id BIGINT -> VARCHAR" in message
    assert table(duck, local, tmp_path) == expect(FIRST)


def test_evolve_adds_new_columns_and_older_files_read_null(duck, location, tmp_path):
    commit(duck, location, FIRST[:1], mode="append")
    wider = COLUMNS + ", channel VARCHAR"
    committed = commit(
        duck, location, [(2, "b", day(2), 2, "web")], mode="append", columns=wider, schema_policy="evolve"
    )

    assert committed.drift and committed.drift.added == ("channel VARCHAR",)
    assert table(duck, location, tmp_path) == sorted(
        [e + (None,) for e in expect(FIRST[:1])] + [e + ("web",) for e in expect([(2, "b", day(2), 2)])], key=repr
    )


def test_discard_drops_new_columns_and_missing_ones_are_null(duck, local, tmp_path):
    commit(duck, local, FIRST[:1], mode="append")
    other = "id BIGINT, name VARCHAR, updated_at TIMESTAMP, channel VARCHAR"
    commit(duck, local, [(2, "b", day(2), "web")], mode="append", columns=other, schema_policy="discard")

    assert [c["name"] for c in manifest(local)["columns"]] == ["id", "name", "updated_at", "amount"]
    assert table(duck, local, tmp_path) == expect([FIRST[0], (2, "b", day(2), None)])


def test_only_a_replace_changes_the_file_format(duck, local, tmp_path):
    commit(duck, local, FIRST, mode="append")
    with pytest.raises(ValueError, match="only a replace"):
        commit(duck, local, FIRST, mode="append", file_format="csv")

    commit(duck, local, FIRST, mode="replace", file_format="csv")
    assert manifest(local)["file_format"] == "csv"
    assert all(f["path"].endswith(".csv") for f in manifest(local)["files"])


def test_manifest_listing_a_path_outside_the_table_is_refused(duck, local):
    commit(duck, local, FIRST, mode="append")
    tampered = manifest(local)
    tampered["files"][0]["path"] = "../../elsewhere.parquet"
    (table_folder(local) / files.MANIFEST).write_text(json.dumps(tampered))  # as if edited by hand

    with pytest.raises(ValueError, match="not a data file inside the table folder"):
        files_reading.read_table(duck, local, "shop", "orders")


def test_cursor_counts_files_written_before_a_cursor_was_configured(duck, local, tmp_path):
    commit(duck, local, [(9, "old", day(9), 9)], mode="append", cursor=None)
    committed = commit(duck, local, FIRST, mode="incremental", key=())

    assert committed.cursor_after == "2024-01-09 00:00:00"  # the highest in the table, older files measured too
    assert all(f["max"] == {"updated_at": f["max"]["updated_at"]} for f in manifest(local)["files"])
    again = commit(duck, local, [(9, "old", day(9), 9), (10, "new", day(9), 10)], mode="incremental", key=())
    assert (again.rows_written, again.rows_before_cursor) == (1, 0)
    assert len(table(duck, local, tmp_path)) == 5


@pytest.mark.parametrize("file_format", FORMATS)
def test_an_empty_load_keeps_the_schema_and_lists_no_files(duck, location, tmp_path, file_format):
    commit(duck, location, FIRST, mode="replace", file_format=file_format)
    committed = commit(duck, location, [], mode="replace", file_format=file_format)

    assert committed.rows_written == 0 and manifest(location)["files"] == []
    relation = files_reading.read_table(duck, location, "shop", "orders", download_to=tmp_path / "downloads")
    assert duck.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()[3][:2] == ("amount", "DECIMAL(10,2)")
    assert table(duck, location, tmp_path) == []
