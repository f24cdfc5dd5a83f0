"""Waiting for GPUs on a generated fleet, for the `report queues` benchmark: derived once from its own rows (the
generator writes no Pending pods or queues), so the fleet's other figures stay as they were.

- node_resources: each node's GPU count per step (from node_samples);
- every pod Pending for 1-10 steps before its first allocated step (a hash of its uid), asking what it was then
  allocated; pods.created_at and scheduled_at to match;
- two Kueue ClusterQueues per cluster with a GPU quota and usage, one step in ten with work pending;

then the fragmentation rollups built from them (core/store/rollups/waiting.py), as a collection would have.
"""

from __future__ import annotations

from pathlib import Path

from core import conventions as c
from core.store.rollups import waiting


def queue_fleet(warehouse: Path) -> int:
    """Add the waiting to a cached fleet (once: a fleet that has it keeps it); returns its Pending rows."""
    import duckdb

    con = duckdb.connect(str(warehouse))
    try:
        have = con.execute(f"SELECT count(*) FROM {c.T_POD_PENDING}").fetchone()
        if have and have[0]:
            return int(have[0])
        con.execute("BEGIN TRANSACTION")
        con.execute(
            f"""INSERT INTO {c.T_NODE_RESOURCES}
            SELECT ts, step_s, cluster, node, '{c.RESOURCE_GPU}', gpu_capacity FROM {c.T_NODE_SAMPLES}
            WHERE gpu_capacity IS NOT NULL"""
        )
        con.execute(
            f"""CREATE TEMP TABLE firsts AS
            SELECT cluster, namespace, pod, uid, resource, min(ts) AS first, any_value(step_s) AS step_s,
                max(amount) AS amount, CAST(1 + hash(uid) % 10 AS BIGINT) AS waited
            FROM {c.T_POD_ALLOCATIONS} GROUP BY cluster, namespace, pod, uid, resource"""
        )
        con.execute(
            f"""INSERT INTO {c.T_POD_PENDING}
            SELECT first - to_seconds(step_s * (k + 1)), step_s, cluster, namespace, pod, uid, resource, amount, false
            FROM (SELECT *, unnest(range(CAST(waited AS BIGINT))) AS k FROM firsts)"""
        )
        con.execute(
            f"""UPDATE {c.T_PODS} p SET scheduled_at = f.first, created_at = f.first - to_seconds(f.step_s * f.waited)
            FROM firsts f WHERE p.cluster = f.cluster AND p.namespace = f.namespace AND p.pod = f.pod AND p.uid = f.uid"""
        )
        con.execute(
            f"""INSERT INTO {c.T_QUEUE_SAMPLES}
            WITH steps AS (SELECT DISTINCT ts, step_s, cluster FROM {c.T_NODE_SAMPLES}),
            q AS (SELECT * FROM (VALUES ('team-a-cq', 64.0, 80.0), ('team-b-cq', 64.0, 40.0)) v(queue, nominal, used))
            SELECT ts, step_s, cluster, 'kueue', queue, 'gpu-cohort', 'default', '{c.RESOURCE_GPU}', NULL, metric, NULL,
                value
            FROM steps, q, (VALUES ('{c.KUEUE_NOMINAL}'), ('{c.KUEUE_USAGE}')) m(metric),
                LATERAL (SELECT CASE WHEN metric = '{c.KUEUE_NOMINAL}' THEN nominal ELSE used END AS value)
            UNION ALL
            SELECT ts, step_s, cluster, 'kueue', queue, NULL, NULL, NULL, 'active', '{c.KUEUE_PENDING}', NULL,
                CASE WHEN queue = 'team-a-cq' AND epoch(ts) % 600 = 0 THEN 3 ELSE 0 END
            FROM steps, q"""
        )
        waiting.refresh(con, None, None, full=True)
        con.execute("COMMIT")
        row = con.execute(f"SELECT count(*) FROM {c.T_POD_PENDING}").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()
