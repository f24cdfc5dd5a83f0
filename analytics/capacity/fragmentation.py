"""GPUs free but unusable for the shapes that wait: fragmentation, step by step.

At each step where GPU pods are Pending in a cluster, each node's free GPU resources are its allocatable (kube-state-
metrics' kube_node_status_allocatable, per resource: whole GPUs, time-slicing replicas, each MIG profile) less what
Running pods are allocated of them. A node's free resources count as *fragmented* when none of the Pending pods fits
on it: a pod fits where its resource is free in at least the amount it asks for (by GPU count and resource; node
selectors, taints and topology are not read). The report gives:
- fragmented GPU-hours (free GPUs x step, a MIG instance g/7 and a replica 1/replicas of its GPU, as the chargeback
  counts them) and their cost at the node's price in force (the list price table, as the chargeback prices them);
- the largest whole-GPU request the fleet could have placed (the most whole GPUs free on one node), its smallest and
  largest value over the steps with pods waiting;
- per MIG profile: instance-hours free vs asked for, while pods waited;
- per node and hour, the heat map's cells: GPU-hours free and fragmented while pods waited, and the largest
  whole-GPU request waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb

from analytics.cost import prices
from core import conventions as c
from core.money import to_cents
from core.store.step_sql import nodes_sql, share_units_sql
from core.timeutil import Window

_PEND = f"SELECT ts, cluster, resource, amount FROM {c.T_POD_PENDING} WHERE ts >= $start AND ts < $end"

# each node's free units per resource at the steps where GPU pods wait (what fragmentation and the MIG comparison read)
_FREE_SQL = f"""
CREATE OR REPLACE TEMP TABLE frag_free AS
WITH waiting AS (SELECT DISTINCT ts, cluster FROM ({_PEND})),
alloc AS (  -- only the steps with pods waiting: a fleet where few pods wait reads little
    SELECT ts, cluster, node, resource, sum(amount) AS used FROM {c.T_POD_ALLOCATIONS} SEMI JOIN waiting USING (ts, cluster)
    WHERE ts >= $start AND ts < $end GROUP BY ALL)
SELECT r.ts, r.step_s, r.cluster, r.node, r.resource,
    greatest(r.allocatable - coalesce(a.used, 0), 0) AS free,
    greatest(r.allocatable - coalesce(a.used, 0), 0) * {share_units_sql("r.resource")} / {c.GPU_UNITS} AS free_gpus
FROM {c.T_NODE_RESOURCES} r SEMI JOIN waiting w USING (ts, cluster)
    LEFT JOIN alloc a USING (ts, cluster, node, resource) LEFT JOIN ({nodes_sql()}) n USING (cluster, node)
WHERE r.ts >= $start AND r.ts < $end"""

_STEPS_SQL = f"""
CREATE OR REPLACE TEMP TABLE frag_steps AS
WITH fits AS (
    SELECT f.ts, f.cluster, f.node, bool_or(p.amount <= f.free) AS fits
    FROM frag_free f JOIN ({_PEND}) p ON p.ts = f.ts AND p.cluster = f.cluster AND p.resource = f.resource
    WHERE f.free > 0 GROUP BY ALL)
SELECT f.ts, any_value(f.step_s) AS step_s, f.cluster, f.node, sum(f.free_gpus) AS free_gpus,
    coalesce(max(f.free) FILTER (WHERE f.resource = '{c.RESOURCE_GPU}'), 0) AS free_whole,
    NOT coalesce(any_value(x.fits), false) AS fragmented
