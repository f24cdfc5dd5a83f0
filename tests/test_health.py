"""Fleet health on the simulated day: the analytics reproduce the simulator's own incident truth.

truth.json's `health` section is written by the simulator from its incident schedule and the
documented policy defaults, never by running the analytics.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from analytics.health import impact
from analytics.health.history import unhealthy_hours
from analytics.health.report import HealthResult
from analytics.health.views import node_periods
from app.jobs import ROW_COLUMNS, evaluate_health
from collectors.simulator import fleet
from collectors.simulator.incidents import INCIDENTS
from core import conventions as c
from core.settings import Settings
from core.store.warehouse import open_warehouse
from core.timeutil import Window, iso, parse_ts
from tests.conftest import FIXTURES, SIM_START, run_cli

DAY = Window(parse_ts("2026-11-02"), parse_ts("2026-11-03"))
ROOT = Path(__file__).resolve().parents[1]
ARGS = ("--start", "2026-11-02T00:00:00Z", "--end", "2026-11-03T00:00:00Z")


@pytest.fixture(scope="module")
def day(sim_warehouse: Path) -> HealthResult:
    with open_warehouse(sim_warehouse, read_only=True) as con:
        return evaluate_health(con, Settings(), DAY)


@pytest.fixture(scope="module")
def healthy_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same day simulated with every incident turned off, ingested with the default prices."""
    out = tmp_path_factory.mktemp("healthy")
    sim = out / "fleet"
    assert run_cli("simulate", "--start", SIM_START, "--days", "1", "--out", str(sim), "--no-incidents").exit_code == 0
    wh = out / "healthy.duckdb"
    files = [str(p) for p in sorted(sim.glob("*.om"))]
    assert (
        run_cli("--warehouse", str(wh), "collect", "openmetrics", *files, "--cluster", "sim-us-east-1").exit_code == 0
    )
    assert run_cli("--warehouse", str(wh), "pricing", "import", "--default").exit_code == 0
    assert json.loads((sim / "truth.json").read_text())["health"] == {
        "incidents": False,
        "gpus": {},
        "xid_events": [],
        "failures": {"model": {}, "pool": {}},
    }
    return wh


def _transitions(result: HealthResult, uuid: str) -> list[tuple[str, str | None, str]]:
    return [(iso(p.began), p.from_state, p.state) for p in result.transitions() if p.key.gpu_uuid == uuid]


def _truth_gpu(truth: dict, kind: str) -> tuple[str, dict]:
    return next((uuid, g) for uuid, g in truth["health"]["gpus"].items() if g["incident"] == kind)


@pytest.mark.parametrize("kind", [i.kind for i in INCIDENTS], ids=lambda k: f"the {k.replace('_', ' ')} incident")
def test_every_incident_produces_exactly_the_expected_transitions_with_their_evidence(
    day: HealthResult, truth: dict, kind: str
) -> None:
    uuid, expected = _truth_gpu(truth, kind)
    assert _transitions(day, uuid) == [(t["ts"], t["from"], t["to"]) for t in expected["transitions"]]
    periods = [p for p in day.transitions() if p.key.gpu_uuid == uuid]
    for period, want in zip(periods, expected["transitions"], strict=True):
        assert want["signal"] in {e.signal for e in period.evidence}, (period.state, period.evidence)
        if want["xid"] is not None:
            assert want["xid"] in {e.xid for e in period.evidence}


def test_gpus_without_incidents_never_change_state(day: HealthResult, truth: dict) -> None:
    changed = {p.key.gpu_uuid for p in day.transitions()}
    assert changed == {u for u, g in truth["health"]["gpus"].items() if g["transitions"]}
    assert len(day.gpus) == sum(n.gpu_count for n in fleet.NODES) and all(day.state_at_end(k) for k in day.gpus)


