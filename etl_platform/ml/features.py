"""The feature set: the rows a model trains on, built as a warehouse table, hashed and read into pandas.

The warehouse does the work (selecting, casting, hashing); pandas is used only for the frame
handed to scikit-learn.
"""

import hashlib
from dataclasses import dataclass

import duckdb

from etl_platform.errors import first_line
from etl_platform.spec.ml import TrainSpec
from etl_platform.sql import literal, qualified, quote
from etl_platform.steps import transform

MISSING_CATEGORY = "(missing)"  # categorical NULLs become a category of their own


class FeatureError(ValueError):
    """The table or query does not give what the train section asks for; names the field."""


@dataclass(frozen=True)
class FeatureSet:
    schema: str
    table: str
    rows: int
    data_hash: str
    columns: list[tuple[str, str]]

    @property
    def sql_name(self) -> str:
        return qualified(self.schema, self.table)


def source_sql(train: TrainSpec, schema: str, loaded_table: str) -> str:
    """The SELECT the feature set is built from (names resolved with the pipeline's schema first)."""
    if train.query is not None:
        return train.query.strip().rstrip(";")
    parts = (train.table or loaded_table).split(".")
    return f"SELECT * FROM {qualified(*parts) if len(parts) == 2 else qualified(schema, parts[0])}"


def kept_columns(train: TrainSpec) -> list[str]:
    """Columns of the feature table in order: id columns, the time split's column, features, target."""
    ordered = [*train.id_columns, *([train.split.column] if train.split.column else []), *train.features, train.target]
    return list(dict.fromkeys(ordered))


def build(
    con: duckdb.DuckDBPyConnection, train: TrainSpec, *, schema: str, loaded_table: str, table: str
) -> FeatureSet:
    """Materialize the feature table ``schema.table`` atomically: numeric features as DOUBLE,
    categorical ones as text (NULL as its own category), rows without a target left out."""
    source = source_sql(train, schema, loaded_table)
    con.execute(f"SET search_path = {literal(schema + ',main')}")
    try:
        available = {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM ({source})").fetchall()}
    except duckdb.Error as err:
        field = "train.query" if train.query is not None else "train.table"
        raise FeatureError(f"{field}: {first_line(err)}") from err
    _require(available, train)
    select = []
    for column in kept_columns(train):
        kind = train.features.get(column) if column != train.target else None
        if kind == "numeric":
            select.append(f"CAST({quote(column)} AS DOUBLE) AS {quote(column)}")
        elif kind == "categorical":
            select.append(f"coalesce(CAST({quote(column)} AS VARCHAR), '{MISSING_CATEGORY}') AS {quote(column)}")
        else:
            select.append(quote(column))
    sql = f"SELECT {', '.join(select)} FROM ({source}) WHERE {quote(train.target)} IS NOT NULL"
    built = transform.build(con, schema=schema, name=table, sql=sql)
    return FeatureSet(schema, table, built.rows, data_hash(con, schema, table, kept_columns(train)), built.columns)


def _require(available: dict[str, str], train: TrainSpec) -> None:
    wanted = [("train.target", train.target)]
    wanted += [(f"train.features.{c}", c) for c in train.features]
    wanted += [(f"train.id_columns.{i}", c) for i, c in enumerate(train.id_columns)]
    if train.split.column:
        wanted.append(("train.split.column", train.split.column))
    for field, column in wanted:
        if column not in available:
            raise FeatureError(
                f"{field}: column '{column}' is not in the training data; it has: {', '.join(available)}"
            )


def data_hash(con: duckdb.DuckDBPyConnection, schema: str, table: str, columns: list[str]) -> str:
    """A digest of the table's rows that ignores their order: the sum of per-row hashes (a sum, not
    an XOR, so a duplicated row still changes it), with the row count and column names."""
    cols = ", ".join(quote(c) for c in columns)
    count, total = con.execute(
        f"SELECT count(*), coalesce(sum(hash({cols})::HUGEINT), 0)::VARCHAR FROM {qualified(schema, table)}"
    ).fetchone()
    return hashlib.sha256(f"{count}|{total}|{','.join(columns)}".encode()).hexdigest()


def read_frame(con: duckdb.DuckDBPyConnection, features: FeatureSet):
    """The feature table as a pandas frame, in a fixed order (so a seeded split is repeatable)."""
    return con.execute(f"SELECT * FROM {features.sql_name} ORDER BY ALL").df()
