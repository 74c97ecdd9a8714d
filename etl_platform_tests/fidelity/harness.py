"""One case: write a generated table through a source kind, load it, compare with the oracle.

``Env`` is a test module's world: a warehouse, a folder for file sources and one for file
tables, and (when a case needs them) a PostgreSQL database, a MariaDB database, an S3 bucket
and the loopback REST server. Every example gets fresh names in it.
"""

import datetime as dt
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

from etl_platform_tests.fidelity import platform, sources
from etl_platform_tests.fidelity.compare import Finding, RowExpectation, cell_findings, csv_file_form, rid_of, shown
from etl_platform_tests.fidelity.oracle import REJECT, Either, base_type, expected
from etl_platform_tests.fidelity.sources import Held, Written
from etl_platform_tests.fidelity.tables import HOLDERS, RID, RID_SOURCE, Column, Table, tables
from etl_platform_tests.fidelity.tally import TALLY
from etl_platform_tests.fidelity.values import LONG_TEXT, Sample

_names = itertools.count(1)


@dataclass
class Env:
    root: Path
    con: object  # the warehouse connection
    services: Callable[[str], object]  # "postgres" | "mariadb" | "s3" | "rest" -> the service (skips when missing)
    module: str = "m"

    @property
    def source_folder(self) -> Path:
        folder = self.root / "sources"
        folder.mkdir(exist_ok=True)
        return folder

    def destination(self, kind: str) -> platform.Destination:
        if kind == "postgres":
            return platform.Destination("postgres", postgres=self.services("postgres"))
        if kind in ("parquet", "csv"):
            folder = self.root / "lake"
            folder.mkdir(exist_ok=True)
            return platform.Destination(kind, folder=folder)
        return platform.Destination("warehouse")

    def fresh(self) -> str:
        return f"{self.module}{next(_names)}"


# --- source kinds ----------------------------------------------------------------------


def _no_nul(sample: Sample, column: Column) -> bool:
    value = sample.value
    if isinstance(value, str):
        return "\x00" not in value
    return "\\u0000" not in json.dumps(getattr(value, "value", None), default=str)


# A workbook's XML holds no control characters, and its parser reads a raw CR as LF.
_XLSX_BAD = {chr(c) for c in range(32)} - {"\t", "\n"}


def _xlsx_allows(sample: Sample, column: Column) -> bool:
    return not (isinstance(sample.value, str) and (sample.value == LONG_TEXT or set(sample.value) & _XLSX_BAD))


def _mariadb_allows(sample: Sample, column: Column) -> bool:
    value = sample.value
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return False
    if hasattr(value, "year") and value.year < 1000:
        return False
    if isinstance(value, float) and (abs(value) > 1.7e308 or 0 < abs(value) < 2.2250738585072014e-308):
        return False  # MariaDB's DOUBLE holds neither the largest doubles nor subnormals
    return True


def _any(sample: Sample, column: Column) -> bool:
    return True


@dataclass(frozen=True)
class SourceKind:
    """A way of holding a table: a source kind with one writer (and dialect)."""

    name: str  # how tests and messages name it
    kind: str  # the source kind it counts as
    holders: tuple[str, ...] = ("text",)
    allow: Callable = _any
    implicit: bool = False  # no column mapping: every column with its own type
    needs: tuple[str, ...] = ()
    long_text: bool = True
    name_allowed: Callable = lambda name: True


def _basic_plane(name: str) -> bool:
    return all(ord(ch) <= 0xFFFF for ch in name)  # MariaDB names hold no emoji


