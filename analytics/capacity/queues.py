"""Who waits for GPUs, and for how long: pending GPU demand and the wait to schedule, per team (or namespace,
workload, queue or requested resource), from kube-state-metrics' Pending phases, requests and pod times.

Per pod (its uid), over the window [start, end):
- pending GPU-hours: the steps it was Pending x the GPUs it asked for (a MIG instance g/7 of a GPU, a time-slicing
  replica counted as one GPU: its node's replicas are unknown until it is placed), within the window;
- its wait: from its creation (kube_pod_created; else its first Pending step; else its first allocated step) to its
  binding (kube_pod_status_scheduled_time; else its first Running step with GPUs). A pod still Pending at the end
  waits up to the end; a pod that vanished while Pending (deleted, failed) waited until its last Pending step.
  A pod counts in the window when its wait ends in it, or it was Pending in it;
- never started: it was Pending in the window and had not started by its end (`still_pending`: and was Pending at
  its last step).
Wait percentiles are DuckDB's quantile_cont (linear interpolation between order statistics, numpy's default).
Pure: warehouse relations and an explicit window in, rows out.

Speed (a month at 10,000 GPUs is ~800,000 pods): each pod's wait is one SQL pass into a temp table. When a pod first
held GPUs is kept per pod by every commit (pods.first_allocated), so the allocations are read only while the rollups
are out of sync, and for the requested resource of pods bound without a Pending step when grouping by resource.
Group keys are computed once per distinct combination of the labels the attribution
reads, not per pod, and every figure is then grouped in SQL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from analytics.capacity.fragmentation import HEATMAP_NODES
from analytics.cost.attribution import Attribution, label_value, workload
from core import conventions as c
from core.store.rollups import hourly as rollups
from core.store.rollups import waiting
from core.timeutil import HOUR, Window, ceil_to, floor_to

QUEUE_LABELS = ("kueue.x-k8s.io/queue-name", "volcano.sh/queue-name", "scheduling.volcano.sh/queue-name")
GROUPABLE = ("team", "namespace", "workload", "queue", "resource")
_APP_KEYS = ("app.kubernetes.io/name", "app")
# a wait's histogram buckets, lower edges in seconds (the last is open): the page's distribution, the JSON's
# `wait_histogram`
WAIT_BUCKETS = (0, 60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800)


@dataclass(frozen=True)
class QueueOptions:
    by: tuple[str, ...] = ("team",)
    attribution: Attribution = field(default_factory=Attribution)
    pods: bool = False  # list every pod's wait (a month at 10,000 GPUs: ~800,000 rows)
    use_rollups: bool = True  # False: every figure from the step tables (the rollups' oracle in the tests)
    heatmap_nodes: int = HEATMAP_NODES  # the fragmentation heat map's rows: the most fragmented nodes (0: every node)


# a pod's key in the joins below: its identity's 64-bit hash (one integer join instead of four strings, a second saved
# a month at 10,000 GPUs; two of 800,000 pods colliding is a chance of about 1 in 30 million)
PK = "hash(cluster, namespace, pod, uid)"

# per pod and hour: its first Pending step, its last one's end, the GPU-seconds it asked for (the timeline's rows,
# and each pod's sums); whole hours from the pending rollup while it stands, the window's partial hours from the steps
_PEND_HOUR = f"""SELECT {PK} AS pk, hour, first_ts AS first_pending, last_end AS last_pending_end, gpu_s, unschedulable
    FROM ({{rows}})"""


def _pending_hours(con: duckdb.DuckDBPyConnection, window: Window, use_rollups: bool) -> None:
    """Temp table `queue_pend` (pk, hour, first_pending, last_pending_end, gpu_s, unschedulable)."""
    first, last = ceil_to(window.start, HOUR), floor_to(window.end, HOUR)
    steps = [(window.start, window.end)]
    stored = f"SELECT * FROM {c.T_PENDING_ROLLUP} WHERE hour >= $start AND hour < $end"
    if use_rollups and first < last and waiting.in_sync(con):
        steps = [(window.start, first), (last, window.end)]
        con.execute(f"CREATE OR REPLACE TEMP TABLE queue_pend AS {_PEND_HOUR.format(rows=stored)}",
                    {"start": first, "end": last})  # fmt: skip
    else:
        con.execute(f"CREATE OR REPLACE TEMP TABLE queue_pend AS {_PEND_HOUR.format(rows=stored)} LIMIT 0",
                    {"start": first, "end": first})  # fmt: skip
    for lo, hi in steps:
        if lo < hi:
            rows = _PEND_HOUR.format(rows=waiting.PENDING_ROWS_SQL)
            con.execute(f"INSERT INTO queue_pend {rows}", {"start": lo, "end": hi})


def _first_running(con: duckdb.DuckDBPyConnection, params: dict[str, Any], use_rollups: bool) -> str:
    """SQL of each pod's (pk, first_running): its first step holding GPUs, when before the window's end. Kept per pod
    by every commit (pods.first_allocated, with the rollups); read from the allocations (temp table `queue_first`)
    while the rollups are out of sync (rows written outside a commit)."""
    con.execute("DROP TABLE IF EXISTS queue_first")
    if use_rollups and rollups.in_sync(con):
        return f"""SELECT *, {PK} AS pk, CASE WHEN {c.COL_FIRST_ALLOCATED} < $end THEN {c.COL_FIRST_ALLOCATED} END
            AS first_running FROM {c.T_PODS}"""
    con.execute(
        f"""CREATE TEMP TABLE queue_first AS SELECT {PK} AS pk, min(ts) AS first_running FROM {c.T_POD_ALLOCATIONS}
        WHERE ts < $end GROUP BY pk""",
        {"end": params["end"]},
    )
    return f"SELECT * FROM (SELECT *, {PK} AS pk FROM {c.T_PODS}) LEFT JOIN queue_first USING (pk)"


def _waits_sql(pods: str, k: str, sums: bool) -> str:
    """Every GPU pod that waited or was bound in [$start, $end): its pending GPU-hours, its wait, its keys `k`. With
    `sums` (the waiting rollups in sync) a pod whose Pending steps all fall inside the window reads its sums from
    `pods`; only the others sum their hours (`queue_pend`)."""
    inside = f"(p.{c.COL_PENDING_FIRST} >= $start AND p.{c.COL_PENDING_LAST_END} <= $end)"
    edges = (
        f"""SEMI JOIN (SELECT pk FROM p WHERE NOT {inside} AND p.{c.COL_PENDING_FIRST} < $end
            AND p.{c.COL_PENDING_LAST_END} > $start) USING (pk)"""
        if sums
        else ""
    )
    summed = {  # column: (from the pod's sums, from its hours)
        "first_pending": (c.COL_PENDING_FIRST, "e.first_pending"),
        "last_pending_end": (c.COL_PENDING_LAST_END, "e.last_pending_end"),
        "pending_gpu_hours": (f"{c.COL_PENDING_GPU_S} / 3600", "e.pending_gpu_hours"),
        "pending_at_end": (f"{c.COL_PENDING_LAST_END} >= $end", "e.pending_at_end"),
        "unschedulable": (c.COL_PENDING_UNSCHEDULABLE, "e.unschedulable"),
    }
    cols = ", ".join(
        (f"CASE WHEN {inside} THEN p.{mine} ELSE {hours} END" if sums else hours) + f" AS {col}"
        for col, (mine, hours) in summed.items()
    )
    return f"""
