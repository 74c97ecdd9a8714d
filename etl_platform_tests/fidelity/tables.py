"""Generated tables: columns of a target type, each held by the source as text or as a type.

Every table has a row id (source column ``row id``, target ``rid``) besides its 1-8
generated columns, so a stored row is matched with the row that was sent without trusting
the order or any other value.
"""

from dataclasses import dataclass, field

from hypothesis import strategies as st

from etl_platform_tests.fidelity.oracle import TARGET_TYPES
from etl_platform_tests.fidelity.values import (
    SOURCE_NAMES,
    TARGET_NAMES,
    Sample,
    decimal_types,
    target_types,
    text_samples,
    typed_samples,
)

RID_SOURCE, RID = "row id", "rid"


@dataclass(frozen=True)
class Column:
    target: str  # target column name (an identifier)
    source: str  # the source's column name (any text a header holds)
    type: str  # target type, e.g. "decimal(10,2)"
    holder: str  # "text", or the typed source's type
    samples: tuple[Sample, ...]

    def describe(self) -> str:
        held = "" if self.holder == "text" else f" held as {self.holder}"
        return f"{self.type}{held}"


@dataclass(frozen=True)
class Table:
    columns: tuple[Column, ...]
    rids: tuple[int, ...] = field(default=())

    @property
    def rows(self) -> int:
        return len(self.rids)

    def row(self, i: int) -> list[Sample]:
        return [c.samples[i] for c in self.columns]

    def __repr__(self) -> str:
        cols = ", ".join(f"{c.source!r}->{c.target} {c.describe()}: {list(c.samples)!r}" for c in self.columns)
        return f"Table({self.rows} rows; {cols})"


# What each typed source can hold, in target-type words (see oracle.expected)
HOLDERS = {
    "parquet": (
        "text",
        "varchar",
        "bigint",
        "integer",
        "smallint",
        "double",
        "decimal",
        "boolean",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "json",
        "uuid",
        "timestamp_ns",
        "float32",
    ),
    "duckdb": (
        "text",
        "varchar",
        "bigint",
        "integer",
        "smallint",
        "double",
        "decimal",
        "boolean",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "json",
        "uuid",
    ),
    "postgres": (
        "text",
        "varchar",
        "bigint",
        "integer",
        "smallint",
        "double",
        "decimal",
        "boolean",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "json",
        "uuid",
    ),
    "mariadb": ("text", "varchar", "bigint", "integer", "smallint", "double", "decimal", "date", "time", "timestamp"),
    "sqlite": ("text", "bigint", "double"),
}


@st.composite
def tables(
    draw,
    *,
    holders: tuple[str, ...] = ("text",),
    max_columns: int = 8,
    max_rows: int = 60,
    min_rows: int = 1,
    allow=lambda sample, column: True,
    types: st.SearchStrategy[str] | None = None,
    long_text: bool = True,
    name_allowed=lambda name: True,
) -> Table:
    """A table of 1..max_columns generated columns and min_rows..max_rows rows (empty sources are the
    sync-mode model's business: a replace that accepts nothing must fail).

    ``holders`` lists how the source may hold a column ('text' and/or typed source types);
    ``allow(sample, column)`` filters values the source cannot hold at all (a NUL in a
    PostgreSQL text, a control character in a workbook).
    """
    count = draw(st.integers(1, max_columns))
    usable = [i for i, name in enumerate(SOURCE_NAMES) if name_allowed(name)]
    names = draw(st.lists(st.sampled_from(usable), min_size=count, max_size=count, unique=True))
    shapes, cells = [], []
    for index in names:
        holder = draw(st.sampled_from(holders))
        if holder == "decimal":
            holder = draw(decimal_types())
        if holder in ("text", "varchar") or holder.split("(")[0] not in TARGET_TYPES or draw(st.booleans()):
            target = draw(types if types is not None else target_types())
        else:
            target = holder  # a typed value into its own type, half the time
        if holder == "varchar":
            target = draw(st.sampled_from(["varchar", target]))
        column = Column(TARGET_NAMES[index], SOURCE_NAMES[index], target, holder, ())
        values = text_samples(target, long_text=long_text) if holder == "text" else typed_samples(holder)
        shapes.append(column)
        cells.append(values.filter(lambda s, c=column: allow(s, c)))
    # Rows drawn whole, so a failing table shrinks by dropping rows; small tables more often
    # (cheaper, and the shrinker starts nearer), some up to max_rows.
    row = st.tuples(*cells)
    small = st.lists(row, min_size=min_rows, max_size=min(8, max_rows))
    rows = draw(
        st.one_of(small, st.lists(row, min_size=min(9, max_rows), max_size=max_rows)) if max_rows > 8 else small
    )
    columns = [Column(c.target, c.source, c.type, c.holder, tuple(r[i] for r in rows)) for i, c in enumerate(shapes)]
    return Table(tuple(columns), tuple(range(1, len(rows) + 1)))
