"""docs/reference/cli.md is the commands' own description, fresh; every command has its page."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from sce.cli.application import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "generate_cli_reference.py"


def generator():
    spec = importlib.util.spec_from_file_location("generate_cli_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sections(page: str) -> dict[str, str]:
    parts = re.split(r"^## (sce(?: \w+)?)\n", page, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_the_reference_page_is_what_the_commands_say_now():
    module = generator()
    written = module.PAGE.read_text(encoding="utf-8")
    assert written == module.reference(), "stale: run python docs/generate_cli_reference.py"


def test_every_command_and_every_option_is_in_the_reference():
    module = generator()
    page = sections(module.PAGE.read_text(encoding="utf-8"))
    group = module.sce_group()
    context = module.click.Context(group, info_name="sce")
    assert list(page) == ["sce", *(f"sce {name}" for name in COMMANDS)]
    for name in COMMANDS:
        command = group.get_command(context, name)
        for param in command.params:
            for flag in [*param.opts, *getattr(param, "secondary_opts", [])]:
                if flag.startswith("-"):
                    assert f"`{flag}`" in page[f"sce {name}"], f"sce {name} {flag}"


def test_every_command_has_its_page_in_the_site():
    navigation = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for name in COMMANDS:
        page = ROOT / "docs" / "commands" / f"{name}.md"
        assert page.is_file(), f"docs/commands/{name}.md is missing"
        assert f"commands/{name}.md" in navigation
        assert page.read_text(encoding="utf-8").startswith(f"# sce {name}")


def test_every_page_of_the_manual_is_in_the_sites_navigation():
    navigation = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in (ROOT / "docs").rglob("*.md"):
        assert str(page.relative_to(ROOT / "docs")) in navigation, f"{page} is not in mkdocs.yml's nav"
