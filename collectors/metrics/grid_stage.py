"""Staging: raw samples -> the warehouse's step grid -> one temp table per warehouse table.

Everything here runs on TEMP tables of the warehouse connection, before any write transaction,
so a failure leaves the warehouse untouched.

Grid semantics (the reason every collection path agrees to the last bit), two kinds of family:

- state gauges (kube-state-metrics: phase, requests, labels, capacity; c.STATE_KINDS) say what
  holds from their sample's time on. Grid point t holds the last sample in (t - interval, t], the
  interval being the exporter's scrape interval: a series ends one interval after its last sample,
  which is Prometheus' staleness rule, emulated where the store wrote no staleness marker (files,
  backfilled blocks). The warehouse row for point t has ts = t and covers [t, t + step).
- every other family (DCGM's averages over the interval before their sample, counters) holds the
  last sample at or before t if it is at most `lookback` old, which is what Prometheus' range query
  returns at t. The row for point t has ts = t - step and covers [ts, ts + step).

Without a known scrape interval, state gauges are carried for the lookback too (a pod is then
billed up to lookback - step past its end: the bound the README states).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collectors.metrics import series_mapping
from collectors.metrics.series import SeriesContext, SeriesTable
from core import conventions as c
from core.store.warehouse import one


@dataclass
class Registered:
    samples: int  # points kept
    kinds: set[str]  # kinds of series staged (what a run warns about missing)
    invalid: dict[str, int]  # family -> points dropped as out of range or not finite


def register_series(
    con: duckdb.DuckDBPyConnection,
    name: str,
    series: SeriesTable,
    ctx: SeriesContext,
    points: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> Registered:
    """stage_meta of the series gpuledger keeps and `name` (sid, t, v) of their valid points (sid, t_ms, v)."""
    kept, kinds = series_mapping.register(con, series, ctx)
    sid, t_ms, v = points
    keep = kept[sid]
    sid, t_ms, v = sid[keep], t_ms[keep], v[keep]
    valid, invalid = valid_values(series.family, sid, v)
    if not valid.all():
        sid, t_ms, v = sid[valid], t_ms[valid], v[valid]
    register_points(con, name, sid, t_ms, v)
    return Registered(len(sid), kinds, invalid)


def valid_values(families: pa.Array, sid: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Which points hold a value their family can have (c.VALID_RANGES), and how many each family lost."""
    if isinstance(families, pa.ChunkedArray):
        families = families.combine_chunks()
    encoded = pc.dictionary_encode(families)
    names = encoded.dictionary.to_pylist()
    lo, hi = (np.array([c.VALID_RANGES.get(n, c.VALID_DEFAULT)[i] for n in names] or [0.0]) for i in (0, 1))
    code = encoded.indices.to_numpy(zero_copy_only=False)[sid] if len(names) else np.zeros(len(sid), np.int64)
    with np.errstate(invalid="ignore"):
        in_range = (v >= lo[code]) & (v <= hi[code])  # NaN fails both
    dcgm = np.array([n.startswith(c.DCGM_PREFIX) for n in names] or [False])
    blank = dcgm[code] & _dcgm_blank(v)  # "no data": not a sample, and not an error either
    valid = in_range & ~blank
    if valid.all():
        return valid, {}
    lost = np.bincount(code[~in_range & ~blank], minlength=len(names))
    return valid, {names[i]: int(n) for i, n in enumerate(lost) if n}


def _dcgm_blank(v: np.ndarray) -> np.ndarray:
    return ((v >= c.DCGM_INT64_BLANK[0]) & (v <= c.DCGM_INT64_BLANK[1])) | (
        (v >= c.DCGM_FP64_BLANK[0]) & (v <= c.DCGM_FP64_BLANK[1])
    )


def register_points(
    con: duckdb.DuckDBPyConnection, name: str, sid: np.ndarray, t_ms: np.ndarray, v: np.ndarray
) -> None:
    table = pa.table(
        {"sid": pa.array(sid, pa.int32()), "t": pa.array(t_ms, pa.int64()), "v": pa.array(v, pa.float64())}
    )
    con.register("points_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM points_arrow")
    con.unregister("points_arrow")


