"""Step-level GPU facts in SQL: the one definition the chargeback and the rollups both use.

Kept in core (not analytics) because the rollups (core/store/rollups/hourly.py) are maintained when a
collection commits, and collectors may import only core. analytics/cost/allocation.py and
analytics/usage.py re-export these builders; nothing here prices or attributes anything.

A GPU request becomes a share of a physical GPU, in units of 1/GPU_UNITS:
  nvidia.com/gpu (or any other whole-GPU resource name)   1 GPU each
  nvidia.com/mig-<g>g.<mem>gb                             g / compute slices of the card (7; A30: 4),
                                                          or <mem> / card memory with mig_share=memory
  nvidia.com/gpu.shared (time-slicing, MPS)               1 / replicas of the node
  nvidia.com/gpu on a node sharing without renaming       1 / replicas of the node (renameByDefault: false)
  nvidia.com/gpucores (HAMi)                              scales the pod's whole GPUs to that percentage
  nvidia.com/gpumem* (HAMi)                               no share of its own (memory rides with cores)
Shares times seconds are integers, so capacity = allocated + idle holds exactly.

Every builder takes `where`, a predicate on the fact table's `ts` (and `node`), so the same SQL
serves a report window ($start, $end), the edges of a rollup-served window, or a rollup refresh.
"""

from __future__ import annotations

from typing import Literal

from core import conventions as c

U = c.GPU_UNITS
UB = f"CAST({U} AS BIGINT)"  # GPU units in SQL: BIGINT, so units x GPUs x seconds never overflow INT32
MigShare = Literal["compute", "memory"]
MIG_SHARES: tuple[MigShare, ...] = ("compute", "memory")
HAMI_CORES = "nvidia_com_gpucores"
HAMI_NO_SHARE = ("nvidia_com_gpumem", "nvidia_com_gpumem_percentage", HAMI_CORES)
WINDOW = "{t}.ts >= $start AND {t}.ts < $end"  # the default `where`: the report window


# A step's graphics-engine activity (0..1): GR_ENGINE_ACTIVE, else GPU_UTIL / 100, else 0. Values a GPU cannot
# report (out of range, NaN, infinite: ingestion drops them, an older warehouse may hold them) count as not
# reported, so stored data can never make a used GPU-hour negative or a report fail.
ACTIVITY_SQL = (
    "coalesce(CASE WHEN s.gr_engine_active BETWEEN 0 AND 1 THEN s.gr_engine_active END, "
    "CASE WHEN s.gpu_util BETWEEN 0 AND 100 THEN s.gpu_util / 100.0 END, 0)"
)
# A container's GPU request as a whole number of resource units. A request no pod can make (negative, NaN,
# beyond c.MAX_GPU_REQUEST: ingestion drops them, an older warehouse may hold them) counts as none, so it
# can neither overflow the integer arithmetic nor take a bill below zero.
REQUEST_SQL = f"CAST(round(CASE WHEN a.amount BETWEEN 0 AND {c.MAX_GPU_REQUEST} THEN a.amount ELSE 0 END) AS BIGINT)"
# A pod's per-process GPU_UTIL on a time-sliced GPU (its share of the device), by the same rule.
POD_UTIL_SQL = "CASE WHEN m.gpu_util BETWEEN 0 AND 100 THEN m.gpu_util END"


def mig_slices_sql(model: str) -> str:
    """Compute slices of a MIG-capable card, from its model name (A30: 4, others: 7)."""
    return f"(CASE WHEN {model} ILIKE '%A30%' THEN 4 ELSE 7 END)"


