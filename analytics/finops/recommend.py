"""Gathering the evidence for savings recommendations from the warehouse (see analytics/finops/savings.py).

Where the evidence is a sum of GPU-unit-seconds (pool costs, off-peak idle and peak batch GPU-hours) it
comes from the rollups, through the chargeback's plan (analytics/cost/fact_plan.py: hourly rows, steps only for
edge hours, price changes and stale nodes), with the same integers as the step tables. What is a
per-step statistic has its own rollup or stays on the step tables, each piece saying why: a pool's peak allocation
and average capacity from the pool rollup (core/store/rollups/pools.py: per hour, the steps' integer units), a pod's
requests and run hours from the pod-requests rollup beside it (per hour: the most it asked for, its seconds Running),
a pod's p95 framebuffer from the steps (a quantile; only for right-size candidates). A pod's GPU-hours, activity
and cost come from its bill (analytics/cost/pod_bill.py), summed column-wise from the same plan.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import duckdb

from analytics.cost import fact_plan, pod_bill
from analytics.cost.allocation import MigShare, nodes_sql
from analytics.cost.chargeback import ChargebackOptions
from analytics.cost.pod_bill import pool_rates
from analytics.finops import savings
from core import conventions as c
from core.money import in_money_context
from core.store.rollups import pools
from core.store.warehouse import ts_span
from core.timeutil import HOUR, Window

U = c.GPU_UNITS


def _rows(
    con: duckdb.DuckDBPyConnection, sql: str, window: Window | None = None, extra: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """`sql`'s rows as dicts; `window` binds $start and $end (None: a query without parameters)."""
    params = None if window is None else {"start": window.start, "end": window.end, **(extra or {})}
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@in_money_context
def recommendations(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    cb: ChargebackOptions,
    opts: savings.SavingsOptions,
    *,
    use_rollups: bool = True,
) -> list[savings.Recommendation]:
    """The ranked recommendations of `window`; `use_rollups=False` reads every figure from the step tables only (the
    same numbers, slower)."""
    rates = pool_rates(con, window, cb, use_rollups)
    figures = _pool_figures(con, window, cb.mig_share, use_rollups)
    pods = _pods(con, window, cb, opts, use_rollups)
    recs = savings.release_idle(_pools(figures, rates), window)
    whole = [p for p in pods if p["whole"] == 1 and p["resources"] == 1]
    recs += savings.right_size(whole, window, opts)
    on_demand = [p for p in pods if p["capacity_type"] == "on_demand"]
    recs += savings.to_spot(on_demand, savings.spot_ratios(con), window, opts)
    recs += savings.off_peak(_off_peak(con, window, cb, opts, rates, use_rollups), window)
    return savings.rank(recs)


def _pool_figures(
    con: duckdb.DuckDBPyConnection, window: Window, mig_share: MigShare, use_rollups: bool = True
) -> list[dict[str, Any]]:
    """Per node pool and hour (or part of the window): steps, capacity units summed over them, peak allocated units,
    largest node (core/store/rollups/pools.py). Whole hours come from the pool rollup when it is in sync; the rest
    from the steps, by the same SQL."""
    hours = pools.window_hours(window.start, window.end) if use_rollups and pools.in_sync(con) else None
    if hours is None:
        return _stepped(con, window, mig_share)
    rows = _rows(
        con,
        f"""SELECT hour, node_pool, steps, capacity_units, peak_alloc_units, max_node_units FROM {c.T_POOL_ROLLUP}
        WHERE mig_share = $share AND hour >= $start AND hour < $end""",
        Window(*hours),
        {"share": mig_share},
    )
    edges = [(lo, hi) for lo, hi in ((window.start, hours[0]), (hours[1], window.end)) if hi > lo]
    return rows + [r for lo, hi in edges for r in _stepped(con, Window(lo, hi), mig_share)]


def _stepped(
    con: duckdb.DuckDBPyConnection, window: Window, mig_share: MigShare, chunk: timedelta = 6 * HOUR
) -> list[dict[str, Any]]:
    """The pool figures of `window` from the step tables, reading DCGM's GPU counts only for the node-hours whose
    coverage rollup row has a step kube-state-metrics gave no capacity for (none on a fleet where it always does).
    Each step's figures depend on that step's rows only, so the window is read a `chunk` at a time: the grouping by
    node-step holds 6 hours of node-steps, not the window's (a week at 10,000 GPUs: 23 million, gigabytes of hash
    table; a day's 3.3 million still filled DuckDB's 1 GB and spilled: 6-hour chunks are a third faster)."""
    span = ts_span(con, (c.T_NODE_SAMPLES, c.T_POD_ALLOCATIONS, c.T_GPU_SAMPLES))
    if span is None:
        return []
    # only the part of the window that holds steps is read: a 10-year window over a week of data read
    # 14,600 empty chunks (112 s); a step (at most a day long) that starts in the span ends within a day of it
    held = Window(max(window.start, span[0]), min(window.end, span[1] + timedelta(days=1)))
    if held.end <= held.start:
        return []
    out = []
    for part in held.split(chunk):
        steps = pools.pool_steps_sql(mig_share, pools.undeclared_sql(con, part.start, part.end))
        out += _rows(con, pools.pool_figures_sql(steps, "NULL::TIMESTAMP"), part)
    return out


