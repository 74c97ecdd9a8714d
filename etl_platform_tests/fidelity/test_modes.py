"""Generated sequences of operations under every sync mode, source shape and destination.

One case is one generated sequence (load, new rows, updated rows, late rows, rerun, file
replaced, the same file under another name, rewind, reset); after every load the
destination is compared with the model (modes.Model) as a multiset of rows, with NODUP for
keyed modes, WM for the saved cursor and Q for the rejected rows of the load.
"""

import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_platform_tests.conftest import examples
from etl_platform_tests.fidelity import harness, platform
from etl_platform_tests.fidelity.compare import Finding, multiset_findings
from etl_platform_tests.fidelity.modes import Model, Row, csv_bytes
from etl_platform_tests.fidelity.platform import DESTINATION_KINDS
from etl_platform_tests.fidelity.sources import postgres_session
from etl_platform_tests.fidelity.tally import TALLY

pytestmark = pytest.mark.fidelity

EXAMPLES = 2  # per mode, source shape and destination: 32 combinations, 64 sequences
MODES = ("replace", "append", "merge", "incremental")
COLUMNS = {"id": {"type": "bigint"}, "seq": {"type": "bigint"}, "v": {"type": "varchar"}, "n": {"type": "bigint"}}

texts = st.one_of(st.none(), st.text(alphabet='ab Zé😀,"\n=+-@', min_size=1, max_size=6))
# A bad number is plainly bad: the value classes a cast gets wrong are test_types's business.
numbers = st.one_of(st.none(), st.integers(-1000, 1000).map(str), st.just("x"))


class Source:
    """The pipeline's source as the sequence changes it: CSV files in a folder, or a PostgreSQL table."""

    def __init__(self, env, model: Model, name: str):
        self.env, self.model, self.name = env, model, name
        self.files = itertools.count(1)
        if model.files:
            (env.source_folder / name).mkdir()
            self.connection = ("local", {"path": str(env.source_folder)})
            self.spec = {"connection": "src", "files": f"{name}/*.csv", "columns": COLUMNS}
        else:
            pg = env.services("postgres")
            self._pg(f'CREATE TABLE "{name}" (id bigint, seq bigint, v text, n text)')
            self.connection = (
                "postgres",
                {"host": pg["host"], "port": pg["port"], "database": pg["dbname"], "user": pg["user"]},
            )
            self.spec = {"connection": "src", "table": f"public.{name}", "columns": COLUMNS}

    def _pg(self, sql: str, rows: list | None = None) -> None:
        with postgres_session(self.env.services("postgres")) as cur:
            if rows is None:
                cur.execute(sql)
            else:
                cur.executemany(sql, rows)

    def add_file(self, rows: list[Row], name: str | None = None) -> None:
        name = name or f"{next(self.files):03d}.csv"
        (self.env.source_folder / self.name / name).write_bytes(csv_bytes(rows))
        self.model.source_files[name] = list(rows)

    def insert(self, rows: list[Row]) -> None:
        if self.model.files:
            self.add_file(rows)
            return
        if rows:
            self._pg(f'INSERT INTO "{self.name}" VALUES (%s, %s, %s, %s)', rows)
        self.model.source_rows += rows

    def update(self, rows: list[Row]) -> None:
        if self.model.files:
            self.add_file(rows)
            return
        self._pg(
            f'UPDATE "{self.name}" SET seq = %s, v = %s, n = %s WHERE id = %s', [(r[1], r[2], r[3], r[0]) for r in rows]
        )
        changed = {r[0]: r for r in rows}
        self.model.source_rows = [changed.get(r[0], r) for r in self.model.source_rows]


def _latest(model: Model) -> list[Row]:
    if model.files:
        return [r for rows in model.source_files.values() for r in rows]
    return list(model.source_rows)


def _top_seq(model: Model) -> int:
    return max((r[1] for r in _latest(model)), default=0)


@st.composite
def configurations(draw, mode: str):
    keyed = mode == "merge" or (mode == "incremental" and draw(st.booleans()))
    merge_cursor = mode == "merge" and draw(st.booleans())
    return keyed, merge_cursor


OPERATIONS = ("new", "update", "late", "rerun", "replace_file", "same_bytes", "rewind", "reset")


