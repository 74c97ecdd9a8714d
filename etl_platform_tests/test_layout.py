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


MAX_MODULE_LINES = 400


def test_no_module_is_over_400_lines():
    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these by responsibility: {long}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_at_run_time(path: Path, modules: set[str]) -> set[str]:
    """Our modules a module imports when it runs (imports under ``if TYPE_CHECKING:`` left out)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("etl_platform"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
    return found - {_module_name(path)}


def test_the_import_graph_has_no_cycle():
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: _imports_at_run_time(path, set(paths)) for name, path in paths.items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    cycles = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for imported in sorted(graph.get(name, ())):
            if state.get(imported) == 1:
                cycles.append(" -> ".join([*trail[trail.index(imported) :], imported]))
            elif imported not in state:
                visit(imported, [*trail, imported])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


# Dagster 1.13 prints a "superseded" warning for these; the README and scripts use dg's commands.
SUPERSEDED = ("dagster dev", "dagster asset materialize", "dagster job execute", "dagster definitions validate")


def test_the_readme_and_scripts_use_current_dagster_commands():
    root = PACKAGE.parent
    commands = []
    readme = (root / "README.md").read_text()
    for block in readme.split("```")[1::2]:  # the code blocks a user copies
        commands += [line for line in block.splitlines() if "bin/dagster " in line or line.startswith("dagster ")]
    for script in sorted((root / "scripts").iterdir()):
        commands += [line for line in script.read_text().splitlines() if 'bin/dagster"' in line or "/dagster " in line]
    old = [
        line
        for line in commands
        if any(c in line.replace("bin/", "").replace('"', "").replace("$VENV/", "") for c in SUPERSEDED)
    ]
    assert old == []