SOURCE_KINDS = {
    s.name: s
    for s in (
        SourceKind("csv", "csv", allow=_no_nul),
        SourceKind("csv-pandas", "csv", allow=_no_nul),
        SourceKind("csv-postgres-copy", "csv", allow=_no_nul, needs=("postgres",)),
        SourceKind("ndjson", "ndjson"),
        SourceKind("json-array", "json"),
        SourceKind("parquet", "parquet", holders=HOLDERS["parquet"]),
        SourceKind("xlsx", "xlsx", allow=_xlsx_allows, long_text=False),
        SourceKind("sqlite", "sqlite", holders=HOLDERS["sqlite"]),
        SourceKind("duckdb", "duckdb", holders=HOLDERS["duckdb"]),
        SourceKind("postgres", "postgres", holders=HOLDERS["postgres"], allow=_no_nul, needs=("postgres",)),
        SourceKind(
            "postgres-implicit",
            "postgres",
            holders=HOLDERS["postgres"][1:],
            allow=_no_nul,
            implicit=True,
            needs=("postgres",),
        ),
        SourceKind(
            "mariadb",
            "mariadb",
            holders=HOLDERS["mariadb"],
            allow=_mariadb_allows,
            needs=("mariadb",),
            name_allowed=_basic_plane,
        ),
        SourceKind(
            "mariadb-implicit",
            "mariadb",
            holders=HOLDERS["mariadb"][1:],
            allow=_mariadb_allows,
            implicit=True,
            needs=("mariadb",),
            name_allowed=_basic_plane,
        ),
        SourceKind("rest", "rest", needs=("rest",)),
        SourceKind("s3-csv", "s3", allow=_no_nul, needs=("s3",)),
        SourceKind("s3-parquet", "s3", holders=HOLDERS["parquet"], needs=("s3",)),
        SourceKind("duckdb-implicit", "duckdb", holders=HOLDERS["duckdb"][1:], implicit=True),
        SourceKind("sqlite-implicit", "sqlite", holders=("bigint", "double"), implicit=True),
    )
}


def table_strategy(kind: SourceKind, max_rows: int = 60) -> st.SearchStrategy[Table]:
    return tables(
        holders=kind.holders,
        allow=kind.allow,
        max_rows=max_rows,
        long_text=kind.long_text,
        name_allowed=kind.name_allowed,
    )


def write(env: Env, kind: SourceKind, table: Table, name: str, data) -> Written:
    """Write ``table`` through ``kind``; ``data`` draws the writer's free choices (dialect, JSON forms)."""
    folder = env.source_folder / name
    folder.mkdir()
    local = ("local", {"path": str(env.source_folder)})
    if kind.name in ("csv", "csv-pandas", "csv-postgres-copy", "s3-csv"):
        path = folder / "data.csv"
        if kind.name == "csv-pandas":
            sources.write_csv_pandas(table, path)
            dialect = sources.CsvDialect("pandas")
        elif kind.name == "csv-postgres-copy":
            sources.write_csv_postgres(table, path, env.services("postgres"), name)
            dialect = sources.CsvDialect("PostgreSQL COPY")
        else:
            dialect = data.draw(st.sampled_from(sources.CSV_DIALECTS[:-1]), label="dialect")
            sources.write_csv_python(table, path, dialect)
        held, lines = sources.held_from_csv(path.read_bytes(), dialect.delimiter, table)
        source = {"connection": "src", "files": f"{name}/data.csv"}
        if dialect.declare:
            source["csv"] = {"delimiter": dialect.delimiter}
        connection = local
        if kind.name == "s3-csv":
            connection = _to_s3(env, path, f"{name}/data.csv")
        return Written(kind.kind, dialect.name, source, connection, held, lines, f"{name}/data.csv")
    if kind.name in ("ndjson", "json-array", "rest"):
        choices = data.draw(st.lists(st.integers(0, 5), min_size=1, max_size=8), label="json forms")
        records, held = sources.json_records(table, choices)
        if kind.name == "rest":
            server = env.services("rest")
            server.pages[f"/{name}"] = records
            endpoint = {
                "path": f"/{name}",
                "records_path": "data",
                "pagination": {"type": "page_number", "page_param": "page", "size_param": "per_page"},
            }
            return Written(
                "rest",
                "pages of 25",
                {"connection": "src", "endpoint": endpoint},
                platform.rest_connection(server.url),
                held,
            )
        if kind.name == "ndjson":
            path = folder / "data.ndjson"
            path.write_text("".join(r + "\n" for r in records), encoding="utf-8")
            lines = {rid: i + 1 for i, rid in enumerate(table.rids)}
        else:
            path = folder / "data.json"
            path.write_text("[\n" + ",\n".join(records) + "\n]\n", encoding="utf-8")
            lines = {}
        return Written(
            kind.kind,
            "",
            {"connection": "src", "files": f"{name}/{path.name}"},
            local,
            held,
            lines,
            f"{name}/{path.name}",
        )
    if kind.name in ("parquet", "s3-parquet"):
        path = folder / "data.parquet"
        held = sources.write_parquet(table, path)
        connection = _to_s3(env, path, f"{name}/data.parquet") if kind.name == "s3-parquet" else local
        lines = {rid: i + 1 for i, rid in enumerate(table.rids)}
        return Written(
            kind.kind,
            "pyarrow",
            {"connection": "src", "files": f"{name}/data.parquet"},
            connection,
            held,
            lines,
            f"{name}/data.parquet",
            typed_rid=True,
        )
    if kind.name == "xlsx":
        path = folder / "data.xlsx"
        choices = data.draw(st.lists(st.integers(0, 5), min_size=1, max_size=8), label="cell forms")
        held = sources.write_xlsx(table, path, choices)
        lines = {rid: i + 2 for i, rid in enumerate(table.rids)}
        return Written(
            "xlsx",
            "openpyxl",
            {"connection": "src", "files": f"{name}/data.xlsx"},
            local,
            held,
            lines,
            f"{name}/data.xlsx",
            typed_rid=True,
        )
    if kind.kind == "sqlite":
        path = folder / "data.sqlite"
        held = sources.write_sqlite(table, path)
        return Written(
            "sqlite",
            "sqlite3",
            {"connection": "src", "table": "data"},
            ("sqlite", {"path": str(path)}),
            held,
            typed_rid=True,
        )
    if kind.kind == "duckdb":
        path = folder / "data.duckdb"
        held = sources.write_duckdb(table, path)
        return Written(
            "duckdb",
            "duckdb",
            {"connection": "src", "table": "data"},
            ("duckdb", {"path": str(path)}),
            held,
            typed_rid=True,
        )
    if kind.kind == "postgres":
        pg = env.services("postgres")
        held = sources.write_postgres(table, pg, name)
        options = {"host": pg["host"], "port": pg["port"], "database": pg["dbname"], "user": pg["user"]}
        return Written(
            "postgres",
            "psycopg2",
            {"connection": "src", "table": f"public.{name}"},
            ("postgres", options),
            held,
            typed_rid=True,
        )
    if kind.kind == "mariadb":
        my = env.services("mariadb")
        held = sources.write_mariadb(table, my, name)
        options = {"host": my["host"], "port": my["port"], "database": my["database"], "user": my["user"]}
        return Written(
            "mariadb", "pymysql", {"connection": "src", "table": name}, ("mysql", options), held, typed_rid=True
        )
    raise ValueError(kind.name)


