"""Hourly rollups of fragmentation: what `report queues` reads instead of every node-step (issue 28).

Fragmentation is decided step by step (analytics/capacity/fragmentation.py): at each step where GPU pods are Pending
in a cluster, each node's free units of each GPU resource (allocatable less what Running pods hold) and whether any
Pending pod fits on the node. Read from the step tables over a month at 1,000 GPUs that is a minute. Every term is
per step, so per hour it sums (free and fragmented unit-seconds, steps) or takes extremes (the largest whole-GPU
request placeable), and two tables hold it:

  rollup_waiting_hourly          per hour, node and resource: free unit-seconds at steps with pods waiting, and the
                                 part on steps where the node fitted none of them
  rollup_waiting_cluster_hourly  per hour and cluster: steps with pods waiting (and free rows), and the smallest and
                                 largest "most whole GPUs free on one node" over them
  rollup_pending_hourly          per hour and Pending pod: its first step, its last step's end, the GPU-seconds it
                                 asked for, whether it was unschedulable (what `report queues` sums per pod)

and each pod's row in `pods` carries the same summed over all its hours (pending_first, pending_last_end,
pending_gpu_s, pending_unschedulable): a report reads them for the pods whose Pending steps all fall inside its window,
and sums the hourly rows only for the others, so a month at 10,000 GPUs reads 800,000 pods once instead of joining
them to 860,000 pod-hours.

Units are the resource's own (a whole GPU, a time-slicing replica, a MIG instance): what they are worth in GPUs
depends on node attributes that can change later (a replicas label, a GPU model), so the report converts them with
the attributes it reads then. Every collection commit recomputes the hours it touched, or adds its steps' terms when
it only appended; `rollup_state` keeps the step tables' row counts under `waiting:<table>`, and while they differ
(a write outside a commit, a warehouse just upgraded to schema 16) the report reads the steps and the next commit
rebuilds it all.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from core import conventions as c
from core.store.rollups.state import Counted, refresh_hours
from core.store.warehouse import rewrite
from core.timeutil import HOUR, floor_to

SOURCES = (c.T_POD_PENDING, c.T_NODE_RESOURCES, c.T_POD_ALLOCATIONS)
PREFIX = "waiting:"
HOURS_TOUCHED = "hour >= date_trunc('hour', $start::TIMESTAMP) AND hour < $end"
_PEND = f"SELECT ts, cluster, resource, amount FROM {c.T_POD_PENDING} WHERE ts >= $start AND ts < $end"
TABLES = (c.T_WAITING_ROLLUP, c.T_WAITING_CLUSTER_ROLLUP, c.T_PENDING_ROLLUP)

_MIG_G = f"TRY_CAST(regexp_extract(resource, '^{c.RESOURCE_MIG_PREFIX}(\\d+)g', 1) AS DOUBLE)"
# GPUs one unit of a requested resource stands for, before it has a node: a MIG instance g/7 of a GPU, a
# time-slicing replica one GPU (its node's replicas are unknown until it is placed)
GPU_EQUIVALENT_SQL = (
    f"(CASE WHEN resource LIKE '{c.RESOURCE_MIG_PREFIX}%' AND {_MIG_G} IS NOT NULL THEN {_MIG_G} / 7 ELSE 1 END)"
)

# per hour (`bucket`) and Pending pod, from the steps [$start, $end)
PENDING_ROWS_SQL = f"""SELECT date_trunc('hour', ts) AS hour, cluster, namespace, pod, uid, min(ts) AS first_ts,
        max(ts + to_seconds(step_s)) AS last_end, sum(amount * {GPU_EQUIVALENT_SQL} * step_s) AS gpu_s,
        bool_or(unschedulable) AS unschedulable
    FROM {c.T_POD_PENDING} WHERE ts >= $start AND ts < $end GROUP BY ALL"""


_STATE = Counted(c.T_WAITING_ROLLUP, PREFIX, SOURCES)


exists = _STATE.exists
in_sync = _STATE.in_sync  # do the rollups speak for every step row (no write since the last refresh bypassed them)?


def stage_steps(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> None:
    """Temp tables for the steps [start, end) with GPU pods Pending in their cluster: `waiting_free` (ts, step_s,
    cluster, node, resource, free) and `waiting_nodes` (ts, cluster, node, free_whole, fragmented). The one statement
    of the rule: a node is fragmented at a step when none of the cluster's Pending pods fits on it, a pod fitting
    where its resource is free in at least the amount it asks for (node selectors, taints, topology not read)."""
    params = {"start": start, "end": end}
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE waiting_free AS
        WITH waiting AS (SELECT DISTINCT ts, cluster FROM ({_PEND})),
        alloc AS (  -- only the steps with pods waiting: a fleet where few pods wait reads little
            SELECT ts, cluster, node, resource, sum(amount) AS used FROM {c.T_POD_ALLOCATIONS}
            SEMI JOIN waiting USING (ts, cluster) WHERE ts >= $start AND ts < $end GROUP BY ALL)
        SELECT r.ts, r.step_s, r.cluster, r.node, r.resource, greatest(r.allocatable - coalesce(a.used, 0), 0) AS free
        FROM {c.T_NODE_RESOURCES} r SEMI JOIN waiting w USING (ts, cluster) LEFT JOIN alloc a USING (ts, cluster, node, resource)
        WHERE r.ts >= $start AND r.ts < $end""",
        params,
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE waiting_nodes AS
        WITH fits AS (
            SELECT f.ts, f.cluster, f.node, bool_or(p.amount <= f.free) AS fits
            FROM waiting_free f JOIN ({_PEND}) p ON p.ts = f.ts AND p.cluster = f.cluster AND p.resource = f.resource
            WHERE f.free > 0 GROUP BY ALL)
        SELECT f.ts, f.cluster, f.node, coalesce(max(f.free) FILTER (WHERE f.resource = '{c.RESOURCE_GPU}'), 0) AS free_whole,
            NOT coalesce(any_value(x.fits), false) AS fragmented
        FROM waiting_free f LEFT JOIN fits x USING (ts, cluster, node) GROUP BY f.ts, f.cluster, f.node""",
        params,
    )


def drop_steps(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP TABLE IF EXISTS waiting_nodes; DROP TABLE IF EXISTS waiting_free")


def node_rows_sql(bucket: str = "date_trunc('hour', f.ts)") -> str:
    """Per `bucket` (an hour, or `f.ts` for steps), node and resource, from the staged steps: free unit-seconds and
    the fragmented part (rows with nothing free left out)."""
    return f"""SELECT {bucket} AS hour, f.cluster, f.node, f.resource, sum(f.free * f.step_s) AS free_s,
            sum(CASE WHEN s.fragmented THEN f.free ELSE 0 END * f.step_s) AS fragmented_s
        FROM waiting_free f JOIN waiting_nodes s USING (ts, cluster, node)
        GROUP BY ALL HAVING sum(f.free * f.step_s) > 0"""


CLUSTER_ROWS_SQL = """SELECT date_trunc('hour', ts) AS hour, cluster, count(*) AS waiting_steps,
        min(largest) AS largest_min, max(largest) AS largest_max
    FROM (SELECT ts, cluster, max(free_whole) AS largest FROM waiting_nodes GROUP BY ALL) GROUP BY ALL"""


def _insert_steps(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> None:
    con.execute(f"INSERT INTO {c.T_PENDING_ROLLUP} BY NAME {PENDING_ROWS_SQL}", {"start": start, "end": end})
    stage_steps(con, start, end)
    con.execute(f"INSERT INTO {c.T_WAITING_ROLLUP} BY NAME {node_rows_sql()}")
    con.execute(f"INSERT INTO {c.T_WAITING_CLUSTER_ROLLUP} BY NAME {CLUSTER_ROWS_SQL}")
    drop_steps(con)


def _add_steps(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> None:
    """Merge the new steps [start, end) into their hours: sums add, extremes take the extreme (the steps are new, so
    none is counted twice)."""
    stage_steps(con, start, end)
    params = {"start": start, "end": end}
    nodes = f"""SELECT hour, cluster, node, resource, sum(free_s) AS free_s, sum(fragmented_s) AS fragmented_s
        FROM (SELECT * FROM {c.T_WAITING_ROLLUP} WHERE {HOURS_TOUCHED} UNION ALL BY NAME {node_rows_sql()})
        GROUP BY ALL"""
    clusters = f"""SELECT hour, cluster, sum(waiting_steps) AS waiting_steps, min(largest_min) AS largest_min,
            max(largest_max) AS largest_max
        FROM (SELECT * FROM {c.T_WAITING_CLUSTER_ROLLUP} WHERE {HOURS_TOUCHED} UNION ALL BY NAME {CLUSTER_ROWS_SQL})
        GROUP BY ALL"""
    pending = f"""SELECT hour, cluster, namespace, pod, uid, min(first_ts) AS first_ts, max(last_end) AS last_end,
            sum(gpu_s) AS gpu_s, bool_or(unschedulable) AS unschedulable
        FROM (SELECT * FROM {c.T_PENDING_ROLLUP} WHERE {HOURS_TOUCHED} UNION ALL BY NAME {PENDING_ROWS_SQL})
        GROUP BY ALL"""
    rewrite(con, c.T_PENDING_ROLLUP, HOURS_TOUCHED, pending, params)
    rewrite(con, c.T_WAITING_ROLLUP, HOURS_TOUCHED, nodes, params)
    rewrite(con, c.T_WAITING_CLUSTER_ROLLUP, HOURS_TOUCHED, clusters, params)
    drop_steps(con)


POD_SUMS = (c.COL_PENDING_FIRST, c.COL_PENDING_LAST_END, c.COL_PENDING_GPU_S, c.COL_PENDING_UNSCHEDULABLE)


def _pod_sums(con: duckdb.DuckDBPyConnection, hours: tuple[datetime, datetime] | None) -> None:
    """pods' Pending sums, from their hourly rows: of every pod, or of the pods with rows in the hours [lo, hi) or
    whose sums reached into them (their rows there may just have gone)."""
    key = "cluster, namespace, pod, uid"
    match = "p.cluster = s.cluster AND p.namespace = s.namespace AND p.pod = s.pod AND p.uid = s.uid"
    if hours is None:
        con.execute(f"UPDATE {c.T_PODS} SET {', '.join(f'{col} = NULL' for col in POD_SUMS)}")
        pods = f"SELECT * FROM {c.T_PENDING_ROLLUP}"
    else:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE waiting_pods AS
            SELECT DISTINCT {key} FROM {c.T_PENDING_ROLLUP} WHERE hour >= $lo AND hour < $hi
            UNION SELECT {key} FROM {c.T_PODS} WHERE {c.COL_PENDING_FIRST} < $hi AND {c.COL_PENDING_LAST_END} > $lo""",
            {"lo": hours[0], "hi": hours[1]},
        )
        con.execute(
            f"""UPDATE {c.T_PODS} p SET {", ".join(f"{col} = NULL" for col in POD_SUMS)} FROM waiting_pods s
            WHERE {match}"""
        )
        pods = f"SELECT * FROM {c.T_PENDING_ROLLUP} SEMI JOIN waiting_pods USING ({key})"
    con.execute(
        f"""UPDATE {c.T_PODS} p SET {c.COL_PENDING_FIRST} = s.first, {c.COL_PENDING_LAST_END} = s.last_end,
            {c.COL_PENDING_GPU_S} = s.gpu_s, {c.COL_PENDING_UNSCHEDULABLE} = s.unschedulable
        FROM (SELECT {key}, min(first_ts) AS first, max(last_end) AS last_end, sum(gpu_s) AS gpu_s,
                bool_or(unschedulable) AS unschedulable FROM ({pods}) GROUP BY ALL) s
        WHERE {match}"""
    )
    con.execute("DROP TABLE IF EXISTS waiting_pods")


def refresh(
    con: duckdb.DuckDBPyConnection,
    lo: datetime | None,
    hi: datetime | None,
    full: bool,
    added: tuple[datetime, datetime] | None = None,
) -> None:
    """Recompute the hours [lo, hi) (hour-aligned), or everything when `full` (pass `not in_sync(con)` as read
    before the commit's writes); record the counts. `added`: the commit only added steps [start, end) no source
    held before: merge them into their hours instead. A no-op before schema 16. Call inside the commit."""
    if not exists(con):
        return
    touched = (floor_to(added[0], HOUR), added[1]) if added is not None else (lo, hi)
    refresh_hours(
        con, lo, hi, full, added, tables=TABLES, spans=(c.T_POD_PENDING,), insert=_insert_steps, merge=_add_steps
    )
    _pod_sums(con, None if full or None in touched else touched)  # type: ignore[arg-type]
    _STATE.record(con)