def resample(con: duckdb.DuckDBPyConnection, step_ms: int, reach: Reach, window_ms: tuple[int, int] | None) -> None:
    """stage_raw(sid, t, v) at arbitrary times -> stage_grid(sid, t, v) on multiples of step.

    Grid points are generated per run of a series' samples (a new run after a gap longer than the
    sample's reach, where no point could read a sample anyway), so the work grows with the samples,
    not with the span between a series' first and last one."""
    clip = ""
    if window_ms is not None:  # one step before the window: the previous value of counters
        clip = f"AND g.t > {window_ms[0] - step_ms} AND g.t <= {window_ms[1]}"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE stage_grid AS
        WITH reach AS (
            SELECT sid, CASE WHEN kind IN {_STATE} THEN {reach.state_ms} ELSE {reach.lookback_ms} END AS w
            FROM stage_meta),
        gaps AS (
            SELECT sid, t, w, coalesce(t - lag(t) OVER (PARTITION BY sid ORDER BY t) > w, false) AS gap
            FROM stage_raw JOIN reach USING (sid)),
        runs AS (SELECT sid, t, w, sum(gap::INT) OVER (PARTITION BY sid ORDER BY t ROWS UNBOUNDED PRECEDING) AS run FROM gaps),
        b AS (SELECT sid, min(t) AS lo, max(t) AS hi, any_value(w) AS w FROM runs GROUP BY sid, run),
        g AS (
            SELECT sid, w, unnest(generate_series(((lo + {step_ms} - 1) // {step_ms}) * {step_ms},
                                                  ((hi + w) // {step_ms}) * {step_ms},
                                                  {step_ms})) AS t
            FROM b)
        SELECT g.sid, g.t, r.v, r.t AS sample_t
        FROM g ASOF JOIN stage_raw r ON g.sid = r.sid AND g.t >= r.t
        WHERE g.t - r.t <= g.w {clip}
        """
    )


def state_interval_ms(series: SeriesTable, sid: np.ndarray, t_ms: np.ndarray) -> tuple[bool, int | None]:
    """(any state gauges?, their scrape interval in ms): the median time between consecutive
    samples of a kube-state-metrics series (a pod's restart gap or a duplicate file do not move a
    median); None when no series has two samples."""
    families = series.family
    if isinstance(families, pa.ChunkedArray):
        families = families.combine_chunks()
    state = pc.starts_with(families.cast(pa.string()), c.STATE_PREFIX).to_numpy(zero_copy_only=False)
    mask = state[sid] if len(sid) else np.zeros(0, bool)
    if not mask.any():
        return False, None
    s, t = sid[mask], t_ms[mask]
    order = np.lexsort((t, s))
    s, t = s[order], t[order]
    delta = np.diff(t)[(s[1:] == s[:-1])]
    delta = delta[delta > 0]
    return True, (int(np.median(delta)) if len(delta) else None)


@dataclass(frozen=True)
class Reach:
    """How long after its time a sample is read (ms, inclusive): state gauges until just before the
    next scrape (interval - 1 ms), every other family for the lookback."""

    state_ms: int
    lookback_ms: int


# Each staged table: (temp name, warehouse table, SELECT over stage_in/stage_state/stage_meta).
# stage_in holds interval families' points: grid END times, rows start one step before them.
# stage_state holds state gauges' points: grid START times, rows start at them.
_TS = "epoch_ms(g.t - {step_ms})"
# compute slices of one unit of a MIG resource (nvidia_com_mig_3g_40gb: 3)
_MIG_G = f"TRY_CAST(regexp_extract(resource, '^{c.RESOURCE_MIG_PREFIX}(\\d+)g', 1) AS BIGINT)"
_COUNTERS = "(" + ", ".join(f"'{m}'" for m in c.DCGM_HEALTH_COUNTERS) + ")"
_STATE = "(" + ", ".join(f"'{k}'" for k in c.STATE_KINDS) + ")"

STAGED: list[tuple[str, str, str]] = [
    (
        "st_gpu_samples",
        c.T_GPU_SAMPLES,
        f"""WITH per_key AS (
                SELECT g.t, m.dev_key,
                    max(g.v) FILTER (WHERE m.family = '{c.DCGM_GR_ENGINE_ACTIVE}') AS gr_engine_active,
                    max(g.v) FILTER (WHERE m.family = '{c.DCGM_GPU_UTIL}') AS gpu_util,
                    max(g.v) FILTER (WHERE m.family = '{c.DCGM_FB_USED}') AS fb_used_mib,
                    max(g.v) FILTER (WHERE m.family = '{c.DCGM_POWER}') AS power_w,
                    max(g.v) FILTER (WHERE m.family = '{c.DCGM_GPU_TEMP}') AS temp_c
                FROM stage_in g JOIN stage_meta m USING (sid)
                -- per-process copies hold one pod's share, not the device value
                WHERE m.kind = 'dcgm_sample' AND m.process_pod_uid = '' AND m.gpu_uuid <> ''
                GROUP BY g.t, m.dev_key),
            device AS (SELECT DISTINCT dev_key, cluster, node, gpu_uuid, gpu_instance FROM stage_meta)
        SELECT epoch_ms(p.t - {{step_ms}}) AS ts, {{step_s}} AS step_s, d.cluster, d.node, d.gpu_uuid,
            d.gpu_instance, p.gr_engine_active, p.gpu_util, p.fb_used_mib, p.power_w, p.temp_c
        FROM per_key p JOIN device d USING (dev_key)""",
    ),
    (
        "st_gpu_pod_samples",
        c.T_GPU_POD_SAMPLES,
        f"""SELECT {_TS} AS ts, {{step_s}} AS step_s, m.cluster, m.node, m.gpu_uuid, m.gpu_instance, m.vgpu,
            m.namespace, m.pod,
            max(g.v) FILTER (WHERE m.family = '{c.DCGM_GPU_UTIL}' AND m.process_pod_uid <> '') AS gpu_util
        FROM stage_in g JOIN stage_meta m USING (sid)
        WHERE m.kind IN ('dcgm_sample', '{c.KIND_DCGM_MAPPING}') AND m.pod <> '' AND m.gpu_uuid <> ''
        GROUP BY ALL""",
    ),
    (
        "st_health",
        c.T_HEALTH_SAMPLES,
        f"""WITH per_step AS (
                SELECT g.t, m.cluster, m.node, m.gpu_uuid, m.gpu_instance, m.family AS metric, max(g.v) AS value
                FROM stage_grid g JOIN stage_meta m USING (sid)
                WHERE m.kind = 'dcgm_health' AND m.gpu_uuid <> ''
                GROUP BY ALL),
            with_prev AS (
                SELECT *, lag(value) OVER w AS prev, lag(t) OVER w AS prev_t FROM per_step
                WINDOW w AS (PARTITION BY cluster, node, gpu_uuid, gpu_instance, metric ORDER BY t))
        SELECT epoch_ms(t - {{step_ms}}) AS ts, {{step_s}} AS step_s, cluster, node, gpu_uuid, gpu_instance,
            metric, value,
            CASE WHEN prev IS NULL THEN NULL
                 -- across a silence only the energy counter's increase is kept (what the GPU drew meanwhile, with
                 -- the seconds it spans): an ECC or Xid change then is not known to have happened at this step
                 WHEN prev_t <> t - {{step_ms}} AND metric <> '{c.DCGM_ENERGY}' THEN NULL
                 -- a counter that dropped was reset (driver reload) and restarted at 0: PromQL increase()
                 WHEN metric IN {_COUNTERS} THEN CASE WHEN value >= prev THEN value - prev ELSE value END
                 -- the last-Xid gauge: a change to a new non-zero code is an Xid event
                 WHEN metric = '{c.DCGM_XID}' THEN CASE WHEN value <> prev AND value > 0 THEN 1 ELSE 0 END
            END AS {c.COL_HEALTH_DELTA},
            CASE WHEN prev IS NOT NULL AND prev_t <> t - {{step_ms}} AND metric = '{c.DCGM_ENERGY}'
                 THEN CAST((t - prev_t) // 1000 AS INTEGER) END AS {c.COL_HEALTH_SPAN}
        FROM with_prev
        WHERE t > {{lo}} AND t <= {{hi}}""",
    ),
    (
        "st_alloc",
        c.T_POD_ALLOCATIONS,
        """WITH per_container AS (
                -- max: HA kube-state-metrics replicas export identical series
                SELECT g.t, m.cluster, m.namespace, m.pod, m.uid, m.container, m.node, m.resource, max(g.v) AS amount
                FROM stage_state g JOIN stage_meta m USING (sid)
                WHERE m.kind = 'ksm_requests' AND m.node <> ''
                GROUP BY ALL),
            running AS (
                SELECT g.t, m.cluster, m.namespace, m.pod
                FROM stage_state g JOIN stage_meta m USING (sid)
                WHERE m.kind = 'ksm_phase' AND m.phase = 'Running'
                GROUP BY ALL HAVING max(g.v) = 1)
        SELECT epoch_ms(p.t) AS ts, {step_s} AS step_s, p.cluster, p.namespace, p.pod, p.uid,
            p.node, p.resource, sum(p.amount) AS amount
        FROM per_container p JOIN running r USING (t, cluster, namespace, pod)
        GROUP BY ALL HAVING sum(p.amount) > 0
        UNION ALL
        -- already aggregated by the store (core/promql.py pod_allocation)
        SELECT epoch_ms(g.t) AS ts, {step_s} AS step_s, m.cluster, m.namespace, m.pod, m.uid,
            m.node, m.resource, max(g.v) AS amount
        FROM stage_state g JOIN stage_meta m USING (sid)
        WHERE m.kind = '"""
        + c.KIND_POD_ALLOCATION
        + """' AND m.node <> '' AND g.v > 0
        GROUP BY ALL""",
    ),
    (
        "st_node_samples",
        c.T_NODE_SAMPLES,
        f"""WITH labelled AS (
                SELECT g.t, m.cluster, m.node, max(m.gpu_count) AS gpu_capacity
                FROM stage_state g JOIN stage_meta m USING (sid)
                WHERE m.kind = 'ksm_node_labels' AND m.node <> ''
                GROUP BY ALL),
            per_resource AS (
                -- max: capacity and allocatable (a device plugin lowers allocatable for unhealthy GPUs), HA copies
                SELECT g.t, m.cluster, m.node, m.resource, max(g.v) AS v
                FROM stage_state g JOIN stage_meta m USING (sid)
                WHERE m.kind = 'ksm_node_capacity' AND m.node <> ''
                GROUP BY ALL),
            declared AS (
                SELECT t, cluster, node,
                    CAST(max(v) FILTER (WHERE resource = '{c.RESOURCE_GPU}') AS INTEGER) AS ksm_gpus,
                    CAST(max(v) FILTER (WHERE resource = '{c.RESOURCE_GPU_SHARED}') AS INTEGER) AS ksm_shared,
                    CAST(sum(v * {_MIG_G}) FILTER (WHERE {_MIG_G} IS NOT NULL) AS INTEGER) AS ksm_mig_slices
                FROM per_resource GROUP BY ALL)
        SELECT epoch_ms(t) AS ts, {{step_s}} AS step_s, cluster, node, l.gpu_capacity,
            d.ksm_gpus, d.ksm_shared, d.ksm_mig_slices
        FROM labelled l FULL JOIN declared d USING (t, cluster, node)""",
    ),
    (
        "st_inference",
        c.T_INFERENCE_SAMPLES,
        """WITH v AS (
                SELECT g.t, m.cluster, m.namespace, m.pod, m.model, m.family, m.le, m.labels,
                    max(g.v) AS value, max(g.sample_t) AS sample_t
                FROM stage_in g JOIN stage_meta m USING (sid)
                WHERE m.kind = 'inference'
                GROUP BY ALL),
            -- Prometheus path: timestamp(<family>) at the same grid point gives the sample's own time
            tm AS (
                SELECT g.t, m.cluster, m.namespace, m.pod, m.model, m.family, m.le, m.labels,
                    max(round(g.v * 1000))::BIGINT AS sample_t
                FROM stage_in g JOIN stage_meta m USING (sid)
                WHERE m.kind = 'inference_time'
                GROUP BY ALL)
        SELECT epoch_ms(v.t - {step_ms}) AS ts, {step_s} AS step_s, v.cluster, v.namespace, v.pod, v.model,
            v.family AS metric, v.le, v.labels, v.value, epoch_ms(coalesce(v.sample_t, tm.sample_t)) AS sample_ts
        FROM v LEFT JOIN tm ON v.t = tm.t AND v.cluster = tm.cluster AND v.namespace = tm.namespace
            AND v.pod = tm.pod AND v.model = tm.model AND v.family = tm.family AND v.labels = tm.labels
            AND v.le IS NOT DISTINCT FROM tm.le""",
    ),
]