def test_a_healthy_fleet_yields_no_recommendation_at_all(healthy_warehouse: Path) -> None:
    every_state = "healthy,watch,drain,offline,rma"
    result = run_cli(
        "--warehouse", str(healthy_warehouse), "report", "health", *ARGS, "--state", every_state, "--format", "json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert len(report["gpus"]) == report["totals"]["gpus_evaluated"] == sum(n.gpu_count for n in fleet.NODES)
    assert {(r["state"], r["since"], r["until"]) for r in report["gpus"]} == {
        (c.STATE_HEALTHY, "2026-11-02T00:00:00Z", "ongoing")
    }, "healthy all day, not even a watch"
    assert report["nodes"] == [] and report["impacted_pods"] == [] and report["lost"] == []
    assert report["xid_events"] == [] and report["totals"]["lost_cost_usd"] == "0.00"


def test_xid_events_are_classified_and_attributed_to_the_pods_running_then(day: HealthResult, truth: dict) -> None:
    got = [(e.key.gpu_uuid, iso(e.ts), e.xid, list(e.pods)) for e in sorted(day.events, key=lambda e: e.ts)]
    want = [(x["gpu_uuid"], x["ts"], x["xid"], x["pods"]) for x in truth["health"]["xid_events"]]
    assert got == sorted(want, key=lambda w: w[1])
    app = next(e for e in day.events if e.xid == 13)
    assert (app.cause, app.severity, app.device_plugin_ignores, app.teams) == ("application", "none", True, ("nlp",))
    assert not [p for p in day.transitions() if p.key == app.key], "an application Xid counts against the workload"


def _gpu_hour_prices() -> dict[str, Decimal]:
    with open(ROOT / "collectors" / "pricing" / "data" / "prices-default.csv") as fh:
        return {
            r["instance_type"]: Decimal(r["price_per_hour_usd"]) / int(r["gpus"])
            for r in csv.DictReader(fh)
            if r["region"] == "us-east-1" and r["capacity_type"] == "on_demand"
        }


def test_lost_gpu_hours_and_their_cost_equal_the_truth_times_list_prices(
    sim_warehouse: Path, day: HealthResult, truth: dict
) -> None:
    with open_warehouse(sim_warehouse, read_only=True) as con:
        lost = {r.key.gpu_uuid: r for r in impact.lost_capacity(con, day)}
    prices = _gpu_hour_prices()
    expected = {u: g for u, g in truth["health"]["gpus"].items() if g["lost_gpu_hours"]}
    assert set(lost) == set(expected)
    for uuid, g in expected.items():
        assert lost[uuid].hours == pytest.approx(g["lost_gpu_hours"], abs=1e-9)
        price = prices[truth["nodes"][g["node"]]["instance_type"]]
        assert abs(lost[uuid].cost_usd - Decimal(repr(g["lost_gpu_hours"])) * price) <= Decimal("0.01"), uuid
        assert sum(lost[uuid].by_period.values()) == lost[uuid].cost_usd
    assert impact.total_cost(list(lost.values())) == sum(r.cost_usd for r in lost.values())


def test_impacted_pods_are_the_ones_that_ran_on_each_gpu_while_it_was_unhealthy(
    sim_warehouse: Path, day: HealthResult, truth: dict
) -> None:
    with open_warehouse(sim_warehouse, read_only=True) as con:
        rows = impact.impacted_pods(con, day)
    got: dict[str, list[str]] = {}
    for row in rows:
        got.setdefault(row.key.gpu_uuid, []).append(f"{row.namespace}/{row.pod}")
    want = {u: g["impacted_pods"] for u, g in truth["health"]["gpus"].items() if g["impacted_pods"]}
    assert {u: sorted(p) for u, p in got.items()} == want
    offline = next(r for r in rows if c.STATE_OFFLINE in r.states)
    assert offline.end == DAY.end and offline.team == "nlp", "a silent GPU keeps the pod it last served"


@pytest.mark.parametrize("by", ["gpu_model", "node_pool"])
def test_failures_and_mtbf_per_model_and_pool_follow_from_the_truth(day: HealthResult, truth: dict, by: str) -> None:
    rows = {r.group[by]: r for r in impact.reliability(day, by)}
    failures = truth["health"]["failures"]["model" if by == "gpu_model" else "pool"]
    assert {k: r.failures for k, r in rows.items() if r.failures} == failures
    for name, row in rows.items():
        lost = sum(
            g["lost_gpu_hours"]
            for g in truth["health"]["gpus"].values()
            if g["model" if by == "gpu_model" else "pool"] == name
        )
        assert row.observed_gpu_hours == pytest.approx(24.0 * row.gpus)
        assert row.unhealthy_gpu_hours == pytest.approx(lost)
        if row.failures:
            assert row.mtbf_hours == pytest.approx((24.0 * row.gpus - lost) / row.failures)


def test_a_node_takes_the_state_of_its_worst_gpu(day: HealthResult, truth: dict) -> None:
    uuid, g = _truth_gpu(truth, "xid79_offline")
    nodes = [n for n in node_periods(day) if n.node == g["node"]]
    assert [(iso(n.start), n.state) for n in nodes] == [
        ("2026-11-02T00:00:00Z", c.STATE_HEALTHY),
        ("2026-11-02T07:00:00Z", c.STATE_DRAIN),
        ("2026-11-02T07:05:00Z", c.STATE_OFFLINE),
    ]
    assert nodes[-1].gpus == (uuid,) and nodes[-1].end == DAY.end
    quiet = {n.node for n in node_periods(day) if n.state != c.STATE_HEALTHY}
    assert quiet == {g["node"] for g in truth["health"]["gpus"].values() if g["transitions"]}


def _stored(wh: Path) -> list[tuple]:
    """Stored health rows without the evaluation time."""
    with open_warehouse(wh, read_only=True) as con:
        periods = con.execute(f"SELECT * EXCLUDE (evaluated_at) FROM {c.T_HEALTH_PERIODS} ORDER BY ALL").fetchall()
        events = con.execute(f"SELECT * EXCLUDE (evaluated_at) FROM {c.T_HEALTH_EVENTS} ORDER BY ALL").fetchall()
    return periods + events


def test_stored_history_says_how_long_each_gpu_was_unhealthy_and_re_evaluating_changes_nothing(
    sim_warehouse: Path, truth: dict, tmp_path: Path
) -> None:
    wh = tmp_path / "wh.duckdb"
    shutil.copy(sim_warehouse, wh)
    for start, end in (("2026-11-02T00:00:00Z", "2026-11-02T12:00:00Z"), ("2026-11-02T12:00:00Z", "2026-11-03")):
        assert run_cli("--warehouse", str(wh), "health", "evaluate", "--start", start, "--end", end).exit_code == 0
    halves = _stored(wh)
    with open_warehouse(wh, read_only=True) as con:
        split = unhealthy_hours(con, DAY)
    assert run_cli("--warehouse", str(wh), "health", "evaluate", *ARGS).exit_code == 0
    once = _stored(wh)
    assert run_cli("--warehouse", str(wh), "health", "evaluate", *ARGS).exit_code == 0
    assert _stored(wh) == once != halves, "the whole day replaces the halves, and again changes nothing"
    assert len(halves) > len(once), "periods running across noon were cut there"
    with open_warehouse(wh, read_only=True) as con:
        whole = unhealthy_hours(con, DAY)
        events = con.execute(f"SELECT gpu_uuid, xid, team FROM {c.T_HEALTH_EVENTS} ORDER BY ts").fetchall()
    per_gpu: dict[str, float] = {}
    for (_, uuid, _), hours in whole.items():
        per_gpu[uuid] = per_gpu.get(uuid, 0.0) + hours
    want = {u: g["lost_gpu_hours"] for u, g in truth["health"]["gpus"].items() if g["lost_gpu_hours"]}
    assert per_gpu == pytest.approx(want) and split == pytest.approx(whole)
    assert [x for _, x, _ in events] == [48, 13, 79, 64]


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_report_health_lists_gpus_needing_action_with_evidence_and_action(
    sim_warehouse: Path, truth: dict, fmt: str
) -> None:
    result = run_cli(
        "--warehouse", str(sim_warehouse), "report", "health", *ARGS, "--state", "drain,rma", "--format", fmt
    )
    assert result.exit_code == 0, result.output
    dbe, _ = _truth_gpu(truth, "dbe_burst")
    remap, _ = _truth_gpu(truth, "row_remap_failure")
    offline, _ = _truth_gpu(truth, "xid79_offline")
    if fmt == "json":
        rows = json.loads(result.output)["gpus"]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(result.output)))
    else:
        assert "GPU-hours lost" in result.output and remap in result.output
        return
    # worst first, then by node: the RMA, then gpu-od-1's DBE drain, then gpu-od-2's Xid 79 drain
    assert [(r["gpu_uuid"], r["state"]) for r in rows] == [
        (remap, c.STATE_RMA),
        (dbe, c.STATE_DRAIN),
        (offline, c.STATE_DRAIN),
    ]
    assert all(r["node"] and r["model"] and r["evidence"] and r["action"] for r in rows)
    if fmt == "json":
        assert [list(r) for r in rows] == [list(ROW_COLUMNS)] * len(rows), "the dashboard's frame names every key"