def run_sequence(env, mode: str, files: bool, destination_kind: str, data) -> list[Finding]:
    keyed, merge_cursor = data.draw(configurations(mode), label="key and cursor")
    lookback = (
        data.draw(st.integers(0, 3), label="lookback")
        if (mode == "incremental" and platform.lookback_supported())
        else 0
    )
    model = Model(mode, keyed, merge_cursor, files, destination_kind, lookback)
    name = env.fresh()
    source = Source(env, model, name)
    destination = env.destination(destination_kind)
    sync = {"mode": mode}
    if keyed:
        sync["primary_key"] = ["id"]
    if mode == "incremental" or merge_cursor:
        sync["cursor"] = "seq"
    if lookback:
        sync["lookback"] = lookback
    spec = {
        "source": source.spec,
        "sync": sync,
        "destination": {**destination.spec(), "schema": env.module, "table": name, "lineage_columns": False},
    }
    ids = itertools.count(1)
    operations = data.draw(st.lists(st.sampled_from(OPERATIONS), min_size=1, max_size=5), label="operations")
    context = "csv files" if files else "postgres table"
    context = f"{context}, {mode}{' keyed' if keyed else ''}{' by cursor' if merge_cursor else ''}, {destination_kind}"
    steps = []
    for step, operation in enumerate(["new", *operations]):
        if operation in ("replace_file", "same_bytes") and not (files and model.source_files):
            operation = "rerun"
        if operation in ("rewind",) and (mode != "incremental" or model.cursor is None):
            operation = "rerun"
        top = _top_seq(model)
        if operation == "new":
            count = data.draw(st.integers(0, 6), label="new rows")
            source.insert([(next(ids), top + 1 + k, data.draw(texts), data.draw(numbers)) for k in range(count)])
        elif operation == "update":
            current = {r[0]: r for r in _latest(model)}
            chosen = (
                data.draw(st.lists(st.sampled_from(sorted(current)), unique=True, max_size=4), label="updated ids")
                if current
                else []
            )
            source.update([(i, top + 1 + k, data.draw(texts), data.draw(numbers)) for k, i in enumerate(chosen)])
        elif operation == "late":
            floor = (model.cursor or 0) - lookback
            seqs = [
                data.draw(st.integers(min(floor, model.cursor or 0), model.cursor or 0), label="late seq")
                for _ in range(2)
            ]
            source.insert([(next(ids), s, data.draw(texts), data.draw(numbers)) for s in seqs])
        elif operation == "replace_file":
            victim = data.draw(st.sampled_from(sorted(model.source_files)), label="replaced file")
            rows = [
                (r[0], top + 1 + k, data.draw(texts), data.draw(numbers))
                for k, r in enumerate(model.source_files[victim])
            ]
            source.add_file(rows + [(next(ids), top + 10, "new in the file", "1")], victim)
        elif operation == "same_bytes":
            original = data.draw(st.sampled_from(sorted(model.source_files)), label="copied file")
            source.add_file(list(model.source_files[original]), f"copy-{next(source.files):03d}.csv")
        elif operation == "rewind":
            committed = sorted({r[1] for r in model.table if r[1] <= model.cursor})
            to = data.draw(st.sampled_from(committed), label="rewind to") if committed else model.cursor
            platform.reset_state(destination, env.con, env.module, name, name, str(to))
            model.rewind(to)
        elif operation == "reset":
            platform.reset_state(destination, env.con, env.module, name, name, None)
            model.reset()
        steps.append(operation)
        must_fail, bad, superseded = model.load()
        outcome = platform.load(
            spec,
            pipeline=name,
            schema=env.module,
            table=name,
            connection=source.connection,
            destination=destination,
            con=env.con,
            run_id=f"run-{name}-{step}",
        )
        where = f"{context}, after {' -> '.join(steps)}"
        findings = compare_step(
            env, model, destination, name, outcome, must_fail, bad, superseded, f"run-{name}-{step}", where
        )
        if findings:
            return findings
    return []


