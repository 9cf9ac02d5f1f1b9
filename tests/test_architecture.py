"""The shape of the package, guarded: the data's path is one-way and easy to see.

Layers, low to high: the basics (`sce.options`, `sce.errors`, `sce.number_text`) → `sce.loss` → `sce.io` →
`sce.batch` → `sce.grading`, `sce.explain` and `sce.teaching` → `sce.render` → `sce.cli`; `sce/__init__.py`, `sce/__main__.py`
and `sce/testing.py` are facades on top. A module imports only from its own layer or below, no two modules import
each other (however indirectly; an import inside a function counts, one under `if TYPE_CHECKING:` does not), no
module reaches for another's `_private` names, modules and functions fit on a screen, and no file of the project
speaks of the history of its own making. Each check names every offender; the checkers themselves are tested on
small made-up packages first, so that a check that cannot fail is noticed.
"""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
PACKAGE = "sce"

MAX_MODULE_LINES = 500
MAX_FUNCTION_BODY_LINES = 60

# Layers, low to high; a module's layer is that of the longest prefix of its name listed here.
LAYERS: dict[str, int] = {
    "sce.options": 0,
    "sce.errors": 0,
    "sce.number_text": 0,
    "sce.version": 0,
    "sce.displays": 0,
    "sce.loss": 1,
    "sce.io": 2,
    "sce.batch": 3,
    "sce.grading": 4,
    "sce.explain": 4,
    "sce.teaching": 4,
    "sce.render": 5,
    "sce.cli": 6,
    "sce": 7,  # the facades: sce/__init__.py, sce/__main__.py, sce/testing.py
}
LAYER_NAMES = ["basics", "loss", "io", "batch", "grading/explain/teaching", "render", "cli", "facade"]


# --- reading the package ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One import statement's arrow: `importer` (line `line`) imports `imported`, or `names` from it."""

    importer: str
    imported: str
    names: tuple[str, ...]
    line: int

    def where(self, root: Path) -> str:
        return f"{module_path(self.importer, root)}:{self.line}"