_PENDING = f"""WITH per_container AS (
        SELECT g.t, m.cluster, m.namespace, m.pod, m.uid, m.container, m.resource, max(g.v) AS amount
        FROM stage_state g JOIN stage_meta m USING (sid)
        WHERE m.kind = 'ksm_requests' AND m.pod <> '' GROUP BY ALL),
    pending AS (
        SELECT g.t, m.cluster, m.namespace, m.pod FROM stage_state g JOIN stage_meta m USING (sid)
        WHERE m.kind = 'ksm_phase' AND m.phase = 'Pending' GROUP BY ALL HAVING max(g.v) = 1),
    unschedulable AS (
        SELECT g.t, m.cluster, m.namespace, m.pod, max(g.v) = 1 AS unschedulable
        FROM stage_state g JOIN stage_meta m USING (sid) WHERE m.kind = 'ksm_unschedulable' GROUP BY ALL),
    requests AS (
        SELECT p.t, p.cluster, p.namespace, p.pod, p.uid, p.resource, sum(p.amount) AS amount
        FROM per_container p JOIN pending r USING (t, cluster, namespace, pod)
        GROUP BY ALL HAVING sum(p.amount) > 0
        UNION ALL
        -- already aggregated by the store (core/promql.py pod_pending)
        SELECT g.t, m.cluster, m.namespace, m.pod, m.uid, m.resource, max(g.v)
        FROM stage_state g JOIN stage_meta m USING (sid)
        WHERE m.kind = '{c.KIND_POD_PENDING}' AND m.pod <> '' AND g.v > 0 GROUP BY ALL)
    SELECT epoch_ms(q.t) AS ts, {{step_s}} AS step_s, q.cluster, q.namespace, q.pod, q.uid, q.resource, q.amount,
        coalesce(u.unschedulable, false) AS unschedulable
    FROM requests q LEFT JOIN unschedulable u USING (t, cluster, namespace, pod)"""

