"""The rollups' SQL: core/store/step_sql.py's step arithmetic, rearranged to avoid grouping by step.

Grouping ~40M rows a day into one group per step (10,000 GPUs) is what makes the step SQL slow;
most of it is linear and can be summed straight into hours:
- a pod-step's GPU units are a sum over its resource rows, so an hour's units are a sum over the
  hour's rows, except where HAMi gpucores scales a step's sum with a floor (those steps go per step);
- a device-step's pod share is 1 unless several pods map to it at once (time-slicing, a pod
  replaced mid-scrape); only device-hours where that happens are grouped by step.
The results are the same integers (and the same float sums) as core/store/step_sql.py; tests/test_rollups.py
checks rollups against the step SQL on random fleets.
"""

from __future__ import annotations

from core import conventions as c
from core.store.step_sql import (
    HAMI_CORES,
    MIG_SHARES,
    POD_SHARE_SQL,
    POD_UTIL_SQL,
    REQUEST_SQL,
    USAGE_VALUES,
    capacity_steps_sql,
    device_energy_ctes,
    nodes_sql,
    pod_energy_sql,
    scaled_sql,
    share_units_sql,
)

WHERE = "{t}.ts >= $start AND {t}.ts < $end"
_POD_STEP = ("ts", "cluster", "node", "namespace", "pod", "uid")


def _w(t: str) -> str:
    return WHERE.format(t=t)


def _same(a: str, b: str, cols: tuple[str, ...]) -> str:
    return " AND ".join(f"{a}.{col} = {b}.{col}" for col in cols)


def _shares(t: str = "a") -> dict[str, str]:
    return {m: share_units_sql(f"{t}.resource", m) for m in MIG_SHARES}


def alloc_hourly_sql() -> str:
    """(hour, cluster, node, namespace, pod, uid, units_compute, units_memory) in GPU-unit-seconds."""
    shares = _shares()
    linear = ", ".join(f"sum({REQUEST_SQL} * {s} * a.step_s) AS units_{m}" for m, s in shares.items())
    per_step = ", ".join(f"sum({REQUEST_SQL} * {s}) AS units_{m}" for m, s in shares.items())
    scaled = ", ".join(f"sum({scaled_sql(f'units_{m}')} * step_s) AS units_{m}" for m in MIG_SHARES)
    nodes = f"LEFT JOIN ({nodes_sql()}) n USING (cluster, node)"
    return f"""
    WITH cored AS (SELECT DISTINCT {", ".join(_POD_STEP)} FROM {c.T_POD_ALLOCATIONS} a
                   WHERE {_w("a")} AND a.resource = '{HAMI_CORES}'),
    plain AS (
        SELECT date_trunc('hour', a.ts) AS hour, a.cluster, a.node, a.namespace, a.pod, a.uid, {linear}
        FROM {c.T_POD_ALLOCATIONS} a {nodes} LEFT JOIN cored k ON {_same("k", "a", _POD_STEP)}
        WHERE {_w("a")} AND k.ts IS NULL  -- an anti join that costs nothing when no pod uses HAMi
        GROUP BY ALL),
    steps AS (
        SELECT a.ts, a.step_s, a.cluster, a.node, a.namespace, a.pod, a.uid, {per_step},
            max(a.amount) FILTER (WHERE a.resource = '{HAMI_CORES}') AS cores
        FROM {c.T_POD_ALLOCATIONS} a {nodes} JOIN cored k ON {_same("k", "a", _POD_STEP)}
        WHERE {_w("a")}
        GROUP BY ALL),
    stepped AS (SELECT date_trunc('hour', ts) AS hour, cluster, node, namespace, pod, uid, {scaled} FROM steps GROUP BY ALL)
    SELECT hour, cluster, node, namespace, pod, uid, sum(units_compute) AS units_compute, sum(units_memory) AS units_memory
    FROM (SELECT * FROM plain UNION ALL SELECT * FROM stepped) GROUP BY ALL"""


