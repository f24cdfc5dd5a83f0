"""Used GPU-seconds from DCGM over the same window as the allocation (never "now").

used = graphics-engine activity (DCGM_FI_PROF_GR_ENGINE_ACTIVE, falling back to GPU_UTIL/100)
       x the entity's share of its physical GPU (a 3g.40gb MIG instance is 3/7)
       x the pod's share of that entity (time-slicing: per-process GPU_UTIL share, else even)
       x step seconds.
Summed over a pod's GPUs, so a 4-GPU pod at 90% on each has used 3.6 GPU-hours per hour and an
efficiency (used / allocated) of 90% (OpenCost divides by the GPU count and reports 22.5%).
Activity on GPUs no pod is mapped to has namespace/pod NULL (the __idle__ row shows it).
"""

from __future__ import annotations

from analytics.allocation import device_share_sql
from core import conventions as c


def usage_facts_sql(by_day: bool) -> str:
    """Used GPU-seconds per (cluster, node, namespace, pod, uid[, day]); parameters $start, $end."""
    share = device_share_sql("g.mig_profile", "g.model")
    day = "date_trunc('day', j.ts)" if by_day else "NULL::TIMESTAMP"
    return f"""
    WITH dev AS (
        SELECT s.ts, s.step_s, s.cluster, s.node, s.gpu_uuid, s.gpu_instance,
            coalesce(s.gr_engine_active, s.gpu_util / 100.0, 0) * {share} AS act
        FROM {c.T_GPU_SAMPLES} s
        LEFT JOIN {c.T_GPUS} g USING (cluster, node, gpu_uuid, gpu_instance)
        WHERE s.ts >= $start AND s.ts < $end),
    mapped AS (
        SELECT m.*, count(*) OVER w AS sharers, sum(m.gpu_util) OVER w AS util_total
        FROM {c.T_GPU_POD_SAMPLES} m WHERE m.ts >= $start AND m.ts < $end
        WINDOW w AS (PARTITION BY m.ts, m.cluster, m.node, m.gpu_uuid, m.gpu_instance)),
    joined AS (
        SELECT d.ts, d.cluster, d.node, m.namespace, m.pod,
            d.act * d.step_s * CASE WHEN m.pod IS NULL THEN 1.0
                 WHEN m.util_total > 0 AND m.gpu_util IS NOT NULL THEN m.gpu_util / m.util_total
                 ELSE 1.0 / m.sharers END AS used_s
        FROM dev d LEFT JOIN mapped m USING (ts, cluster, node, gpu_uuid, gpu_instance)),
    uids AS (
        SELECT DISTINCT ts, cluster, namespace, pod, uid FROM {c.T_POD_ALLOCATIONS} WHERE ts >= $start AND ts < $end)
    SELECT j.cluster, j.node, j.namespace, j.pod, u.uid, {day} AS day, sum(j.used_s) AS used_s
    FROM joined j LEFT JOIN uids u USING (ts, cluster, namespace, pod)
    GROUP BY ALL
    """
