"""Fragmentation from the hourly rollups (core/store/rollups/waiting.py) equals fragmentation from the steps, and the
commits that keep the rollups current leave them equal to a full rebuild, whether they append or overlap.

The pool, by hand: three 8-GPU nodes, 2, 3 and 4 GPUs held by Running pods (6, 5 and 4 free). An 8-GPU pod pends from
minute 20 to minute 100 and fits nowhere; a 1-GPU pod pends from minute 50 to 55 and fits everywhere. So 15 free GPUs
are fragmented for 75 of the 80 waiting minutes: 18.75 GPU-hours, at $16 a node-hour ($2 a GPU-hour) $37.50; the
largest whole-GPU request the fleet could place is 6 throughout.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from analytics.capacity.fragmentation import fragmentation
from analytics.capacity.queues import QueueOptions
from analytics.capacity.report import queue_report
from collectors.metrics.ingest import collect_files
from core import conventions as c
from core.settings import CollectSettings
from core.store.rollups import hourly as rollups
from core.store.rollups import waiting
from core.store.warehouse import open_warehouse, transaction
from core.timeutil import Window, to_epoch
from tests.builders import T0, add_price, rebuilt

NODES = {"n1": 2, "n2": 3, "n3": 4}  # node -> GPUs held by its Running pod
PENDING = {"big": (8, 20, 100), "small": (1, 50, 55)}  # pod -> (GPUs, first minute, end minute)
MINUTES = 120


def _scrape(out: Path) -> Path:
    """kube-state-metrics every minute for two hours: the pool's nodes, their Running pods and the Pending ones."""
    lines = []
    for m in range(MINUTES):
        t = f"{to_epoch(T0 + timedelta(minutes=m)):.0f}"
        for node, held in NODES.items():
            lines += [
                f'{c.KSM_NODE_LABELS}{{node="{node}",label_node_kubernetes_io_instance_type="p4d.24xlarge",'
                f'label_topology_kubernetes_io_region="us-east-1",{c.NODE_GPU_PRODUCT_LABEL}="NVIDIA-A100-SXM4-40GB"}}'
                f" 1 {t}",
                f'{c.KSM_NODE_ALLOCATABLE}{{node="{node}",resource="nvidia_com_gpu",unit="integer"}} 8 {t}',
            ]
            ids = f'namespace="ml",pod="run-{node}",uid="u-{node}"'
            lines += [
                f'{c.KSM_POD_INFO}{{{ids},node="{node}"}} 1 {t}',
                f'{c.KSM_POD_PHASE}{{{ids},phase="Running"}} 1 {t}',
                f'{c.KSM_POD_REQUESTS}{{{ids},container="c",node="{node}",resource="nvidia_com_gpu",unit="integer"}}'
                f" {held} {t}",
            ]
        for pod, (gpus, lo, hi) in PENDING.items():
            if lo <= m < hi:
                ids = f'namespace="ml",pod="{pod}",uid="u-{pod}"'
                lines += [
                    f'{c.KSM_POD_PHASE}{{{ids},phase="Pending"}} 1 {t}',
                    f'{c.KSM_POD_REQUESTS}{{{ids},container="c",node="",resource="nvidia_com_gpu",unit="integer"}}'
                    f" {gpus} {t}",
                ]
    out.write_text("\n".join(lines) + "\n# EOF\n")
    return out