STAGED += [
    ("st_pending", c.T_POD_PENDING, _PENDING),
    (
        "st_node_resources",
        c.T_NODE_RESOURCES,
        # what the scheduler can place on: allocatable (a device plugin lowers it for unhealthy GPUs), else capacity
        f"""SELECT epoch_ms(g.t) AS ts, {{step_s}} AS step_s, m.cluster, m.node, m.resource,
            coalesce(max(g.v) FILTER (WHERE m.family = '{c.KSM_NODE_ALLOCATABLE}'), max(g.v)) AS allocatable
        FROM stage_state g JOIN stage_meta m USING (sid)
        WHERE m.kind = 'ksm_node_capacity' AND m.node <> '' GROUP BY ALL""",
    ),
    (
        "st_queue",
        c.T_QUEUE_SAMPLES,
        # Volcano's scalar resources are thousandths (Quantity.MilliValue): 1000 is one GPU
        f"""SELECT {_TS} AS ts, {{step_s}} AS step_s, m.cluster,
            CASE WHEN starts_with(m.family, 'kueue_') THEN 'kueue' ELSE 'volcano' END AS system, m.queue,
            nullif(m.cohort, '') AS cohort, nullif(m.flavor, '') AS flavor, nullif(m.resource, '') AS resource,
            nullif(m.status, '') AS status, m.family AS metric, m.le,
            max(CASE WHEN m.family LIKE 'volcano_queue_%_scalar_resources' THEN g.v / 1000 ELSE g.v END) AS value
        FROM stage_in g JOIN stage_meta m USING (sid)
        WHERE m.kind = 'queue' AND m.queue <> '' GROUP BY ALL""",
    ),
]

