"""On-prem servers whose GPUs' power is charged as measured (pricing.on_prem energy: measured, the default): each
GPU-hour pays the server's cost without its GPUs' nameplate power, and every kWh the GPUs drew is charged at the
electricity price with PUE, on the row that drew it. Where a cluster's GPUs report no energy, the nameplate stays.

The server of every case, by hand: capex $87,600 over 4 years = $2.50/h, 10% opex a year = $1.00/h, 1 kW x PUE 1.5 x
$0.20/kWh = $0.30/h: $3.80 a node-hour, $1.90 a GPU-hour (2 GPUs) at nameplate. Measured: $0.30 per kWh the GPUs
draw, and $3.50 / 2 = $1.75 a GPU-hour."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D
from typing import Any

import duckdb
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from analytics.cost.chargeback import ChargebackOptions, ChargebackReport, chargeback
from analytics.cost.reconcile import reconcile
from app.publish.focus import focus_rows
from collectors.pricing import from_settings, price_table
from collectors.pricing.price_table import ImportOptions
from core import conventions as c
from core.settings import OnPremSettings, PricingSettings
from core.store.rollups import hourly
from core.store.warehouse import transaction
from core.timeutil import Window
from tests.builders import T0, add_energy, add_gpu_usage, add_node, add_pod, fresh_db

HOUR = Window(T0, T0 + timedelta(hours=1))
SERVER = OnPremSettings(
    instance_type="gpu-box",
    gpus_per_node=2,
    effective_from=date(2026, 1, 1),
    capex_usd=D(87600),
    amortization_years=D(4),
    opex_fraction_per_year=D("0.1"),
    power_kw=D(1),
    pue=D("1.5"),
    usd_per_kwh=D("0.20"),
)
FIXED_GPU_HOUR, PER_KWH, NAMEPLATE_GPU_HOUR = D("1.75"), D("0.30"), D("1.90")


def _site(energy: str = "measured") -> duckdb.DuckDBPyConnection:
    con = fresh_db()
    pricing = PricingSettings(on_prem=(SERVER.model_copy(update={"energy": energy}),))
    price_table.store(con, from_settings.on_prem_rows(pricing, ImportOptions()).rows)
    return con


def _box(con: duckdb.DuckDBPyConnection, node: str = "box-1", *, train_w: float = 500.0, idle_w: float = 80.0) -> None:
    """A pod holds GPU-0 for the hour at 500 W (its counter, the first step from power); GPU-1 idles at 80 W (power
    only): 0.5 kWh and 0.08 kWh."""
    add_node(con, node, 2, instance_type="gpu-box", region="", steps=60)
    add_pod(con, f"train-{node}", node, team="vision", steps=60)
    add_gpu_usage(con, node, f"{node}-GPU-0", 0.9, pod=f"train-{node}", steps=60, power_w=train_w)
    add_energy(con, node, f"{node}-GPU-0", [None] + [train_w * 60_000] * 59)
    add_gpu_usage(con, node, f"{node}-GPU-1", 0.0, steps=60, power_w=idle_w)


def _costs(report: ChargebackReport, key: str = "team") -> dict[str, D]:
    return {r.keys[key]: r.cost_usd for r in report.rows}


def test_the_gpus_power_costs_what_they_drew_not_the_nameplate() -> None:
    con = _site()
    _box(con)
    report = chargeback(con, HOUR, ChargebackOptions(by=("team",)))
    # vision: 1.75 + 0.5 kWh x 0.30 = 1.90; idle: 1.75 + 0.08 kWh x 0.30 = 1.774
    assert _costs(report) == {"vision": D("1.90"), c.IDLE: D("1.77")}
    assert report.node_cost_usd == D("3.67") and report.totals()["energy_cost_usd"] == "0.17"  # 0.174
    assert all(s.endswith("its GPUs' energy as measured at $0.3/kWh") for r in report.rows for s in r.sources)


def test_nameplate_bills_the_configured_power_whatever_the_gpus_draw() -> None:
    con = _site("nameplate")
    _box(con)
    report = chargeback(con, HOUR, ChargebackOptions(by=("team",)))
    assert _costs(report) == {"vision": NAMEPLATE_GPU_HOUR, c.IDLE: NAMEPLATE_GPU_HOUR}
    assert report.totals()["energy_cost_usd"] == "0.00"


def test_a_cluster_whose_gpus_report_no_energy_pays_the_nameplate_power() -> None:
    con = _site()
    _box(con)
    add_node(con, "box-2", 2, instance_type="gpu-box", region="", steps=60)  # no DCGM at all
    for table in (c.T_NODES, c.T_NODE_SAMPLES):
        con.execute(f"UPDATE {table} SET cluster = 'c2' WHERE node = 'box-2'")
    report = chargeback(con, HOUR, ChargebackOptions(by=("cluster", "node")))
    by_node: dict[str, D] = {}
    for r in report.rows:
        by_node[r.keys["node"]] = by_node.get(r.keys["node"], D(0)) + r.cost_usd
    assert by_node == {"box-1": D("3.67"), "box-2": 2 * NAMEPLATE_GPU_HOUR}


def test_idle_energy_is_shared_out_with_the_idle() -> None:
    con = _site()
    _box(con)
    shared = chargeback(con, HOUR, ChargebackOptions(by=("team",), idle="weighted"))
    assert _costs(shared) == {"vision": D("3.67"), c.IDLE: D("0.00")}
    row = next(r for r in shared.rows if r.keys["team"] == "vision")
    assert row.cents["idle_share_usd"] == D("1.77") and row.cents["allocated_cost_usd"] == D("1.90")


def test_what_a_silent_gpu_drew_is_charged_on_the_unhealthy_line_and_never_shared() -> None:
    """GPU-0 at 500 W sends for 10 minutes, is silent for 10, sends for 10; its counter then rose 330 kJ over the 660 s
    since its last reading: 300 kJ drawn while silent (tests/test_energy.py has the same GPU). GPU-1 idles at 80 W."""
    con = _site()
    add_node(con, "box-1", 2, instance_type="gpu-box", region="", steps=30)
    add_pod(con, "train", "box-1", team="vision", steps=30)
    for offset in (0, 20):
        add_gpu_usage(con, "box-1", "GPU-0", 0.9, pod="train", offset=offset, steps=10, power_w=500.0)
    add_gpu_usage(con, "box-1", "GPU-1", 0.0, steps=30, power_w=80.0)
    add_energy(con, "box-1", "GPU-0", [None] + [30_000_000.0] * 9)
    add_energy(con, "box-1", "GPU-0", [330_000_000.0] + [30_000_000.0] * 9, offset=20, spans={0: 660})
    report = chargeback(con, Window(T0, T0 + timedelta(minutes=30)), ChargebackOptions(by=("team",), idle="weighted"))
    rows = {r.keys["team"]: r for r in report.rows}
    # the pod holds GPU-0 all 30 minutes: 0.875 + 600 kJ (1/6 kWh) x 0.30 = 0.925; GPU-1, shared to it: 0.875 +
    # 40 Wh x 0.30 = 0.887; the 300 kJ drawn while GPU-0 was silent: 1/12 kWh x 0.30 = 0.025, kept
    assert rows[c.UNHEALTHY].cost_usd == D("0.03") and rows[c.UNHEALTHY].cents["idle_share_usd"] == 0
    assert rows["vision"].cost_usd == D("1.81") and report.node_cost_usd == D("1.84")


def test_the_ledger_reconciles_with_the_site_to_the_cent_and_focus_states_no_single_unit_price() -> None:
    con = _site()
    _box(con)
    rec = reconcile(con, HOUR, ChargebackOptions(), by="node")
    assert rec.provider_total_usd == rec.ledger_total_usd == D("3.67")
    daily = chargeback(con, HOUR, ChargebackOptions(by=("team", "day", "cluster", "node_pool", "instance_type",
                                                        "capacity_type", "region", "gpu_model")))  # fmt: skip
    rows = focus_rows(daily, {})
    assert sum((r["EffectiveCost"] for r in rows), D(0)) == D("3.67")
    assert all(r["ListUnitPrice"] is None and r["ListCost"] == r["EffectiveCost"] for r in rows)


def test_the_rollups_charge_the_same_energy_as_the_steps() -> None:
    con = _site()
    _box(con)
    window = Window(T0 + timedelta(minutes=5), T0 + timedelta(minutes=55))
    stepped = chargeback(con, window, ChargebackOptions(by=("team",)), use_rollups=False)
    with transaction(con):
        hourly.refresh(con, None, full=True)
    rolled = chargeback(con, HOUR, ChargebackOptions(by=("team",)))
    assert _costs(rolled) == {"vision": D("1.90"), c.IDLE: D("1.77")}
    assert _costs(chargeback(con, window, ChargebackOptions(by=("team",)))) == _costs(stepped)


def test_a_measured_or_nameplate_switch_is_a_restatement_the_import_refuses_without_replace() -> None:
    con = _site()
    rows = from_settings.on_prem_rows(
        PricingSettings(on_prem=(SERVER.model_copy(update={"energy": "nameplate"}),)), ImportOptions()
    ).rows
    moved = price_table.restated(con, rows)
    assert [m.describe() for m in moved] == [
        "gpu-box on_prem  (on_prem) from 2026-01-01T00:00:00Z: the GPUs' power charged as measured or nameplate"
    ]


def _fleet(boxes: list[tuple[int, int]], pods: list[tuple[int, int, int, str]]) -> Any:
    """Boxes (GPU-0's counter watts, GPU-1's power watts) and pods on their GPU-0 for a run of minutes."""
    con = _site()
    for i, (train_w, idle_w) in enumerate(boxes):
        node = f"box-{i}"
        add_node(con, node, 2, instance_type="gpu-box", region="", steps=120)
        add_gpu_usage(con, node, f"{node}-GPU-0", 0.5, steps=120, power_w=float(train_w))
        add_energy(con, node, f"{node}-GPU-0", [None] + [train_w * 60_000.0] * 119)
        add_gpu_usage(con, node, f"{node}-GPU-1", 0.0, steps=120, power_w=float(idle_w))
    for j, (box, offset, length, team) in enumerate(pods):
        if box < len(boxes):
            add_pod(con, f"p{j}", f"box-{box}", team=team, namespace=f"ns{j % 2}", offset=offset, steps=length)
    return con


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# three pods on one 2-GPU box at minute 100: the box bills 3 GPUs that minute (found by Hypothesis)
@example(
    boxes=[(100, 50), (100, 50), (100, 50)],
    pods=[(1, 100, 1, "vision"), (1, 96, 41, "vision"), (1, 100, 1, "vision")],
    window=(0, 111),
    by=("team",),
    idle="keep",
)
@given(
    boxes=st.lists(st.tuples(st.integers(100, 700), st.integers(50, 120)), min_size=1, max_size=3),
    pods=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 100), st.integers(1, 60), st.sampled_from(["vision", "nlp"])),
        max_size=5,
    ),
    window=st.tuples(st.integers(0, 59), st.integers(60, 120)),
    by=st.sampled_from([("team",), ("namespace",), ("team", "pod"), ("node",), ("team", "day")]),
    idle=st.sampled_from(["keep", "weighted", "even"]),
)
def test_every_grouping_adds_up_to_the_sites_gpu_hours_and_measured_kwh_to_the_cent(
    boxes, pods, window, by, idle
) -> None:  # type: ignore[no-untyped-def]
    con = _fleet(boxes, pods)
    w = Window(T0 + timedelta(minutes=window[0]), T0 + timedelta(minutes=window[1]))
    minutes = window[1] - window[0]
    joules = sum(
        (D(train_w * 60) * minutes + D(idle_w * 60) * minutes for train_w, idle_w in boxes), D(0)
    )  # every step: GPU-0's counter (its first from power, at the same watts), GPU-1's power
    # a node bills never fewer GPUs than its pods hold: a minute 3 pods overlap on a 2-GPU box bills a third GPU
    held = [
        sum(1 for b, start, length, _ in pods if b == i and start <= m < start + length)
        for i in range(len(boxes))
        for m in range(window[0], window[1])
    ]
    gpu_minutes = 2 * len(boxes) * minutes + sum(max(0, n - 2) for n in held)
    expected = FIXED_GPU_HOUR * gpu_minutes / 60 + joules / 3_600_000 * PER_KWH
    stepped = chargeback(con, w, ChargebackOptions(by=by, idle=idle), use_rollups=False)
    with transaction(con):
        hourly.refresh(con, None, full=True)
    rolled = chargeback(con, w, ChargebackOptions(by=by, idle=idle))
    by_team = chargeback(con, w, ChargebackOptions(by=("team",), idle=idle))
    for report in (stepped, rolled):
        assert sum((r.cost_usd for r in report.rows), D(0)) == report.node_cost_usd == by_team.node_cost_usd
        assert abs(report.node_cost_usd - expected) <= D("0.01"), (report.node_cost_usd, expected)
        if "team" in by:  # a finer grouping's rows add up to the by-team report's, team by team
            teams: dict[str, D] = {}
            for r in report.rows:
                teams[r.keys["team"]] = teams.get(r.keys["team"], D(0)) + r.cost_usd
            assert teams == _costs(by_team)
