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

from analytics.cost.attribution import Attribution
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