# Which entities a staged table speaks for: rows of these entities inside the staged window are
# replaced, so re-ingesting overlapping data never duplicates (and corrections win).
REPLACE_KEYS: dict[str, tuple[str, str]] = {
    c.T_GPU_SAMPLES: ("cluster, node, gpu_uuid, gpu_instance", "kind LIKE 'dcgm%' AND gpu_uuid <> ''"),
    c.T_GPU_POD_SAMPLES: (
        "cluster, node, gpu_uuid, gpu_instance",
        f"kind IN ('dcgm_sample', '{c.KIND_DCGM_MAPPING}') AND gpu_uuid <> ''",
    ),
    c.T_HEALTH_SAMPLES: ("cluster, node, gpu_uuid, gpu_instance", "kind = 'dcgm_health' AND gpu_uuid <> ''"),
    c.T_POD_ALLOCATIONS: (
        "cluster, namespace, pod",
        f"kind IN ('ksm_requests', 'ksm_phase', '{c.KIND_POD_ALLOCATION}') AND pod <> ''",
    ),
    c.T_NODE_SAMPLES: ("cluster, node", "kind IN ('ksm_node_labels', 'ksm_node_capacity') AND node <> ''"),
    c.T_INFERENCE_SAMPLES: ("cluster, namespace, pod, model", "kind = 'inference'"),
    c.T_POD_PENDING: (
        "cluster, namespace, pod",
        f"kind IN ('ksm_requests', 'ksm_phase', 'ksm_unschedulable', '{c.KIND_POD_PENDING}') AND pod <> ''",
    ),
    c.T_NODE_RESOURCES: ("cluster, node", "kind = 'ksm_node_capacity' AND node <> ''"),
    c.T_QUEUE_SAMPLES: ("cluster, queue", "kind = 'queue' AND queue <> ''"),
}