def _pools(figures: list[dict[str, Any]], rates: dict[str, Decimal]) -> list[dict[str, Any]]:
    """Per pool: its largest node's GPUs, its capacity averaged over its steps and its peak allocation, from integer
    units summed (or maximised) over its hours, so every source and order gives the same figures."""
    by_pool: dict[str, list[dict[str, Any]]] = {}
    for f in figures:
        by_pool.setdefault(f["node_pool"] or "", []).append(f)
    out = []
    for pool, rows in sorted(by_pool.items()):
        steps = sum(int(r["steps"]) for r in rows)
        out.append(
            {
                "node_pool": pool,
                "gpus_per_node": max(int(r["max_node_units"]) for r in rows) // U,
                "capacity_gpus": sum(int(r["capacity_units"]) for r in rows) / U / steps,
                "peak_alloc_gpus": max(int(r["peak_alloc_units"]) for r in rows) / U,
                "gpu_hour_usd": rates.get(pool),
            }
        )
    return out


def _requests(con: duckdb.DuckDBPyConnection, window: Window, use_rollups: bool = True) -> str:
    """Each pod's requests and run time (savings.pod_stats_sql): the whole hours from the pod-requests rollup when it
    is in sync, the edges from the steps by the same SQL; else all from the steps."""
    hours = pools.window_hours(window.start, window.end) if use_rollups and pools.in_sync(con) else None
    if hours is None:
        return pools.pod_requests_sql("NULL")
    edges = [(lo, hi) for lo, hi in ((window.start, hours[0]), (hours[1], window.end)) if hi > lo]
    rolled = f"SELECT * FROM {c.T_POD_REQUEST_ROLLUP} WHERE {fact_plan.ranges_sql('hour', [hours])}"
    return rolled + (
        f" UNION ALL BY NAME {pools.pod_requests_sql('NULL', fact_plan.ranges_sql('ts', edges))}" if edges else ""
    )


T_STATS = "savings_pod_stats"  # temp: per pod, savings.pod_stats_sql
T_USEFUL = "savings_pod_useful"  # temp: the rows of T_STATS a recommendation can use
# A pod's efficiency, as PodFigures states it, for the SQL that picks which pods to price. Selection only: the
# recommendations read PodFigures.efficiency, so a last-bit difference in this division cannot change a figure.
_EFFICIENCY = f"CASE WHEN b.units > 0 AND isfinite(b.used_s) THEN (b.used_s / 3600.0) / (b.units / {U * 3600}) END"


