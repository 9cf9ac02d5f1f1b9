"""Every example in README.md and docs/ runs, against the installed ``sce``, and prints what the page says.

A ```` ```console ```` block is ``$ command`` lines, each followed by its exact output (stdout and stderr
together), run by bash with ``NO_COLOR=1 COLUMNS=100`` in a folder where ``sce samples .`` was run; the
blocks of one page run in order, in one folder, so that a page may build on its earlier commands.
Spaces at the end of a line are not compared: a page cannot show them. A ```` ```python ```` block
with ``>>>`` lines is a doctest, run in the same folder, its names shared by the page's blocks.
"""

from __future__ import annotations

import doctest
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
SCE = shutil.which("sce", path=str(Path(sys.executable).parent)) or shutil.which("sce")
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}, line {self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [
        Block(page, text.count("\n", 0, match.start()) + 1, match.group(1), match.group(2))
        for match in FENCE.finditer(text)
    ]


def commands(block: Block) -> list[tuple[str, str]]:
    """The block's ``$ command`` lines, each with the output lines that follow it."""
    pairs: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:], []))
        elif not pairs:
            raise AssertionError(f"{block.where}: a console block starts with '$ command', not {line!r}")
        else:
            pairs[-1][1].append(line)
    return [(command, "\n".join(output)) for command, output in pairs]


def environment() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in ("FORCE_COLOR", "SCE_DEBUG")}
    env.update(NO_COLOR="1", COLUMNS="100", LC_ALL="C.UTF-8")
    env["PATH"] = os.pathsep.join([str(Path(SCE).parent), env.get("PATH", "")]) if SCE else env.get("PATH", "")
    return env


def without_line_end_spaces(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines())


@pytest.fixture
def samples_folder(tmp_path: Path) -> Path:
    if SCE is None:
        if os.environ.get("CI"):
            pytest.fail("sce is not installed: CI runs every documented example (pip install '.[test]')")
        pytest.skip("sce is not installed (pip install .)")
    subprocess.run([SCE, "samples", "."], cwd=tmp_path, env=environment(), check=True, capture_output=True)
    return tmp_path


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_example_prints_what_the_page_says(page: Path, samples_folder: Path) -> None:
    differences = []
    names: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks(page):
        if block.language == "console":
            differences += _run_console(block, samples_folder)
        elif block.language in ("python", "pycon") and ">>>" in block.text:
            differences += _run_doctest(block, samples_folder, names)
    assert not differences, "\n\n".join(differences)


def _run_console(block: Block, folder: Path) -> list[str]:
    differences = []
    for command, expected in commands(block):
        done = subprocess.run(
            ["bash", "-c", command], cwd=folder, env=environment(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=120, check=False,
        )
        if without_line_end_spaces(done.stdout) != without_line_end_spaces(expected):
            differences.append(f"{block.where}: $ {command}\n--- the page says:\n{expected}\n--- sce prints:\n{done.stdout}")
    return differences


def _run_doctest(block: Block, folder: Path, names: dict[str, object]) -> list[str]:
    test = doctest.DocTestParser().get_doctest(block.text, names, block.where, str(block.page), block.line)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    here = Path.cwd()
    os.chdir(folder)
    try:
        runner.run(test, out=report.append, clear_globs=False)
    finally:
        os.chdir(here)
    names.update(test.globs)  # the page's next blocks see this one's names
    return ["".join(report)] if runner.failures else []


def test_console_blocks_are_commands_with_their_output() -> None:
    for page in PAGES:
        for block in blocks(page):
            if block.language == "console":
                assert commands(block), f"{block.where}: an empty console block"


def test_every_fenced_block_says_its_language() -> None:
    """An unlabelled block would be neither run nor highlighted: say console, python, text or sh."""
    for page in PAGES:
        for block in blocks(page):
            assert block.language, f"{block.where}: a fenced block without a language"


def test_no_example_prints_a_timing() -> None:
    for page in PAGES:
        for block in blocks(page):
            if block.language == "console":
                for command, output in commands(block):
                    assert "per second" not in output, f"{block.where}: $ {command} prints a timing"


def test_readme_links_lead_to_files_that_exist() -> None:
    """mkdocs checks the site's own links; README's point into it from outside."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def test_readme_is_a_front_door_of_at_most_150_lines() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 150


#: Flags the docs show in code that are not sce's: another program's (pytest, chromium, dask, a bench script, a shell).
OTHER_PROGRAMS_FLAGS = {
    "--compare",  # bench/grad_startup.py
    "--fixtures", "--strict-markers", "--sce-slow",  # pytest, and the plugin's pytest option
    "--headless", "--print-to-pdf",  # chromium
    "--nthreads", "--nworkers",  # dask worker
    "--key-",  # the prefix of --key-logits, --key-labels, …
    "--sm",  # a shell's word in the completion page
    "--help",  # every command's, added by the command line itself
}


def test_every_flag_the_docs_show_in_code_is_one_sce_has():
    # A page that names `--label-smoothing` where the option is `--smoothing` sends a reader to "No such option".
    import typer

    from sce.cli.application import app

    flags: set[str] = set()

    def collect(command) -> None:
        for param in getattr(command, "params", []):
            flags.update(option.split("=")[0] for option in (*param.opts, *param.secondary_opts))
        for sub in getattr(command, "commands", {}).values():
            collect(sub)

    collect(typer.main.get_command(app))
    root = Path(__file__).parent.parent
    unknown = sorted(
        f"{path.relative_to(root)}: {flag}"
        for path in [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
        for span in re.findall(r"`([^`\n]+)`", path.read_text(encoding="utf-8"))
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", span)
        if flag not in flags and flag not in OTHER_PROGRAMS_FLAGS
    )
    assert not unknown, unknown