def build_staged(
    con: duckdb.DuckDBPyConnection, step_s: int, window_ms: tuple[int, int] | None = None
) -> dict[str, int]:
    """Create every st_* temp table from stage_grid/stage_meta; return their row counts.

    Grid points at or before the window start are only read as counters' previous values."""
    lo, hi = window_ms or (-(2**62), 2**62)
    # a window [lo, hi) is the interval families' points (lo, hi] and the state gauges' points [lo, hi)
    con.execute(f"CREATE OR REPLACE TEMP VIEW stage_in AS SELECT * FROM stage_grid WHERE t > {lo} AND t <= {hi}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW stage_state AS SELECT * FROM stage_grid WHERE t >= {lo} AND t < {hi}")
    counts = {}
    cur = con.execute("SELECT * FROM stage_grid LIMIT 0")
    columns = [col[0] for col in cur.description]
    cur.fetchall()
    if "sample_t" not in columns:  # the Prometheus path: grid points only
        con.execute("ALTER TABLE stage_grid ADD COLUMN sample_t BIGINT")
    for temp, _, sql in STAGED:
        query = sql.format(step_s=step_s, step_ms=step_s * 1000, lo=lo, hi=hi)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {temp} AS {query}")
        row = one(con, f"SELECT count(*) FROM {temp}")
        counts[temp] = int(row[0]) if row else 0
    _build_dimensions(con, step_s, lo, hi)
    return counts


# node columns read from kube_node_labels (the node's latest series that has them)
_NODE_LABEL_COLUMNS = (
    "instance_type", "capacity_type", "region", "zone", "node_pool", "gpu_model", "gpu_count", "gpu_replicas",
    "gpu_sharing", "labels",
)  # fmt: skip


def _latest_label(col: str) -> str:
    source = "model" if col == "gpu_model" else col
    return f"arg_max(m.{source}, g.t) FILTER (WHERE m.kind = 'ksm_node_labels')"