def share_units_sql(resource: str, mig_share: MigShare = "compute", n: str = "n") -> str:
    """SQL expression: GPU units of one unit of `resource` on node `n` (a nodes_sql row: its model,
    replicas, and whether time-slicing advertises its replicas as nvidia.com/gpu)."""
    model, replicas = f"{n}.gpu_model", f"{n}.gpu_replicas"
    mig_g = f"TRY_CAST(regexp_extract({resource}, '^{c.RESOURCE_MIG_PREFIX}(\\d+)g', 1) AS BIGINT)"
    compute = f"{UB} * {mig_g} // {mig_slices_sql(model)}"
    mig = compute
    if mig_share == "memory":
        mem = f"TRY_CAST(regexp_extract({resource}, '_(\\d+)gb', 1) AS BIGINT)"
        card = f"TRY_CAST(regexp_extract({model}, '(\\d+)GB', 1) AS BIGINT)"
        mig = f"coalesce({UB} * least({mem}, {card}) // nullif({card}, 0), {compute})"
    no_share = ", ".join(f"'{r}'" for r in HAMI_NO_SHARE)
    replica = f"{UB} // greatest(coalesce({replicas}, 1), 1)"
    return f"""(CASE
        WHEN {resource} IN ({no_share}) THEN 0
        WHEN {resource} = '{c.RESOURCE_GPU_SHARED}' THEN {replica}
        WHEN {resource} = '{c.RESOURCE_GPU}' AND coalesce({n}.unrenamed, FALSE) THEN {replica}
        WHEN {resource} LIKE '{c.RESOURCE_MIG_PREFIX}%' AND {mig_g} IS NOT NULL THEN {mig}
        ELSE {UB} END)"""


def device_share_sql(mig_profile: str, model: str) -> str:
    """Share of the physical GPU one DCGM entity is (a MIG instance '3g.40gb' is 3/7)."""
    g = f"TRY_CAST(regexp_extract({mig_profile}, '^(\\d+)g', 1) AS DOUBLE)"
    return (
        f"(CASE WHEN coalesce({mig_profile}, '') = '' OR {g} IS NULL THEN 1.0 ELSE {g} / {mig_slices_sql(model)} END)"
    )


def _capacity_replicas_sql(n: str, g: str) -> str:
    """A node's time-slicing (or MPS) replicas as its capacity states them, over the nodes table `n` and its
    DCGM devices `g` (nodes_sql prefers the replicas label): kube-state-metrics' shared capacity over the node's physical GPUs
    (GPU feature discovery's count or the GPUs DCGM has seen, less the GPUs cut into MIG slices and the
    whole ones); else, without renameByDefault (the capacity stays nvidia.com/gpu, the product label ends
    in -SHARED or the sharing-strategy label says so), that capacity over the physical GPUs."""
    phys = f"greatest(coalesce({n}.gpu_count, 0), coalesce({g}.devices, 0))"
    model = f"coalesce(nullif({n}.gpu_model, ''), {g}.model, '')"
    mig = f"CAST(ceil(coalesce({n}.ksm_mig_slices, 0) / {mig_slices_sql(model)}) AS BIGINT)"
    shareable = f"({phys} - {mig} - coalesce({n}.ksm_gpus, 0))"
    unrenamed_phys = f"({phys} - {mig})"
    ratio = f"""CASE
        WHEN coalesce({n}.ksm_shared, 0) > 0 AND {shareable} > 0 THEN round({n}.ksm_shared / {shareable})
        WHEN {unrenamed_sql(n)} AND {unrenamed_phys} > 0 THEN round(coalesce({n}.ksm_gpus, 0) / {unrenamed_phys}) END"""
    return f"CAST(CASE WHEN ({ratio}) >= 2 THEN ({ratio}) END AS INTEGER)"


def unrenamed_sql(n: str) -> str:
    """Time-slicing or MPS without renameByDefault: shared replicas are advertised as nvidia.com/gpu."""
    return f"""(coalesce({n}.ksm_shared, 0) = 0 AND (coalesce({n}.gpu_model, '') ILIKE '%{c.SHARED_PRODUCT_SUFFIX}'
        OR coalesce({n}.gpu_sharing, '') IN ('time-slicing', 'mps')))"""