def compare_step(
    env,
    model: Model,
    destination,
    name: str,
    outcome,
    must_fail: bool,
    bad: int,
    superseded: int,
    run_id: str,
    where: str,
) -> list[Finding]:
    findings = []
    if outcome.failed and not must_fail:
        return [Finding("loud", f"{where}: the load failed: {outcome.error.splitlines()[0][:300]}", "load failed")]
    if must_fail and not outcome.failed:
        findings.append(
            Finding(
                "loud",
                f"{where}: a replace that accepted nothing did not fail (NOWIPE)",
                "replace: swapped in an empty load",
            )
        )
    stored = platform.stored(destination, env.con, env.module, name)
    if stored.error:
        return [Finding("loud", f"{where}: the table cannot be read back: {stored.error[:200]}", "unreadable table")]
    got = [(r["id"], r["seq"], r["v"], r["n"]) for r in stored.rows]
    findings += multiset_findings(where, model.expected_rows(), got)
    if model.keyed:
        doubled = [k for k, c in Counter(r[0] for r in got).items() if c > 1]
        if doubled:
            findings.append(
                Finding("silent", f"{where}: key(s) {doubled} stored more than once (NODUP)", "NODUP: key twice")
            )
    if model.mode == "incremental":
        saved = platform.saved_cursor(destination, env.con, env.module, name, name)
        top = max((r[1] for r in got), default=None)
        if saved is not None and top is not None and int(saved) > top:
            findings.append(
                Finding(
                    "silent",
                    f"{where}: saved cursor {saved} is above the highest committed row {top} (WM)",
                    "WM: cursor ahead",
                )
            )
        if (None if saved is None else int(saved)) != model.cursor:
            findings.append(
                Finding("loud", f"{where}: saved cursor {saved!r}, expected {model.cursor!r}", "saved cursor")
            )
    if not outcome.failed:
        rejected = [r for r in platform.rejected(env.con, env.module, name) if r.run_id == run_id]
        rules = sum(1 for r in rejected if r.kind in ("rule", "parse"))
        if rules != bad and not (model.mode == "incremental" and rules <= bad):
            findings.append(
                Finding("record", f"{where}: {rules} row(s) rejected by rule, expected {bad} (Q)", "Q: rejected count")
            )
        if platform.superseded_supported():
            recorded = sum(1 for r in rejected if r.kind == "superseded")
            if recorded != superseded:
                findings.append(
                    Finding(
                        "record",
                        f"{where}: {recorded} superseded row(s) recorded, expected {superseded}",
                        "superseded count",
                    )
                )
    return findings


@pytest.mark.parametrize("destination", DESTINATION_KINDS)
@pytest.mark.parametrize("source", ["files", "table"])
@pytest.mark.parametrize("mode", MODES)
def test_a_sequence_of_loads_keeps_the_table_equal_to_the_model(env, mode, source, destination):
    env.services("postgres")

    @settings(max_examples=examples(EXAMPLES), phases=harness.phases())
    @given(data=st.data())
    def case(data):
        findings = run_sequence(env, mode, source == "files", destination, data)
        TALLY.case(
            source="csv" if source == "files" else "postgres",
            destination=destination,
            mode=mode,
            findings=findings,
            test=f"modes[{mode}-{source}-{destination}]",
        )
        if findings and not harness.collecting():
            raise AssertionError("\n".join(f"[{f.weight}] {f.message}" for f in findings[:20]))

    case()


@pytest.mark.skipif(
    not platform.superseded_supported(),
    reason="not in the platform yet: rows superseded within one load (kind 'superseded')",
)
def test_rows_superseded_within_one_load_are_recorded(env):
    """Two rows of one key in one load: the one that wins lands, the other is recorded as superseded."""
    model = Model("merge", True, False, True, "warehouse")
    name = env.fresh()
    source = Source(env, model, name)
    source.add_file([(1, 1, "first", "1"), (1, 2, "second", "2")])
    must_fail, bad, superseded = model.load()
    spec = {
        "source": source.spec,
        "sync": {"mode": "merge", "primary_key": ["id"]},
        "destination": {"schema": env.module, "table": name, "lineage_columns": False},
    }
    outcome = platform.load(
        spec,
        pipeline=name,
        schema=env.module,
        table=name,
        connection=source.connection,
        destination=env.destination("warehouse"),
        con=env.con,
        run_id="superseded",
    )
    assert not outcome.failed, outcome.error
    rejected = platform.rejected(env.con, env.module, name)
    assert [(r.kind, r.source_line) for r in rejected] == [("superseded", 2)]
    assert "line 3" in " ".join(rejected[0].reasons)


@pytest.mark.skipif(not platform.lookback_supported(), reason="not in the platform yet: sync.lookback")
def test_a_late_row_within_the_lookback_is_read_again_once(env):
    model = Model("incremental", True, False, False, "warehouse", lookback=2)
    name = env.fresh()
    source = Source(env, model, name)
    spec = {
        "source": source.spec,
        "sync": {"mode": "incremental", "primary_key": ["id"], "cursor": "seq", "lookback": 2},
        "destination": {"schema": env.module, "table": name, "lineage_columns": False},
    }
    for rows in ([(1, 10, "a", "1")], [(2, 9, "late", "2")], []):
        source.insert(rows)
        model.load()
        outcome = platform.load(
            spec,
            pipeline=name,
            schema=env.module,
            table=name,
            connection=source.connection,
            destination=env.destination("warehouse"),
            con=env.con,
            run_id=f"lookback-{len(model.table)}",
        )
        assert not outcome.failed, outcome.error
    stored = platform.stored(env.destination("warehouse"), env.con, env.module, name)
    assert sorted((r["id"], r["seq"]) for r in stored.rows) == [(1, 10), (2, 9)]
