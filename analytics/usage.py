"""Used GPU-hours from DCGM over the same window as the allocation (never "now").

used = graphics-engine activity (DCGM_FI_PROF_GR_ENGINE_ACTIVE, falling back to GPU_UTIL/100)
       x the entity's share of its physical GPU (a 3g.40gb MIG instance is 3/7)
       x the pod's share of that entity (time-slicing: per-process GPU_UTIL share, else even)
       x step hours.
Summed over a pod's GPUs, so a 4-GPU pod at 90% on each has used 3.6 GPU-hours per hour and an
efficiency (used / allocated) of 90% (OpenCost divides by the GPU count and reports 22.5%).
Activity on GPUs no pod is mapped to is reported on the __idle__ row.
"""

from __future__ import annotations

from typing import Any

import duckdb

from analytics import allocation
from core import conventions as c
from core.timeutil import Window


def _sql(by: tuple[str, ...], team_label: str) -> str:
    node_cols = [a for a in allocation.NODE_ATTRIBUTES if a in by]
    node_select = ", ".join(f"n.{a}" if a not in ("cluster", "node") else f"d.{a}" for a in node_cols)
    team = allocation.team_sql("p.labels", "ns.labels", team_label)
    share = allocation.device_share_sql("g.mig_profile", "g.model")
    return f"""
    WITH dev AS (
        SELECT s.ts, s.step_s, s.cluster, s.node, s.gpu_uuid, s.gpu_instance,
            coalesce(s.gr_engine_active, s.gpu_util / 100.0, 0) * {share} AS act
        FROM {c.T_GPU_SAMPLES} s
        LEFT JOIN {c.T_GPUS} g USING (cluster, node, gpu_uuid, gpu_instance)
        WHERE s.ts >= ? AND s.ts < ?),
    mapped AS (
        SELECT m.*, count(*) OVER w AS sharers, sum(m.gpu_util) OVER w AS util_total
        FROM {c.T_GPU_POD_SAMPLES} m WHERE m.ts >= ? AND m.ts < ?
        WINDOW w AS (PARTITION BY m.ts, m.cluster, m.node, m.gpu_uuid, m.gpu_instance)),
    pods_ AS (SELECT cluster, namespace, pod, arg_max(labels, last_seen) AS labels FROM {c.T_PODS} GROUP BY ALL),
    nodes_ AS (
        SELECT cluster, node, coalesce(node_pool, '') AS node_pool, coalesce(gpu_model, '') AS gpu_model,
            coalesce(capacity_type, 'on_demand') AS capacity_type, coalesce(instance_type, '') AS instance_type,
            coalesce(region, '') AS region
        FROM {c.T_NODES}),
    joined AS (
        SELECT d.*, m.namespace, m.pod,
            CASE WHEN m.pod IS NULL THEN NULL ELSE {team} END AS team,
            CASE WHEN m.pod IS NULL THEN 1.0
                 WHEN m.util_total > 0 AND m.gpu_util IS NOT NULL THEN m.gpu_util / m.util_total
                 ELSE 1.0 / m.sharers END AS pod_share
        FROM dev d
        LEFT JOIN mapped m USING (ts, cluster, node, gpu_uuid, gpu_instance)
        LEFT JOIN pods_ p ON p.cluster = d.cluster AND p.namespace = m.namespace AND p.pod = m.pod
        LEFT JOIN {c.T_NAMESPACES} ns ON ns.cluster = d.cluster AND ns.namespace = m.namespace)
    SELECT d.team, d.namespace, d.pod{", " + node_select if node_select else ""},
        sum(d.act * d.pod_share * d.step_s) / 3600.0 AS used_hours
    FROM joined d LEFT JOIN nodes_ n USING (cluster, node)
    GROUP BY ALL
    """


def used_gpu_hours(
    con: duckdb.DuckDBPyConnection, window: Window, by: tuple[str, ...], team_label: str
) -> dict[tuple[str, ...], float]:
    """Used GPU-hours keyed exactly like chargeback rows (pod keys or owner, then node keys)."""
    cur = con.execute(_sql(by, team_label), [window.start, window.end] * 2)
    names = [d[0] for d in cur.description]
    node_keys = [a for a in allocation.NODE_ATTRIBUTES if a in by]
    pod_keys = [a for a in allocation.POD_ATTRIBUTES if a in by]
    out: dict[tuple[str, ...], float] = {}
    for values in cur.fetchall():
        row: dict[str, Any] = dict(zip(names, values, strict=True))
        node_part = tuple(str(row[k]) for k in node_keys)
        if row["team"] is None:
            head = tuple(c.IDLE for _ in pod_keys) or (c.IDLE,)
        elif pod_keys:
            head = tuple(str(row[k]) for k in pod_keys)
        else:
            head = (c.UNALLOCATED if row["team"] == c.UNALLOCATED else "",)
        key = head + node_part
        out[key] = out.get(key, 0.0) + float(row["used_hours"] or 0.0)
    return out