def nodes_sql() -> str:
    """Node attributes with defaults; the GPU model falls back to what DCGM reports; `gpu_replicas` is the
    node's time-slicing replicas: the nvidia.com/gpu.replicas label, else what its capacity states
    (`replicas_capacity`, _capacity_replicas_sql); `replicas_source` says which."""
    # the capacity's replicas are written once, in the inner SELECT: written out at each of their three uses the
    # query was 8,100 characters, and DuckDB took 35-55 ms to plan it (of 40-60 ms), in every report that joins
    # the nodes (a 7-day chargeback on a new connection plans it six times); 20-27 ms this way
    return f"""
        SELECT cluster, node, node_pool, gpu_model, capacity_type, instance_type, region,
            coalesce(label_replicas, derived) AS gpu_replicas,
            CASE WHEN label_replicas IS NOT NULL THEN 'label' WHEN derived IS NOT NULL THEN 'capacity' END
                AS replicas_source,
            derived AS replicas_capacity, unrenamed, gpu_sharing
        FROM (SELECT n.cluster, n.node, coalesce(n.node_pool, '') AS node_pool,
            coalesce(nullif(n.gpu_model, ''), g.model, '') AS gpu_model,
            coalesce(n.capacity_type, 'on_demand') AS capacity_type, coalesce(n.instance_type, '') AS instance_type,
            coalesce(n.region, '') AS region, n.gpu_replicas AS label_replicas,
            {_capacity_replicas_sql("n", "g")} AS derived, {unrenamed_sql("n")} AS unrenamed, n.gpu_sharing
        FROM {c.T_NODES} n
        LEFT JOIN (SELECT cluster, node, any_value(model) AS model,
                       count(DISTINCT {_DEVICE_ID}) AS devices FROM {c.T_GPUS} GROUP BY ALL) g USING (cluster, node))"""


# A physical GPU of a node: its index (a replacement after an RMA keeps it), else its UUID
_DEVICE_ID = "coalesce(CAST(gpu_index AS VARCHAR), gpu_uuid)"


def device_timeline_sql() -> str:
    """(cluster, node, t, known): from t on, the node has `known` physical GPUs DCGM reported within the
    lookbehind (c.DEVICE_LOOKBEHIND_S): a GPU counts from its first row until that long after its last."""
    return f"""
        WITH dev AS (
            SELECT cluster, node, {_DEVICE_ID} AS gpu, min(first_seen) AS lo,
                max(last_seen) + INTERVAL {c.DEVICE_LOOKBEHIND_S} SECOND AS hi
            FROM {c.T_GPUS} GROUP BY ALL),
        ev AS (SELECT cluster, node, lo AS t, 1 AS d FROM dev UNION ALL SELECT cluster, node, hi, -1 FROM dev)
        SELECT cluster, node, t, sum(sum(d)) OVER (PARTITION BY cluster, node ORDER BY t) AS known
        FROM ev GROUP BY cluster, node, t"""


def fingerprints_sql() -> str:
    """(cluster, node, fp): a hash of every dimension value the step SQL reads for a node.

    Rollups store the fingerprint they were computed under; a row whose node's fingerprint has
    changed since (a new GPU model label, replicas, a MIG profile, a GPU first seen) is recomputed from
    the steps.
    """
    return f"""
        WITH d AS (SELECT cluster, node,
                list((gpu_uuid, gpu_instance, mig_profile, model, gpu_index, first_seen)
                     ORDER BY gpu_uuid, gpu_instance) AS devices
            FROM {c.T_GPUS} GROUP BY ALL),
        n AS ({nodes_sql()})
        SELECT cluster, node, hash(n.gpu_model, n.gpu_replicas, n.unrenamed, n.gpu_sharing, d.devices) AS fp
        FROM n FULL JOIN d USING (cluster, node)"""


def stale_rows_sql(rows: str) -> str:
    """(cluster, node) of the rollup rows `rows` (a query of cluster, node, fp) computed under other
    dimension values than their node's current ones."""
    return f"""SELECT r.cluster, r.node FROM ({rows}) r LEFT JOIN ({fingerprints_sql()}) f USING (cluster, node)
        WHERE r.fp IS DISTINCT FROM coalesce(f.fp, 0)"""


def units_sql(mig_share: MigShare) -> str:
    """Per pod-step GPU units of one MIG mode, before HAMi cores scaling (`a`: pod_allocations, `n`: nodes)."""
    share = share_units_sql("a.resource", mig_share)
    return f"sum({REQUEST_SQL} * {share})"


