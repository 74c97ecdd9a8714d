"""YAML parsed with source positions by libyaml, for the component files of the code location.

Works around: Dagster 1.13.27 reads every ``defs.yaml`` with positions (so an error names its
file and line) through pure-Python PyYAML: about 9 ms per pipeline file, a third of the time
500 pipelines take to load. ``parse_with_positions`` gives the same values and the same
position trees from PyYAML's libyaml binding, about ten times faster, and
``libyaml_component_files`` has Dagster use it while a component tree is read, by swapping
the parser the module ``dagster.components.core.decl`` looks up (not public). It steps aside
when that module no longer uses Dagster's parser, when libyaml is missing, and with
``ETL_DAGSTER_SPEEDUPS=0``. Tested value for value against Dagster's parser
(etl_platform_tests/dagster_private/test_yaml_source.py).
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import yaml
from dagster.components.core import decl
from dagster_shared.yaml_utils import YAML_TIMESTAMP_TAG
from dagster_shared.yaml_utils import parse_yamls_with_source_position as dagsters_parser
from dagster_shared.yaml_utils.source_position import (
    LineCol,
    SourcePosition,
    SourcePositionTree,
    ValueAndSourcePositionTree,
)

from etl_platform.dagster_private import speedups_enabled

LIBYAML = getattr(yaml, "CSafeLoader", None)  # None when PyYAML was built without libyaml


@contextmanager
def libyaml_component_files() -> Iterator[None]:
    """Component files read by libyaml inside the block. Left to Dagster's own parser where
    libyaml is missing, or where Dagster's loader no longer reads them through that parser."""
    swappable = getattr(decl, "parse_yamls_with_source_position", None) is dagsters_parser
    if LIBYAML is None or not swappable or not speedups_enabled():
        yield
        return
    decl.parse_yamls_with_source_position = parse_with_positions
    try:
        yield
    finally:
        decl.parse_yamls_with_source_position = dagsters_parser


def parse_with_positions(
    src: str, filename: str = "<string>", implicits_to_remove: Sequence[str] = (YAML_TIMESTAMP_TAG,)
) -> list[ValueAndSourcePositionTree]:
    """Each document of ``src`` with the position of every node, as Dagster's
    ``parse_yamls_with_source_position`` returns them: a mapping's child is placed at its key,
    with its value's own children beneath."""
    loader = _loader(tuple(implicits_to_remove))(src)
    documents = []
    try:
        while loader.check_node():
            node = loader.get_node()
            value = loader.construct_document(node)  # also merges `<<` keys into the node's pairs
            documents.append(ValueAndSourcePositionTree(value, _positions(loader, node, filename)))
    except yaml.MarkedYAMLError:  # Dagster's parser names the file and shows the lines around the mistake
        return dagsters_parser(src, filename, implicits_to_remove)
    finally:
        loader.dispose()
    return documents


def _positions(loader: Any, node: yaml.Node, filename: str) -> SourcePositionTree:
    children = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            children[loader.construct_object(key, deep=True)] = SourcePositionTree(
                position=_position(key, filename), children=_positions(loader, value, filename).children
            )
    elif isinstance(node, yaml.SequenceNode):
        children = {i: _positions(loader, item, filename) for i, item in enumerate(node.value)}
    return SourcePositionTree(position=_position(node, filename), children=children)


def _position(node: yaml.Node, filename: str) -> SourcePosition:
    start, end = node.start_mark, node.end_mark
    return SourcePosition(
        filename=filename,
        start=LineCol(line=start.line + 1, col=start.column + 1),
        end=LineCol(line=end.line + 1, col=end.column + 1),
    )


_LOADERS: dict[tuple[str, ...], type] = {}


def _loader(implicits_to_remove: tuple[str, ...]) -> type:
    """libyaml's safe loader without the given implicit tags (by default: dates stay strings)."""
    if implicits_to_remove not in _LOADERS:
        resolvers = {
            first: [(tag, pattern) for tag, pattern in mappings if tag not in implicits_to_remove]
            for first, mappings in LIBYAML.yaml_implicit_resolvers.items()
        }
        _LOADERS[implicits_to_remove] = type("PositionLoader", (LIBYAML,), {"yaml_implicit_resolvers": resolvers})
    return _LOADERS[implicits_to_remove]
