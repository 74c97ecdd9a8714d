"""The ledger of loaded files: which content (by SHA-256) a pipeline has loaded, when.

The same bytes arriving again under any name are skipped, not loaded twice: in
append, merge and incremental loads across runs, and within one run in every mode.
A changed file under an old name has a new fingerprint and loads as a new version.
Rows are added to the ledger in the load's own transaction, so a failed load records
nothing and its files load on the next try.
"""

from dataclasses import dataclass
from datetime import datetime

LEDGER_SCHEMA = "_etl"
LEDGER = f"{LEDGER_SCHEMA}.files"
_COLUMNS = (
    "pipeline VARCHAR, table_name VARCHAR, file VARCHAR, bytes BIGINT, sha256 VARCHAR, "
    "run_id VARCHAR, loaded_at TIMESTAMPTZ"
)


@dataclass(frozen=True)
class Fingerprint:
    file: str  # the name the file is recorded under
    bytes: int
    sha256: str


@dataclass(frozen=True)
class EarlierLoad:
    file: str
    run_id: str
    loaded_at: datetime | None

    def describe(self) -> str:
        when = f" at {self.loaded_at:%Y-%m-%d %H:%M:%S %Z}".rstrip() if self.loaded_at else ""
        return f"same content as {self.file}, loaded by run {self.run_id}{when}"


def _ensure(con) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {LEDGER_SCHEMA}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {LEDGER} ({_COLUMNS})")


def earlier_loads(con, pipeline: str, table: str, hashes: list[str]) -> dict[str, EarlierLoad]:
    """The first load of each of ``hashes`` by this pipeline into this table."""
    if not hashes:
        return {}
    _ensure(con)
    rows = con.execute(
        f"SELECT sha256, arg_min(file, loaded_at), arg_min(run_id, loaded_at), min(loaded_at) FROM {LEDGER} "
        "WHERE pipeline = ? AND table_name = ? AND sha256 IN (SELECT unnest(?)) GROUP BY sha256",
        [pipeline, table, hashes],
    ).fetchall()
    return {sha: EarlierLoad(file, run_id, at) for sha, file, run_id, at in rows}


def record(con, pipeline: str, table: str, run_id: str, loaded: list[Fingerprint]) -> None:
    """Add the files of this load to the ledger; call inside the load's transaction."""
    if not loaded:
        return
    _ensure(con)
    con.executemany(
        f"INSERT INTO {LEDGER} VALUES (?, ?, ?, ?, ?, ?, now())",
        [[pipeline, table, f.file, f.bytes, f.sha256, run_id] for f in loaded],
    )


def forget(con, pipeline: str) -> int:
    """Drop the pipeline's loaded files from the ledger, so its next load reads them all again."""
    _ensure(con)
    [(count,)] = con.execute(f"SELECT count(*) FROM {LEDGER} WHERE pipeline = ?", [pipeline]).fetchall()
    con.execute(f"DELETE FROM {LEDGER} WHERE pipeline = ?", [pipeline])
    return count


def forget_table(con, pipeline: str, table: str) -> None:
    """Drop the ledger's entries for one table: a load that replaces its rows replaces what the
    ledger can vouch for (call inside that load's transaction)."""
    _ensure(con)
    con.execute(f"DELETE FROM {LEDGER} WHERE pipeline = ? AND table_name = ?", [pipeline, table])


def undo_ledger(con, pipeline: str, table: str, run_id: str) -> None:
    """Drop what one run recorded for a table: its load did not commit in the destination."""
    _ensure(con)
    con.execute(f"DELETE FROM {LEDGER} WHERE pipeline = ? AND table_name = ? AND run_id = ?", [pipeline, table, run_id])


def count(con, pipeline: str) -> int:
    """How many files the ledger holds for the pipeline."""
    _ensure(con)
    return con.execute(f"SELECT count(*) FROM {LEDGER} WHERE pipeline = ?", [pipeline]).fetchall()[0][0]