def scaled_sql(units: str, cores: str = "cores") -> str:
    """HAMi gpucores scales a pod's whole GPUs to that percentage (integer units, floor)."""
    return f"CASE WHEN {cores} IS NULL THEN {units} ELSE {units} * CAST(round({cores}) AS BIGINT) // 100 END"


def alloc_steps_sql(mig_share: MigShare | tuple[MigShare, ...], where: str = WINDOW) -> str:
    """Per pod and step: GPU units (`units`, or `units_<mode>` for several modes) and HAMi `cores`."""
    modes = (mig_share,) if isinstance(mig_share, str) else mig_share
    names = ["units"] if isinstance(mig_share, str) else [f"units_{m}" for m in modes]
    cols = ", ".join(f"{units_sql(m)} AS {name}" for m, name in zip(modes, names, strict=True))
    return f"""
        SELECT a.ts, a.step_s, a.cluster, a.node, a.namespace, a.pod, a.uid, {cols},
            max(a.amount) FILTER (WHERE a.resource = '{HAMI_CORES}') AS cores
        FROM {c.T_POD_ALLOCATIONS} a LEFT JOIN ({nodes_sql()}) n USING (cluster, node)
        WHERE {where.format(t="a")}
        GROUP BY ALL"""


def physical_gpus_sql(d: str, n: str) -> str:
    """A node-step's physical GPUs: the most any source states. GPU feature discovery's count (`{d}.gfd`),
    kube-state-metrics' capacity net of sharing (whole GPUs, GPUs cut into MIG slices, shared replicas over
    the node's replicas; none under MIG's single strategy), and the GPUs DCGM reported within the lookbehind
    (`{d}.known`). The provider bills the node whatever its GPUs do, so a GPU that falls silent stays billed."""
    r = f"greatest({n}.gpu_replicas, 1)"
    whole = f"CASE WHEN {n}.unrenamed THEN CASE WHEN {n}.gpu_replicas IS NOT NULL THEN ceil({d}.ksm_gpus / {r}) END ELSE {d}.ksm_gpus END"
    mig = f"ceil({d}.ksm_mig_slices / {mig_slices_sql(n + '.gpu_model')})"
    shared = f"CASE WHEN {n}.gpu_replicas IS NOT NULL THEN ceil({d}.ksm_shared / {r}) END"
    ksm = f"""CASE WHEN coalesce({n}.gpu_sharing, '') <> '{c.MIG_SINGLE}'
        AND coalesce({d}.ksm_gpus, {d}.ksm_shared, {d}.ksm_mig_slices) IS NOT NULL
        THEN coalesce({whole}, 0) + coalesce({mig}, 0) + coalesce({shared}, 0) END"""
    return f"CAST(greatest(coalesce({d}.gfd, 0), coalesce({ksm}, 0), coalesce({d}.known, 0)) AS BIGINT)"


