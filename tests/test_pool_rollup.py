"""The pool rollup (core/store/rollups/pools.py) behind the savings' "release idle capacity": the commits that keep it
leave it equal to a full rebuild, whether they append or overlap; savings from it equal savings from the steps, on the
simulated day and on random fleets; a node that moves to another pool sends the readers back to the steps."""

from __future__ import annotations

import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from analytics.cost.chargeback import ChargebackOptions
from analytics.finops import recommend
from analytics.finops.recommend import recommendations
from analytics.finops.savings import SavingsOptions, pod_stats_sql, release_idle
from collectors.metrics.ingest import collect_files
from core import conventions as c
from core.settings import CollectSettings
from core.store.rollups import hourly, pools
from core.store.warehouse import open_warehouse, transaction
from core.timeutil import Window, parse_ts
from tests.builders import T0, add_gpu_usage, add_node, add_pod, add_price, fresh_db, rebuilt
from tests.conftest import SIM_START
from tests.test_savings import chargeback_rule_pool_steps


def _rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return sorted(con.execute(f"SELECT * FROM {c.T_POOL_ROLLUP}").fetchall(), key=repr)


def _requests(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return sorted(con.execute(f"SELECT * FROM {c.T_POD_REQUEST_ROLLUP}").fetchall(), key=repr)


# each collection's window (hours of the simulated day): a first part, an append ending mid-hour, then an overlap
PIECES = [(0.0, 5.0), (5.0, 5.5), (4.0, 24.0)]


@pytest.fixture(scope="module")
def pieces(sim_day: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    wh = tmp_path_factory.mktemp("pools") / "wh.duckdb"
    start = parse_ts(SIM_START)
    files = sorted(sim_day.glob("*.om"))
    for a, b in PIECES:
        window = Window(start + timedelta(hours=a), start + timedelta(hours=b))
        collect_files(wh, files, CollectSettings(cluster="sim-us-east-1"), window)
        with open_warehouse(wh) as con:
            assert pools.in_sync(con), (a, b)
            assert _rows(con) == rebuilt(con, pools.refresh, _rows), f"after collecting hours {a}-{b}"
            assert _requests(con) == rebuilt(con, pools.refresh, _requests), f"after collecting hours {a}-{b}"
    return wh


def test_every_collection_leaves_the_pool_rows_equal_to_a_rebuild(pieces: Path) -> None:
    with open_warehouse(pieces, read_only=True) as con:
        hours = {r[1] for r in _rows(con)}
        assert len(hours) == 24 and {r[0] for r in _rows(con)} == {"compute", "memory"}


WINDOWS = [(0, 24 * 60), (17, 23 * 60 + 41), (125, 7 * 60 + 5)]  # minutes of the day: whole, mid-hour edges, a part


@pytest.mark.parametrize(("a", "b"), WINDOWS)
def test_savings_from_the_pool_rollup_are_the_step_passes_to_the_cent_on_the_simulated_day(
    sim_warehouse: Path, tmp_path: Path, a: int, b: int
) -> None:
    wh = tmp_path / "wh.duckdb"
    shutil.copy(sim_warehouse, wh)
    start = parse_ts(SIM_START)
    window = Window(start + timedelta(minutes=a), start + timedelta(minutes=b))
    with open_warehouse(wh, read_only=True) as con:
        assert pools.in_sync(con)
        rolled = recommendations(con, window, ChargebackOptions(), SavingsOptions())
        stepped = recommendations(con, window, ChargebackOptions(), SavingsOptions(), use_rollups=False)
        figures = recommend._pools(recommend._pool_figures(con, window, "compute"), {})
        assert figures == recommend._pools(recommend._pool_figures(con, window, "compute", False), {})
        reference = chargeback_rule_pool_steps(con, window)  # the chargeback's own step SQL, per pool and step
    assert [r.as_dict() for r in rolled] == [r.as_dict() for r in stepped]
    by_pool: dict[str, list[dict]] = {}
    for r in reference:
        by_pool.setdefault(str(r["node_pool"]), []).append(r)
    assert [p["node_pool"] for p in figures] == sorted(by_pool) and len(by_pool) >= 3
    for p in figures:
        steps = by_pool[p["node_pool"]]
        assert p["capacity_gpus"] == pytest.approx(sum(s["capacity_gpus"] for s in steps) / len(steps), rel=1e-12)
        assert p["peak_alloc_gpus"] == max(s["alloc_gpus"] for s in steps)
        assert p["gpus_per_node"] == max(s["max_node_gpus"] for s in steps)


def test_a_node_moved_to_another_pool_sends_readers_to_the_steps_until_the_next_commit_rebuilds() -> None:
    con = fresh_db()
    add_node(con, "n1", 8, pool="a", steps=120)
    add_node(con, "n2", 8, pool="a", steps=120)
    add_pod(con, "p", "n1", amount=3, steps=120)
    hourly.refresh(con, None, full=True)
    assert pools.in_sync(con)
    con.execute(f"UPDATE {c.T_NODES} SET node_pool = 'b' WHERE node = 'n2'")
    assert not pools.in_sync(con), "the rows were computed with n2 in pool a"
    with transaction(con):
        pools.refresh(con, T0, T0 + timedelta(hours=1), full=False)  # a commit of one hour: the move rebuilds all
    assert pools.in_sync(con)
    by_pool = recommend._pools(recommend._pool_figures(con, Window(T0, T0 + timedelta(hours=2)), "compute"), {})
    assert {p["node_pool"]: p["capacity_gpus"] for p in by_pool} == {"a": 8.0, "b": 8.0}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    nodes=st.lists(
        st.tuples(st.sampled_from([1, 2, 4, 8]), st.sampled_from(["a", "b"]), st.integers(30, 180)),
        min_size=1,
        max_size=4,
    ),  # fmt: skip
    pods=st.lists(
        st.tuples(st.integers(0, 3), st.integers(1, 9), st.integers(0, 150), st.integers(1, 120), st.booleans()),
        max_size=6,
    ),  # fmt: skip
    window=st.tuples(st.integers(0, 90), st.integers(91, 200)),
)
def test_the_pool_figures_from_the_rollup_equal_the_steps_on_random_fleets(nodes, pods, window) -> None:  # type: ignore[no-untyped-def]
    """Over-allocated nodes (a pod asking for more GPUs than its node has) and nodes that come and go included; the
    recommendations built on the figures (analytics/finops/savings.py release_idle) are then the same too, and so is
    the whole savings pass (every pod at low activity on priced on-demand nodes: right-size and spot candidates)."""
    con = fresh_db()
    add_price(con, "32.77")
    for i, (gpus, pool, steps) in enumerate(nodes):
        add_node(con, f"n{i}", gpus, pool=pool, steps=steps)
    for j, (node, amount, offset, steps, cores) in enumerate(pods):
        if node < len(nodes):
            add_pod(con, f"p{j}", f"n{node}", amount=amount, offset=offset, steps=steps)
            add_gpu_usage(con, f"n{node}", f"GPU-{j}", 0.1, pod=f"p{j}", offset=offset, steps=steps)
            if cores:  # HAMi cores beside the GPU, for part of its time: a second resource, not a longer run
                add_pod(
                    con,
                    f"p{j}",
                    f"n{node}",
                    resource="nvidia_com_gpucores",
                    amount=30,
                    offset=offset,
                    steps=steps // 2 + 1,
                )
    w = Window(T0 + timedelta(minutes=window[0]), T0 + timedelta(minutes=window[1]))
    rates = {"a": Decimal("2"), "b": Decimal("3")}
    stepped = recommend._pools(recommend._pool_figures(con, w, "compute"), rates)
    with transaction(con):
        pools.refresh(con, None, None, full=True)
    assert pools.in_sync(con)
    rolled = recommend._pools(recommend._pool_figures(con, w, "compute"), rates)
    assert rolled == stepped
    assert release_idle(rolled, w) == release_idle(stepped, w)
    # each pod's request, resources and run hours (right-sizing and spot) from the pod-requests rows as from the steps
    assert _pod_stats(con, w, True) == _pod_stats(con, w, False)
    with transaction(con):
        hourly.refresh(con, None, full=True)  # every rollup current: the whole pass from rollups, then from steps
    cb, opts = ChargebackOptions(), SavingsOptions(low_utilization=1.0, busy_activity=0.0, min_run_hours=0.1)
    rolled_recs = recommendations(con, w, cb, opts)
    assert rolled_recs == recommendations(con, w, cb, opts, use_rollups=False)
    target(float(len(rolled_recs)))  # steer towards fleets with many recommendations


def _pod_stats(con: duckdb.DuckDBPyConnection, w: Window, use_rollups: bool) -> list[dict]:
    rows = recommend._rows(con, pod_stats_sql(recommend._requests(con, w, use_rollups)), w)
    return sorted(rows, key=lambda r: (r["pod"], r["uid"]))