FROM frag_free f LEFT JOIN fits x USING (ts, cluster, node) GROUP BY f.ts, f.cluster, f.node"""


@dataclass
class Fragmentation:
    fragmented_gpu_hours: float = 0.0
    fragmented_cost_usd: Decimal = Decimal(0)
    unpriced_gpu_hours: float = 0.0  # fragmented on nodes without a price row
    waiting_steps: int = 0  # steps (per cluster) with GPU pods pending
    largest_placeable_gpus_min: int | None = None
    largest_placeable_gpus_max: int | None = None
    mig: list[dict[str, Any]] = field(default_factory=list)
    heatmap: list[dict[str, Any]] = field(default_factory=list)

    def totals(self) -> dict[str, Any]:
        return {
            "fragmented_gpu_hours": round(self.fragmented_gpu_hours, 6),
            "fragmented_cost_usd": str(to_cents(self.fragmented_cost_usd)),
            "fragmented_unpriced_gpu_hours": round(self.unpriced_gpu_hours, 6),
            "waiting_steps": self.waiting_steps,
            "largest_placeable_gpus_min": self.largest_placeable_gpus_min,
            "largest_placeable_gpus_max": self.largest_placeable_gpus_max,
        }


def fragmentation(con: duckdb.DuckDBPyConnection, window: Window) -> Fragmentation:
    params = {"start": window.start, "end": window.end}
    waiting = f"SELECT EXISTS (SELECT 1 FROM {c.T_POD_PENDING} WHERE ts >= $start AND ts < $end)"
    if con.execute(waiting, params).fetchone() != (True,):  # nobody waited: nothing is fragmented
        return Fragmentation()
    con.execute(_FREE_SQL, params)
    con.execute(_STEPS_SQL, params)
    out = Fragmentation()
    infos = prices.load_prices(con)
    priced = prices.priced_sql("SELECT DISTINCT ts, cluster, node FROM frag_steps WHERE fragmented")
    cur = con.execute(
        f"""SELECT x.price_id, sum(f.free_gpus * f.step_s) / 3600 FROM frag_steps f
        JOIN ({priced}) x USING (ts, cluster, node) WHERE f.fragmented GROUP BY 1"""
    )
    for price_id, gpu_hours in cur.fetchall():
        out.fragmented_gpu_hours += gpu_hours
        info = infos.get(price_id) if price_id is not None else None
        if info is None:
            out.unpriced_gpu_hours += gpu_hours
        else:
            out.fragmented_cost_usd += Decimal(repr(gpu_hours)) * info.gpu_hour_usd
    row = con.execute(
        """SELECT count(*), min(largest), max(largest) FROM (
            SELECT ts, cluster, max(free_whole) AS largest FROM frag_steps GROUP BY ALL)"""
    ).fetchone()
    if row and row[0]:
        out.waiting_steps, out.largest_placeable_gpus_min, out.largest_placeable_gpus_max = (
            int(row[0]),
            int(row[1]),
            int(row[2]),
        )
    out.mig = _mig(con, params)
    out.heatmap = _heatmap(con, params)
    con.execute("DROP TABLE frag_steps; DROP TABLE frag_free")
    return out


def _mig(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Per MIG profile, while pods waited: instance-hours free on the nodes, and instance-hours asked for."""
    mig = f"resource LIKE '{c.RESOURCE_MIG_PREFIX}%'"
    cur = con.execute(
        f"""WITH free AS (SELECT resource, sum(free * step_s) / 3600 AS free FROM frag_free WHERE {mig} GROUP BY 1),
            asked AS (SELECT resource, sum(amount * step_s) / 3600 AS asked FROM {c.T_POD_PENDING}
                WHERE ts >= $start AND ts < $end AND {mig} GROUP BY 1)
        SELECT resource, coalesce(f.free, 0), coalesce(p.asked, 0) FROM free f FULL JOIN asked p USING (resource)
        ORDER BY 1""",
        params,
    )
    return [
        {"profile": r, "free_instance_hours": round(free, 6), "pending_instance_hours": round(asked, 6)}
        for r, free, asked in cur.fetchall()
    ]


def _heatmap(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Per node and hour with pods waiting: GPU-hours free and fragmented, and the largest whole-GPU request."""
    cur = con.execute(
        f"""WITH largest AS (SELECT date_trunc('hour', ts) AS hour, cluster, max(amount) AS largest
                FROM {c.T_POD_PENDING} WHERE ts >= $start AND ts < $end AND resource = '{c.RESOURCE_GPU}' GROUP BY ALL)
        SELECT f.cluster, f.node, date_trunc('hour', f.ts) AS hour,
            sum(f.free_gpus * f.step_s) / 3600 AS free_gpu_hours,
            sum(CASE WHEN f.fragmented THEN f.free_gpus ELSE 0 END * f.step_s) / 3600 AS fragmented_gpu_hours,
            any_value(l.largest) AS largest_pending_gpus
        FROM frag_steps f LEFT JOIN largest l ON l.hour = date_trunc('hour', f.ts) AND l.cluster = f.cluster
        GROUP BY ALL ORDER BY ALL""",
        params,
    )
    return [
        {"cluster": cl, "node": n, "hour": h.isoformat(), "free_gpu_hours": round(free, 6),
         "fragmented_gpu_hours": round(frag, 6), "largest_pending_gpus": largest}
        for cl, n, h, free, frag, largest in cur.fetchall()
    ]  # fmt: skip
