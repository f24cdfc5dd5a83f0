"""Collecting through a real VictoriaMetrics gives what direct ingestion gives, and the truth.

VictoriaMetrics does not use Prometheus' fixed 5-minute lookback: it estimates each series' scrape
interval and lets a series that ends vanish about one step after its last sample (Prometheus keeps
it for the whole lookback). The `victoriametrics` flavor pins Prometheus' rule in every selector
(`last_over_time(x[5m1ms])`); these tests show both the difference and the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core import conventions as c
from tests.conftest import run_cli
from tests.helpers import rows, team_day_hours

DAY = "2026-11-02"
WINDOW = ("--start", "2026-11-02T00:00:00Z", "--end", "2026-11-03T00:00:00Z")


def _collect(url: str, wh: Path, *options: str) -> None:
    result = run_cli(
        "--warehouse", str(wh), "collect", "prometheus", "--url", url, *WINDOW, "--cluster", "sim-us-east-1", *options
    )
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def vm_warehouse(victoriametrics_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    wh = tmp_path_factory.mktemp("vmwh") / "vm.duckdb"
    _collect(victoriametrics_url, wh, "--flavor", "victoriametrics")
    return wh


def test_victoriametrics_collection_gives_the_truths_gpu_hours_per_team(
    vm_warehouse: Path, direct_warehouse: Path, truth: dict
) -> None:
    via_vm = team_day_hours(vm_warehouse, [DAY])
    direct = team_day_hours(direct_warehouse, [DAY])
    assert set(via_vm) == set(direct) == set(truth["allocated_gpu_hours"])
    for team, per_day in truth["allocated_gpu_hours"].items():
        assert via_vm[team][DAY] == pytest.approx(direct[team][DAY], abs=1e-9)
        assert via_vm[team][DAY] == pytest.approx(per_day[DAY], abs=1e-9)


@pytest.mark.parametrize(
    "table", [c.T_POD_ALLOCATIONS, c.T_GPU_SAMPLES, c.T_GPU_POD_SAMPLES, c.T_NODE_SAMPLES, c.T_INFERENCE_SAMPLES]
)
def test_victoriametrics_collection_stores_the_same_rows_as_direct_ingestion(
    vm_warehouse: Path, direct_warehouse: Path, table: str
) -> None:
    assert rows(vm_warehouse, table) == rows(direct_warehouse, table)


def test_without_the_pinned_lookback_victoriametrics_drops_the_last_minutes_of_every_dcgm_series_but_no_pods(
    victoriametrics_url: str, direct_warehouse: Path, tmp_path: Path
) -> None:
    """Pods' state is read with the scrape interval pinned in every flavor (Prometheus' staleness rule),
    so only DCGM's families, read with the lookback, depend on the flavor."""
    wh = tmp_path / "vm-as-prometheus.duckdb"
    _collect(victoriametrics_url, wh, "--flavor", "prometheus")
    as_prometheus, direct = rows(wh, c.T_GPU_POD_SAMPLES), rows(direct_warehouse, c.T_GPU_POD_SAMPLES)
    assert set(as_prometheus) < set(direct)  # only rows missing, none invented
    assert rows(wh, c.T_POD_ALLOCATIONS) == rows(direct_warehouse, c.T_POD_ALLOCATIONS)
