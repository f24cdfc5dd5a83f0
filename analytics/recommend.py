"""Gathering the evidence for savings recommendations from the warehouse (see analytics/savings.py)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import duckdb

from analytics import savings
from analytics.allocation import MigShare, alloc_steps_sql, capacity_steps_sql, nodes_sql
from analytics.chargeback import ChargebackOptions, chargeback
from core import conventions as c
from core.timeutil import Window

U = c.GPU_UNITS


def _rows(con: duckdb.DuckDBPyConnection, sql: str, window: Window) -> list[dict[str, Any]]:
    cur = con.execute(sql, {"start": window.start, "end": window.end})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _pool_steps_sql(mig_share: MigShare, peak: tuple[int, int]) -> str:
    return f"""
    WITH cap AS ({capacity_steps_sql(mig_share)}),
    al AS (SELECT ts, cluster, node, sum(units) AS units FROM ({alloc_steps_sql(mig_share)}) GROUP BY ALL),
    n AS ({nodes_sql()})
    SELECT n.node_pool, cap.ts, hour(cap.ts) >= {peak[0]} AND hour(cap.ts) < {peak[1]} AS peak,
        max(cap.step_s) AS step_s, sum(cap.units_per_s) / {U} AS capacity_gpus,
        sum(coalesce(al.units, 0)) / {U} AS alloc_gpus, max(cap.units_per_s) / {U} AS max_node_gpus
    FROM cap LEFT JOIN al USING (ts, cluster, node) LEFT JOIN n USING (cluster, node)
    GROUP BY ALL
    """


def recommendations(
    con: duckdb.DuckDBPyConnection, window: Window, cb: ChargebackOptions, opts: savings.SavingsOptions
) -> list[savings.Recommendation]:
    pool_rates = _pool_rates(con, window, cb)
    steps = _rows(con, _pool_steps_sql(cb.mig_share, opts.peak_hours), window)
    pods = _pods(con, window, cb)
    recs = savings.release_idle(_pools(steps, pool_rates), window)
    whole = [p for p in pods if p["whole"] == 1 and p["resources"] == 1]
    recs += savings.right_size(whole, window, opts)
    on_demand = [p for p in pods if p["capacity_type"] == "on_demand"]
    recs += savings.to_spot(on_demand, savings.spot_ratios(con), window, opts)
    recs += savings.off_peak(_off_peak(con, window, cb, opts, steps, pool_rates), window)
    return savings.rank(recs)


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


def _pods(con: duckdb.DuckDBPyConnection, window: Window, cb: ChargebackOptions) -> list[dict[str, Any]]:
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
            }
        )
    return out


def _off_peak(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    cb: ChargebackOptions,
    opts: savings.SavingsOptions,
    steps: list[dict[str, Any]],
    rates: dict[str, Decimal],
) -> list[dict[str, Any]]:
    idle_off_peak: dict[str, float] = {}
    for s in steps:
        if not s["peak"]:
            pool = s["node_pool"] or ""
            idle_off_peak[pool] = (
                idle_off_peak.get(pool, 0.0) + (s["capacity_gpus"] - s["alloc_gpus"]) * s["step_s"] / 3600
            )
    sql = f"""
    WITH al AS ({alloc_steps_sql(cb.mig_share)}), n AS ({nodes_sql()}),
    serving AS (SELECT DISTINCT cluster, namespace, pod FROM {c.T_INFERENCE_SAMPLES} WHERE ts >= $start AND ts < $end)
    SELECT n.node_pool, al.namespace, al.pod, sum(al.units * al.step_s) / {U} / 3600.0 AS gpu_hours
    FROM al LEFT JOIN n USING (cluster, node) LEFT JOIN serving s USING (cluster, namespace, pod)
    WHERE s.pod IS NULL AND hour(al.ts) >= {opts.peak_hours[0]} AND hour(al.ts) < {opts.peak_hours[1]}
    GROUP BY ALL"""
    # only jobs short enough to fit in the off-peak hours can move there
    fits = 24 - (opts.peak_hours[1] - opts.peak_hours[0])
    teams = {(p["namespace"], p["pod"]): p["team"] for p in _pods(con, window, cb) if p["run_hours"] <= fits}
    per: dict[tuple[str, str], float] = {}
    for r in _rows(con, sql, window):
        if (r["namespace"], r["pod"]) not in teams:
            continue
        key = (r["node_pool"] or "", teams[(r["namespace"], r["pod"])])
        per[key] = per.get(key, 0.0) + float(r["gpu_hours"])
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