def _to_s3(env: Env, path: Path, key: str) -> tuple[str, dict]:
    bucket = env.services("s3")
    prefix = f"{env.module}/"
    bucket.put(prefix + key, path.read_bytes())
    return "s3", bucket.options(prefix=prefix)


# --- the spec and the oracle -----------------------------------------------------------


def mapping(table: Table) -> dict:
    columns = {RID: {"from": RID_SOURCE, "type": "bigint"}}
    for column in table.columns:
        columns[column.target] = {"from": column.source, "type": column.type}
    return columns


def pipeline_spec(
    written: Written,
    table: Table,
    destination: platform.Destination,
    *,
    schema: str,
    name: str,
    implicit: bool,
    sync: dict | None = None,
) -> dict:
    source = dict(written.source)
    if not implicit:
        source["columns"] = mapping(table)
    return {
        "source": source,
        "sync": sync or {"mode": "replace"},
        "destination": {**destination.spec(), "schema": schema, "table": name, "lineage_columns": False},
    }


def implicit_type(holder: str) -> str:
    return "varchar" if holder == "text" else holder


def _parquet_interval_too_fine(written: Written, destination: platform.Destination, value) -> bool:
    """Without a mapping MariaDB's TIME lands as an interval (it spans -838 h to 838 h), and a Parquet INTERVAL
    counts milliseconds: a time with microseconds cannot be stored there exactly."""
    return (
        written.kind == "mariadb"
        and destination.kind == "parquet"
        and isinstance(value, dt.time)
        and value.microsecond % 1000 != 0
    )


def expectations(
    table: Table, written: Written, destination: platform.Destination, implicit: bool
) -> dict[int, RowExpectation]:
    out = {}
    for _i, rid in enumerate(table.rids):
        held: list[Held] = written.held[rid]
        cells, sent = [], []
        for column, h in zip(table.columns, held):
            target = implicit_type(column.holder) if implicit else column.type
            if implicit and h.holder == "text" and column.holder != "text" and h.value is not None:
                target = implicit_type(column.holder)
            value = expected(h.value, h.holder, target)
            if implicit and _parquet_interval_too_fine(written, destination, value):
                value = REJECT
            if destination.kind == "csv" and value is not REJECT:
                value = (
                    csv_file_form(value.value, target) if isinstance(value, Either) else csv_file_form(value, target)
                )
            cells.append(value)
            sent.append(h.value)
        out[rid] = RowExpectation(rid, cells, sent, written.lines.get(rid))
    return out


