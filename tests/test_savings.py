"""Savings recommendations: each fires on the situation it targets, with the right dollar figure."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import duckdb
import pytest

from analytics.cost.chargeback import ChargebackOptions
from analytics.finops import recommend
from analytics.finops.recommend import recommendations
from analytics.finops.savings import SavingsOptions
from core import conventions as c
from core.store.rollups import coverage, hourly, pools
from core.store.step_sql import HAMI_CORES, alloc_steps_sql, capacity_steps_sql
from core.timeutil import Window
from tests.builders import T0, add_gpu_usage, add_node, add_pod, add_price, fresh_db

DAY = Window(T0, T0 + timedelta(days=1))
STEPS = 24 * 60


def _recs(con, **opts):  # type: ignore[no-untyped-def]
    return recommendations(con, DAY, ChargebackOptions(), SavingsOptions(**opts))


def test_a_pool_with_a_whole_node_never_needed_gets_a_release_recommendation() -> None:
    con = fresh_db()
    for n in ("n1", "n2"):
        add_node(con, n, 8, steps=STEPS, pool="od")
    add_price(con, "64")  # $8/GPU-hour
    add_pod(con, "p", "n1", amount=6, steps=STEPS)
    release = [r for r in _recs(con) if r.kind == "release idle capacity"]
    assert len(release) == 1 and release[0].target == "od"
    assert release[0].monthly_savings_usd == Decimal(8 * 8 * 730)


def test_a_whole_gpu_pod_at_low_activity_fits_a_mig_slice() -> None:
    con = fresh_db()
    add_node(con, "n1", 1, steps=STEPS, model="NVIDIA-A100-SXM4-80GB")
    add_price(con, "8", gpus=1)
    add_pod(con, "notebook", "n1", steps=STEPS)
    add_gpu_usage(con, "n1", "GPU-0", 0.08, pod="notebook", steps=STEPS, model="NVIDIA A100-SXM4-80GB")
    recs = [r for r in _recs(con) if r.kind == "right-size low-utilisation pod"]
    assert len(recs) == 1 and "1g slice" in recs[0].action
    # a day at $8/h = $192; a 1g slice is 1/7 of it: save 6/7, scaled to 730 h
    assert recs[0].monthly_savings_usd == (Decimal(192) * 6 / 7 * Decimal(730) / 24).quantize(Decimal("0.01"))


def test_busy_long_running_on_demand_work_is_priced_at_the_spot_price_when_known() -> None:
    con = fresh_db()
    add_node(con, "n1", 1, steps=STEPS, instance_type="p3.2xlarge")
    add_price(con, "3.06", gpus=1, instance_type="p3.2xlarge")
    add_price(con, "0.918", gpus=1, instance_type="p3.2xlarge", capacity_type="spot")
    add_pod(con, "train-abcde", "n1", steps=STEPS)
    add_gpu_usage(con, "n1", "GPU-0", 0.9, pod="train-abcde", steps=STEPS)
    spot = [r for r in _recs(con) if r.kind == "move to spot"]
    assert len(spot) == 1 and "ratio 0.30" in spot[0].evidence
    assert spot[0].monthly_savings_usd == (Decimal("3.06") * Decimal("0.7") * 730).quantize(Decimal("0.01"))


def test_short_or_idle_work_is_not_sent_to_spot_and_results_are_ranked() -> None:
    con = fresh_db()
    add_node(con, "n1", 2, steps=STEPS)
    add_price(con, "16", gpus=2)
    add_pod(con, "short", "n1", steps=120)
    add_gpu_usage(con, "n1", "GPU-0", 0.9, pod="short", steps=120)
    recs = _recs(con)
    assert not [r for r in recs if r.kind == "move to spot"]
    assert [r.monthly_savings_usd for r in recs] == sorted((r.monthly_savings_usd for r in recs), reverse=True)


def test_batch_work_in_peak_hours_counts_for_its_own_team_in_each_cluster_not_a_same_named_pods() -> None:
    """Two clusters each run `ml/batch-1` in peak hours (13:00 UTC on): vision's for 2 h on pool-a in c1, speech's
    for 3 h on pool-b in c2, each pool 4 GPUs all day, so 4 x 15 = 60 GPU-hours idle off-peak. By hand: vision may
    move 2 GPU-hours of pool-a, speech 3 of pool-b (keyed by namespace and pod alone, both went to one team)."""
    con = fresh_db()
    for node, pool in (("n1", "pool-a"), ("n2", "pool-b")):
        add_node(con, node, 4, steps=STEPS, pool=pool)
    add_price(con, "32")
    add_pod(con, "batch-1", "n1", namespace="ml", team="vision", offset=13 * 60, steps=120, uid="uid-c1")
    add_pod(con, "batch-1", "n2", namespace="ml", team="speech", offset=13 * 60, steps=180, uid="uid-c2")
    for table in (c.T_NODES, c.T_NODE_SAMPLES, c.T_PODS, c.T_POD_ALLOCATIONS):
        con.execute(f"UPDATE {table} SET cluster = 'c2' WHERE node = 'n2'")
    got = sorted((r.target, r.team, r.evidence) for r in _recs(con) if r.kind == "move batch work off-peak")
    assert got == [
        (
            "pool-a",
            "vision",
            "2.0 batch GPU-hours ran in peak hours while 60.0 GPU-hours sat idle off-peak in the same pool",
        ),
        (
            "pool-b",
            "speech",
            "3.0 batch GPU-hours ran in peak hours while 60.0 GPU-hours sat idle off-peak in the same pool",
        ),
    ]


def test_a_pod_asking_for_a_gpu_and_hami_cores_runs_as_long_as_it_ran_not_twice_as_long() -> None:
    con = fresh_db()
    add_node(con, "n1", 1, steps=STEPS, instance_type="p3.2xlarge")
    add_price(con, "3.06", gpus=1, instance_type="p3.2xlarge")
    add_price(con, "0.918", gpus=1, instance_type="p3.2xlarge", capacity_type="spot")
    add_pod(con, "train-abcde", "n1", steps=4 * 60)  # 4 h: under the 6 h a move to spot needs
    add_pod(con, "train-abcde", "n1", steps=4 * 60, resource=HAMI_CORES, amount=100)
    add_gpu_usage(con, "n1", "GPU-0", 0.9, pod="train-abcde", steps=4 * 60)
    assert not [r for r in _recs(con) if r.kind == "move to spot"]
    assert [r for r in _recs(con, min_run_hours=3.5) if r.kind == "move to spot"]


POOL_CASES = [
    ("kube-state-metrics gives every node's capacity: no DCGM count is read", 24 * 60, None, "n2"),
    ("one node listed only 10 h while its GPUs report all day: DCGM counts for the rest", 10 * 60 + 7, None, "n2"),
    ("one step of one node missing from kube-state-metrics: DCGM's count for that step", 24 * 60, 300, "n2"),
    ("the same for a node whose name holds a quote (written into the SQL as a literal)", 24 * 60, 300, "gpu'2"),
]


def chargeback_rule_pool_steps(con: duckdb.DuckDBPyConnection, window: Window) -> list[dict[str, object]]:
    """The same per pool-step figures from the chargeback's own step SQL (core/facts): an independent reference."""
    u = c.GPU_UNITS
    cur = con.execute(
        f"""WITH cap AS ({capacity_steps_sql("compute")}),
        al AS (SELECT ts, cluster, node, sum(units) AS units FROM ({alloc_steps_sql("compute")}) GROUP BY ALL)
        SELECT coalesce(n.node_pool, '') AS node_pool, cap.ts, sum(cap.units_per_s) / {u} AS capacity_gpus,
            sum(coalesce(al.units, 0)) / {u} AS alloc_gpus, max(cap.units_per_s) / {u} AS max_node_gpus
        FROM cap LEFT JOIN al USING (ts, cluster, node) LEFT JOIN {c.T_NODES} n USING (cluster, node) GROUP BY ALL""",
        {"start": window.start, "end": window.end},
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _per_pool(figures: list[dict[str, object]]) -> dict[str, tuple[int, int, int, int]]:
    """Pool figures of any source (rollup hours, step chunks) combined: steps, capacity units, peak, largest node."""
    out: dict[str, tuple[int, int, int, int]] = {}
    for f in figures:
        steps, cap, peak, node = out.get(str(f["node_pool"]), (0, 0, 0, 0))
        out[str(f["node_pool"])] = (
            steps + int(f["steps"]),  # type: ignore[call-overload]
            cap + int(f["capacity_units"]),  # type: ignore[call-overload]
            max(peak, int(f["peak_alloc_units"])),  # type: ignore[call-overload]
            max(node, int(f["max_node_units"])),  # type: ignore[call-overload]
        )
    return out


@pytest.mark.parametrize(("name", "listed_steps", "missing", "n2"), POOL_CASES, ids=[p[0] for p in POOL_CASES])
def test_pool_steps_from_the_coverage_rollup_equal_the_chargebacks_step_rule(
    name: str, listed_steps: int, missing: int | None, n2: str
) -> None:
    con = fresh_db()
    add_node(con, "n1", 2, steps=STEPS, pool="od")
    add_node(con, n2, 4, steps=listed_steps, pool="od")
    for gpu in range(3):
        add_gpu_usage(con, n2, f"GPU-{gpu}", 0.5, steps=STEPS)
    add_pod(con, "p", n2, amount=2, offset=30, steps=STEPS - 60)
    add_pod(con, "q", "n1", amount=3, offset=400, steps=90)  # over-allocated: billed 3 GPUs, declares 2
    if missing is not None:
        con.execute(f"DELETE FROM {c.T_NODE_SAMPLES} WHERE node = ? AND ts = ?", [n2, T0 + timedelta(minutes=missing)])
    window = Window(T0 + timedelta(minutes=17), T0 + timedelta(hours=23, minutes=41))
    reference = chargeback_rule_pool_steps(con, window)
    u = c.GPU_UNITS
    want = {
        "od": (
            len(reference),
            sum(round(r["capacity_gpus"] * u) for r in reference),
            max(round(r["alloc_gpus"] * u) for r in reference),
            max(round(r["max_node_gpus"] * u) for r in reference),
        )
    }
    assert _per_pool(recommend._stepped(con, window, "compute")) == want
    odd_chunks = recommend._stepped(con, window, "compute", chunk=timedelta(hours=5, minutes=7))
    assert _per_pool(odd_chunks) == want, "read in chunks, the figures are the same"
    assert not pools.in_sync(con), "rows written outside a commit: the pool rollup cannot speak for them"
    hourly.refresh(con, None, full=True)
    assert coverage.in_sync(con) and pools.in_sync(con)
    rolled = recommend._pool_figures(con, window, "compute")
    assert any(r["hour"] is not None for r in rolled), "whole hours from the pool rollup"
    assert _per_pool(rolled) == want
    assert recommend._pools(rolled, {}) == recommend._pools(recommend._stepped(con, window, "compute"), {})
    # n1's 2 GPUs (3 while q over-allocates it) plus n2's: 4 while listed, else the 3 DCGM reports
    assert {r["capacity_gpus"] for r in reference} == ({5, 6, 7} if listed_steps < STEPS or missing else {6, 7})


def test_a_pods_framebuffer_p95_is_over_the_steps_its_own_gpu_served_it() -> None:
    """Two pods on two GPUs of one node, a third GPU no pod holds with the most memory in use: each pod's p95 is the
    linear-interpolated 95th percentile (numpy's default, DuckDB's quantile_cont) of its own GPU's samples at the
    steps it was mapped there, computed here from the same per-step formula."""
    import numpy as np

    from analytics.finops.savings import fb_p95_sql

    con = fresh_db()
    add_node(con, "n0", 8)
    add_gpu_usage(con, "n0", "GPU-0", 0.2, pod="p0", steps=60)
    add_gpu_usage(con, "n0", "GPU-1", 0.2, steps=60)
    add_gpu_usage(con, "n0", "GPU-1", 0.2, pod="p1", offset=10, steps=30, gauges=False)
    add_gpu_usage(con, "n0", "GPU-2", 0.9, steps=60)

    def fb(gpu: int, step: int) -> float:
        return 1000.0 * (gpu + 1) + (step * 37 % 59) * 10.0 + (70_000.0 if gpu == 2 else 0.0)

    for step in range(60):
        for gpu in range(3):
            con.execute(
                f"UPDATE {c.T_GPU_SAMPLES} SET fb_used_mib = ? WHERE gpu_uuid = ? AND ts = ?",
                [fb(gpu, step), f"GPU-{gpu}", T0 + timedelta(minutes=step)],
            )
    keys = [("c1", "ns", "p0"), ("c1", "ns", "p1")]
    got = {r[2]: r[3] for r in con.execute(fb_p95_sql(keys), {"start": T0, "end": T0 + timedelta(hours=1)}).fetchall()}
    assert got == pytest.approx(
        {
            "p0": float(np.percentile([fb(0, s) for s in range(60)], 95)),
            "p1": float(np.percentile([fb(1, s) for s in range(10, 40)], 95)),
        }
    )
