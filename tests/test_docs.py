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


def _documented_defaults() -> dict[str, str]:
    """docs/settings.md's table rows: setting -> its default column as written."""
    rows = {}
    for line in (ROOT / "docs" / "settings.md").read_text().splitlines():
        m = re.match(r"\| `([a-z_]+\.[a-z0-9_]+)` \| (.*?) \| ", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def _as_written(value: object) -> str:
    """A default as the manual writes it (YAML's flow style)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_as_written(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_as_written(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# defaults the manual describes in words rather than states (a URL template, a section of its own)
_DESCRIBED = {"pricing.aws_offer_url", "serving.canary", "carbon.embodied"}


@pytest.mark.parametrize("setting", [s for s in _settings() if s not in _DESCRIBED])
def test_every_settings_default_in_the_manual_is_the_one_it_has(setting: str) -> None:
    section, name = setting.split(".")
    field = Settings.model_fields[section].annotation.model_fields[name]  # type: ignore[union-attr]
    written = _documented_defaults()[setting]
    default = field.get_default(call_default_factory=True)
    if default is None or default == () or default == {}:
        assert written in ("unset", "none", "`[]`", "`{}`"), setting
    elif isinstance(default, (int, float)) and not isinstance(default, bool):
        assert float(written.strip("`")) == default, setting
    else:
        assert written.strip("`").lower() == _as_written(default).lower(), setting
