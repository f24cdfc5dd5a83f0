"""Shared fixtures: one simulated day, a directly-ingested warehouse, a real Prometheus server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from app.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
SIM_START = "2026-11-02T00:00:00Z"


def run_cli(*args: str) -> Result:
    """Invoke `gpuledger ARGS...` in-process (settings from defaults + the given options only)."""
    return CliRunner().invoke(main, ["--config", "/dev/null", *args], catch_exceptions=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:  # CI installs it (make tools); never skip silently
        pytest.fail(f"{name} is not installed: run `make tools` (Debian package 'prometheus')")
    return path


@pytest.fixture(scope="session")
def sim_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulated day (seed 7, 5-minute scrapes): the shared test fleet."""
    out = tmp_path_factory.mktemp("sim") / "fleet"
    result = run_cli("simulate", "--start", SIM_START, "--days", "1", "--seed", "7", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def truth(sim_day: Path) -> dict:
    return json.loads((sim_day / "truth.json").read_text())


@pytest.fixture(scope="session")
def sim_week(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated week (seed 7): the serving incidents fall on days 5 and 6."""
    out = tmp_path_factory.mktemp("sim") / "week"
    result = run_cli("simulate", "--start", SIM_START, "--days", "7", "--seed", "7", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def week_serving_warehouse(sim_week: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The week's serving metrics only (vllm.om), at the scrape interval: what SLOs and drift read."""
    wh = tmp_path_factory.mktemp("wh") / "week.duckdb"
    result = run_cli("--warehouse", str(wh), "collect", "openmetrics", str(sim_week / "vllm.om"), "--step", "300s")
    assert result.exit_code == 0, result.output
    return wh


@pytest.fixture(scope="session")
def direct_warehouse(sim_day: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated day ingested straight from its files at 60 s, with the default prices."""
    wh = tmp_path_factory.mktemp("wh") / "direct.duckdb"
    files = sorted(str(p) for p in sim_day.glob("*.om"))
    result = run_cli(
        "--warehouse", str(wh), "collect", "openmetrics", *files, "--step", "60s", "--cluster", "sim-us-east-1"
    )
    assert result.exit_code == 0, result.output
    assert run_cli("--warehouse", str(wh), "pricing", "import", "--default").exit_code == 0
    return wh


@pytest.fixture(scope="session")
def prometheus_url(sim_day: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus serving the simulated day, backfilled with promtool."""
    with serve_prometheus(sorted(sim_day.glob("*.om")), tmp_path_factory.mktemp("prometheus")) as url:
        yield url


@contextmanager
def serve_prometheus(files: list[Path], base: Path) -> Iterator[str]:
    """Backfill OpenMetrics files into a fresh TSDB with promtool and serve it on a free port."""
    promtool, prometheus = require_binary("promtool"), require_binary("prometheus")
    tsdb = base / "tsdb"
    for om in files:
        subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(tsdb)], check=True, capture_output=True
        )
    config = base / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=100y",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(base / "prometheus.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}")
        try:
            if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("prometheus did not become ready within 60 s")
