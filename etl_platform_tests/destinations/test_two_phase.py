"""A destination outside the warehouse and the warehouse's bookkeeping are one unit.

A load into PostgreSQL or a file table commits twice: the warehouse (rejected rows, ledger of
loaded files, a marker naming the load), then the destination (whose commit records the load
id). The process is killed with SIGKILL between the two, and right after the second; the next
load of the same files must then hold every row once, every rejected row once, and every file
once in the ledger.
"""

import subprocess
import sys
from pathlib import Path

import duckdb
import psycopg2
import pytest

from etl_platform.connectors.registry import build
from etl_platform.destinations.files.destination import FileTable
from etl_platform.destinations.files.reading import read_table
from etl_platform.destinations.files.storage import FilesLocation
from etl_platform.destinations.postgres.destination import PostgresTable
from etl_platform.destinations.warehouse.tables import TableRef
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.steps import extract, load_target

SPEC = {
    "source": {"connection": "files", "files": "*.csv", "columns": {"id": {"type": "bigint"}, "v": {}}},
    "sync": {"mode": "append"},
    "destination": {"table": "t", "lineage_columns": False},
}
FILES = {"a.csv": "id,v\n1,a\n2,b\nx,bad\n", "b.csv": "id,v\n3,c\n"}

CHILD = """
import os, signal, sys
import duckdb
from etl_platform.connectors.registry import build
from etl_platform.destinations.files.destination import FileTable
from etl_platform.destinations.postgres.destination import PostgresTable
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.steps import extract, ingest, load_target
from etl_platform.destinations.warehouse.tables import TableRef

warehouse, files, kind, where, point = sys.argv[1:6]
spec = PipelineSpec.model_validate(__SPEC__)
connector = build("files", "local", {"path": files})
if kind == "postgres":
    destination = PostgresTable(
        build("dwh", "postgres", dict(pair.split("=", 1) for pair in where.split(";"))), "p", "t"
    )
else:
    destination = FileTable(build("lake", "local", {"path": where}), "p", "t")

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if point == "between the commits":
    type(destination).finish = die
else:
    def finish_then_die(*args, **kwargs):  # the load's own clearing, after the destination's commit
        die()
    ingest._clear_pending = finish_then_die
with duckdb.connect(warehouse) as con:
    target = load_target.Target(TableRef("p", "t"), TableRef("p", "t_rejected"), destination)
    extract.load_source(spec, pipeline="p", connector=connector, con=con, target=target, run_id="killed-run", log=print)
print("not killed")
"""


def _destination(kind: str, where: str):
    if kind == "postgres":
        return PostgresTable(build("dwh", "postgres", dict(pair.split("=", 1) for pair in where.split(";"))), "p", "t")
    return FileTable(build("lake", "local", {"path": where}), "p", "t")


def _rows(kind: str, where: str, db: dict | None) -> list[tuple]:
    if kind == "postgres":
        with psycopg2.connect(**db) as pg, pg.cursor() as cur:
            cur.execute("SELECT id, v FROM p.t ORDER BY id")
            return cur.fetchall()
    with duckdb.connect() as duck:
        return duck.execute(
            f"SELECT id, v FROM {read_table(duck, FilesLocation.local(where), 'p', 't')} ORDER BY id"
        ).fetchall()


@pytest.mark.parametrize("point", ["between the commits", "after both commits"])
@pytest.mark.parametrize("kind", ["postgres", "files"])
def test_a_load_killed_between_its_two_commits_is_settled_by_the_next_load(
    tmp_path: Path, postgres_database, kind, point
):
    files = tmp_path / "files"
    files.mkdir()
    for name, text in FILES.items():
        (files / name).write_text(text)
    db = postgres_database
    where = (
        f"host={db['host']};port={db['port']};database={db['dbname']};user={db['user']}"
        if kind == "postgres"
        else str(tmp_path / "lake")
    )
    warehouse = str(tmp_path / "warehouse.duckdb")
    child = CHILD.replace("__SPEC__", repr(SPEC))
    killed = subprocess.run(
        [sys.executable, "-c", child, warehouse, str(files), kind, where, point],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr

    with duckdb.connect(warehouse) as con:
        target = load_target.Target(TableRef("p", "t"), TableRef("p", "t_rejected"), _destination(kind, where))
        spec = PipelineSpec.model_validate(SPEC)
        again = extract.load_source(
            spec,
            pipeline="p",
            connector=build("files", "local", {"path": str(files)}),
            con=con,
            target=target,
            run_id="next-run",
            log=lambda _: None,
        )
        rejected = con.execute("SELECT source_file, source_line, run_id FROM p.t_rejected").fetchall()
        ledger = con.execute("SELECT file, run_id FROM _etl.files ORDER BY file").fetchall()
        pending = con.execute("SELECT count(*) FROM _etl.pending_commits").fetchone()[0]

    assert _rows(kind, where, db) == [(1, "a"), (2, "b"), (3, "c")]
    committed_by = "killed-run" if point == "after both commits" else "next-run"
    assert rejected == [("a.csv", 4, committed_by)]
    assert ledger == [("a.csv", committed_by), ("b.csv", committed_by)]
    assert pending == 0
    assert again.committed.rows_written == (0 if point == "after both commits" else 3)
