"""Chargeback: exact GPU shares, prices in force per step, and conservation of every cent."""

from __future__ import annotations

import csv
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.cost.chargeback import ChargebackOptions, chargeback
from core import conventions as c
from core.money import to_cents
from core.store.warehouse import open_warehouse
from core.timeutil import Window, parse_ts
from tests.builders import T0, add_node, add_pod, add_price, fresh_db

DAY = Window(parse_ts("2026-11-02"), parse_ts("2026-11-03"))
ROOT = Path(__file__).resolve().parents[1]


def _default_prices() -> dict[tuple[str, str], Decimal]:
    with open(ROOT / "collectors" / "pricing" / "data" / "prices-default.csv") as fh:
        return {
            (r["instance_type"], r["capacity_type"]): Decimal(r["price_per_hour_usd"]) / int(r["gpus"])
            for r in csv.DictReader(fh)
            if r["region"] == "us-east-1"
        }


@pytest.mark.parametrize(
    "by",
    [
        ("team",),
        ("namespace",),
        ("team", "node_pool"),
        ("gpu_model",),
        ("capacity_type",),
        ("team", "namespace", "node"),
        ("cluster",),
    ],
    ids=lambda b: "by " + ",".join(b),
)
def test_rows_sum_to_the_cost_of_all_gpu_capacity_to_the_cent_under_every_grouping(
    direct_warehouse: Path, by: tuple[str, ...]
) -> None:
    with open_warehouse(direct_warehouse, read_only=True) as con:
        report = chargeback(con, DAY, ChargebackOptions(by=by))
    assert report.rows
    assert sum(r.cost_usd for r in report.rows) == report.node_cost_usd
    t = report.totals()
    assert (
        Decimal(t["allocated_cost_usd"])
        + Decimal(t["unallocated_cost_usd"])
        + Decimal(t["idle_cost_usd"])
        + Decimal(t["unhealthy_cost_usd"])
        == report.node_cost_usd
    )
    assert sum(r.gpu_hours for r in report.rows) == pytest.approx(report.capacity_gpu_hours, abs=1e-9)
    assert any(c.IDLE in r.keys.values() for r in report.rows)


def test_team_costs_equal_the_truth_files_gpu_hours_times_list_prices(direct_warehouse: Path, truth: dict) -> None:
    prices = _default_prices()
    nodes = truth["nodes"]

    def cost(hours_by_node: dict[str, float]) -> Decimal:
        return sum(
            (
                Decimal(repr(h)) * prices[(nodes[n]["instance_type"], nodes[n]["capacity_type"])]
                for n, h in hours_by_node.items()
            ),
            Decimal(0),
        )

    with open_warehouse(direct_warehouse, read_only=True) as con:
        report = chargeback(con, DAY)
    by_team = {r.keys["team"]: r.cost_usd for r in report.rows}
    for team, hours in truth["allocated_gpu_hours_by_node"].items():
        assert abs(by_team[team] - cost(hours)) <= Decimal("0.01"), team
    assert report.node_cost_usd == to_cents(cost(truth["capacity_gpu_hours_by_node"]))
    assert report.unpriced_gpu_hours == 0


def test_idle_and_unallocated_rows_are_always_present_even_at_zero() -> None:
    con = fresh_db()
    add_node(con, "n1", 8)
    add_pod(con, "p1", "n1", amount=8, steps=60)
    add_price(con, "8")
    report = chargeback(con, Window(T0, T0 + timedelta(hours=1)))
    teams = {r.keys["team"]: r for r in report.rows}
    assert teams[c.IDLE].cost_usd == 0 and teams["vision"].cost_usd == Decimal("8.00")


SHARES = [
    ("nvidia_com_gpu", 1, 1.0),
    ("nvidia_com_mig_1g_10gb", 1, 1 / 7),
    ("nvidia_com_mig_3g_40gb", 2, 6 / 7),
    ("nvidia_com_gpu_shared", 1, 1 / 4),
]


@pytest.mark.parametrize(
    ("resource", "amount", "gpus"),
    SHARES,
    ids=["whole GPU", "MIG 1g slice is 1/7", "two MIG 3g slices are 6/7", "time-slice replica is 1/4"],
)
def test_a_requests_share_of_a_physical_gpu_is_exact(resource: str, amount: int, gpus: float) -> None:
    con = fresh_db()
    add_node(con, "n1", 1, model="NVIDIA A100-SXM4-80GB", replicas=4)
    add_pod(con, "p1", "n1", resource=resource, amount=amount, steps=60)
    add_price(con, "7", gpus=1)
    report = chargeback(con, Window(T0, T0 + timedelta(hours=1)))
    row = next(r for r in report.rows if r.keys["team"] == "vision")
    assert row.gpu_hours == pytest.approx(gpus, abs=1e-12)
    assert row.cost_usd == to_cents(Decimal(7) * Decimal(repr(gpus)))


