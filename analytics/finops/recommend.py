"""Gathering the evidence for savings recommendations from the warehouse (see analytics/finops/savings.py).

Where the evidence is a sum of GPU-unit-seconds (pool costs, off-peak idle and peak batch GPU-hours) it
comes from the rollups, through the chargeback's plan (analytics/cost/fact_plan.py: hourly rows, steps only for
edge hours, price changes and stale nodes), with the same integers as the step tables. What is a
per-step statistic stays on the step tables, each piece saying why: a pool's peak allocation and
average capacity (DCGM's GPU counts only where the coverage rollup shows undeclared node steps), a
pod's request and run hours, a pod's p95 framebuffer (only for right-size candidates).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import duckdb

from analytics.cost import fact_plan, step_ranges
from analytics.cost.allocation import UB, MigShare, nodes_sql
from analytics.cost.chargeback import ChargebackOptions, chargeback
from analytics.finops import savings
from core import conventions as c
from core.money import in_money_context
from core.store.rollups import coverage
from core.store.step_sql import REQUEST_SQL, share_units_sql
from core.store.warehouse import ts_span
from core.timeutil import HOUR, Window

U = c.GPU_UNITS


def _rows(
    con: duckdb.DuckDBPyConnection, sql: str, window: Window, extra: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    cur = con.execute(sql, {"start": window.start, "end": window.end, **(extra or {})})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _pool_steps_sql(mig_share: MigShare, reported_ranges: bool | None = None) -> str:
    """Per node pool and step: billable capacity and allocated GPUs, and the largest node's GPUs.

    Step tables on purpose: the peak allocation is a maximum over steps and the average capacity a mean
    over steps (as is a node's GPU count); hourly sums of unit-seconds cannot give either. The SQL is
    core/facts.capacity_steps_sql's rule in one pass: GPU units are linear in the allocation rows (HAMi
    cores are not applied here, as before), so the allocation rows, the declared GPU counts and DCGM's
    counts are stacked and grouped once by node-step (a third faster than grouping each and joining the
    groups). DCGM's count only matters for node-steps that declare none (as in core/rollup_sql's
    capacity_hourly_sql), so it is read from every step (`reported_ranges` None), from the `ranges` CTE's
    nodes and hours (True), or not at all (False)."""
    share = share_units_sql("a.resource", mig_share)
    return f"""
    WITH {step_ranges.CTE + "," if reported_ranges else ""} n AS ({nodes_sql()}),
    reported AS (SELECT s.ts, s.cluster, s.node, count(DISTINCT s.gpu_uuid) AS gpus
                 FROM {c.T_GPU_SAMPLES} s WHERE s.ts >= $start AND s.ts < $end
                 {_reported_filter(reported_ranges)}
                 GROUP BY ALL),
    parts AS (
        SELECT a.ts, a.cluster, a.node, {REQUEST_SQL} * {share} AS units,
            NULL::BIGINT AS declared, NULL::BIGINT AS reported
        FROM {c.T_POD_ALLOCATIONS} a LEFT JOIN n USING (cluster, node) WHERE a.ts >= $start AND a.ts < $end
        UNION ALL SELECT ts, cluster, node, NULL, gpu_capacity, NULL FROM {c.T_NODE_SAMPLES}
        WHERE ts >= $start AND ts < $end
        UNION ALL SELECT ts, cluster, node, NULL, NULL, gpus FROM reported),
    node_steps AS (
        SELECT ts, cluster, node, coalesce(sum(units), 0) AS alloc_units,
            coalesce(max(declared), max(reported), 0) AS gpus
        FROM parts GROUP BY ts, cluster, node),
    cap AS (SELECT ts, cluster, node, alloc_units,
                CAST(ceil(greatest(gpus * {UB}, alloc_units) / {U}) AS BIGINT) * {UB} AS units_per_s
            FROM node_steps)
    SELECT n.node_pool, cap.ts, sum(cap.units_per_s) / {U} AS capacity_gpus, sum(cap.alloc_units) / {U} AS alloc_gpus,
        max(cap.units_per_s) / {U} AS max_node_gpus
    FROM cap LEFT JOIN n USING (cluster, node)
    GROUP BY ALL
    """


def _reported_filter(reported_ranges: bool | None) -> str:
    if reported_ranges is None:
        return ""
    return "AND " + step_ranges.within("s") if reported_ranges else "AND false"


@in_money_context
def recommendations(
    con: duckdb.DuckDBPyConnection, window: Window, cb: ChargebackOptions, opts: savings.SavingsOptions
) -> list[savings.Recommendation]:
    pool_rates = _pool_rates(con, window, cb)
    steps = _pool_steps(con, window, cb.mig_share)
    pods = _pods(con, window, cb, opts)
    recs = savings.release_idle(_pools(steps, pool_rates), window)
    whole = [p for p in pods if p["whole"] == 1 and p["resources"] == 1]
    recs += savings.right_size(whole, window, opts)
    on_demand = [p for p in pods if p["capacity_type"] == "on_demand"]
    recs += savings.to_spot(on_demand, savings.spot_ratios(con), window, opts)
    recs += savings.off_peak(_off_peak(con, window, cb, opts, pods, pool_rates), window)
    return savings.rank(recs)


def _pool_steps(
    con: duckdb.DuckDBPyConnection, window: Window, mig_share: MigShare, chunk: timedelta = 6 * HOUR
) -> list[dict[str, Any]]:
    """The pool steps, reading DCGM's GPU counts only for the node-hours whose coverage rollup row has a step
    kube-state-metrics gave no capacity for (none on a fleet where it always does). Each step's figures
    depend on that step's rows only, so the window is read a `chunk` at a time: the grouping by node-step
    holds 6 hours of node-steps, not the window's (a week at 10,000 GPUs: 23 million, gigabytes of hash
    table; a day's 3.3 million still filled DuckDB's 1 GB and spilled: 6-hour chunks are a third faster)."""
    sql, extra = _pool_steps_query(con, window, mig_share)
    span = ts_span(con, (c.T_NODE_SAMPLES, c.T_POD_ALLOCATIONS, c.T_GPU_SAMPLES))
    if span is None:
        return []
    # only the part of the window that holds steps is read: a 10-year window over a week of data read
    # 14,600 empty chunks (112 s); a step (at most a day long) that starts in the span ends within a day of it
    held = Window(max(window.start, span[0]), min(window.end, span[1] + timedelta(days=1)))
    if held.end <= held.start:
        return []
    return [row for part in held.split(chunk) for row in _rows(con, sql, part, extra)]


def _pool_steps_query(
    con: duckdb.DuckDBPyConnection, window: Window, mig_share: MigShare
) -> tuple[str, dict[str, Any] | None]:
    if not coverage.in_sync(con):
        return _pool_steps_sql(mig_share), None
    hours = con.execute(
        f"""SELECT cluster, node, hour FROM {c.T_COVERAGE_ROLLUP}
        WHERE gpu_uuid IS NULL AND declared_steps < steps AND hour >= date_trunc('hour', $start::TIMESTAMP)
            AND hour < $end ORDER BY ALL""",
        {"start": window.start, "end": window.end},
    ).fetchall()
    ranges = step_ranges.from_hours(hours, window.start, window.end, after=timedelta(0))
    extra = step_ranges.params(ranges) if ranges else None
    return _pool_steps_sql(mig_share, reported_ranges=bool(ranges)), extra


def _pool_rates(con: duckdb.DuckDBPyConnection, window: Window, cb: ChargebackOptions) -> dict[str, Decimal]:
    report = chargeback(
        con, window, replace(cb, by=("node_pool",), idle="keep", shared_overhead_usd_per_hour=Decimal(0))
    )
    cost: dict[str, Decimal] = {}
    hours: dict[str, float] = {}
    for r in report.rows:
        pool = r.keys["node_pool"]
        cost[pool] = cost.get(pool, Decimal(0)) + r.cost_usd
        hours[pool] = hours.get(pool, 0.0) + r.gpu_hours
    return {p: cost[p] / Decimal(repr(hours[p])) for p in cost if hours[p] > 0}


def _pools(steps: list[dict[str, Any]], rates: dict[str, Decimal]) -> list[dict[str, Any]]:
    by_pool: dict[str, list[dict[str, Any]]] = {}
    for s in steps:
        by_pool.setdefault(s["node_pool"] or "", []).append(s)
    out = []
    for pool, rows in by_pool.items():
        out.append(
            {
                "node_pool": pool,
                "gpus_per_node": int(max(r["max_node_gpus"] for r in rows)),
                "capacity_gpus": sum(r["capacity_gpus"] for r in rows) / len(rows),
                "peak_alloc_gpus": max(r["alloc_gpus"] for r in rows),
                "gpu_hour_usd": rates.get(pool),
            }
        )
    return out


def _pods(
    con: duckdb.DuckDBPyConnection, window: Window, cb: ChargebackOptions, opts: savings.SavingsOptions
) -> list[dict[str, Any]]:
    report = chargeback(con, window, replace(cb, by=("team", "namespace", "workload", "pod"), idle="keep"))
    by_pod = {(r.keys["namespace"], r.keys["pod"]): r for r in report.rows if r.kind in ("allocated", c.UNALLOCATED)}
    out = []
    for stats in _rows(con, savings.pod_stats_sql(), window):
        row = by_pod.get((stats["namespace"], stats["pod"]))
        if row is None:
            continue
        out.append(
            {
                **stats,
                "team": row.keys["team"],
                "workload": row.keys["workload"],
                "gpu_hours": row.gpu_hours,
                "efficiency": row.efficiency,
                "used_gpu_hours": row.used_gpu_hours,
                "cost_usd": row.cents.get("allocated_cost_usd", Decimal(0)),
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
    pods: list[dict[str, Any]],
    rates: dict[str, Decimal],
) -> list[dict[str, Any]]:
    # GPU-unit-seconds by hour of day: hourly rollups (whole days too: the peak split is by hour), steps
    # for edge hours, hours with a price change and stale nodes; the same integers as the step tables.
    src = fact_plan.sources_sql(fact_plan.plan(con, window, days=False), cb.mig_share)
    peak = f"hour(ts) >= {opts.peak_hours[0]} AND hour(ts) < {opts.peak_hours[1]}"
    n = f"LEFT JOIN ({nodes_sql()}) n USING (cluster, node)"
    idle = con.execute(
        f"""SELECT coalesce(n.node_pool, '') AS node_pool, sum(units) FROM (
            SELECT cluster, node, units FROM ({src["capacity"]}) WHERE NOT ({peak})
            UNION ALL SELECT cluster, node, -units FROM ({src["alloc"]}) WHERE NOT ({peak})) {n}
        GROUP BY ALL"""
    ).fetchall()
    idle_off_peak = {pool: int(units) / U / 3600 for pool, units in idle}
    sql = f"""
    WITH serving AS (SELECT DISTINCT cluster, namespace, pod FROM {c.T_INFERENCE_SAMPLES} WHERE ts >= $start AND ts < $end)
    SELECT n.node_pool, al.namespace, al.pod, sum(al.units) AS units
    FROM ({src["alloc"]}) al {n} LEFT JOIN serving s USING (cluster, namespace, pod)
    WHERE s.pod IS NULL AND {peak.replace("ts", "al.ts")}
    GROUP BY ALL"""
    # only jobs short enough to fit in the off-peak hours can move there
    fits = 24 - (opts.peak_hours[1] - opts.peak_hours[0])
    teams = {(p["namespace"], p["pod"]): p["team"] for p in pods if p["run_hours"] <= fits}
    # integer unit-seconds summed exactly, divided once: GPU-hours at 60 s steps often end in .x5, and
    # a float sum in row order (which DuckDB does not fix) could print either neighbour with .1f
    units: dict[tuple[str, str], int] = {}
    for r in _rows(con, sql, window):
        if (r["namespace"], r["pod"]) not in teams:
            continue
        key = (r["node_pool"] or "", teams[(r["namespace"], r["pod"])])
        units[key] = units.get(key, 0) + int(r["units"])
    per = {key: u / U / 3600 for key, u in units.items()}
    return [
        {
            "node_pool": pool,
            "team": team,
            "peak_gpu_hours": hours,
            "offpeak_idle_gpu_hours": idle_off_peak.get(pool, 0.0),
            "gpu_hour_usd": rates.get(pool),
        }
        for (pool, team), hours in sorted(per.items())
    ]
