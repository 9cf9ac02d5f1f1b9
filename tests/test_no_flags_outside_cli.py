"""No module outside the command line (cli/) and rendering (render/) spells a flag:
the library names options by their fields with errors.option(), which only the
command line words as flags (see test_errors_option_wording.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "sce"


#: A flag as a user types it: "--encoding", not "x--y", "---" or "--" alone.
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")

#: Strings outside cli/ and render/ that keep a flag on purpose, each with why.
CLI_FACING = {
    # sce grad --logits-file's reader, pointing at other commands: a command line, not an option of this call.
    ("io/arrays/vector.py", "--arrays"),
    # sce test's stages, pointing a function's bfloat16 stage at the command that grades it.
    ("grading/implementations/stage_answers.py", "--arrays"),
    # The pytest plugin's own option of pytest's command line, not one of sce's.
    ("pytest_plugin.py", "--sce-slow"),
}


def _string_constants(tree: ast.AST) -> list[ast.Constant]:
    """The string literals of a module, except docstrings and other bare strings (attribute docs)."""
    bare = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in bare
    ]


def test_no_flag_is_spelled_outside_the_command_line_and_rendering():
    spelled = []
    kept = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = str(path.relative_to(PACKAGE))
        if module.startswith(("cli/", "render/")):
            continue
        for node in _string_constants(ast.parse(path.read_text(encoding="utf-8"))):
            for flag in FLAG.findall(node.value):
                if (module, flag) in CLI_FACING:
                    kept.add((module, flag))
                else:
                    spelled.append(f"{module}:{node.lineno}: {flag} in {node.value!r}")
    assert not spelled, "name the option with errors.option(field):\n" + "\n".join(spelled)
    assert kept == CLI_FACING  # an exception whose text is gone leaves the list


def test_the_scan_finds_a_flag_in_a_message_and_not_in_a_docstring():
    tree = ast.parse(
        '"""Says --encoding."""\nX = 1\n"""Also --encoding."""\nraise E("give --encoding")\n'
        'raise E(f"line {n}: say --delimiter tab, not ---, -- or x--y")\n'
    )
    found = [FLAG.findall(node.value) for node in _string_constants(tree)]
    assert [flags for flags in found if flags] == [["--encoding"], ["--delimiter"]]