def test_an_unknown_state_is_a_clear_error(sim_warehouse: Path) -> None:
    result = run_cli("--warehouse", str(sim_warehouse), "report", "health", *ARGS, "--state", "broken")
    assert result.exit_code == 2 and "unknown state 'broken'" in result.output


def _label_names(line: str) -> list[str]:
    return re.findall(r'(\w+)="', line.split("{", 1)[1].rsplit("}", 1)[0])


def test_simulated_xid_series_carry_err_code_and_err_msg_in_the_exporters_label_order(sim_day: Path) -> None:
    fixture = next(
        line
        for line in (FIXTURES / "dcgm-exporter_4.8.2_k8s_h100.prom").read_text().splitlines()
        if line.startswith(c.DCGM_XID + "{") and "pod=" in line
    )
    dcgm = (sim_day / "dcgm-exporter.om").read_text()
    ours = re.search(r'^DCGM_FI_DEV_XID_ERRORS\{[^}]*err_code="13"[^}]*\} 13 \d+$', dcgm, re.M)
    assert ours is not None and 'err_msg="Graphics Engine Exception"' in ours.group(0)
    assert _label_names(ours.group(0)) == _label_names(fixture)
    assert re.search(r"^# TYPE DCGM_FI_DEV_ECC_DBE_VOL_TOTAL unknown$", dcgm, re.M), "OpenMetrics: no _total suffix"


