"""GPU shares in exact integer units, and the per-step facts the chargeback aggregates.

A GPU request becomes a share of a physical GPU, in units of 1/GPU_UNITS:
  nvidia.com/gpu (or any other whole-GPU resource name)   1 GPU each
  nvidia.com/mig-<g>g.<mem>gb                             g / compute slices of the card (7; A30: 4)
  nvidia.com/gpu.shared (time-slicing)                    1 / replicas of the node
Shares times seconds are integers, so capacity = allocated + idle holds exactly before any money
is computed. (OpenCost bills MIG $0 and time-sliced pods $0 or N x: see README, "Chargeback".)
"""

from __future__ import annotations

from core import conventions as c

U = c.GPU_UNITS


def mig_slices_sql(model: str) -> str:
    """Compute slices of a MIG-capable card, from its model name (A30: 4, others: 7)."""
    return f"(CASE WHEN {model} ILIKE '%A30%' THEN 4 ELSE 7 END)"


def share_units_sql(resource: str, model: str, replicas: str) -> str:
    """SQL expression: GPU units of one unit of `resource` on a node with `model`, `replicas`."""
    mig_g = f"TRY_CAST(regexp_extract({resource}, '^{c.RESOURCE_MIG_PREFIX}(\\d+)g', 1) AS BIGINT)"
    return f"""(CASE
        WHEN {resource} = '{c.RESOURCE_GPU_SHARED}' THEN {U} // greatest(coalesce({replicas}, 1), 1)
        WHEN {resource} LIKE '{c.RESOURCE_MIG_PREFIX}%' AND {mig_g} IS NOT NULL
            THEN {U} * {mig_g} // {mig_slices_sql(model)}
        ELSE {U} END)"""


def device_share_sql(mig_profile: str, model: str) -> str:
    """Share of the physical GPU one DCGM entity is (a MIG instance '3g.40gb' is 3/7)."""
    g = f"TRY_CAST(regexp_extract({mig_profile}, '^(\\d+)g', 1) AS DOUBLE)"
    return (
        f"(CASE WHEN coalesce({mig_profile}, '') = '' OR {g} IS NULL THEN 1.0 ELSE {g} / {mig_slices_sql(model)} END)"
    )


def team_sql(labels: str, namespace_labels: str, team_label: str) -> str:
    """Owning team: the pod's team label, else its namespace's, else __unallocated__."""
    key = c.ksm_label_key(team_label)
    return f"coalesce(nullif({labels}->>'{key}', ''), nullif({namespace_labels}->>'{key}', ''), '{c.UNALLOCATED}')"


# Node attributes every report can group by (idle rows carry them too).
NODE_ATTRIBUTES = ("cluster", "node", "node_pool", "gpu_model", "capacity_type", "instance_type", "region")
# Pod attributes (idle rows carry __idle__ for them).
POD_ATTRIBUTES = ("team", "namespace", "pod")
GROUPABLE = POD_ATTRIBUTES + NODE_ATTRIBUTES


def step_facts_sql(team_label: str) -> str:
    """Per node-step: capacity units; per pod-step: allocated units. Parameters: start, end (x4)."""
    share = share_units_sql("a.resource", "n.gpu_model", "n.gpu_replicas")
    team = team_sql("p.labels", "ns.labels", team_label)
    return f"""
    WITH nodes_ AS (
        SELECT cluster, node, coalesce(node_pool, '') AS node_pool, coalesce(gpu_model, '') AS gpu_model,
            coalesce(capacity_type, 'on_demand') AS capacity_type, coalesce(instance_type, '') AS instance_type,
            coalesce(region, '') AS region, gpu_replicas
        FROM {c.T_NODES}),
    pods_ AS (
        SELECT cluster, namespace, pod, uid, arg_max(labels, last_seen) AS labels
        FROM {c.T_PODS} GROUP BY ALL),
    alloc AS (
        SELECT a.ts, a.step_s, a.cluster, a.node, a.namespace, a.pod, {team} AS team,
            CAST(round(a.amount) AS BIGINT) * {share} * a.step_s AS units
        FROM {c.T_POD_ALLOCATIONS} a
        LEFT JOIN nodes_ n USING (cluster, node)
        LEFT JOIN pods_ p USING (cluster, namespace, pod, uid)
        LEFT JOIN {c.T_NAMESPACES} ns USING (cluster, namespace)
        WHERE a.ts >= ? AND a.ts < ?),
    alloc_node AS (SELECT ts, cluster, node, max(step_s) AS step_s, sum(units) AS units FROM alloc GROUP BY ALL),
    reported AS (
        SELECT ts, cluster, node, max(step_s) AS step_s, count(DISTINCT gpu_uuid) AS gpus
        FROM {c.T_GPU_SAMPLES} WHERE ts >= ? AND ts < ? GROUP BY ALL),
    declared AS (
        SELECT ts, cluster, node, max(step_s) AS step_s, max(gpu_capacity) AS gpus
        FROM {c.T_NODE_SAMPLES} WHERE ts >= ? AND ts < ? GROUP BY ALL),
    capacity AS (
        -- a node's billable GPUs at a step: what it declares (GPU feature discovery), else what
        -- DCGM reports, and never fewer than its pods are allocated
        SELECT ts, cluster, node,
            coalesce(d.step_s, r.step_s, an.step_s) AS step_s,
            greatest(coalesce(d.gpus, r.gpus, 0),
                     CAST(ceil(coalesce(an.units, 0) / ({c.GPU_UNITS} * coalesce(d.step_s, r.step_s, an.step_s))) AS BIGINT))
                AS gpus
        FROM declared d FULL JOIN reported r USING (ts, cluster, node) FULL JOIN alloc_node an USING (ts, cluster, node))
    SELECT 'capacity' AS kind, c.ts, c.cluster, c.node, NULL AS namespace, NULL AS pod, NULL AS team,
        c.gpus * {c.GPU_UNITS} * c.step_s AS units
    FROM capacity c
    UNION ALL
    SELECT 'alloc', ts, cluster, node, namespace, pod, team, units FROM alloc
    """