def _pods(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    cb: ChargebackOptions,
    opts: savings.SavingsOptions,
    use_rollups: bool = True,
) -> list[dict[str, Any]]:
    """The pods a right-size or spot recommendation can use (a uid: a recreated pod is another): its step facts
    (savings.pod_stats_sql) and its bill (analytics/cost/pod_bill.py: the allocated cost exact, as a per-pod
    chargeback's row holds it). Pods whose cost is shared (shared namespaces or labels) are everyone's, not theirs to
    right-size. Writes the temp table T_STATS and the bill's tables, which _off_peak reads.

    At 10,000 GPUs a week holds 190,000 pods, of which about 28,000 can be used: the rest are not fetched or priced
    (fetching and pricing every pod in Python took 4.7 s of the pass, and 1 GB)."""
    b = pod_bill.bill(con, window, cb, use_rollups)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {T_STATS} AS {savings.pod_stats_sql(_requests(con, window, use_rollups))}",
        {"start": window.start, "end": window.end},
    )
    eps = 1e-9  # a superset of what savings.right_size and savings.to_spot keep: they decide, on PodFigures
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {T_USEFUL} AS
    SELECT s.*, b.uid AS bill_uid FROM {T_STATS} s
    JOIN {pod_bill.T_POD_BILL} b ON b.cluster = s.cluster AND b.namespace = s.namespace AND b.pod = s.pod
        AND coalesce(b.uid, '') = coalesce(s.uid, '')
    JOIN {pod_bill.T_POD_CLASSES} k ON k.cluster = b.cluster AND k.namespace = b.namespace AND k.labels = b.labels
    WHERE NOT k.shared AND (
        (s.whole = 1 AND s.resources = 1 AND {_EFFICIENCY} < {opts.low_utilization + eps})
        OR (s.capacity_type = 'on_demand' AND NOT s.serving AND s.run_hours >= {opts.min_run_hours}
            AND coalesce({_EFFICIENCY}, 0) >= {opts.busy_activity - eps}))""")
    figures = {
        (p.cluster, p.namespace, p.pod, p.uid): p
        for p in b.figures(con, f"SELECT cluster, namespace, pod, bill_uid AS uid FROM {T_USEFUL}")
    }
    out = []
    for stats in _rows(con, f"SELECT * FROM {T_USEFUL}"):
        f = figures[(stats["cluster"], stats["namespace"], stats["pod"], stats.pop("bill_uid") or "")]
        out.append(
            {
                **stats,
                "team": f.team,
                "workload": f.workload,
                "gpu_hours": f.gpu_hours,
                "efficiency": f.efficiency,
                "used_gpu_hours": f.used_gpu_hours,
                "cost_usd": f.allocated_usd,
                "model": stats["model"] or "",
                "fb_p95_mib": None,
            }
        )
    keys = {(p["cluster"], p["namespace"], p["pod"]) for p in out if savings.right_size_candidate(p, opts)}
    fb = {
        (r["cluster"], r["namespace"], r["pod"]): r["fb_p95_mib"]
        for r in _rows(con, savings.fb_p95_sql(sorted(keys)), window)
    }
    for p in out:
        p["fb_p95_mib"] = fb.get((p["cluster"], p["namespace"], p["pod"]))
    return out


def _off_peak(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    cb: ChargebackOptions,
    opts: savings.SavingsOptions,
    rates: dict[str, Decimal],
    use_rollups: bool = True,
) -> list[dict[str, Any]]:
    """Per node pool and team: batch GPU-hours in peak hours and the pool's idle GPU-hours off-peak. Reads the temp
    tables _pods wrote (each pod's team, shared flag and run hours)."""
    # GPU-unit-seconds by hour of day: hourly rollups (whole days too: the peak split is by hour), steps
    # for edge hours, hours with a price change and stale nodes; the same integers as the step tables.
    src = fact_plan.sources_sql(fact_plan.plan(con, window, use_rollups, days=False), cb.mig_share)
    peak = f"hour(ts) >= {opts.peak_hours[0]} AND hour(ts) < {opts.peak_hours[1]}"
    n = f"LEFT JOIN ({nodes_sql()}) n USING (cluster, node)"
    idle = con.execute(
        f"""SELECT coalesce(n.node_pool, '') AS node_pool, sum(units) FROM (
            SELECT cluster, node, units FROM ({src["capacity"]}) WHERE NOT ({peak})
            UNION ALL SELECT cluster, node, -units FROM ({src["alloc"]}) WHERE NOT ({peak})) {n}
        GROUP BY ALL"""
    ).fetchall()
    idle_off_peak = {pool: int(units) / U / 3600 for pool, units in idle}
    # only jobs short enough to fit in the off-peak hours can move there; serving pods stay put
    fits = 24 - (opts.peak_hours[1] - opts.peak_hours[0])
    # each pod's peak-hour units summed per node before the joins: they need neither the hour nor the step
    sql = f"""
    WITH al AS (SELECT cluster, node, namespace, pod, uid, sum(units) AS units FROM ({src["alloc"]}) WHERE {peak}
                GROUP BY ALL)
    SELECT coalesce(n.node_pool, '') AS node_pool, k.team, sum(al.units) AS units
    FROM al {n}
    JOIN {pod_bill.T_POD_BILL} b ON b.cluster = al.cluster AND b.namespace = al.namespace AND b.pod = al.pod
        AND b.uid IS NOT DISTINCT FROM al.uid
    JOIN {pod_bill.T_POD_CLASSES} k ON k.cluster = b.cluster AND k.namespace = b.namespace AND k.labels = b.labels
    JOIN {T_STATS} s ON s.cluster = b.cluster AND s.namespace = b.namespace AND s.pod = b.pod
        AND coalesce(s.uid, '') = coalesce(b.uid, '')
    WHERE NOT k.shared AND NOT s.serving AND s.run_hours <= {fits}
    GROUP BY ALL ORDER BY ALL"""
    # integer unit-seconds summed exactly, divided once: GPU-hours at 60 s steps often end in .x5, and
    # a float sum in row order (which DuckDB does not fix) could print either neighbour with .1f
    return [
        {
            "node_pool": pool,
            "team": team,
            "peak_gpu_hours": int(units) / U / 3600,
            "offpeak_idle_gpu_hours": idle_off_peak.get(pool, 0.0),
            "gpu_hour_usd": rates.get(pool),
        }
        for pool, team, units in con.execute(sql).fetchall()
    ]
