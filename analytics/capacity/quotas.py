"""Queue quotas: what each Kueue ClusterQueue (or Volcano queue) was promised, used, borrowed and left idle, and
which queues waited while another queue's quota sat idle.

Per queue and GPU resource over the window, from the queue gauges (one row per step, interval families):
- nominal: Kueue's nominal quota; Volcano's deserved share (else its capacity);
- used: Kueue's resource usage; Volcano's allocated (GPUs: its scalar thousandths over 1,000, at collection);
- borrowed GPU-hours: use beyond the nominal quota; idle quota GPU-hours: nominal not used;
- pending: Kueue's pending workloads (active and inadmissible) or Volcano's pending PodGroups, their mean, and
  the steps with any;
- idle while others waited: the GPU-hours of this queue's idle quota at steps where another queue of its cohort
  (Kueue's cohort; Volcano: the cluster) had work pending: quota a move between queues would have used.
"""

from __future__ import annotations

from typing import Any

import duckdb

from core import conventions as c
from core.timeutil import Window

_QUOTA_SQL = f"""
WITH s AS (SELECT * FROM {c.T_QUEUE_SAMPLES} WHERE ts >= $start AND ts < $end),
quota AS (
    SELECT ts, any_value(step_s) AS step_s, cluster, system, queue, resource,
        coalesce(any_value(cohort) FILTER (WHERE cohort IS NOT NULL), cluster) AS cohort,
        coalesce(sum(value) FILTER (WHERE metric IN ('{c.KUEUE_NOMINAL}', '{c.VOLCANO_DESERVED}')),
                 sum(value) FILTER (WHERE metric = '{c.VOLCANO_CAPACITY}')) AS nominal,
        sum(value) FILTER (WHERE metric = '{c.KUEUE_BORROWING}') AS borrowing_limit,
        coalesce(sum(value) FILTER (WHERE metric IN ('{c.KUEUE_USAGE}', '{c.VOLCANO_ALLOCATED}')), 0) AS used
    FROM s WHERE resource LIKE 'nvidia_com_%' GROUP BY ts, cluster, system, queue, resource),
pending AS (
    SELECT ts, cluster, system, queue, sum(value) AS pending FROM s
    WHERE metric IN ('{c.KUEUE_PENDING}', '{c.VOLCANO_PENDING}') GROUP BY ALL),
steps AS (
    SELECT q.*, coalesce(p.pending, 0) AS pending, greatest(q.used - coalesce(q.nominal, 0), 0) AS borrowed,
        greatest(coalesce(q.nominal, 0) - q.used, 0) AS idle
    FROM quota q LEFT JOIN pending p USING (ts, cluster, system, queue)),
waiting AS (  -- per step and cohort: how many of its queues have work pending (a count, not a self-join)
    SELECT ts, cluster, system, cohort, count(DISTINCT queue) FILTER (WHERE pending > 0) AS queues
    FROM steps GROUP BY ALL),
others AS (  -- per step: does another queue of the cohort have work pending?
    SELECT s.ts, s.cluster, s.system, s.queue, s.resource,
        w.queues - CASE WHEN s.pending > 0 THEN 1 ELSE 0 END > 0 AS others_wait
    FROM steps s JOIN waiting w USING (ts, cluster, system, cohort))
SELECT s.cluster, s.system, s.queue, any_value(s.cohort) AS cohort, s.resource, avg(s.nominal) AS nominal,
    max(s.borrowing_limit) AS borrowing_limit, avg(s.used) AS used_mean, sum(s.used * s.step_s) / 3600 AS used_gpu_hours,
    sum(s.borrowed * s.step_s) / 3600 AS borrowed_gpu_hours, sum(s.idle * s.step_s) / 3600 AS idle_quota_gpu_hours,
    avg(s.pending) AS pending_mean, count(*) FILTER (WHERE s.pending > 0) AS pending_steps,
    sum(CASE WHEN o.others_wait AND s.pending = 0 THEN s.idle ELSE 0 END * s.step_s) / 3600
        AS idle_while_others_waited_gpu_hours
FROM steps s LEFT JOIN others o USING (ts, cluster, system, queue, resource)
GROUP BY s.cluster, s.system, s.queue, s.resource ORDER BY ALL"""


def quotas(con: duckdb.DuckDBPyConnection, window: Window) -> list[dict[str, Any]]:
    """One row per queue and GPU resource (empty where no queue metrics were collected)."""
    cur = con.execute(_QUOTA_SQL, {"start": window.start, "end": window.end})
    names = [d[0] for d in cur.description]
    out = []
    for row in cur.fetchall():
        r = dict(zip(names, row, strict=True))
        for k, v in r.items():
            if isinstance(v, float):
                r[k] = round(v, 6)
        out.append(r)
    return out
