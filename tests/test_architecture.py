"""Imports flow one way: core <- collectors, analytics <- alerts, app (analytics never imports collectors)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "core": {"core"},
    "collectors": {"core", "collectors"},
    "analytics": {"core", "analytics"},
    "alerts": {"core", "analytics", "alerts"},
    "app": {"core", "collectors", "analytics", "alerts", "app"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(ALLOWED)


@pytest.mark.parametrize("package", list(ALLOWED))
def test_packages_import_only_upstream_stages(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        bad = _imports(path) - ALLOWED[package]
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
