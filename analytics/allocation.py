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

from typing import Literal

from analytics.prices import priced_sql
from core import conventions as c

U = c.GPU_UNITS
UB = f"CAST({U} AS BIGINT)"  # GPU units in SQL: BIGINT, so units x GPUs x seconds never overflow INT32
MigShare = Literal["compute", "memory"]
HAMI_CORES = "nvidia_com_gpucores"
HAMI_NO_SHARE = ("nvidia_com_gpumem", "nvidia_com_gpumem_percentage", HAMI_CORES)

# Node attributes every report can group by (idle rows carry them too); pod attributes (idle rows
# carry __idle__ for them); `day` splits rows by UTC day; `label:<key>` groups by any pod label.
NODE_ATTRIBUTES = ("cluster", "node", "node_pool", "gpu_model", "capacity_type", "instance_type", "region")
POD_ATTRIBUTES = ("team", "namespace", "workload", "pod")
TIME_ATTRIBUTES = ("day",)
GROUPABLE = POD_ATTRIBUTES + NODE_ATTRIBUTES + TIME_ATTRIBUTES


def is_groupable(key: str) -> bool:
    return key in GROUPABLE or (key.startswith("label:") and len(key) > len("label:"))


def mig_slices_sql(model: str) -> str:
    """Compute slices of a MIG-capable card, from its model name (A30: 4, others: 7)."""
    return f"(CASE WHEN {model} ILIKE '%A30%' THEN 4 ELSE 7 END)"


def share_units_sql(resource: str, model: str, replicas: str, mig_share: MigShare = "compute") -> str:
    """SQL expression: GPU units of one unit of `resource` on a node with `model`, `replicas`."""
    mig_g = f"TRY_CAST(regexp_extract({resource}, '^{c.RESOURCE_MIG_PREFIX}(\\d+)g', 1) AS BIGINT)"
    compute = f"{UB} * {mig_g} // {mig_slices_sql(model)}"
    mig = compute
    if mig_share == "memory":
        mem = f"TRY_CAST(regexp_extract({resource}, '_(\\d+)gb', 1) AS BIGINT)"
        card = f"TRY_CAST(regexp_extract({model}, '(\\d+)GB', 1) AS BIGINT)"
        mig = f"coalesce({UB} * least({mem}, {card}) // nullif({card}, 0), {compute})"
    no_share = ", ".join(f"'{r}'" for r in HAMI_NO_SHARE)
    return f"""(CASE
        WHEN {resource} IN ({no_share}) THEN 0
        WHEN {resource} = '{c.RESOURCE_GPU_SHARED}' THEN {UB} // greatest(coalesce({replicas}, 1), 1)
        WHEN {resource} LIKE '{c.RESOURCE_MIG_PREFIX}%' AND {mig_g} IS NOT NULL THEN {mig}
        ELSE {UB} END)"""


def device_share_sql(mig_profile: str, model: str) -> str:
    """Share of the physical GPU one DCGM entity is (a MIG instance '3g.40gb' is 3/7)."""
    g = f"TRY_CAST(regexp_extract({mig_profile}, '^(\\d+)g', 1) AS DOUBLE)"
    return (
        f"(CASE WHEN coalesce({mig_profile}, '') = '' OR {g} IS NULL THEN 1.0 ELSE {g} / {mig_slices_sql(model)} END)"
    )


def nodes_sql() -> str:
    """Node attributes with defaults; the GPU model falls back to what DCGM reports."""
    return f"""
        SELECT n.cluster, n.node, coalesce(n.node_pool, '') AS node_pool,
            coalesce(nullif(n.gpu_model, ''), g.model, '') AS gpu_model,
            coalesce(n.capacity_type, 'on_demand') AS capacity_type, coalesce(n.instance_type, '') AS instance_type,
            coalesce(n.region, '') AS region, n.gpu_replicas
        FROM {c.T_NODES} n
        LEFT JOIN (SELECT cluster, node, any_value(model) AS model FROM {c.T_GPUS} GROUP BY ALL) g USING (cluster, node)"""