def capacity_steps_sql(mig_share: MigShare | tuple[MigShare, ...], where: str = WINDOW) -> str:
    """Per node and step: billable GPU units per second (whole GPUs), the unhealthy part of them, the step length,
    and the physical GPUs the sources state (`gpus`; 0 where only the pods' requests put GPUs on the node).

    A node's billable GPUs at a step: its physical GPUs (physical_gpus_sql; DCGM's count at the step where
    nothing else says), and never fewer than its pods are allocated (rounded up to whole GPUs: a node with
    2.3 GPUs allocated and none declared is billed 3). Unhealthy: the GPUs DCGM has seen (within the
    lookbehind) that sent nothing at the step, as far as no pod is allocated them: the idle time of a GPU
    that fell off the bus, or whose exporter stopped. Several modes give `units_per_s_<mode>` and
    `unhealthy_per_s_<mode>` columns instead of `units_per_s` and `unhealthy_per_s`.
    """
    modes = (mig_share,) if isinstance(mig_share, str) else mig_share
    names = ["units"] if isinstance(mig_share, str) else [f"units_{m}" for m in modes]
    sums = ", ".join(f"sum({n}) AS {n}" for n in names)
    billed = {n: f"CAST(ceil(greatest(s.phys * {UB}, coalesce(s.{n}, 0)) / {U}) AS BIGINT) * {UB}" for n in names}
    cols = ", ".join(
        f"{billed[n]} AS {n.replace('units', 'units_per_s')}, "
        f"least(s.silent * {UB}, {billed[n]} - coalesce(s.{n}, 0)) AS {n.replace('units', 'unhealthy_per_s')}"
        for n in names
    )
    return f"""
        WITH alloc AS (SELECT ts, cluster, node, max(step_s) AS step_s, {sums}
                       FROM ({alloc_steps_sql(mig_share, where)}) GROUP BY ALL),
        reported AS (SELECT ts, cluster, node, max(step_s) AS step_s, count(DISTINCT gpu_uuid) AS gpus
                     FROM {c.T_GPU_SAMPLES} s WHERE {where.format(t="s")} GROUP BY ALL),
        declared AS (SELECT ts, cluster, node, max(step_s) AS step_s, max(gpu_capacity) AS gfd,
                         max(ksm_gpus) AS ksm_gpus, max(ksm_shared) AS ksm_shared, max(ksm_mig_slices) AS ksm_mig_slices
                     FROM {c.T_NODE_SAMPLES} s WHERE {where.format(t="s")} GROUP BY ALL),
        steps AS (
            SELECT ts, cluster, node, coalesce(d.step_s, r.step_s, a.step_s) AS step_s, d.gfd, d.ksm_gpus,
                d.ksm_shared, d.ksm_mig_slices, r.gpus AS reporting, {", ".join(f"a.{n}" for n in names)}
            FROM declared d FULL JOIN reported r USING (ts, cluster, node) FULL JOIN alloc a USING (ts, cluster, node)),
        known AS (
            SELECT st.*, greatest(coalesce(k.known, 0), coalesce(st.reporting, 0)) AS known
            FROM steps st ASOF LEFT JOIN ({device_timeline_sql()}) k
                ON k.cluster = st.cluster AND k.node = st.node AND st.ts >= k.t),
        s AS (
            SELECT kn.*, {physical_gpus_sql("kn", "n")} AS phys,
                greatest(kn.known - coalesce(kn.reporting, 0), 0) AS silent
            FROM known kn LEFT JOIN ({nodes_sql()}) n USING (cluster, node))
        SELECT ts, cluster, node, step_s, s.phys AS gpus, {cols}
        FROM s"""


