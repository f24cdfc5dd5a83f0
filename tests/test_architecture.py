"""Imports flow one way: core <- collectors, analytics <- alerts, app (analytics never imports collectors)."""

from __future__ import annotations

import ast
import subprocess
import sys
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


PACKAGES = ("core", "collectors", "analytics", "alerts", "app")
# Scripts run their code when imported (Streamlit pages; `python -m app`): they are run, never imported
SCRIPTS = ("app/dashboard/streamlit_app.py", "app/dashboard/pages/", "app/__main__.py")
# Imported in the parent before forking, so each child pays only for gpuledger's own modules.
THIRD_PARTY = ("click", "duckdb", "numpy", "pandas", "pyarrow", "pydantic", "yaml", "requests", "msgspec", "scipy.stats",
               "sklearn", "streamlit", "apscheduler", "prometheus_client")  # fmt: skip
FORK_EACH = """
import importlib, os, sys, traceback
for lib in sys.argv[2:]:
    importlib.import_module(lib)
failed = []
for module in sys.argv[1].split(","):
    pid = os.fork()
    if pid == 0:  # a child: this interpreter has imported nothing of gpuledger yet
        try:
            importlib.import_module(module)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1] != 0:
        failed.append(module)
print(",".join(failed))
"""


def _modules() -> list[str]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(SCRIPTS):
                out.append(rel.removesuffix(".py").removesuffix("/__init__").replace("/", "."))
    return out


def test_every_module_imports_on_its_own_in_a_fresh_interpreter() -> None:
    """No import cycle hides behind an import order: each module is imported first, alone, in a forked child
    of an interpreter that has imported none of gpuledger (`import app.cli.report` once raised ImportError)."""
    modules = _modules()
    assert len(modules) > 100 and "app.cli.report" in modules and "app.jobs" in modules
    result = subprocess.run(
        [sys.executable, "-c", FORK_EACH, ",".join(modules), *THIRD_PARTY],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "", f"these failed to import alone: {result.stdout}\n{result.stderr[-3000:]}"