def package_modules(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of `package` under `root`, by dotted name (a package is its `__init__.py`)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def module_path(name: str, root: Path) -> str:
    path = root / Path(*name.split("."))
    return str((path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).relative_to(root))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that runs, wherever it sits (inside functions too), except the bodies of `if TYPE_CHECKING:`."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """The arrows from module `name` to other modules of the package, as they run."""
    is_package = path.name == "__init__.py"
    arrows = []
    for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _longest_known(alias.name, modules)
                if target:
                    arrows.append(Import(name, target, (), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, name, is_package)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    arrows.append(Import(name, f"{base}.{alias.name}", (), node.lineno))
                elif base in modules:
                    arrows.append(Import(name, base, (alias.name,), node.lineno))
    return [arrow for arrow in arrows if arrow.imported != name]


def _longest_known(dotted: str, modules: dict[str, Path]) -> str | None:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def all_imports(root: Path, package: str = PACKAGE) -> list[Import]:
    modules = package_modules(root, package)
    return [arrow for name, path in modules.items() for arrow in imports_of(name, path, modules)]


# --- the checks, each returning its offenders as lines to print ---------------------------------------------------


def import_circles(arrows: list[Import], root: Path) -> list[str]:
    """Each group of modules that import one another, with one circle through it spelled out, arrow by arrow."""
    graph: dict[str, dict[str, Import]] = {}
    for arrow in arrows:
        graph.setdefault(arrow.importer, {}).setdefault(arrow.imported, arrow)
    found = []
    for group in strongly_connected(graph):
        if len(group) > 1:
            circle = _one_circle(graph, group)
            steps = " → ".join(f"{a.importer} ({a.where(root)})" for a in circle)
            found.append(f"{len(group)} modules import one another: {', '.join(sorted(group))}; e.g. {steps} → "
                         f"{circle[0].importer}")
    return found


def strongly_connected(graph: dict[str, dict[str, Import]]) -> list[set[str]]:
    """Tarjan's strongly connected components: the groups of modules that reach one another."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph.get(node, {})):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = {stack.pop()}
            while node not in group:
                group.add(stack.pop())
            groups.append(group)

    for start in sorted(graph):
        if start not in index:
            visit(start)
    return groups


def _one_circle(graph: dict[str, dict[str, Import]], group: set[str]) -> list[Import]:
    """A shortest circle through the group's first module, by breadth-first search inside the group."""
    start = min(group)
    came_from: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor, arrow in sorted(graph.get(node, {}).items()):
                if successor not in group or successor in came_from:
                    continue
                came_from[successor] = arrow
                if successor == start:
                    path = [arrow]
                    while path[0].importer != start:
                        path.insert(0, came_from[path[0].importer])
                    return path
                following.append(successor)
        frontier = following
    raise AssertionError(f"no circle through {start}")


def layer_of(module: str) -> int:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in LAYERS:
            return LAYERS[".".join(parts[:end])]
    raise KeyError(module)


def upward_imports(arrows: list[Import], root: Path) -> list[str]:
    return [
        f"{arrow.where(root)}: {arrow.importer} ({LAYER_NAMES[layer_of(arrow.importer)]}) imports "
        f"{arrow.imported} ({LAYER_NAMES[layer_of(arrow.imported)]}), a layer above it"
        for arrow in arrows
        if layer_of(arrow.imported) > layer_of(arrow.importer)
    ]


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_names_across_modules(root: Path, package: str = PACKAGE) -> list[str]:
    """`from other import _name`, `import other._module`, and `other._name` on a module imported from the package."""
    modules = package_modules(root, package)
    found = []
    for name, path in modules.items():
        for arrow in imports_of(name, path, modules):
            private = [n for n in arrow.names if _is_private(n)]
            private += [part for part in arrow.imported.split(".") if _is_private(part)]
            found += [f"{arrow.where(root)}: {name} imports {n} from {arrow.imported}" for n in private]
        found += _private_attributes(name, path, modules, root)
    return found


def _private_attributes(name: str, path: Path, modules: dict[str, Path], root: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = {}
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in modules:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, name, path.name == "__init__.py")
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
    return [
        f"{module_path(name, root)}:{node.lineno}: {name} uses {node.attr} of {aliases[node.value.id]}"
        for node in runtime_nodes(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
        and aliases[node.value.id] != name
        and _is_private(node.attr)
    ]


def long_modules(root: Path, package: str = PACKAGE) -> list[str]:
    found = []
    for name, path in package_modules(root, package).items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{module_path(name, root)}: {lines} lines (at most {MAX_MODULE_LINES})")
    return found


def body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body, from its first statement after the docstring to its last line."""
    body = function.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1


def long_functions(root: Path, package: str = PACKAGE) -> list[str]:
    found = []
    for name, path in package_modules(root, package).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and body_lines(node) > MAX_FUNCTION_BODY_LINES:
                found.append(
                    f"{module_path(name, root)}:{node.lineno}: {node.name}'s body is {body_lines(node)} lines "
                    f"(at most {MAX_FUNCTION_BODY_LINES})"
                )
    return found


# Our own issues by number, and the wording of a history of the work. A citation of another project stays,
# written owner/repo#N, or after the project's name ("PyTorch #N", as a mistake's name quotes it). The patterns
# are spelled so that this file does not match them itself.
ORDINAL = (
    r"(?:this|that|previous|earlier|later|last|next|prior|other|same|"
    r"first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth)"
)
HISTORY_PATTERNS = [
    re.compile(r"\b(?:iss" r"ues?|tickets?|PRs?|pull requests?)\s*#?\s*\d+", re.IGNORECASE),
    re.compile(rf"\b{ORDINAL}\s+sess" r"ions?(?:'s?)?(?!\w)", re.IGNORECASE),
    re.compile(r"\bsess" r"ions?\s+\d+", re.IGNORECASE),
    re.compile(r"\bsess" r"ions'", re.IGNORECASE),
    re.compile(r"\bperiods?\s+of\s+w" r"ork\b", re.IGNORECASE),
    re.compile(r"\bthe\s+iss" r"ue's\b", re.IGNORECASE),
    re.compile(r"\bwhere\s+the\s+iss" r"ues?\s+(?:was|were)\s+silent\b", re.IGNORECASE),
]
# A bare #N, unless it follows owner/repo or another project's capitalised name.
BARE_NUMBER = re.compile(r"(?<![\w/.&-])#\d+\b")
# A colour in a stylesheet is no issue number.
COLOUR_FILES = (".css", ".scss", ".svg")
PROJECT_NAME_BEFORE = re.compile(r"\b([A-Z][A-Za-z0-9]+) $")
NOT_PROJECT_NAMES = {"Issue", "Issues", "Fix", "Fixes", "Fixed", "Close", "Closes", "Closed", "See", "Ref", "Refs"}


def history_wording(text: str, bare_numbers: bool = True) -> list[tuple[int, str]]:
    """(line number, matched words) for each mention of an issue number or of the history of the work."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for pattern in HISTORY_PATTERNS:
            found += [(number, match.group(0)) for match in pattern.finditer(line)]
        for match in BARE_NUMBER.finditer(line) if bare_numbers else ():
            name = PROJECT_NAME_BEFORE.search(line[: match.start()])
            if not name or name.group(1) in NOT_PROJECT_NAMES:
                found.append((number, match.group(0)))
    return found


# Learners' implementations, wrong on purpose: data that `sce test` grades, not the project's own words.
NOT_THE_PROJECTS_WORDS = ("tests/implementations/",)


def project_files(root: Path) -> list[Path]:
    """The project's tracked files (every file, outside a git checkout)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True, timeout=60
        ).stdout.decode()
        names = [name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        ignored = {".git", ".venv", "venv", "build", "dist", "__pycache__", ".mypy_cache", ".ruff_cache"}
        names = [
            str(path.relative_to(root))
            for path in root.rglob("*")
            if path.is_file() and not ignored & set(path.relative_to(root).parts)
        ]
    return [root / name for name in sorted(names) if not name.startswith(NOT_THE_PROJECTS_WORDS)]


def history_in_files(root: Path) -> list[str]:
    found = []
    for path in project_files(root):
        data = path.read_bytes() if path.is_file() else b""
        if b"\0" in data:
            continue  # arrays and compiled files: no words
        text = data.decode("utf-8", errors="replace")
        for line, words in history_wording(text, bare_numbers=not path.name.endswith(COLOUR_FILES)):
            found.append(f"{path.relative_to(root)}:{line}: {words!r}")
    return found


def report(title: str, offenders: list[str]) -> str:
    return f"{len(offenders)} {title}:\n  " + "\n  ".join(offenders)


# --- the checkers, tried on made-up packages ----------------------------------------------------------------------


def make_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_a_circle_through_a_function_local_import_is_found_and_spelled_out(tmp_path):
    root = make_package(tmp_path, {
        "sce/__init__.py": "",
        "sce/loss/__init__.py": "",
        "sce/loss/a.py": "from sce.loss.b import f\n",
        "sce/loss/b.py": "def f():\n    from sce.loss import c\n",
        "sce/loss/c.py": "import sce.loss.a\n",
        "sce/loss/d.py": "from sce.loss.a import f\n",
    })
    circles = import_circles(all_imports(root), root)
    assert circles == [
        "3 modules import one another: sce.loss.a, sce.loss.b, sce.loss.c; e.g. sce.loss.a (sce/loss/a.py:1) → "
        "sce.loss.b (sce/loss/b.py:2) → sce.loss.c (sce/loss/c.py:1) → sce.loss.a"
    ]


def test_an_import_only_for_type_checking_is_no_arrow(tmp_path):
    root = make_package(tmp_path, {
        "sce/__init__.py": "",
        "sce/errors.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sce.loss import result\n",
        "sce/loss/__init__.py": "",
        "sce/loss/result.py": "from sce import errors\n",
    })
    arrows = all_imports(root)
    assert [(a.importer, a.imported) for a in arrows] == [("sce.loss.result", "sce.errors")]
    assert import_circles(arrows, root) == []
    assert upward_imports(arrows, root) == []


def test_an_upward_import_names_both_layers(tmp_path):
    root = make_package(tmp_path, {
        "sce/__init__.py": "",
        "sce/io/__init__.py": "",
        "sce/io/signals.py": "def f():\n    from sce.batch.loop import run\n",
        "sce/batch/__init__.py": "",
        "sce/batch/loop.py": "from ..io import signals\n",
        "sce/grading/__init__.py": "",
        "sce/grading/verdict.py": "import sce.render.table\nfrom sce import loss\n",
        "sce/render/__init__.py": "",
        "sce/render/table.py": "",
        "sce/loss/__init__.py": "",
    })
    assert upward_imports(all_imports(root), root) == [
        "sce/grading/verdict.py:1: sce.grading.verdict (grading/explain/teaching) imports sce.render.table (render), "
        "a layer above it",
        "sce/io/signals.py:2: sce.io.signals (io) imports sce.batch.loop (batch), a layer above it",
    ]


def test_private_names_from_another_module_are_found_in_every_spelling(tmp_path):
    root = make_package(tmp_path, {
        "sce/__init__.py": "",
        "sce/loss/__init__.py": "from sce.loss.exact import _two_sum\n",
        "sce/loss/exact.py": "def _two_sum(): ...\ndef two_sum(): return _two_sum()\n",
        "sce/loss/user.py": "from sce.loss import exact as e\nfrom sce.loss.exact import two_sum, __doc__\n"
                            "x = e._two_sum\ny = e.two_sum\n",
        "sce/loss/_hidden.py": "",
        "sce/loss/other.py": "import sce.loss._hidden\n",
    })
    assert private_names_across_modules(root) == [
        "sce/loss/__init__.py:1: sce.loss imports _two_sum from sce.loss.exact",
        "sce/loss/other.py:1: sce.loss.other imports _hidden from sce.loss._hidden",
        "sce/loss/user.py:3: sce.loss.user uses _two_sum of sce.loss.exact",
    ]


def test_a_function_body_is_counted_without_its_signature_and_docstring(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_BODY_LINES))
    fits = f'def fits(\n    a,\n    b,\n):\n    """Two\n\n    lines.\n    """\n{body}'
    over = f"def over():\n{body}    return x0\n"
    root = make_package(tmp_path, {"sce/__init__.py": fits + over})
    assert long_functions(root) == [f"sce/__init__.py:{fits.count(chr(10)) + 1}: over's body is 61 lines (at most 60)"]
    assert long_modules(root) == []
    make_package(tmp_path, {"sce/long.py": "\n" * (MAX_MODULE_LINES + 1)})
    assert long_modules(root) == ["sce/long.py: 501 lines (at most 500)"]


@pytest.mark.parametrize(
    "line",
    [
        "fixed in " + "iss" + "ue 12",
        "(see " + "Iss" + "ue #" + "7)",
        "as " + "iss" + "ue 14's options say",
        "measured in this " + "sess" + "ion",
        "before the fifth " + "sess" + "ion",
        "the " + "sess" + "ions' record",
        "a previous " + "sess" + "ion's code",
        "in " + "sess" + "ion 3",
        "numbered by " + "period of " + "work",
        "Decisions where the " + "iss" + "ues were silent",
        "as in the " + "iss" + "ue's example",
        "closes #" + "12",
        "Fixes #" + "3",
        "(#" + "21)",
    ],
)
def test_history_wording_is_found(line):
    assert history_wording(line)


@pytest.mark.parametrize(
    "line",
    [
        "as pytorch/pytorch#73205 reports",
        "(PyTorch #73205)",
        "the grading session settles ties by count",
        "from sce.grading.implementations.session import grade_implementation",
        "an em dash, &#8212;, in HTML",
    ],
)
def test_citations_and_the_words_of_the_product_are_not_history(line):
    assert history_wording(line) == []


def test_learners_code_and_binary_files_are_not_read_for_history(tmp_path):
    words = "as " + "iss" + "ue 12 says\n"
    make_package(tmp_path, {
        "README.md": "# sce\n\n" + words,
        "tests/implementations/wrong.py": words,
        "samples/dump.npz": "\0" + words,
        "docs/extra.css": "h1 { color: #" + "333; }\n",
    })
    assert history_in_files(tmp_path) == ["README.md:3: " + repr(words.strip()[3:-5])]


# --- the package -------------------------------------------------------------------------------------------------


def test_no_import_circle_between_modules():
    circles = import_circles(all_imports(PROJECT), PROJECT)
    assert not circles, report("import circles (break each by moving the shared part down a layer)", circles)


def test_no_module_imports_from_a_layer_above_its_own():
    upward = upward_imports(all_imports(PROJECT), PROJECT)
    assert not upward, report("upward imports", upward)


def test_no_private_name_is_imported_from_another_module():
    private = private_names_across_modules(PROJECT)
    assert not private, report("private names used across modules (make them public, or move the caller)", private)


def test_no_module_is_over_500_lines():
    long = long_modules(PROJECT)
    assert not long, report("modules over 500 lines", long)


def test_no_function_body_is_over_60_lines():
    long = long_functions(PROJECT)
    assert not long, report("functions whose body is over 60 lines", long)


def test_no_issue_number_or_history_of_the_work_in_the_projects_files():
    found = history_in_files(PROJECT)
    assert not found, report("mentions of our issue numbers or of the history of the work", found)