def capacity_hourly_sql() -> str:
    """(hour, cluster, node, units_<mode>..., unhealthy_<mode>..., node_s, no_gpu_<mode>...): billable and unhealthy
    GPU-unit-seconds, the step rule itself (core/store/step_sql.py capacity_steps_sql) summed by hour; the seconds
    the node had a step (what the provider bills it for) and the billable units on steps where no source gives the
    node a GPU (only its pods' requests do): the bill-vs-ledger reconciliation's figures."""
    sums = ", ".join(
        f"sum({col}_per_s_{m} * step_s) AS {col}_{m}" for col in ("units", "unhealthy") for m in MIG_SHARES
    )
    bare = ", ".join(
        f"coalesce(sum(units_per_s_{m} * step_s) FILTER (WHERE gpus = 0), 0) AS no_gpu_{m}" for m in MIG_SHARES
    )
    return f"""SELECT date_trunc('hour', ts) AS hour, cluster, node, {sums}, sum(step_s) AS node_s, {bare}
    FROM ({capacity_steps_sql(MIG_SHARES, WHERE)}) GROUP BY ALL"""


def usage_hourly_sql() -> str:
    """(hour, cluster, node, namespace, pod, uid, used_s, energy_j, derived_j): core/facts.usage_steps_sql by hour."""
    dev_key = ("ts", "cluster", "node", "gpu_uuid", "gpu_instance")
    hour_key = ("cluster", "node", "gpu_uuid", "gpu_instance")
    return f"""
    WITH {device_energy_ctes(WHERE).strip()},
    m AS (SELECT * REPLACE ({POD_UTIL_SQL} AS gpu_util) FROM {c.T_GPU_POD_SAMPLES} m WHERE {_w("m")}),
    runs AS (  -- each pod's mapping on a device within an hour: its first and last step, and rows
        SELECT date_trunc('hour', ts) AS hour, {", ".join(hour_key)}, namespace, pod, vgpu, count(*) AS n,
            min(ts) AS lo, max(ts) AS hi, min(step_s) AS s_lo, max(step_s) AS s_hi
        FROM m GROUP BY ALL),
    busy AS (  -- device-hours where some step may map several pods: runs overlap, or a run is not one row a step
        SELECT DISTINCT hour, {", ".join(hour_key)} FROM runs
        WHERE s_lo <> s_hi OR n <> epoch(hi - lo) // s_lo + 1
        UNION
        SELECT DISTINCT x.hour, {", ".join(f"x.{k}" for k in hour_key)} FROM runs x JOIN runs y
            ON x.hour = y.hour AND {_same("x", "y", hour_key)}
            AND (x.namespace, x.pod, x.vgpu) <> (y.namespace, y.pod, y.vgpu) AND x.lo <= y.hi AND y.lo <= x.hi),
    shared AS (
        SELECT {", ".join(f"m.{k}" for k in dev_key)}, count(*) AS sharers, sum(m.gpu_util) AS util_total
        FROM m JOIN busy b ON b.hour = date_trunc('hour', m.ts) AND {_same("b", "m", hour_key)}
        GROUP BY ALL),
    mapped AS (
        SELECT m.*, coalesce(sh.sharers, 1) AS sharers,
            CASE WHEN sh.sharers IS NULL THEN m.gpu_util ELSE sh.util_total END AS util_total
        FROM m LEFT JOIN shared sh USING ({", ".join(dev_key)})),
    joined AS (
        SELECT d.ts, d.cluster, d.node, m.namespace, m.pod, {pod_energy_sql(POD_SHARE_SQL)}
        FROM dev d LEFT JOIN mapped m USING ({", ".join(dev_key)})
        UNION ALL SELECT ts, cluster, node, namespace, pod, used_s, energy_j, derived_j FROM rest),
    uids AS (
        SELECT DISTINCT ts, cluster, namespace, pod, uid FROM {c.T_POD_ALLOCATIONS} u WHERE {_w("u")})
    SELECT date_trunc('hour', j.ts) AS hour, j.cluster, j.node, j.namespace, j.pod, u.uid,
        {", ".join(f"sum(j.{v}) AS {v}" for v in USAGE_VALUES)}
    FROM joined j LEFT JOIN uids u USING (ts, cluster, namespace, pod)
    GROUP BY ALL"""
