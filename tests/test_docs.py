"""The README is the manual: every setting, command, alert and export column is in it."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from alerts import generator
from app.cli import main
from app.publish.exports import COLUMNS
from core.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


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
    block = README.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split()[0:2] for line in block.strip().splitlines()] == [["make", "run"], ["make", "test"]]
