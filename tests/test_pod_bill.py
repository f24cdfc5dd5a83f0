"""The per-pod bill (analytics/cost/pod_bill.py) behind the savings pass: every pod's GPU-hours, used GPU-hours,
team, workload and exact allocated cost are its row in a per-pod chargeback (the oracle: the report every surface
shows), on the simulated day under every option that moves them, on random fleets, on an on-prem site charging
measured energy; and by hand where the report cannot tell pods apart (a StatefulSet's pod recreated under its name)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.cost.attribution import Attribution
from analytics.cost.chargeback import ChargebackOptions, chargeback
from analytics.cost.pod_bill import pod_bill, pool_rates
from analytics.finops.recommend import recommendations
from analytics.finops.savings import SavingsOptions
from core import conventions as c
from core.money import HOURS_PER_MONTH, to_cents
from core.store.rollups import hourly
from core.store.warehouse import open_warehouse, transaction
from core.timeutil import Window, parse_ts
from tests.builders import T0, add_gpu_usage, add_node, add_pod, add_price, fresh_db
from tests.conftest import SIM_START
from tests.test_on_prem_energy import HOUR, _box, _site

PER_POD = ("team", "namespace", "workload", "pod")


def assert_bill_is_the_per_pod_chargeback(
    con: duckdb.DuckDBPyConnection, window: Window, opts: ChargebackOptions
) -> int:
    """Every pod of the bill is its chargeback row (a shared pod: its namespace's `__shared__` row); returns how many
    pods were compared (a pod name held by two uids is one row in the report, and is not)."""
    bill = pod_bill(con, window, opts)
    report = chargeback(con, window, replace(opts, by=PER_POD, idle="keep"))
    rows = {(r.keys["namespace"], r.keys["pod"]): r for r in report.rows if r.kind != c.IDLE and r.kind != c.UNHEALTHY}
    names = Counter((p.cluster, p.namespace, p.pod) for p in bill)
    compared = 0
    for p in bill:
        if names[(p.cluster, p.namespace, p.pod)] > 1:
            continue
        row = rows[(p.namespace, p.pod)]
        assert (row.keys["team"], row.keys["workload"]) == (
            "__shared__" if p.shared else p.team,
            p.workload,
        ), p
        assert p.allocated_usd == row.allocated and p.units / (c.GPU_UNITS * 3600) == pytest.approx(row.gpu_hours)
        assert p.used_gpu_hours == pytest.approx(row.used_gpu_hours, rel=1e-12, abs=1e-9), p
        compared += 1
    # and no pod the report bills is missing from the bill
    assert {(r.keys["namespace"], r.keys["pod"]) for r in report.rows if r.gpu_hours and r.kind not in (c.IDLE, c.UNHEALTHY)} == {
        (p.namespace, p.pod) for p in bill if p.units
    }  # fmt: skip
    return compared


def assert_pool_rates_are_the_by_pool_chargebacks(
    con: duckdb.DuckDBPyConnection, window: Window, opts: ChargebackOptions
) -> int:
    """Each pool's rate is its rows' exact cost over their GPU-hours in a by-pool chargeback with idle kept (no shared
    namespaces: they move cost between pools); returns how many pools were compared."""
    report = chargeback(con, window, replace(opts, by=("node_pool",), idle="keep"))
    cost: dict[str, Decimal] = {}
    units: dict[str, float] = {}
    for r in report.rows:
        cost[r.keys["node_pool"]] = cost.get(r.keys["node_pool"], Decimal(0)) + r.exact_total
        units[r.keys["node_pool"]] = units.get(r.keys["node_pool"], 0.0) + r.gpu_hours
    rates = pool_rates(con, window, opts)
    assert sorted(rates) == sorted(p for p in units if units[p] > 0)
    for pool, rate in rates.items():
        assert abs(rate * Decimal(repr(units[pool])) - cost[pool]) < Decimal("1e-9"), pool
    return len(rates)


OPTIONS = {
    "list prices": ChargebackOptions(),
    "memory share of MIG": ChargebackOptions(mig_share="memory"),
    "a shared namespace": ChargebackOptions(shared_namespaces=("kube-system", "monitoring")),
    "team from another label, and a fallback price": ChargebackOptions(
        attribution=Attribution(team_labels=("app",)), fallback_gpu_hour_usd=Decimal("1.5")
    ),
}
MINUTES = [(0, 24 * 60), (17, 23 * 60 + 41)]  # the whole day (rollups), mid-hour edges (steps)


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize(("a", "b"), MINUTES)
def test_every_pods_bill_is_its_row_in_a_per_pod_chargeback_on_the_simulated_day(
    sim_warehouse: Path, option: str, a: int, b: int
) -> None:
    window = Window(parse_ts(SIM_START) + timedelta(minutes=a), parse_ts(SIM_START) + timedelta(minutes=b))
    with open_warehouse(sim_warehouse, read_only=True) as con:
        assert assert_bill_is_the_per_pod_chargeback(con, window, OPTIONS[option]) >= 50
        if not OPTIONS[option].shared_namespaces:
            assert assert_pool_rates_are_the_by_pool_chargebacks(con, window, OPTIONS[option]) >= 3


def test_an_on_prem_pods_bill_charges_the_energy_it_drew_at_the_kwh_price() -> None:
    """By hand (tests/test_on_prem_energy.py): the pod's GPU-hour at $1.75 without nameplate power, and its 0.5 kWh
    at $0.30 = $1.90; the report's row is the same."""
    con = _site()
    _box(con)
    [pod] = pod_bill(con, HOUR, ChargebackOptions())
    assert (pod.pod, pod.allocated_usd, pod.gpu_hours) == ("train-box-1", Decimal("1.90"), 1.0)
    assert assert_bill_is_the_per_pod_chargeback(con, HOUR, ChargebackOptions()) == 1
    # the pool's GPU-hour: 2 x $1.75 fixed and 0.58 kWh x $0.30 measured, over 2 GPU-hours
    assert pool_rates(con, HOUR, ChargebackOptions()) == {"pool-a": Decimal("1.837")}
    assert assert_pool_rates_are_the_by_pool_chargebacks(con, HOUR, ChargebackOptions()) == 1


def _statefulset() -> duckdb.DuckDBPyConnection:
    """A 1-GPU node at $8/h all day; `web-0` runs at 8% activity 10 h, is recreated (another uid), runs 14 h more."""
    con = fresh_db()
    add_node(con, "n1", 1, steps=24 * 60, model="NVIDIA-A100-SXM4-80GB")
    add_price(con, "8", gpus=1)
    add_pod(con, "web-0", "n1", steps=600, uid="uid-a")
    add_pod(con, "web-0", "n1", offset=600, steps=840, uid="uid-b")
    add_gpu_usage(con, "n1", "GPU-0", 0.08, pod="web-0", steps=24 * 60, model="NVIDIA A100-SXM4-80GB")
    return con


def test_a_statefulset_pod_recreated_under_its_name_is_two_pods_each_with_its_own_cost() -> None:
    con = _statefulset()
    day = Window(T0, T0 + timedelta(days=1))
    bill = pod_bill(con, day, ChargebackOptions())
    assert [(p.uid, p.gpu_hours, p.allocated_usd, round(p.efficiency or 0, 6)) for p in bill] == [
        ("uid-a", 10.0, Decimal(80), 0.08),
        ("uid-b", 14.0, Decimal(112), 0.08),
    ]
    # right-sizing both to a 1g slice saves 6/7 of the $192 the day cost, once (not 6/7 of $192 for each uid)
    recs = [r for r in recommendations(con, day, ChargebackOptions(), SavingsOptions()) if r.target == "ns/web-0"]
    monthly = sum((r.monthly_savings_usd for r in recs), Decimal(0))
    assert len(recs) == 2 and abs(monthly - to_cents(Decimal(192) * 6 / 7 * HOURS_PER_MONTH / 24)) <= Decimal("0.01")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pods=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.sampled_from([1, 2, 0.5]),
            st.integers(0, 150),
            st.integers(1, 150),
            st.sampled_from(["ns", "kube-system"]),
            st.floats(0, 1),
        ),
        min_size=1,
        max_size=6,
    ),  # fmt: skip
    window=st.tuples(st.integers(0, 90), st.integers(91, 240)),
    rollups=st.booleans(),
    price_change=st.integers(30, 200),
)
def test_the_bill_is_the_per_pod_chargeback_on_random_fleets(pods, window, rollups, price_change) -> None:  # type: ignore[no-untyped-def]
    """Pods whole, fractional (HAMi-style 0.5) and over two GPUs, a price change inside the window (a pod priced by
    two rows), a shared namespace, from the steps or from the hourly rollups."""
    con = fresh_db()
    for i, instance_type in enumerate(("p4d.24xlarge", "g5.12xlarge", "unpriced")):
        add_node(con, f"n{i}", 4, instance_type=instance_type, steps=240)
    add_price(con, "32.77", instance_type="p4d.24xlarge")
    add_price(con, "40.96", instance_type="p4d.24xlarge", effective_from=T0 + timedelta(minutes=price_change))
    add_price(con, "5.672", gpus=4, instance_type="g5.12xlarge")
    for j, (node, amount, offset, steps, ns, activity) in enumerate(pods):
        add_pod(con, f"p{j}", f"n{node}", amount=amount, offset=offset, steps=steps, namespace=ns)
        add_gpu_usage(con, f"n{node}", f"GPU-{j}", activity, pod=f"p{j}", namespace=ns, offset=offset, steps=steps)
    if rollups:
        with transaction(con):
            hourly.refresh(con, None, full=True)
    w = Window(T0 + timedelta(minutes=window[0]), T0 + timedelta(minutes=window[1]))
    opts = ChargebackOptions(shared_namespaces=("kube-system",), fallback_gpu_hour_usd=Decimal("0.7"))
    assert_bill_is_the_per_pod_chargeback(con, w, opts)
    assert_pool_rates_are_the_by_pool_chargebacks(con, w, replace(opts, shared_namespaces=()))