WITH p AS (
    SELECT pk, hash(cluster, namespace, labels) AS lh, cluster, namespace, pod, uid, created_at, scheduled_at,
        first_running{"".join(f", {col}" for col in waiting.POD_SUMS if sums)}
    FROM ({pods})),
e AS (
    SELECT pk, min(first_pending) AS first_pending, max(last_pending_end) AS last_pending_end,
        sum(gpu_s) / 3600 AS pending_gpu_hours, max(last_pending_end) >= $end AS pending_at_end,
        bool_or(unschedulable) AS unschedulable
    FROM queue_pend {edges} GROUP BY pk),
pe AS (
    SELECT p.pk, p.lh, p.cluster, p.namespace, p.pod, p.uid, p.created_at, p.scheduled_at, p.first_running, {cols}
    FROM p LEFT JOIN e USING (pk)),
both_ AS (
    SELECT p.pk, p.lh, p.cluster, p.namespace, p.pod, p.uid, p.last_pending_end,
        coalesce(p.pending_gpu_hours, 0) AS pending_gpu_hours,
        coalesce(p.pending_at_end, false) AS pending_at_end, coalesce(p.unschedulable, false) AS unschedulable,
        p.first_pending IS NOT NULL AS pending_in_window,
        coalesce(p.created_at, p.first_pending, p.first_running) AS wait_from,
        CASE WHEN least(p.scheduled_at, p.first_running) < $end THEN coalesce(p.scheduled_at, p.first_running) END
            AS started, p.first_running
    FROM pe p
    WHERE p.first_pending IS NOT NULL OR (p.first_running IS NOT NULL AND coalesce(p.scheduled_at, p.first_running) >= $start
        AND coalesce(p.scheduled_at, p.first_running) < $end))