def alloc_steps_sql(mig_share: MigShare) -> str:
    """Per pod and step: GPU units (HAMi gpucores scale whole GPUs to their percentage)."""
    share = share_units_sql("a.resource", "n.gpu_model", "n.gpu_replicas", mig_share)
    return f"""
        SELECT a.ts, a.step_s, a.cluster, a.node, a.namespace, a.pod, a.uid,
            sum(CAST(round(a.amount) AS BIGINT) * {share}) AS units,
            max(a.amount) FILTER (WHERE a.resource = '{HAMI_CORES}') AS cores
        FROM {c.T_POD_ALLOCATIONS} a LEFT JOIN ({nodes_sql()}) n USING (cluster, node)
        WHERE a.ts >= $start AND a.ts < $end
        GROUP BY ALL"""


def alloc_facts_sql(mig_share: MigShare, by_day: bool) -> str:
    """Allocated GPU-unit-seconds per pod, node, price row (and day)."""
    day = "date_trunc('day', ts)" if by_day else "NULL::TIMESTAMP"
    steps = f"""
        SELECT ts, step_s, cluster, node, namespace, pod, uid,
            CASE WHEN cores IS NULL THEN units ELSE units * CAST(round(cores) AS BIGINT) // 100 END * step_s AS units
        FROM ({alloc_steps_sql(mig_share)})"""
    return f"""
        SELECT cluster, node, namespace, pod, uid, price_id, {day} AS day, sum(units) AS units
        FROM ({priced_sql(steps)}) GROUP BY ALL"""


def capacity_steps_sql(mig_share: MigShare) -> str:
    """Per node and step: billable GPU units per second (whole GPUs) and the step length.

    A node's billable GPUs at a step: what it declares (GPU feature discovery's
    nvidia.com/gpu.count), else what DCGM reports, and never fewer than its pods are allocated
    (rounded up to whole GPUs: a node with 2.3 GPUs allocated and none declared is billed 3).
    """
    return f"""
        WITH alloc AS (SELECT ts, cluster, node, max(step_s) AS step_s, sum(units) AS units
                       FROM ({alloc_steps_sql(mig_share)}) GROUP BY ALL),
        reported AS (SELECT ts, cluster, node, max(step_s) AS step_s, count(DISTINCT gpu_uuid) AS gpus
                     FROM {c.T_GPU_SAMPLES} WHERE ts >= $start AND ts < $end GROUP BY ALL),
        declared AS (SELECT ts, cluster, node, max(step_s) AS step_s, max(gpu_capacity) AS gpus
                     FROM {c.T_NODE_SAMPLES} WHERE ts >= $start AND ts < $end GROUP BY ALL),
        raw AS (
            SELECT ts, cluster, node, coalesce(d.step_s, r.step_s, a.step_s) AS step_s,
                greatest(coalesce(d.gpus, r.gpus, 0) * {UB}, coalesce(a.units, 0)) AS units_per_s
            FROM declared d FULL JOIN reported r USING (ts, cluster, node) FULL JOIN alloc a USING (ts, cluster, node))
        SELECT ts, cluster, node, step_s, CAST(ceil(units_per_s / {U}) AS BIGINT) * {UB} AS units_per_s FROM raw"""


def capacity_facts_sql(mig_share: MigShare, by_day: bool) -> str:
    """Billable GPU-unit-seconds per node, price row (and day)."""
    day = "date_trunc('day', ts)" if by_day else "NULL::TIMESTAMP"
    steps = capacity_steps_sql(mig_share)
    return f"""
        SELECT cluster, node, price_id, {day} AS day, sum(units_per_s * step_s) AS units
        FROM ({priced_sql(steps)}) GROUP BY ALL"""


def team_sql(labels: str, namespace_labels: str, team_labels: str | tuple[str, ...] | list[str] = c.TEAM_LABEL) -> str:
    """SQL for the owning team (the chargeback's attribution chain, for SQL-side callers such as health):
    the pod's labels in `team_labels` order, then the namespace's, else __unallocated__."""
    keys = [team_labels] if isinstance(team_labels, str) else list(team_labels)
    lookups = [f"nullif({src}->>'{c.ksm_label_key(k)}', '')" for src in (labels, namespace_labels) for k in keys]
    return f"coalesce({', '.join(lookups)}, '{c.UNALLOCATED}')"
