"""GPU shares in exact integer units, and the facts the chargeback prices.

A GPU request becomes a share of a physical GPU, in units of 1/GPU_UNITS:
  nvidia.com/gpu (or any other whole-GPU resource name)   1 GPU each
  nvidia.com/mig-<g>g.<mem>gb                             g / compute slices of the card (7; A30: 4),
                                                          or <mem> / card memory with mig_share=memory
  nvidia.com/gpu.shared (time-slicing)                    1 / replicas of the node
  nvidia.com/gpucores (HAMi)                              scales the pod's whole GPUs to that percentage
  nvidia.com/gpumem* (HAMi)                               no share of its own (memory rides with cores)
Shares times seconds are integers, so capacity = allocated + idle holds exactly before any money
is computed. (OpenCost bills MIG $0 and time-sliced pods $0 or N x: see README, "Chargeback".)
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from analytics.cost.attribution import Attribution
from analytics.cost.prices import priced_sql
from core import conventions as c
from core.store.sql import literal
from core.store.step_sql import (
    HAMI_CORES,
    HAMI_NO_SHARE,
    UB,
    MigShare,
    U,
    alloc_steps_sql,
    capacity_steps_sql,
    device_share_sql,
    mig_slices_sql,
    nodes_sql,
    share_units_sql,
)
from core.timeutil import Window

__all__ = [
    "HAMI_CORES",
    "HAMI_NO_SHARE",
    "UB",
    "U",
    "MigShare",
    "alloc_steps_sql",
    "capacity_steps_sql",
    "device_share_sql",
    "mig_slices_sql",
    "nodes_sql",
    "share_units_sql",
]

# Node attributes every report can group by (idle rows carry them too); pod attributes (idle rows
# carry __idle__ for them); `day` splits rows by UTC day; `label:<key>` groups by any pod label.
NODE_ATTRIBUTES = ("cluster", "node", "node_pool", "gpu_model", "capacity_type", "instance_type", "region")
POD_ATTRIBUTES = ("team", "namespace", "workload", "pod")
TIME_ATTRIBUTES = ("day",)
GROUPABLE = POD_ATTRIBUTES + NODE_ATTRIBUTES + TIME_ATTRIBUTES


def is_groupable(key: str) -> bool:
    return key in GROUPABLE or (key.startswith("label:") and len(key) > len("label:"))


def capacity_facts_sql(mig_share: MigShare, by_day: bool) -> str:
    """Billable GPU-unit-seconds per node, price row (and day)."""
    day = "date_trunc('day', ts)" if by_day else "NULL::TIMESTAMP"
    steps = capacity_steps_sql(mig_share)
    return f"""
        SELECT cluster, node, price_id, {day} AS day, sum(units_per_s * step_s) AS units
        FROM ({priced_sql(steps)}) GROUP BY ALL"""


def pod_labels_sql(used: str) -> str:
    """Each pod's latest labels, for the pods of relation `used` (cluster, namespace, pod) only: grouping
    every pod of the warehouse (800,000 at 10,000 GPUs) for the few a health event touched took 0.2 s."""
    return f"""SELECT p.cluster, p.namespace, p.pod, arg_max(p.labels, p.last_seen) AS labels
        FROM {c.T_PODS} p SEMI JOIN {used} u ON u.cluster = p.cluster AND u.namespace = p.namespace AND u.pod = p.pod
        GROUP BY ALL"""


def team_sql(labels: str, namespace_labels: str, namespace: str, attribution: Attribution) -> str:
    """SQL for the owning team, Attribution.team's chain for SQL-side callers such as health: the pod's
    labels in `team_labels` order, then the namespace's, then `namespace_teams`, else __unallocated__."""
    # both spellings, as Attribution._lookup: kube-state-metrics renames `cost-center` to `cost_center`
    keys = [k for key in attribution.team_labels for k in dict.fromkeys((key, c.ksm_label_key(key)))]
    lookups = [f"nullif({src}->>{literal(k)}, '')" for src in (labels, namespace_labels) for k in keys]
    mapped = [(ns, team) for ns, team in sorted(attribution.namespace_teams.items()) if team]
    if mapped:  # a CASE on the namespace: a few settings entries, no table to join
        whens = " ".join(f"WHEN {literal(ns)} THEN {literal(team)}" for ns, team in mapped)
        lookups.append(f"CASE {namespace} {whens} END")
    return f"coalesce({', '.join(lookups)}, '{c.UNALLOCATED}')"


@dataclass(frozen=True)
class UnpricedNode:
    cluster: str
    node: str
    instance_type: str
    capacity_type: str
    region: str
    gpu_hours: float


def unpriced_nodes(con: duckdb.DuckDBPyConnection, window: Window, mig_share: str = "compute") -> list[UnpricedNode]:
    """GPU nodes that matched no price row in the window, by name, with their GPU-hours."""
    facts = capacity_facts_sql(mig_share, by_day=False)  # type: ignore[arg-type]
    rows = con.execute(
        f"""SELECT f.cluster, f.node, coalesce(n.instance_type, ''), coalesce(n.capacity_type, ''),
            coalesce(n.region, ''), sum(f.units) / {c.GPU_UNITS * 3600}
        FROM ({facts}) f LEFT JOIN {c.T_NODES} n USING (cluster, node)
        WHERE f.price_id IS NULL AND f.units > 0
        GROUP BY ALL ORDER BY 1, 2""",
        {"start": window.start, "end": window.end},
    ).fetchall()
    return [UnpricedNode(r[0], r[1], r[2], r[3], r[4], float(r[5])) for r in rows]