def column_names(table: Table, implicit: bool) -> tuple[str, list[str], list[str]]:
    """(row id column, generated column names, their target types) in the destination."""
    if implicit:
        return RID_SOURCE, [c.source for c in table.columns], [implicit_type(c.holder) for c in table.columns]
    return RID, [c.target for c in table.columns], [c.type for c in table.columns]


# --- one case --------------------------------------------------------------------------


@dataclass
class CaseResult:
    findings: list[Finding] = field(default_factory=list)
    context: str = ""


def check_replace(
    env: Env, kind: SourceKind, destinations: tuple[str, ...], table: Table, data, test: str
) -> CaseResult:
    """Write ``table`` once through ``kind`` and load it into each destination by replace (one case
    each); compare every destination with the oracle."""
    source_name = env.fresh()
    written = write(env, kind, table, source_name, data)
    result = CaseResult(context=f"{kind.name} ({written.variant})")
    for destination_kind in destinations:
        name = env.fresh()
        destination = env.destination(destination_kind)
        spec = pipeline_spec(written, table, destination, schema=env.module, name=name, implicit=kind.implicit)
        outcome = platform.load(
            spec,
            pipeline=name,
            schema=env.module,
            table=name,
            connection=written.connection,
            destination=destination,
            con=env.con,
            run_id=f"run-{name}",
        )
        context = f"{kind.name}{f' ({written.variant})' if written.variant else ''}, replace, {destination_kind}"
        findings = judge(
            env, table, written, destination, name, outcome, context, implicit=kind.implicit, source_kind=kind.kind
        )
        TALLY.case(source=written.kind, destination=destination_kind, mode="replace", findings=findings, test=test)
        result.findings += findings
    return result


def judge(
    env: Env,
    table: Table,
    written: Written,
    destination: platform.Destination,
    name: str,
    outcome: platform.Outcome,
    context: str,
    *,
    implicit: bool,
    source_kind: str,
) -> list[Finding]:
    expect = expectations(table, written, destination, implicit)
    stored = platform.stored(destination, env.con, env.module, name)
    rejected_rows = platform.rejected(env.con, env.module, name)
    rid_name, names, types = column_names(table, implicit)
    observe(source_kind, table, stored, destination.kind, implicit, names)
    accepted = [e for e in expect.values() if e.verdict != "reject"]
    if outcome.failed and any(e.verdict in ("accept", "either") for e in expect.values()):
        return [
            Finding(
                "loud",
                f"{context}: the load failed: {outcome.error.splitlines()[0][:300]} "
                f"(expected {len(accepted)} of {len(expect)} rows to land)",
                f"load failed: {_error_class(outcome.error)}",
            )
        ]
    if outcome.failed:
        # A replace that accepts nothing fails and keeps the old table (NOWIPE, checked by the
        # sync-mode cases); a load that went through anyway is still checked row by row.
        return []
    if stored.error:
        return [
            Finding(
                "loud",
                f"{context}: the committed table cannot be read back: {stored.error[:300]}",
                f"unreadable table: {stored.error.split(':')[0]}",
            )
        ]
    findings = _stored_checks(
        context, expect, stored, rid_name, names, types, rejected_rows, written, [c.source for c in table.columns]
    )
    classify(table, expect, stored, rejected_rows, names, types, rid_name, source_kind, implicit)
    return findings


def _error_class(error: str) -> str:
    """The kind of a load's error, without the names in it:
    'PostgresDestinationError: invalid input syntax for type json'."""
    first = error.splitlines()[0]
    kind, _, rest = first.partition(":")
    return f"{kind}: {rest.rsplit(' failed: ', 1)[-1].strip()[:90]}"


