"""Guards of the layout: what the code may reach, checked on its source."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "etl_platform"
FENCE = PACKAGE / "dagster_private"


def _private_reaches(path: Path) -> list[str]:
    """Imports of Dagster's private modules (``dagster._…``, ``dagster_shared`` internals used as
    Dagster's) and calls of ``gc.freeze`` in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dagster._"):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} from {node.module}")
        elif isinstance(node, ast.Import):
            found += [
                f"{path.relative_to(PACKAGE.parent)}:{node.lineno} import {a.name}"
                for a in node.names
                if a.name.startswith("dagster._")
            ]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "freeze"
            and isinstance(node.value, ast.Name)
            and node.value.id == "gc"
        ):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} gc.freeze")
    return found


def test_dagsters_private_api_is_reached_only_inside_the_fence():
    outside = [
        hit for path in sorted(PACKAGE.rglob("*.py")) if FENCE not in path.parents for hit in _private_reaches(path)
    ]
    assert outside == [], "move these into etl_platform/dagster_private/:\n" + "\n".join(outside)


def test_every_piece_of_the_fence_says_what_it_works_around_and_for_which_dagster():
    for path in sorted(FENCE.glob("*.py")):
        if path.name == "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert "1.13" in doc and ("Works around" in doc or "does not export" in doc), path.name