def test_four_time_sliced_pods_share_one_gpus_cost_instead_of_paying_four_times_or_nothing() -> None:
    con = fresh_db()
    add_node(con, "n1", 1, replicas=4, instance_type="g5.xlarge")
    for i, team in enumerate(["a", "b", "c", "d"]):
        add_pod(con, f"p{i}", "n1", team=team, resource="nvidia_com_gpu_shared", steps=60)
    add_price(con, "1.006", gpus=1, instance_type="g5.xlarge")
    report = chargeback(con, Window(T0, T0 + timedelta(hours=1)))
    costs = sorted(r.cost_usd for r in report.rows if r.keys["team"] in "abcd")
    assert sum(costs) == Decimal("1.01") and costs == [Decimal("0.25")] * 3 + [Decimal("0.26")]
    assert report.node_cost_usd == Decimal("1.01")


def test_a_price_change_mid_window_bills_each_step_at_its_own_price() -> None:
    con = fresh_db()
    add_node(con, "n1", 1, steps=120)
    add_pod(con, "p1", "n1", steps=120)
    add_price(con, "2", gpus=1)
    add_price(con, "4", gpus=1, effective_from=T0 + timedelta(hours=1))
    report = chargeback(con, Window(T0, T0 + timedelta(hours=2)))
    assert report.node_cost_usd == Decimal("6.00")
    assert len(next(r for r in report.rows if r.keys["team"] == "vision").sources) == 2


def test_unpriced_gpu_hours_are_reported_not_hidden() -> None:
    con = fresh_db()
    add_node(con, "n1", 2, instance_type="mystery.large")
    report = chargeback(
        con, Window(T0, T0 + timedelta(hours=1)), ChargebackOptions(fallback_gpu_hour_usd=Decimal("1.50"))
    )
    assert report.unpriced_gpu_hours == pytest.approx(2.0) and report.node_cost_usd == Decimal("3.00")


pods_strategy = st.lists(
    st.tuples(
        st.integers(0, 2),  # node
        st.sampled_from(
            ["nvidia_com_gpu", "nvidia_com_mig_1g_10gb", "nvidia_com_mig_3g_40gb", "nvidia_com_gpu_shared"]
        ),
        st.integers(1, 4),  # amount
        st.sampled_from(["vision", "nlp", None]),
        st.integers(0, 50),  # offset in steps
        st.integers(1, 40),  # length in steps
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gpus=st.lists(st.integers(1, 8), min_size=1, max_size=3),
    pods=pods_strategy,
    prices=st.lists(st.decimals("0.01", "120", places=4), min_size=1, max_size=3),
    change_at=st.integers(0, 59),
    window=st.tuples(st.integers(0, 30), st.integers(31, 60)),
    by=st.sampled_from([("team",), ("namespace",), ("node",), ("team", "node_pool"), ("gpu_model",)]),
)
def test_any_fleet_conserves_cost_to_the_cent_with_non_negative_rows(gpus, pods, prices, change_at, window, by) -> None:  # type: ignore[no-untyped-def]
    con = fresh_db()
    for i, n in enumerate(gpus):
        add_node(con, f"n{i}", n, replicas=4, pool=f"pool-{i % 2}", instance_type=f"it{i}")
        for k, price in enumerate(prices):
            add_price(
                con,
                str(price),
                gpus=n,
                instance_type=f"it{i}",
                effective_from=T0 + timedelta(minutes=(change_at + 1) * k),
            )
    for j, (node, resource, amount, team, offset, length) in enumerate(pods):
        if node < len(gpus):
            add_pod(
                con,
                f"p{j}",
                f"n{node}",
                team=team,
                namespace=f"ns{j % 3}",
                resource=resource,
                amount=amount,
                offset=offset,
                steps=length,
            )
    report = chargeback(
        con, Window(T0 + timedelta(minutes=window[0]), T0 + timedelta(minutes=window[1])), ChargebackOptions(by=by)
    )
    assert sum(r.cost_usd for r in report.rows) == report.node_cost_usd
    assert all(r.cost_usd >= 0 and r.gpu_hours >= 0 for r in report.rows)
    assert sum(r.gpu_hours for r in report.rows) == pytest.approx(report.capacity_gpu_hours, abs=1e-9)


def test_the_cli_tables_footer_adds_up_with_the_unhealthy_gpus_time(direct_warehouse: Path) -> None:
    import re

    from tests.conftest import run_cli

    args = ["--start", "2026-11-02T00:00:00Z", "--end", "2026-11-03T00:00:00Z"]
    result = run_cli("--warehouse", str(direct_warehouse), "report", "chargeback", *args)
    footer = re.search(r"capacity cost ([\d.]+) \+ overhead ([\d.]+) = (.*) \(USD", result.output)
    assert footer is not None, result.output
    parts = dict((name, Decimal(v)) for v, name in [p.split(" ")[::-1] for p in footer.group(3).split(" + ")])
    assert set(parts) == {"allocated", "unallocated", "shared", "idle", "unhealthy"} and parts["unhealthy"] > 0
    assert Decimal(footer.group(1)) + Decimal(footer.group(2)) == sum(parts.values())
