"""Used GPU-seconds from DCGM over the same window as the allocation (never "now").

used = graphics-engine activity (DCGM_FI_PROF_GR_ENGINE_ACTIVE, falling back to GPU_UTIL/100)
       x the entity's share of its physical GPU (a 3g.40gb MIG instance is 3/7)
       x the pod's share of that entity (time-slicing: per-process GPU_UTIL share, else even)
       x step seconds.
Summed over a pod's GPUs, so a 4-GPU pod at 90% on each has used 3.6 GPU-hours per hour and an
efficiency (used / allocated) of 90% (OpenCost divides by the GPU count and reports 22.5%).
Activity on GPUs no pod is mapped to has namespace/pod NULL (the __idle__ row shows it).
The SQL lives in core/store/step_sql.py, shared with the hourly rollups (core/store/rollups/hourly.py).
"""

from __future__ import annotations

from core.store.step_sql import usage_steps_sql


def usage_facts_sql(by_day: bool) -> str:
    """Used GPU-seconds per (cluster, node, namespace, pod, uid[, day]); parameters $start, $end."""
    bucket = "date_trunc('day', j.ts)" if by_day else "NULL::TIMESTAMP"
    return f"SELECT cluster, node, namespace, pod, uid, bucket AS day, used_s FROM ({usage_steps_sql(bucket)})"
