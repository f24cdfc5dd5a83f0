"""The `gpuledger` command starts without the heavy libraries only some commands need."""

from __future__ import annotations

import subprocess
import sys

import pytest

# pandas alone took half of `gpuledger --help`'s 2.6 s; APScheduler a tenth of a second
DEFERRED = ("pandas", "apscheduler", "sklearn", "scipy", "streamlit")


@pytest.mark.parametrize("module", DEFERRED)
def test_loading_the_command_line_imports_no(module: str) -> None:
    code = f"import sys, app.cli; sys.exit(1 if {module!r} in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0, f"app.cli imports {module}"
