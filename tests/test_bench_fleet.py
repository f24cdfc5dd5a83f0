"""The benchmark fleet generator against its own schedule, and the PromQL and pandas baselines
against gpuledger: every path bills the same fleet the same way."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from analytics.cost.chargeback import chargeback
from bench import fleet_openmetrics, fleet_warehouse, pandas_chargeback, promql, truth
from bench.fleet import SANDBOX, TEAMS, Fleet, FleetSpec, build
from collectors.metrics.ingest import collect_files
from core import conventions as c
from core.settings import CollectSettings
from core.store.rollups import hourly
from core.store.warehouse import open_warehouse
from core.timeutil import Window, to_epoch
from tests.conftest import free_port, require_binary

SPEC = FleetSpec(gpus=40, days=1)


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return build(SPEC)


@pytest.fixture(scope="module")
def warehouse(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fleet") / "w.duckdb"
    fleet_warehouse.write(fleet, path)
    return path


def _window(lo: int = 0, hi: int | None = None) -> Window:
    hi = SPEC.steps if hi is None else hi
    return Window(SPEC.start + timedelta(seconds=lo * SPEC.step_s), SPEC.start + timedelta(seconds=hi * SPEC.step_s))


def test_the_fleet_has_the_simulators_realism(fleet: Fleet) -> None:
    pods, devices, nodes = fleet.pods, fleet.devices, fleet.nodes
    assert set(pods["team"]) - {""} <= set(TEAMS) and (pods["namespace"] == SANDBOX).any()
    assert (pods["team"][pods["namespace"] == SANDBOX] == "").all()  # the sandbox carries no team label
    assert {"3g.40gb", "2g.20gb", "1g.10gb"} <= set(devices["mig_profile"])
    assert (fleet.slots["resource"] == c.RESOURCE_GPU_SHARED).sum() >= 4 and (nodes["replicas"] == 4).any()
    assert (fleet.intervals["pod_id"] == -1).any()  # idle GPUs
    assert set(nodes["capacity_type"]) == {"on-demand", "spot"}
    assert pods["stop"].lt(SPEC.steps).any() and pods["start"].gt(0).any()  # jobs start and stop mid-window
    assert fleet.physical_gpus == pytest.approx(SPEC.gpus, rel=0.2)


def test_the_generated_warehouse_bills_the_gpu_hours_and_dollars_of_the_fleets_own_schedule(
    fleet: Fleet, warehouse: Path
) -> None:
    alloc, cost, used = truth.allocated_gpu_hours(fleet), truth.allocated_cost(fleet), truth.used_gpu_hours(fleet)
    with open_warehouse(warehouse, read_only=True) as con:
        assert hourly.in_sync(con)
        report = chargeback(con, _window())
    rows = {r.keys["team"]: r for r in report.rows}
    assert set(rows) - {c.IDLE} == set(alloc)
    for team, hours in alloc.items():
        assert rows[team].gpu_hours == pytest.approx(hours, rel=1e-12)
        assert float(rows[team].cents["allocated_cost_usd"]) == pytest.approx(cost[team], abs=0.011)
        assert rows[team].used_gpu_hours == pytest.approx(used[team], rel=1e-5)
    assert report.capacity_gpu_hours == pytest.approx(truth.capacity_gpu_hours(fleet))
    assert float(report.node_cost_usd) == pytest.approx(truth.capacity_cost(fleet), abs=0.011)


def test_the_fleets_openmetrics_text_ingests_to_the_same_allocation(fleet: Fleet, tmp_path: Path) -> None:
    lo, hi = 600, 720
    fleet_openmetrics.write_files(fleet, tmp_path, lo, hi)
    wh = tmp_path / "w.duckdb"
    files = sorted(tmp_path.glob("*.om"))
    collect_files(wh, files, CollectSettings(cluster="bench", lookback="60s"))
    with open_warehouse(wh, read_only=True) as con:
        report = chargeback(con, _window(lo, hi))
    expected = truth.allocated_gpu_hours(fleet, lo, hi)
    got = {r.keys["team"]: r.gpu_hours for r in report.rows if r.keys["team"] != c.IDLE}
    assert got == pytest.approx({k: v for k, v in expected.items() if v})


def test_pandas_over_the_raw_rows_gives_the_same_bill(warehouse: Path) -> None:
    w = _window()
    with open_warehouse(warehouse, read_only=True) as con:
        ours = {r.keys["team"]: r for r in chargeback(con, w).rows}
        theirs = pandas_chargeback.chargeback_by_team(con, w.start, w.end)
    assert set(theirs) == set(ours)
    for team, row in ours.items():
        assert theirs[team]["gpu_hours"] == pytest.approx(row.gpu_hours, rel=1e-9)
        assert theirs[team]["cost_usd"] == pytest.approx(float(row.cost_usd), abs=0.011)
        if team != c.IDLE:
            assert theirs[team]["used_gpu_hours"] == pytest.approx(row.used_gpu_hours, rel=1e-6)


def test_promql_on_a_backfilled_prometheus_gives_the_same_bill(fleet: Fleet, warehouse: Path, tmp_path: Path) -> None:
    require_binary("promtool"), require_binary("prometheus")
    lo, hi = 240, 480  # two whole 2-hour blocks
    promql.backfill(fleet, tmp_path / "prom", lo=lo, hi=hi, workers=1)
    w = _window(lo, hi)
    with open_warehouse(warehouse, read_only=True) as con:
        ours = {r.keys["team"]: r for r in chargeback(con, w).rows}
    with promql.server(tmp_path / "prom" / "tsdb", free_port(), tmp_path / "prometheus.log") as url:
        theirs = promql.chargeback_by_team(url, to_epoch(w.end), w.hours / 24, SPEC.step_s)
    assert set(theirs) == set(ours)
    for team, row in ours.items():
        assert theirs[team]["gpu_hours"] == pytest.approx(row.gpu_hours, rel=1e-9)
        assert theirs[team]["cost_usd"] == pytest.approx(float(row.cost_usd), abs=0.011)