def device_energy_ctes(where: str) -> str:
    """CTEs `dev`: per DCGM entity and step, its activity share `act`, its share of the physical GPU, and the GPU's
    energy in the step (`gpu_j`, J; `derived` where it comes from power), over the gpu_samples rows `where` keeps;
    and `rest`: each GPU-step's energy beyond its entities' shares (MIG slices no instance holds), counter readings at
    steps without a gauge sample of the GPU, as rows of no pod, and the energy drawn during a silence (namespace
    c.UNHEALTHY): every measured joule lands on a row.

    A GPU's energy in a step is its energy counter's increase (DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, mJ since the
    driver loaded; the per-step increase counts a drop as a reset, as PromQL's increase() does; an increase across a
    silence is spread evenly over the seconds it spans: the step keeps its own seconds' part), else its power
    (DCGM_FI_DEV_POWER_USAGE, W) held over the step: the step grid's rule for a gauge. Not a trapezoid between two
    steps: a step's energy must be a term of its own, so the rollups add steps into hours exactly, whichever commit
    brings the next step. MIG instances repeat their GPU's counter and power: one value per GPU.
    """
    share = device_share_sql("g.mig_profile", "g.model")
    power = f"CASE WHEN s.power_w BETWEEN 0 AND {c.VALID_RANGES[c.DCGM_POWER][1]} THEN s.power_w END"
    return f"""
    dev0 AS (
        SELECT s.ts, s.step_s, s.cluster, s.node, s.gpu_uuid, s.gpu_instance,
            {ACTIVITY_SQL} * {share} AS act, {share} AS share, {power} AS power_w
        FROM {c.T_GPU_SAMPLES} s
        LEFT JOIN {c.T_GPUS} g USING (cluster, node, gpu_uuid, gpu_instance)
        WHERE {where.format(t="s")}),
    meter0 AS (
        SELECT h.ts, h.cluster, h.node, h.gpu_uuid, max(h.{c.COL_HEALTH_DELTA}) AS mj, max(h.step_s) AS step_s,
            max(h.{c.COL_HEALTH_SPAN}) AS span_s
        FROM {c.T_HEALTH_SAMPLES} h
        WHERE h.metric = '{c.DCGM_ENERGY}' AND h.{c.COL_HEALTH_DELTA} >= 0 AND {where.format(t="h")} GROUP BY ALL),
    -- an increase across a silence: the step's part is its seconds' share, the rest was drawn while silent
    meter AS (
        SELECT ts, cluster, node, gpu_uuid,
            CASE WHEN span_s > step_s THEN mj * step_s / span_s ELSE mj END AS mj,
            CASE WHEN span_s > step_s THEN mj * (span_s - step_s) / span_s ELSE 0 END AS silent_mj
        FROM meter0),
    -- per GPU-step (its MIG instances together): grouped and joined back, not a window partitioned by GPU-step (1.7
    -- million partitions of mostly one row a day at 1,000 GPUs: a day's usage rollup 7.5 s -> 5.4 s)
    gpu AS (SELECT ts, cluster, node, gpu_uuid, max(power_w) AS power_w, sum(share) AS shares FROM dev0 GROUP BY ALL),
    dev AS (
        SELECT d.*, coalesce(e.mj / 1000.0, g.power_w * d.step_s, 0.0) AS gpu_j, e.mj IS NULL AS derived, g.shares
        FROM dev0 d JOIN gpu g USING (ts, cluster, node, gpu_uuid) LEFT JOIN meter e USING (ts, cluster, node, gpu_uuid)),
    rest AS (
        SELECT ts, cluster, node, NULL::VARCHAR AS namespace, NULL::VARCHAR AS pod, 0.0 AS used_s,
            any_value(gpu_j) * greatest(1 - any_value(shares), 0) AS energy_j,
            CASE WHEN any_value(derived) THEN any_value(gpu_j) * greatest(1 - any_value(shares), 0) ELSE 0 END
                AS derived_j
        FROM dev GROUP BY ts, cluster, node, gpu_uuid HAVING any_value(shares) < 1
        UNION ALL  -- a counter read at a step DCGM sent no gauge of the GPU: measured, held by no pod it names
        SELECT e.ts, e.cluster, e.node, NULL, NULL, 0.0, e.mj / 1000.0, 0.0
        FROM meter e ANTI JOIN dev0 d USING (ts, cluster, node, gpu_uuid)
        UNION ALL  -- what a GPU drew while it sent nothing: the unhealthy line's (no pod is known to have used it)
        SELECT ts, cluster, node, '{c.UNHEALTHY}', NULL, 0.0, silent_mj / 1000.0, 0.0 FROM meter WHERE silent_mj > 0)"""


def pod_energy_sql(pod_share: str) -> str:
    """A device row's used seconds and energy (J, and the part derived from power) for the pod with `pod_share`."""
    return (
        f"d.act * d.step_s * {pod_share} AS used_s, d.gpu_j * d.share * {pod_share} AS energy_j, "
        f"CASE WHEN d.derived THEN d.gpu_j * d.share * {pod_share} ELSE 0 END AS derived_j"
    )


# A pod's share of a device it is mapped to: its per-process GPU_UTIL share (time-slicing), else an even part.
POD_SHARE_SQL = """CASE WHEN m.pod IS NULL THEN 1.0
                 WHEN m.util_total > 0 AND m.gpu_util IS NOT NULL THEN m.gpu_util / m.util_total
                 ELSE 1.0 / m.sharers END"""
USAGE_VALUES = ("used_s", "energy_j", "derived_j")  # what usage rows carry, summed