def _build_dimensions(con: duckdb.DuckDBPyConnection, step_s: int, lo: int, hi: int) -> None:
    """Dimension rows from each series' first and last row (a label set is constant per series, so
    the latest series decides: arg_max over series spans, not over every point). A span runs from
    the start of its first row to the end of its last (g.lo, g.t)."""
    step_ms = step_s * 1000
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE stage_span AS
        WITH tagged AS (SELECT sid, kind IN {_STATE} AS state FROM stage_meta)
        SELECT sid, min(g.t) - CASE WHEN state THEN 0 ELSE {step_ms} END AS lo,
            max(g.t) + CASE WHEN state THEN {step_ms} ELSE 0 END AS t
        FROM stage_grid g JOIN tagged USING (sid)
        WHERE CASE WHEN state THEN g.t >= {lo} AND g.t < {hi} ELSE g.t > {lo} AND g.t <= {hi} END
        GROUP BY sid, state"""
    )
    span = "min(epoch_ms(g.lo)) AS first_seen, max(epoch_ms(g.t)) AS last_seen"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE st_nodes AS
        WITH declared AS (
            -- the latest GPU capacity kube-state-metrics gave (time-slicing replicas are read off it)
            SELECT cluster, node, arg_max(ksm_gpus, ts) FILTER (WHERE ksm_gpus IS NOT NULL) AS ksm_gpus,
                arg_max(ksm_shared, ts) FILTER (WHERE ksm_shared IS NOT NULL) AS ksm_shared,
                arg_max(ksm_mig_slices, ts) FILTER (WHERE ksm_mig_slices IS NOT NULL) AS ksm_mig_slices
            FROM st_node_samples GROUP BY ALL),
        labelled AS (
            SELECT m.cluster, m.node, {", ".join(f"{_latest_label(col)} AS {col}" for col in _NODE_LABEL_COLUMNS)},
                arg_max(nullif(m.provider_id, ''), g.t) FILTER (WHERE m.kind = 'ksm_node_info') AS provider_id, {span}
            FROM stage_span g JOIN stage_meta m USING (sid)
            WHERE m.kind IN ('ksm_node_labels', 'ksm_node_capacity', 'ksm_node_info') AND m.node <> ''
            GROUP BY m.cluster, m.node)
        SELECT l.*, d.ksm_gpus, d.ksm_shared, d.ksm_mig_slices FROM labelled l LEFT JOIN declared d USING (cluster, node)"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE st_gpus AS
        SELECT m.cluster, m.node, m.gpu_uuid, m.gpu_instance,
            try_cast(arg_max(m.gpu_index, g.t) AS INTEGER) AS gpu_index, arg_max(m.model, g.t) AS model,
            arg_max(m.mig_profile, g.t) AS mig_profile, {span}
        FROM stage_span g JOIN stage_meta m USING (sid)
        WHERE m.kind LIKE 'dcgm%' AND m.gpu_uuid <> '' GROUP BY m.cluster, m.node, m.gpu_uuid, m.gpu_instance"""
    )
    pod_kinds = ("ksm_pod_labels", "ksm_pod_info", "ksm_requests", "ksm_phase", c.KIND_POD_ALLOCATION,
                 "ksm_pod_times", "ksm_unschedulable", c.KIND_POD_PENDING)  # fmt: skip
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE st_pods AS
        WITH times AS (  -- when the pod was created and bound (Unix seconds, the latest value staged)
            SELECT m.cluster, m.namespace, m.pod, m.uid,
                arg_max(g.v, g.t) FILTER (WHERE m.family = '{c.KSM_POD_CREATED}') AS created,
                arg_max(g.v, g.t) FILTER (WHERE m.family = '{c.KSM_POD_SCHEDULED}') AS scheduled
            FROM stage_grid g JOIN stage_meta m USING (sid)
            WHERE m.kind = 'ksm_pod_times' AND g.t >= {lo} AND g.t < {hi} AND m.pod <> '' AND m.uid <> ''
            GROUP BY ALL),
        spans AS (
            SELECT m.cluster, m.namespace, m.pod, m.uid,
                arg_max(m.node, g.t) FILTER (WHERE m.node <> '') AS node,
                arg_max(m.labels, g.t) FILTER (WHERE m.kind = 'ksm_pod_labels') AS labels, {span}
            FROM stage_span g JOIN stage_meta m USING (sid)
            WHERE m.kind IN {pod_kinds} AND m.pod <> '' AND m.uid <> ''
            GROUP BY m.cluster, m.namespace, m.pod, m.uid)
        SELECT s.*, epoch_ms(CAST(t.created * 1000 AS BIGINT)) AS created_at,
            epoch_ms(CAST(t.scheduled * 1000 AS BIGINT)) AS scheduled_at
        FROM spans s LEFT JOIN times t USING (cluster, namespace, pod, uid)"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE st_namespaces AS
        SELECT m.cluster, m.namespace, arg_max(m.labels, g.t) AS labels, {span}
        FROM stage_span g JOIN stage_meta m USING (sid)
        WHERE m.kind = 'ksm_namespace_labels' AND m.namespace <> '' GROUP BY m.cluster, m.namespace"""
    )