@pytest.mark.parametrize(
    ("family", "model", "mig", "present"),
    [
        (c.DCGM_ROW_REMAP_FAILURE, "A100-SXM4-40GB", False, True),
        (c.DCGM_ROW_REMAP_FAILURE, "A100-SXM4-80GB", True, False),
        (c.DCGM_ROW_REMAP_FAILURE, "V100", False, False),
        (c.DCGM_RETIRED_DBE, "V100", False, True),
        (c.DCGM_RETIRED_DBE, "A100-SXM4-40GB", False, False),
        (c.DCGM_ECC_DBE_VOL, "A100-SXM4-80GB", True, True),
    ],
    ids=[
        "Ampere GPUs report row remapping",
        "MIG-enabled GPUs cannot report row remapping",
        "Volta GPUs have no row remapping",
        "Volta GPUs report retired pages",
        "Ampere GPUs retire no pages",
        "MIG instances repeat their card's ECC counters",
    ],
)
def test_each_gpu_reports_the_health_fields_its_architecture_supports(
    sim_day: Path, family: str, model: str, mig: bool, present: bool
) -> None:
    lines = [line for line in (sim_day / "dcgm-exporter.om").read_text().splitlines() if line.startswith(family + "{")]
    matching = [line for line in lines if model in line and ("GPU_I_PROFILE" in line) == mig]
    assert bool(matching) == present


def test_counter_increases_read_restarts_as_promql_does_not_as_bursts(day: HealthResult, truth: dict) -> None:
    keys = {k.gpu_uuid: k for k in day.gpus}
    for uuid, g in truth["health"]["gpus"].items():
        got = day.counters[keys[uuid]]
        assert {m: got.get(m, 0.0) for m in g["counter_increases"]} == g["counter_increases"], g["incident"]
    reload, _ = _truth_gpu(truth, "driver_reload")
    got = day.counters[keys[reload]]
    # the reload dropped 48,000 replays and 3,000 corrected errors to 0: neither a burst nor negative
    assert got[c.DCGM_PCIE_REPLAY] < 10 and got[c.DCGM_ECC_SBE_VOL] == got[c.DCGM_ECC_SBE_AGG] < 50
