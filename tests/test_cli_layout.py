"""The command line's modules import downward only: no circle among them (imports inside
functions count), none from the package itself, and no private name from another module."""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).parent.parent / "sce" / "cli"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every ``from sce… import names`` of a module, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sce"):
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names if alias.name.startswith("sce"))
    return found


def _modules() -> dict[str, Path]:
    return {
        "sce.cli" if path.name == "__init__.py" else f"sce.cli.{path.stem}": path for path in sorted(CLI.glob("*.py"))
    }


def test_no_private_name_crosses_a_module_boundary():
    crossing = [
        f"{module}: {name} from {source}"
        for module, path in _modules().items()
        for source, names in _imports(path)
        for name in names
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
    ]
    assert crossing == []


def test_no_module_imports_the_package_it_is_in():
    upward = [
        module for module, path in _modules().items() if module != "sce.cli" and any(
            source == "sce.cli" for source, _ in _imports(path)
        )
    ]
    assert upward == []


def test_the_modules_form_no_circle():
    modules = _modules()
    graph = {
        module: {source for source, _ in _imports(path) if source in modules and source != module}
        for module, path in modules.items()
    }
    # The package's own __init__ runs before any of its modules: an arrow into it is an upward
    # import (the test above); arrows out of it are the ones to follow.
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in graph[module]:
            if target == "sce.cli":
                continue
            assert state.get(target) != 1, " → ".join([*trail, module, target])
            if target not in state:
                visit(target, [*trail, module])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [])
    assert len(graph) >= 12