SELECT w.pk, w.cluster, w.namespace, w.pod, w.uid, w.pending_gpu_hours,
    greatest(epoch(coalesce(w.started, CASE WHEN w.pending_at_end THEN $end END, w.last_pending_end))
        - epoch(w.wait_from), 0) AS wait_s,
    w.started IS NOT NULL AS started, w.pending_at_end AND w.started IS NULL AS still, w.unschedulable AS unsched,
    w.pending_in_window AS pending, w.first_running, NULL::VARCHAR AS resources, {k} AS k,
    hash({k}) AS g  -- the keys as one integer: grouping by it is twice as fast as by the list
FROM both_ w LEFT JOIN queue_needs n USING (lh)
    JOIN queue_keys k_ ON k_.lh = w.lh AND k_.pod IS NOT DISTINCT FROM (CASE WHEN n.lh IS NOT NULL THEN w.pod END)"""


# where a pod's resources go in its keys until they are known (_resources)
_RESOURCE_SLOT = "\x00resource"
_DIMENSIONS = {"team": "k_.team", "namespace": "w.namespace", "workload": "k_.workload", "queue": "k_.queue",
               "resource": f"'{_RESOURCE_SLOT}'"}  # fmt: skip


def stage_waits(
    con: duckdb.DuckDBPyConnection, window: Window, opts: QueueOptions, namespaces: Mapping[tuple[str, str], Any]
) -> None:
    """Temp tables `queue_waits`: every GPU pod that waited (or was bound) in the window, with its wait and its group
    keys (`k`, a list in the order of `opts.by`); `queue_pend`: its Pending GPU-seconds per hour (drop_waits drops
    both). One pass over the pods: their group keys are worked out before, per label set."""
    params = {"start": window.start, "end": window.end}
    _pending_hours(con, window, opts.use_rollups)
    pods = _first_running(con, params, opts.use_rollups)
    _group_keys(con, opts, namespaces)
    k = "[" + ", ".join(_DIMENSIONS[b] for b in opts.by) + "]::VARCHAR[]"
    sums = opts.use_rollups and waiting.in_sync(con)
    con.execute(f"CREATE OR REPLACE TEMP TABLE queue_waits AS {_waits_sql(pods, k, sums)}", params)
    con.unregister("queue_keys")
    con.unregister("queue_needs")
    if "resource" in opts.by:
        _resources(con, params)
    con.execute("DROP TABLE IF EXISTS queue_first")


def _group_keys(con: duckdb.DuckDBPyConnection, opts: QueueOptions, namespaces: Mapping[tuple[str, str], Any]) -> None:
    """Register `queue_keys` (lh, pod, team, workload, queue): the attribution runs once per distinct label set (`lh`,
    the labels' hash) of the pods, and per pod name only where the workload needs one (no app label; `pod` NULL
    elsewhere); and `queue_needs`, the label sets that do."""
    cols = _label_keys(opts)
    values = "".join(f", json_extract_string(any_value(labels), '$.\"{k}\"')" for k in cols)
    sets = {}
    for lh, cluster, namespace, *found in con.execute(
        f"""SELECT lh, any_value(cluster), any_value(namespace){values}
        FROM (SELECT hash(cluster, namespace, labels) AS lh, * FROM {c.T_PODS}) GROUP BY lh"""
    ).fetchall():
        sets[lh] = (cluster, namespace, {k: v for k, v in zip(cols, found, strict=True) if v})
    # workload("", labels) is "" exactly when no app label names the workload: its pod name does
    needs = [lh for lh, (_, _, labels) in sets.items() if "workload" in opts.by and not workload("", labels)]
    con.register("queue_needs", pa.table({"lh": pa.array(needs, pa.uint64())}))
    classes = [(lh, None) for lh in sets]
    if needs:
        classes += con.execute(
            f"""SELECT DISTINCT lh, pod FROM (SELECT hash(cluster, namespace, labels) AS lh, pod FROM {c.T_PODS})
            SEMI JOIN queue_needs USING (lh)"""
        ).fetchall()
    rows: dict[str, list[Any]] = {"lh": [], "pod": [], "team": [], "workload": [], "queue": []}
    for lh, pod in classes:
        cluster, namespace, labels = sets[lh]
        rows["lh"].append(lh)
        rows["pod"].append(pod)
        rows["team"].append(opts.attribution.team(labels, namespace, namespaces.get((cluster, namespace), {})))
        rows["workload"].append(workload(pod or "", labels))
        rows["queue"].append(next((v for k in QUEUE_LABELS if (v := label_value(labels, k))), "") or c.UNALLOCATED)
    types = {"lh": pa.uint64(), "pod": pa.string(), "team": pa.string(), "workload": pa.string(), "queue": pa.string()}
    con.register("queue_keys", pa.table({k: pa.array(v, types[k]) for k, v in rows.items()}))


def _label_keys(opts: QueueOptions) -> list[str]:
    """The label keys the group keys read: the team's, the queue's and (by workload) the app's, each also as
    kube-state-metrics spells it."""
    keys = [*opts.attribution.team_labels, *QUEUE_LABELS, *(_APP_KEYS if "workload" in opts.by else ())]
    return list(dict.fromkeys(k for key in keys for k in (key, c.ksm_label_key(key))))


def _resources(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> None:
    """Each pod's requested resources, into its keys (grouping by resource only: the distinct strings are dear): those
    it asked for while Pending in the window, else those it was allocated."""
    fill = f"""UPDATE queue_waits q SET resources = r.resources FROM (
            SELECT pk, string_agg(resource, ',' ORDER BY resource) AS resources FROM (
                SELECT DISTINCT {PK} AS pk, resource FROM {{table}} WHERE ts >= $lo AND ts < $end)
            SEMI JOIN (SELECT pk FROM queue_waits WHERE resources IS NULL) USING (pk) GROUP BY pk) r
        WHERE q.pk = r.pk"""
    con.execute(fill.format(table=c.T_POD_PENDING), {"lo": params["start"], "end": params["end"]})
    row = con.execute("SELECT min(first_running) FROM queue_waits WHERE resources IS NULL").fetchone()
    if row and row[0] is not None:
        con.execute(fill.format(table=c.T_POD_ALLOCATIONS), {"lo": row[0], "end": params["end"]})
    con.execute(
        f"UPDATE queue_waits SET k = list_transform(k, lambda x: CASE WHEN x = '{_RESOURCE_SLOT}' THEN coalesce(resources, '') ELSE x END)"
    )
    con.execute("UPDATE queue_waits SET g = hash(k)")


def group_rows(con: duckdb.DuckDBPyConnection, by: tuple[str, ...]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per group of the staged keys, and the same over every pod (one pass, grouping sets): pending GPU-hours,
    pods, the wait's p50/p95/max, pods never started, still pending and unschedulable."""
    cur = con.execute(
        """SELECT grouping(g) AS overall, any_value(k) AS k, sum(pending_gpu_hours), count(*),
            quantile_cont(wait_s, 0.5), quantile_cont(wait_s, 0.95), max(wait_s),
            count(*) FILTER (WHERE pending AND NOT started), count(*) FILTER (WHERE still),
            count(*) FILTER (WHERE unsched)
        FROM queue_waits GROUP BY GROUPING SETS ((g), ()) ORDER BY overall, sum(pending_gpu_hours) DESC, k"""
    )
    rows, total = [], {}
    for overall, k, gpu_h, pods, p50, p95, longest, never, still, unsched in cur.fetchall():
        row = {
            "pending_gpu_hours": round(gpu_h or 0.0, 6), "pods": pods,
            "wait_p50_seconds": None if p50 is None else round(p50, 3),
            "wait_p95_seconds": None if p95 is None else round(p95, 3),
            "wait_max_seconds": None if longest is None else round(longest, 3),
            "never_started": never, "still_pending": still, "unschedulable": unsched,
        }  # fmt: skip
        if overall:
            total = row
        else:
            rows.append({**dict(zip(by, k, strict=True)), **row})
    return rows, total


