"""Spec errors that name the file, line and field, the way Dagster reports YAML errors."""

from collections.abc import Sequence

import dagster as dg
from dagster_shared.yaml_utils.source_position import SourcePositionTree


class SpecError(dg.DagsterInvalidDefinitionError):
    """A pipeline spec that parses but cannot work (unknown column, bad SQL reference, ...)."""


class SpecLocator:
    """Turns a field path inside ``attributes`` into ``file:line - attributes.a.b: message``."""

    def __init__(self, tree: SourcePositionTree | None, fallback: str):
        self._tree = tree
        self._fallback = fallback

    def line_of(self, path: Sequence[str | int]) -> str:
        if self._tree is None:
            return self._fallback
        position, _ = self._tree.lookup_closest_and_path(["attributes", *path], trace=None)
        return f"{position.filename}:{position.start.line}"

    def error(self, path: Sequence[str | int], message: str) -> SpecError:
        field = ".".join(str(p) for p in ("attributes", *path))
        if self._tree is None:
            return SpecError(f"{self._fallback} - {field}: {message}")
        located = self._tree.source_error(
            yaml_path=["attributes", *path], inline_error_message=message, value_error=True
        )
        return SpecError(f"{located.file_name}:{located.start_line_no} - {field}: {message}\n{located.snippet}")