def _stored_checks(
    context, expect, stored, rid_name, names, types, rejected_rows, written, source_names
) -> list[Finding]:
    findings: list[Finding] = []
    line_to_rid = {line: rid for rid, line in written.lines.items()}
    by_rid: dict[int, list[dict]] = {}
    for row in stored.rows:
        by_rid.setdefault(row.get(rid_name), []).append(row)
    rejected_by_rid: dict[int, list] = {}
    whole_file = [r for r in rejected_rows if r.kind == "file"]
    for r in rejected_rows:
        if r.kind == "file":
            continue
        rid = rid_of(r, RID, RID_SOURCE, line_to_rid)
        rejected_by_rid.setdefault(rid, []).append(r)
    for rid in set(by_rid) - set(expect):
        findings.append(
            Finding(
                "silent",
                f"{context}: stored a row with row id {rid!r} that was never sent: {by_rid[rid][0]}",
                "row never sent",
            )
        )
    for rid, e in expect.items():
        rows = by_rid.get(rid, [])
        rejections = rejected_by_rid.get(rid, [])
        if len(rows) > 1:
            findings.append(Finding("silent", f"{context}: row {rid} stored {len(rows)} times", "row doubled"))
        if rows:
            findings += cell_findings(context, names, types, e, rows[0])
            if rejections:
                findings.append(
                    Finding(
                        "silent",
                        f"{context}: row {rid} both stored and rejected ({rejections[0].reasons})",
                        "stored and rejected",
                    )
                )
            continue
        if not rejections and whole_file:
            if e.verdict != "reject":
                findings.append(
                    Finding(
                        "loud",
                        f"{context}: row {rid} (sent {shown(e.sent)}) was rejected with its whole file: "
                        f"{whole_file[0].reasons}",
                        f"file rejected: {_reason_class(whole_file[0].reasons)}",
                    )
                )
            continue
        if not rejections:
            findings.append(
                Finding(
                    "silent",
                    f"{context}: row {rid} (sent {shown(e.sent)}) is neither stored nor rejected",
                    "row missing without a record",
                )
            )
            continue
        r = rejections[0]
        if e.verdict == "accept":
            cols = [f"{n}={shown(s)}" for n, s in zip(names, e.sent)]
            findings.append(
                Finding(
                    "loud",
                    f"{context}: row {rid}: expected {', '.join(cols)} to land, rejected with reason {r.reasons}",
                    f"rejected what the contract accepts: {_reason_class(r.reasons)}",
                )
            )
            continue
        findings += _record_checks(context, e, r, names, types, written, source_names)
    return findings


def _reason_class(reasons) -> str:
    """The first reason without its column: 'not a valid decimal(38,10)' (types keep their shape)."""
    first = (reasons or [""])[0]
    return first.split(":", 1)[-1].strip()[:80] if ":" in first else first[:80]


def _record_checks(context, e: RowExpectation, r, names, types, written: Written, source_names) -> list[Finding]:
    findings = []
    reasons = list(r.reasons or [])
    for i in e.rejected_columns:
        # The target column's name, or the source column's it was read from
        named = (names[i], source_names[i])
        if not any(reason.startswith((f"{n}:", f"{n} ")) for n in named for reason in reasons):
            findings.append(
                Finding(
                    "record",
                    f"{context}: row {e.rid}: column {names[i]!r} ({types[i]}, sent {shown(e.sent[i])}) "
                    f"rejected, but the reasons {reasons} do not name it",
                    "reason does not name the column",
                )
            )
        sent = e.sent[i]
        if isinstance(sent, str) and len(sent) >= 4 and any(sent in reason for reason in reasons):
            findings.append(
                Finding(
                    "record",
                    f"{context}: row {e.rid}: a reason shows the rejected value {shown(sent)}",
                    "reason shows the value",
                )
            )
    if r.kind != "rule":
        findings.append(
            Finding(
                "record",
                f"{context}: row {e.rid} rejected with kind {r.kind!r}, "
                "expected 'rule' (a value that does not convert)",
                f"rejected kind {r.kind!r} instead of 'rule'",
            )
        )
    if written.source_file is not None and r.source_file != written.source_file:
        findings.append(
            Finding(
                "record",
                f"{context}: row {e.rid} rejected with source_file {r.source_file!r}, expected {written.source_file!r}",
                "source_file",
            )
        )
    if e.line is not None and r.source_line != e.line:
        findings.append(
            Finding(
                "record",
                f"{context}: row {e.rid} rejected with source_line {r.source_line}, expected {e.line}",
                "source_line",
            )
        )
    return findings


def observe(source_kind: str, table: Table, stored, destination_kind: str, implicit: bool, names: list[str]) -> None:
    """Record, for the type table, what each column became in the destination."""
    types = dict(stored.columns) if stored.exists else {}
    for column, name in zip(table.columns, names):
        key = (
            source_kind + (" (implicit)" if implicit else ""),
            base_type(column.type if not implicit else implicit_type(column.holder)),
            base_type(column.holder),
        )
        if name in types:
            TALLY.column_types[key][destination_kind].add(_short_type(types[name]))


