"""The destination registry: each connection kind a pipeline may load into has one destination
class, found without an if-chain; a class missing part of the Destination protocol is refused."""

import pytest

from etl_platform.connectors.registry import build
from etl_platform.destinations.base import WAREHOUSE
from etl_platform.destinations.registry import (
    DESTINATION_KINDS,
    KIND_MODULES,
    destination_class,
    destination_for,
    register,
)


def test_the_kinds_a_pipeline_loads_into_come_from_the_registry():
    assert DESTINATION_KINDS == ("postgres", "local", "s3")
    assert set(KIND_MODULES) == {WAREHOUSE, *DESTINATION_KINDS}


@pytest.mark.parametrize(
    ("kind", "options", "expected", "asset_kinds"),
    [
        (WAREHOUSE, None, "warehouse table sales.orders", {"duckdb"}),
        (
            "postgres",
            {"host": "127.0.0.1", "database": "test", "user": "u"},
            "PostgreSQL table sales.orders of connection out",
            {"postgres"},
        ),
        ("local", {"path": "/tmp/out"}, "csv table sales/orders of connection out", {"csv", "file"}),
        ("s3", {"bucket": "b"}, "csv table sales/orders of connection out", {"csv", "s3"}),
    ],
)
def test_each_kind_builds_the_destination_it_declares(kind, options, expected, asset_kinds):
    connector = None if options is None else build("out", kind, options)
    destination = destination_for(kind, connector, "sales", "orders", file_format="csv", partition_by=[])
    assert str(destination) == expected
    assert destination_class(kind).asset_kinds(kind, "csv") == asset_kinds
    assert destination_class(kind).writes_files is (kind in ("local", "s3"))


def test_a_kind_no_destination_loads_into_is_refused_with_the_known_kinds():
    with pytest.raises(ValueError, match="cannot load into a rest connection.*postgres, local, s3"):
        destination_class("rest")


def test_a_class_missing_part_of_the_protocol_is_refused_at_registration():
    class Incomplete:
        connection_kinds = ("ftp",)
        two_phase = False

        def commit(self, *args, **kwargs):
            pass

    with pytest.raises(TypeError, match=r"Incomplete is not a Destination: it lacks .*asset_kinds.*finish"):
        register(Incomplete)
    with pytest.raises(ValueError, match="cannot load into a ftp connection"):
        destination_class("ftp")
