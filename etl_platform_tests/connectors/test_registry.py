"""The connection-kind registry: every declared kind is found, and a class that does not implement
the connector protocol is refused when its module registers it."""

import pytest

from etl_platform.connectors.registry import KIND_MODULES, Connector, connector_class, register
from etl_platform.spec.base import SpecModel


@pytest.mark.parametrize("kind", sorted(KIND_MODULES))
def test_every_listed_kind_registers_a_connector_with_its_read_shape(kind):
    cls = connector_class(kind)
    assert cls.kind == kind and issubclass(cls, Connector)


class _Options(SpecModel):
    path: str


def test_a_class_that_is_not_a_connector_is_refused():
    with pytest.raises(TypeError, match="not a Connector subclass"):
        register(type("Plain", (), {"kind": "plain"}))


def test_a_connector_missing_its_read_methods_is_refused_by_name():
    class Half(Connector):
        kind = "half"
        Options = _Options
        reads = "sql"

        def select(self, *args):  # no stream()
            return ""

    with pytest.raises(TypeError, match=r"Half cannot be registered.*no stream\(\)"):
        register(Half)
    with pytest.raises(Exception, match="unknown connection kind 'half'"):
        connector_class("half")


def test_a_connector_with_untyped_options_or_an_unknown_read_shape_is_refused():
    class Loose(Connector):
        kind = "loose"
        Options = dict
        reads = "stream"

    with pytest.raises(TypeError, match=r"Options is not a SpecModel; reads 'stream'"):
        register(Loose)


def test_every_read_shape_has_its_methods_its_fields_and_a_loader():
    from etl_platform.connectors.registry import READ_FIELDS, READ_METHODS
    from etl_platform.steps.extract import _READERS

    assert set(READ_METHODS) == set(READ_FIELDS) == set(_READERS)