def _rollups(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """The waiting rollups, and each pod's Pending sums."""
    sums = ", ".join(waiting.POD_SUMS)
    queries = {t: f"SELECT * FROM {t}" for t in waiting.TABLES}
    queries["pods"] = f"SELECT pod, uid, {sums}, {c.COL_FIRST_ALLOCATED} FROM {c.T_PODS}"
    return {t: sorted(con.execute(q).fetchall(), key=repr) for t, q in queries.items()}


def _minutes(a: int, b: int) -> Window:
    return Window(T0 + timedelta(minutes=a), T0 + timedelta(minutes=b))


# each collection's window (minutes): a first part, two appends (one mid-hour), then an overlap of both hours
COLLECTIONS = [(0, 45), (45, 50), (50, MINUTES), (40, 70)]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("waiting")
    wh, scrape = tmp / "wh.duckdb", _scrape(tmp / "ksm.om")
    settings = CollectSettings(cluster="c1")
    for a, b in COLLECTIONS:
        collect_files(wh, [scrape], settings, _minutes(a, b))
        with open_warehouse(wh) as con:
            assert waiting.in_sync(con), (a, b)
            assert _rollups(con) == rebuilt(con, waiting.refresh, _rollups), f"after collecting minutes {a}-{b}"
    with open_warehouse(wh) as con, transaction(con):
        add_price(con, "16")  # $16 an hour for 8 GPUs
    return wh


def test_the_pools_fragmentation_is_the_hand_computed_truth_from_the_rollups(pool: Path) -> None:
    with open_warehouse(pool, read_only=True) as con:
        rows = con.execute(f"SELECT count(*) FROM {c.T_WAITING_ROLLUP}").fetchone()
        frag = fragmentation(con, _minutes(0, MINUTES))
    assert rows == (6,), "3 nodes x 2 hours read from the rollup"
    with open_warehouse(pool, read_only=True) as con:
        big = con.execute(f"SELECT {', '.join(waiting.POD_SUMS)} FROM {c.T_PODS} WHERE pod = 'big'").fetchone()
    assert big == (T0 + timedelta(minutes=20), T0 + timedelta(minutes=100), 8 * 80 * 60.0, False)
    totals = frag.totals()
    assert totals["fragmented_gpu_hours"] == 18.75 and frag.fragmented_cost_usd == Decimal("37.5")
    assert (totals["waiting_steps"], totals["largest_placeable_gpus_min"], totals["largest_placeable_gpus_max"]) == (
        80,
        6,
        6,
    )
    assert sum(r["free_gpu_hours"] for r in frag.heatmap) == pytest.approx(15 * 80 / 60)


@pytest.mark.parametrize(
    "window",
    [_minutes(0, MINUTES), _minutes(10, 95), _minutes(52, 58), _minutes(60, MINUTES)],
    ids=["both hours", "mid-hour edges", "inside the hour", "the second hour"],
)
def test_fragmentation_from_the_rollups_equals_fragmentation_from_the_steps(pool: Path, window: Window) -> None:
    with open_warehouse(pool, read_only=True) as con:
        stored, stepped = fragmentation(con, window), fragmentation(con, window, use_rollups=False)
    assert stored.totals() == stepped.totals()
    assert stored.heatmap == stepped.heatmap and stored.mig == stepped.mig


def test_a_price_change_inside_an_hour_prices_its_steps_at_the_price_in_force(pool: Path, tmp_path: Path) -> None:
    wh = tmp_path / "priced.duckdb"
    wh.write_bytes(pool.read_bytes())
    with open_warehouse(wh) as con, transaction(con):
        add_price(con, "32", effective_from=T0 + timedelta(minutes=30))  # $4 a GPU-hour from minute 30
    with open_warehouse(wh, read_only=True) as con:
        stored, stepped = fragmentation(con, _minutes(0, MINUTES)), fragmentation(con, _minutes(0, MINUTES), False)
    # minutes 20-30 at $2 (15 GPUs x 10 min), then 65 fragmented minutes at $4
    want = Decimal(15) * 10 / 60 * 2 + Decimal(15) * 65 / 60 * 4
    assert stored.fragmented_cost_usd.quantize(Decimal("0.01")) == want.quantize(Decimal("0.01"))
    assert stored.totals() == stepped.totals()


def test_a_write_outside_a_commit_sends_the_report_to_the_steps(pool: Path, tmp_path: Path) -> None:
    wh = tmp_path / "touched.duckdb"
    wh.write_bytes(pool.read_bytes())
    with open_warehouse(wh) as con, transaction(con):  # a 7-GPU pod pending for minutes 100-110, written by hand
        con.execute(
            f"""INSERT INTO {c.T_POD_PENDING} SELECT ? + to_seconds(i * 60), 60, 'c1', 'ml', 'late', 'u-late',
                '{c.RESOURCE_GPU}', 7, false FROM range(100, 110) t(i)""",
            [T0],
        )
    with open_warehouse(wh, read_only=True) as con:
        assert not waiting.in_sync(con)
        frag = fragmentation(con, _minutes(0, MINUTES))
    assert frag.totals()["fragmented_gpu_hours"] == 18.75 + 15 * 10 / 60, "it fits nowhere either"


@pytest.mark.parametrize("by", [("team",), ("workload", "resource"), ("queue", "namespace")], ids=lambda b: ",".join(b))
@pytest.mark.parametrize(
    "hours",
    [(0, 24), (3.5, 13.62), (9.25, 9.75), (20, 24)],
    ids=["the day", "mid-hour edges", "half an hour", "evening"],
)
def test_the_simulated_days_queue_report_from_the_rollups_equals_the_report_from_the_steps(
    sim_warehouse: Path, by: tuple[str, ...], hours: tuple[float, float]
) -> None:
    day = datetime(2026, 11, 2)
    window = Window(day + timedelta(hours=hours[0]), day + timedelta(hours=hours[1]))
    with open_warehouse(sim_warehouse, read_only=True) as con:
        assert waiting.in_sync(con) and rollups.in_sync(con)
        stored = queue_report(con, window, QueueOptions(by=by, pods=True)).as_dict()
        stepped = queue_report(con, window, QueueOptions(by=by, pods=True, use_rollups=False)).as_dict()
    assert stored == stepped
    assert stored["pods"], "pods waited in every window"
