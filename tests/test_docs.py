"""The README is the manual: every setting, command, alert and export column is in it."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from alerts import generator
from app.cli import main
from app.publish.exports import COLUMNS
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
FRONT = (ROOT / "README.md").read_text()
PAGES = sorted((ROOT / "docs").glob("*.md"))
# the manual: the README (the front door) and its topic pages
README = FRONT + "".join(p.read_text() for p in PAGES)


def _settings() -> list[str]:
    out = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        for name in model.model_fields:  # type: ignore[union-attr]
            out.append(f"{section}.{name}")
    return out


def _commands(group: click.Group = main, prefix: str = "gpuledger") -> list[str]:
    out = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out += _commands(command, f"{prefix} {name}")
        else:
            out.append(f"{prefix} {name}")
    return out


@pytest.mark.parametrize("setting", _settings())
def test_every_setting_is_documented(setting: str) -> None:
    assert f"`{setting}`" in README


@pytest.mark.parametrize("command", _commands())
def test_every_command_is_documented(command: str) -> None:
    assert f"`{command}" in README


def test_every_rule_and_export_column_is_documented() -> None:
    names = [r.alert or r.record for f in generator.generate(generator.RuleSpec()) for g in f.groups for r in g.rules]
    assert all(f"`{n}`" in README for n in names)
    assert all(f"`{col}`" in README for col in COLUMNS)


def test_the_readme_opens_with_the_two_commands() -> None:
    block = FRONT.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split()[0:2] for line in block.strip().splitlines()] == [["make", "run"], ["make", "test"]]


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors of a Markdown text (headings inside code blocks left out)."""
    out, fence = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"#{1,6} ", line):
            out.add(re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-"))
    return out


def test_every_link_between_the_readme_and_the_docs_resolves() -> None:
    for page in [ROOT / "README.md", *PAGES]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"\w+://", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.name}: link to {target}: no such file"
            if anchor:
                assert anchor in _anchors(dest.read_text()), f"{page.name}: link to {target}: no such heading"


def test_the_architecture_page_lists_every_module() -> None:
    tree = (ROOT / "docs" / "architecture.md").read_text()
    for package in ("core", "collectors", "analytics", "alerts", "app"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name != "__init__.py":
                assert f"**`{path.parent.relative_to(ROOT).as_posix()}/`**" in tree and f"`{path.name}`" in tree, path
