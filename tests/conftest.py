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


PACKAGE_OF = {"prometheus": "prometheus", "promtool": "prometheus", "victoria-metrics": "victoria-metrics"}


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:  # CI installs it (make tools); never skip silently
        pytest.fail(f"{name} is not installed: run `make tools` (Debian package '{PACKAGE_OF.get(name, name)}')")
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
    promtool, prometheus = require_binary("promtool"), require_binary("prometheus")
    base = tmp_path_factory.mktemp("prometheus")
    tsdb = base / "tsdb"
    for om in sorted(sim_day.glob("*.om")):
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
    with _running(proc, url, "/-/ready"):
        yield url


def om_to_prometheus_text(om: Path) -> bytes:
    """OpenMetrics (timestamps in seconds) -> Prometheus text (milliseconds), for VictoriaMetrics' import."""
    out = []
    for line in om.read_text().splitlines():
        if line and not line.startswith("#"):
            head, ts = line.rsplit(" ", 1)
            out.append(f"{head} {round(float(ts) * 1000)}\n")
    return "".join(out).encode()


@pytest.fixture(scope="session")
def victoriametrics_url(sim_day: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real VictoriaMetrics serving the simulated day, loaded through its import API."""
    binary = require_binary("victoria-metrics")
    base = tmp_path_factory.mktemp("victoriametrics")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"-storageDataPath={base / 'data'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(base / "victoria-metrics.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    with _running(proc, url, "/health"):
        for om in sorted(sim_day.glob("*.om")):
            response = requests.post(f"{url}/api/v1/import/prometheus", data=om_to_prometheus_text(om), timeout=120)
            assert response.status_code == 204, response.text
        assert requests.get(f"{url}/internal/force_flush", timeout=60).status_code == 200
        _wait_for_data(url)
        yield url


def _wait_for_data(url: str) -> None:
    """Imported rows become searchable shortly after the flush."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = requests.get(
            f"{url}/api/v1/query", params={"query": "count(kube_node_info)", "time": "2026-11-02T12:00:00Z"}, timeout=5
        ).json()
        if answer["data"]["result"]:
            return
        time.sleep(0.2)
    raise RuntimeError("victoria-metrics did not show the imported data within 30 s")


@contextmanager
def _running(proc: subprocess.Popen[bytes], url: str, ready_path: str) -> Iterator[None]:
    try:
        _wait_ready(url, proc, ready_path)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], ready_path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            if requests.get(f"{url}{ready_path}", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{proc.args[0]} did not become ready within 60 s")