def wait_histogram(con: duckdb.DuckDBPyConnection, by: tuple[str, ...]) -> list[dict[str, Any]]:
    """Pods per group and wait bucket (WAIT_BUCKETS): the distribution the percentiles summarise."""
    lo = "CASE " + " ".join(f"WHEN wait_s >= {e} THEN {e}" for e in reversed(WAIT_BUCKETS)) + " ELSE 0 END"
    cur = con.execute(f"SELECT any_value(k) AS k, {lo} AS lo, count(*) FROM queue_waits GROUP BY g, lo ORDER BY k, lo")
    nxt = dict(zip(WAIT_BUCKETS, [*WAIT_BUCKETS[1:], None], strict=True))
    return [
        {**dict(zip(by, k, strict=True)), "wait_from_seconds": lo, "wait_to_seconds": nxt[lo], "pods": n}
        for k, lo, n in cur.fetchall()
    ]


def pod_rows(con: duckdb.DuckDBPyConnection, by: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each pod's wait (QueueOptions.pods)."""
    cur = con.execute(
        """SELECT cluster, namespace, pod, uid, k, wait_s, pending_gpu_hours, started, still FROM queue_waits
        ORDER BY cluster, namespace, pod, uid"""
    )
    return [
        {"cluster": cl, "namespace": ns, "pod": pod, "uid": uid, **dict(zip(by, k, strict=True)),
         "wait_seconds": round(wait, 3), "pending_gpu_hours": round(gpu_h, 6), "started": started,
         "still_pending": still}
        for cl, ns, pod, uid, k, wait, gpu_h, started, still in cur.fetchall()
    ]  # fmt: skip


def pending_timeline(con: duckdb.DuckDBPyConnection, by: tuple[str, ...]) -> list[dict[str, Any]]:
    """Pending GPU-hours per hour and group (the staged pods' keys): demand over time."""
    cur = con.execute(
        """SELECT hour, any_value(k) AS k, sum(gpu_s) / 3600 FROM queue_pend JOIN queue_waits USING (pk)
        GROUP BY hour, g ORDER BY hour, k"""
    )
    return [
        {"hour": hour.isoformat(), **dict(zip(by, k, strict=True)), "pending_gpu_hours": round(v, 6)}
        for hour, k, v in cur.fetchall()
    ]


def drop_waits(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP TABLE IF EXISTS queue_waits; DROP TABLE IF EXISTS queue_pend")


def namespaces(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict[str, str]]:
    rows = con.execute(f"SELECT cluster, namespace, labels FROM {c.T_NAMESPACES}").fetchall()
    return {(cl, ns): {str(k): str(v) for k, v in json.loads(lb or "{}").items()} for cl, ns, lb in rows}