def usage_steps_sql(bucket: str, where: str = WINDOW) -> str:
    """Used GPU-seconds and energy per (cluster, node, namespace, pod, uid, bucket); `bucket` is an SQL
    expression of the step's `j.ts` (its day, hour, or NULL for the whole window).

    used = graphics-engine activity (GR_ENGINE_ACTIVE, else GPU_UTIL/100) x the entity's share of its
    physical GPU x the pod's share of the entity (time-slicing: per-process GPU_UTIL share, else
    even) x step seconds. Energy: the GPU's energy in the step (device_energy_ctes) x the same shares. Activity
    and energy of GPUs no pod is mapped to (and of MIG slices no instance holds) have namespace/pod NULL.
    """
    return f"""
    WITH {device_energy_ctes(where).strip()},
    mapped AS (
        SELECT m.* REPLACE ({POD_UTIL_SQL} AS gpu_util), count(*) OVER w AS sharers, sum({POD_UTIL_SQL}) OVER w AS util_total
        FROM {c.T_GPU_POD_SAMPLES} m WHERE {where.format(t="m")}
        WINDOW w AS (PARTITION BY m.ts, m.cluster, m.node, m.gpu_uuid, m.gpu_instance)),
    joined AS (
        SELECT d.ts, d.cluster, d.node, m.namespace, m.pod, {pod_energy_sql(POD_SHARE_SQL)}
        FROM dev d LEFT JOIN mapped m USING (ts, cluster, node, gpu_uuid, gpu_instance)
        UNION ALL SELECT ts, cluster, node, namespace, pod, used_s, energy_j, derived_j FROM rest),
    uids AS (
        SELECT DISTINCT ts, cluster, namespace, pod, uid FROM {c.T_POD_ALLOCATIONS} u WHERE {where.format(t="u")})
    SELECT j.cluster, j.node, j.namespace, j.pod, u.uid, {bucket} AS bucket,
        {", ".join(f"sum(j.{v}) AS {v}" for v in USAGE_VALUES)}
    FROM joined j LEFT JOIN uids u USING (ts, cluster, namespace, pod)
    GROUP BY ALL
    """


# Attribution reads a pod's labels by uid, else the latest pod of that name; a workload is its app label,
# else its name. CASE rather than AND: DuckDB evaluates both sides of AND, and '' is not JSON.
def has_app_sql(labels: str) -> str:
    """TRUE when `labels` (JSON text) carry an app.kubernetes.io/name or app label (the workload needs no pod name)."""
    keys = ("app.kubernetes.io/name", "app_kubernetes_io_name", "app")
    found = " OR ".join(f"coalesce(json_extract_string({labels}, '$.\"{k}\"'), '') <> ''" for k in keys)
    return f"(CASE WHEN coalesce(CAST({labels} AS VARCHAR), '') = '' THEN FALSE ELSE ({found}) END)"


def _nonempty(labels: str) -> str:
    return f"(CASE WHEN coalesce(CAST({labels} AS VARCHAR), '') = '' THEN FALSE ELSE len(json_keys({labels})) > 0 END)"


def labelled_sql(per_pod: str) -> str:
    """CTEs ending in `lab`: `per_pod` rows (cluster, namespace, pod, uid, a_pod, ...) with `labels` as the
    attribution reads them; the pod-name fallback is looked up only for the pods that need it."""
    key = "cluster, namespace, pod"
    return f"""
    lab0 AS (SELECT a.*, p_.labels AS l0 FROM {per_pod} a LEFT JOIN {c.T_PODS} p_
             ON p_.cluster = a.cluster AND p_.namespace = a.namespace AND p_.pod = a.pod AND p_.uid = coalesce(a.uid, '')),
    need AS (SELECT DISTINCT {key} FROM lab0 WHERE a_pod IS NOT NULL AND NOT {_nonempty("l0")}),
    fallback AS (SELECT p.cluster, p.namespace, p.pod, arg_max(p.labels, p.last_seen) AS labels
                 FROM {c.T_PODS} p JOIN need USING ({key}) GROUP BY ALL),
    lab AS (SELECT lab0.* EXCLUDE (l0), CAST(CASE WHEN {_nonempty("l0")} THEN l0 ELSE fb.labels END AS VARCHAR) AS labels
            FROM lab0 LEFT JOIN fallback fb USING ({key}))"""
