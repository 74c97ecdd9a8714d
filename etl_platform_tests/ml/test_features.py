"""The feature set's hash identifies the training data whatever the row order; the promotion rule."""

import duckdb
import pytest

from etl_platform.ml import features, registry
from etl_platform.spec.ml import PromotionSpec, TrainSpec

TRAIN = TrainSpec(target="y", features={"x": "numeric", "kind": "categorical"}, estimator="sklearn.linear_model.Ridge")


def _hash_of(rows: list[tuple]) -> str:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA s")
    con.execute("CREATE TABLE s.src (x DECIMAL(10,2), kind VARCHAR, y BIGINT)")
    con.executemany("INSERT INTO s.src VALUES (?, ?, ?)", rows)
    built = features.build(con, TRAIN, schema="s", loaded_table="src", table="f")
    assert built.rows == sum(1 for r in rows if r[2] is not None)
    return built.data_hash


ROWS = [(1.5, "a", 3), (2.0, "b", 4), (2.5, None, 5), (3.0, "a", None), (4.0, "c", 8)]


def test_the_hash_ignores_row_order_and_sees_every_change():
    base = _hash_of(ROWS)
    assert _hash_of(list(reversed(ROWS))) == base
    assert _hash_of(ROWS[2:] + ROWS[:2]) == base
    assert _hash_of([*ROWS[:-1], (4.0, "c", 9)]) != base  # one value changed
    assert _hash_of(ROWS[:-1]) != base  # a row less
    assert _hash_of([*ROWS, ROWS[0]]) != base  # a duplicated row counts (a sum, not an XOR)
    assert _hash_of([*ROWS, ROWS[0], ROWS[0]]) != _hash_of(ROWS)  # even twice
    assert _hash_of([*ROWS, (1.0, "z", None)]) == base  # rows without a target are not training data


def test_a_column_missing_from_the_data_names_the_field():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA s; CREATE TABLE s.src (x DOUBLE, y BIGINT)")
    with pytest.raises(
        features.FeatureError, match=r"train.features.kind: column 'kind' is not in the training data; it has: x, y"
    ):
        features.build(con, TRAIN, schema="s", loaded_table="src", table="f")


@pytest.mark.parametrize(
    ("rule", "metric", "new", "champion", "promote", "says"),
    [
        (PromotionSpec(floor=0.5), "r2", 0.6, None, True, "first champion: r2 0.6000, reaches the floor"),
        (PromotionSpec(floor=0.5), "r2", 0.4, None, False, "does not reach the floor (at least 0.5)"),
        (
            PromotionSpec(min_improvement=0.01),
            "r2",
            0.805,
            0.8,
            False,
            "does not beat the champion's 0.8000 by at least 0.01",
        ),
        (PromotionSpec(min_improvement=0.01), "r2", 0.82, 0.8, True, "beats the champion's 0.8000"),
        (PromotionSpec(), "r2", 0.8, 0.8, True, "or match it"),
        (PromotionSpec(), "rmse", 10.0, 9.0, False, "does not beat"),  # lower is better
        (PromotionSpec(floor=12), "rmse", 11.0, 11.5, True, "beats"),
        (
            PromotionSpec(floor=12),
            "rmse",
            13.0,
            20.0,
            False,
            "at most 12",
        ),  # better than the champion, worse than the floor
    ],
)
def test_the_promotion_rule(rule, metric, new, champion, promote, says):
    decision = registry.decide(rule, metric, new, champion)
    assert decision.promote is promote and says in decision.reason, decision.reason