def _short_type(t: str) -> str:
    t = t.upper()
    for long, short in (
        ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"),
        ("TIMESTAMP WITHOUT TIME ZONE", "TIMESTAMP"),
        ("TIME WITHOUT TIME ZONE", "TIME"),
        ("CHARACTER VARYING", "VARCHAR"),
        ("DOUBLE PRECISION", "DOUBLE"),
    ):
        t = t.replace(long, short)
    return t.split("(")[0] if t.startswith(("DECIMAL", "NUMERIC")) else t


def classify(
    table: Table,
    expect: dict,
    stored,
    rejected_rows,
    names: list[str],
    types: list[str],
    rid_name: str,
    source_kind: str,
    implicit: bool,
) -> None:
    """Value classes (sample labels) the platform stored exactly, changed or rejected, per source kind and type."""
    from etl_platform_tests.fidelity.compare import same

    by_rid = {row.get(rid_name): row for row in stored.rows} if stored.exists else {}
    rejected_by_rid = {}
    for r in rejected_rows:
        rejected_by_rid.setdefault(rid_of(r, RID, RID_SOURCE, {}), r)
    for index, rid in enumerate(table.rids):
        for i, column in enumerate(table.columns):
            key = (source_kind + (" (implicit)" if implicit else ""), base_type(types[i]), base_type(column.holder))
            label = column.samples[index].label
            if rid in by_rid:
                wanted = expect[rid].cells[i]
                value = wanted.value if isinstance(wanted, Either) else wanted
                ok = wanted is not REJECT and same(value, by_rid[rid].get(names[i]), types[i])
                (TALLY.accepted_classes if ok else TALLY.changed_classes)[key].add(label)
            elif rid in rejected_by_rid:
                reasons = rejected_by_rid[rid].reasons or []
                if any(reason.startswith((f"{names[i]}:", f"{column.source}:")) for reason in reasons):
                    TALLY.rejected_classes[key].add(label)


def failure_text(result: CaseResult, table: Table) -> str:
    lines = [f"{result.context}: {len(result.findings)} finding(s) for {table!r}"]
    for f in result.findings[:25]:
        lines.append(f"  [{f.weight}] {f.message}")
    if len(result.findings) > 25:
        lines.append(f"  ... and {len(result.findings) - 25} more")
    return "\n".join(lines)


def collecting() -> bool:
    """ETL_FIDELITY_COLLECT=1: record every finding and go on, instead of failing at the first case
    (a survey of every discrepancy; nothing is shrunk)."""
    import os

    return os.environ.get("ETL_FIDELITY_COLLECT", "") == "1"


_STARTED: list[float] = []


def phases():
    """Hypothesis phases for a generated case. A survey (ETL_FIDELITY_COLLECT=1) does not shrink;
    nor does a run that has spent ETL_FIDELITY_SHRINK_SECONDS (default 600) in the harness already:
    while the platform fails many cases, shrinking each would outlast CI. Such a failure still
    lists every finding, each one cell with what was sent, expected and stored."""
    import os
    import time

    from hypothesis import Phase

    _STARTED[:] = _STARTED or [time.monotonic()]
    budget = float(os.environ.get("ETL_FIDELITY_SHRINK_SECONDS", "600"))
    if collecting() or time.monotonic() - _STARTED[0] > budget:
        return [Phase.explicit, Phase.reuse, Phase.generate]
    return list(Phase)


def assert_exact(result: CaseResult, table: Table) -> None:
    if result.findings and not collecting():
        raise AssertionError(failure_text(result, table))


class FixedChoices:
    """Stands in for Hypothesis's ``data`` in a hand-written case: the writer's free choices fixed
    (the first CSV dialect, or a given one; JSON strings, or bare literals)."""

    def __init__(self, dialect=None, json_forms=(0,), cell_forms=(0,)):
        self.choices = {
            "dialect": dialect or sources.CSV_DIALECTS[0],
            "json forms": list(json_forms),
            "cell forms": list(cell_forms),
        }

    def draw(self, strategy, label=None):
        return self.choices[label]


def one_column(target: str, values: list, holder: str = "text", source_name: str = "value") -> Table:
    """A table of one column: the smallest input that shows a finding."""
    samples = tuple(Sample(v, "example") for v in values)
    return Table((Column("value", source_name, target, holder, samples),), tuple(range(1, len(values) + 1)))
