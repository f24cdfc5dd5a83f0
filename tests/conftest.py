"""Shared fixtures: one simulated day, a directly-ingested warehouse, a real Prometheus server."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from app.cli import main
from collectors.metrics.prometheus import reader
from core import conventions as c
from core import promql
from core.timeutil import parse_ts, to_epoch
from tests import counters, serve_helpers, servers
from tests.servers import free_port

FIXTURES = Path(__file__).parent / "fixtures"
RULES_FILE = Path(__file__).resolve().parents[1] / "rules" / "gpuledger-collector.yaml"
SIM_START = "2026-11-02T00:00:00Z"
RULES_FROM = "2026-11-02T06:00:00Z"  # the recording rules "were deployed" at 06:00


# The slowest files first: xdist (--dist loadfile) hands files to its workers in collection order, and these,
# collected last alphabetically, left one worker finishing them alone (their times: `--durations`, 2026-12-06).
SLOWEST_FIRST = (
    "test_rollups.py", "test_browser.py", "test_serve_process.py", "test_prometheus.py", "test_collector_incremental.py",
    "test_surfaces.py", "test_grafana.py", "test_slo_rules.py", "test_architecture.py", "test_health_coverage.py",
    "test_victoriametrics.py", "test_drift_alerts.py", "test_rollups_incremental.py", "test_chargeback.py",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its own order


@pytest.fixture(autouse=True)
def _no_serve_outlives_its_test() -> Iterator[None]:
    """A test that fails between starting `gpuledger serve` and stopping it left the process running (one was
    found still collecting an hour after its test)."""
    yield
    while serve_helpers.STARTED:
        serve_helpers.STARTED.pop().kill()


def run_cli(*args: str) -> Result:
    """Invoke `gpuledger ARGS...` in-process (settings from defaults + the given options only)."""
    return CliRunner().invoke(main, ["--config", "/dev/null", *args], catch_exceptions=False)


PACKAGE_OF = {"prometheus": "prometheus", "promtool": "prometheus", "victoria-metrics": "victoria-metrics"}


def backfill_command(promtool: str) -> list[str]:
    """promtool's OpenMetrics backfill in week-long blocks: with the default 2 h blocks it re-reads the
    whole file once per block (a week of serving metrics: minutes instead of seconds)."""
    return [promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=168h"]


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


@contextmanager
def serve_prometheus(files: list[Path], base: Path) -> Iterator[str]:
    """Backfill OpenMetrics files into a fresh TSDB with promtool and serve it on a free port."""
    promtool, binary = require_binary("promtool"), require_binary("prometheus")
    tsdb = base / "tsdb"
    for om in files:
        subprocess.run([*backfill_command(promtool), str(om), str(tsdb)], check=True, capture_output=True)
    with servers.prometheus(binary, tsdb, base) as url:
        yield url


def warehouse_of(files: list[Path], base: Path, step: str) -> Path:
    """A warehouse collected from OpenMetrics files at `step` (shorter than the scrape spacing: every scrape kept)."""
    wh = base / "wh.duckdb"
    result = run_cli("--warehouse", str(wh), "collect", "openmetrics", *map(str, files), "--step", step)
    assert result.exit_code == 0, result.output
    return wh


@pytest.fixture(scope="session")
def sim_files(sim_day: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The simulated day's files plus counters with resets and Xid changes on two of its GPUs
    (tests/counters.py), the input every collection path is compared on."""
    extra = tmp_path_factory.mktemp("counters") / "dcgm-counters.om"
    extra.write_text(counters.openmetrics(sim_day / "dcgm-exporter.om", parse_ts(SIM_START)))
    return [*sorted(sim_day.glob("*.om")), extra]


@pytest.fixture(scope="session")
def direct_warehouse(sim_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated day ingested straight from its files at 60 s, with the default prices."""
    wh = tmp_path_factory.mktemp("wh") / "direct.duckdb"
    files = [str(p) for p in sim_files]
    result = run_cli(
        "--warehouse", str(wh), "collect", "openmetrics", *files, "--step", "60s", "--cluster", "sim-us-east-1"
    )
    assert result.exit_code == 0, result.output
    assert run_cli("--warehouse", str(wh), "pricing", "import", "--default").exit_code == 0
    return wh


@pytest.fixture(scope="session")
def sim_warehouse(sim_day: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated day alone (no extra counter GPUs) at 60 s with the default prices: what tests
    comparing against the simulator's fleet-wide truth (every GPU, every incident) read."""
    wh = tmp_path_factory.mktemp("wh") / "sim.duckdb"
    files = [str(p) for p in sorted(sim_day.glob("*.om"))]
    result = run_cli(
        "--warehouse", str(wh), "collect", "openmetrics", *files, "--step", "60s", "--cluster", "sim-us-east-1"
    )
    assert result.exit_code == 0, result.output
    assert run_cli("--warehouse", str(wh), "pricing", "import", "--default").exit_code == 0
    return wh


@pytest.fixture(scope="session")
def prometheus_tsdb(sim_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated day backfilled with promtool, plus gpuledger's recording rules from RULES_FROM on
    (evaluated on the grid by a first Prometheus), so collection meets both cases: with and without rules."""
    promtool, binary = require_binary("promtool"), require_binary("prometheus")
    base = tmp_path_factory.mktemp("prometheus")
    tsdb = base / "tsdb"
    for om in sim_files:
        subprocess.run([*backfill_command(promtool), str(om), str(tsdb)], check=True, capture_output=True)
    start, end = parse_ts(RULES_FROM), parse_ts(SIM_START) + timedelta(days=1)
    with servers.prometheus(binary, tsdb, base) as url:
        # as a live Prometheus evaluates them: a deleted pod's series end at the next 5-minute scrape
        ksm_state = reader.selector_for("prometheus", 300, 300_000)
        live = {c.REC_POD_ALLOCATION_RUNNING: promql.pod_allocation(ksm_state)}
        text = servers.recording_rules_as_openmetrics(url, RULES_FILE, to_epoch(start), to_epoch(end), 60, live)
    rules_om = base / "rules.om"
    rules_om.write_text(text)
    subprocess.run(
        [*backfill_command(promtool), str(rules_om), str(tsdb)],
        check=True,
        capture_output=True,
    )
    return tsdb


@pytest.fixture(scope="session")
def prometheus_url(prometheus_tsdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus serving the simulated day (and the recording rules from RULES_FROM on)."""
    base = tmp_path_factory.mktemp("prometheus-serve")
    with servers.prometheus(require_binary("prometheus"), prometheus_tsdb, base) as url:
        yield url


@pytest.fixture(scope="session")
def victoriametrics_url(sim_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real VictoriaMetrics serving the simulated day, loaded through its import API."""
    binary = require_binary("victoria-metrics")
    base = tmp_path_factory.mktemp("victoriametrics")
    port = free_port()
    args = [binary, f"-storageDataPath={base / 'data'}", f"-httpListenAddr=127.0.0.1:{port}", "-retentionPeriod=100y"]
    url = f"http://127.0.0.1:{port}"
    with servers.running(args, base / "victoria-metrics.log", url, "/health"):
        for om in sim_files:
            response = requests.post(
                f"{url}/api/v1/import/prometheus", data=servers.om_to_prometheus_text(om), timeout=120
            )
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
