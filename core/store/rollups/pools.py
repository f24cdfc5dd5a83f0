"""Node-pool occupancy and pod requests per hour: the evidence of the savings (analytics/finops/recommend.py).

A pool's peak allocation is a maximum over steps of a sum over its nodes, and its average capacity a mean over steps:
neither follows from the per-node hourly rollups. So each hour keeps, per node pool and MIG share mode, what those
statistics are made of, in exact integer GPU units:
- `steps`: the pool's steps in the hour;
- `capacity_units`: its billable GPU units summed over them (units per second, the capacity rule of
  core/store/step_sql.py capacity_steps_sql, here as POOL_STEPS_SQL);
- `peak_alloc_units`: the most GPU units its pods held at one step;
- `max_node_units`: its largest node's.
A window's figures are then sums and maxima over its hours, and its partial edge hours come from the steps by the same
SQL. The pools the rows were computed under are recorded (T_POOL_NODES): a node moved to another pool makes the rows
stale, so readers go to the steps and the next commit rebuilds them.

Beside them (schema 18), per hour, pod (uid), node and GPU resource: the most the pod asked for at a step and its
seconds Running (T_POD_REQUEST_ROLLUP, pod_requests_sql), what right-sizing and spot need (a pod's single whole-GPU
request, how many resources it asks for, its run hours) and what the per-node rollups cannot give (they keep GPU units,
not requests or time). A window's figures are maxima and sums over its hours, edges from the steps by the same SQL.
Both tables share one refresh and one state (`pools:<table>`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from core import conventions as c
from core.store import read_memo, step_ranges
from core.store.rollups.state import Counted, refresh_hours
from core.store.step_sql import REQUEST_SQL, UB, MigShare, nodes_sql, share_units_sql
from core.store.warehouse import rewrite
from core.timeutil import HOUR, ceil_to, floor_to

U = c.GPU_UNITS
SOURCES = (c.T_NODE_SAMPLES, c.T_POD_ALLOCATIONS, c.T_GPU_SAMPLES)
PREFIX = "pools:"
MIG_SHARES: tuple[MigShare, ...] = ("compute", "memory")
_STATE = Counted(c.T_POOL_ROLLUP, PREFIX, SOURCES)
HOUR_SQL = "date_trunc('hour', ts)"
exists = _STATE.exists


def pool_steps_sql(mig_share: MigShare, reported: str | None = "") -> str:
    """Per node pool and step in [$start, $end): `capacity_units` (billable GPU units of its nodes), `alloc_units` (its
    pods' GPU units), `max_node_units` (its largest node's).

    The capacity rule in one pass: GPU units are linear in the allocation rows (HAMi cores are not applied here, as
    before), so the allocation rows, the declared GPU counts and DCGM's counts are stacked and grouped once by
    node-step (a third faster than grouping each and joining the groups). DCGM's count only matters for node-steps
    that declare none, so `reported` filters the DCGM rows read: "" all of them, an SQL condition on `s` (the coverage
    rollup's hours with undeclared steps), or None for none."""
    share = share_units_sql("a.resource", mig_share)
    dcgm = "AND false" if reported is None else (f"AND {reported}" if reported else "")
    return f"""
    WITH n AS ({nodes_sql()}),
    reported AS (SELECT s.ts, s.cluster, s.node, count(DISTINCT s.gpu_uuid) AS gpus
                 FROM {c.T_GPU_SAMPLES} s WHERE s.ts >= $start AND s.ts < $end {dcgm}
                 GROUP BY ALL),
    parts AS (
        SELECT a.ts, a.cluster, a.node, {REQUEST_SQL} * {share} AS units,
            NULL::BIGINT AS declared, NULL::BIGINT AS reported
        FROM {c.T_POD_ALLOCATIONS} a LEFT JOIN n USING (cluster, node) WHERE a.ts >= $start AND a.ts < $end
        UNION ALL SELECT ts, cluster, node, NULL, gpu_capacity, NULL FROM {c.T_NODE_SAMPLES}
        WHERE ts >= $start AND ts < $end
        UNION ALL SELECT ts, cluster, node, NULL, NULL, gpus FROM reported),
    node_steps AS (
        SELECT ts, cluster, node, coalesce(sum(units), 0) AS alloc_units,
            coalesce(max(declared), max(reported), 0) AS gpus
        FROM parts GROUP BY ts, cluster, node),
    cap AS (SELECT ts, cluster, node, alloc_units,
                CAST(ceil(greatest(gpus * {UB}, alloc_units) / {U}) AS BIGINT) * {UB} AS units_per_s
            FROM node_steps)
    SELECT coalesce(n.node_pool, '') AS node_pool, cap.ts, sum(cap.units_per_s) AS capacity_units,
        sum(cap.alloc_units) AS alloc_units, max(cap.units_per_s) AS max_node_units
    FROM cap LEFT JOIN n USING (cluster, node)
    GROUP BY ALL
    """


def pod_requests_sql(bucket: str, where: str = "ts >= $start AND ts < $end") -> str:
    """Per `bucket` (an SQL expression of `ts`), pod (uid), node and resource, from the steps `where` selects: the
    most it asked for at a step (`amount`) and its seconds Running (`run_s`): the rollup's columns. A pod has one row
    per step and resource (the collector's commit groups by both)."""
    return f"""SELECT {bucket} AS hour, cluster, namespace, pod, uid, node, resource, max(amount) AS amount,
        sum(step_s)::BIGINT AS run_s
    FROM {c.T_POD_ALLOCATIONS} WHERE {where} GROUP BY ALL"""


def pool_figures_sql(steps: str, bucket: str) -> str:
    """`steps` (pool_steps_sql) per node pool and `bucket` (an SQL expression of `ts`): the rollup's columns."""
    return f"""SELECT {bucket} AS hour, node_pool, count(*) AS steps, sum(capacity_units) AS capacity_units,
        max(alloc_units) AS peak_alloc_units, max(max_node_units) AS max_node_units
    FROM ({steps}) GROUP BY ALL"""


def undeclared_sql(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> str | None:
    """The DCGM filter of pool_steps_sql for [start, end): the node-hours whose coverage rollup row has a step
    kube-state-metrics gave no capacity for (None: there are none; "": the coverage rollup cannot say)."""
    from core.store.rollups import coverage  # the coverage rollup is refreshed before this one, in the same commit

    if not coverage.in_sync(con):
        return ""
    hours = con.execute(
        f"""SELECT DISTINCT cluster, node, hour FROM {c.T_COVERAGE_ROLLUP}
        WHERE gpu_uuid IS NULL AND declared_steps < steps AND hour >= date_trunc('hour', $start::TIMESTAMP)
            AND hour < $end ORDER BY ALL""",
        {"start": start, "end": end},
    ).fetchall()
    if not hours:
        return None
    return step_ranges.within("s", step_ranges.literal_ranges(step_ranges.from_hours(hours, start, end, timedelta(0))))


def in_sync(con: duckdb.DuckDBPyConnection) -> bool:
    """Do the rows speak for every step row, under every node's current pool?"""
    return read_memo.remember(con, f"{PREFIX}current", lambda: _STATE.in_sync(con) and not _moved(con))


def _moved(con: duckdb.DuckDBPyConnection) -> bool:
    """Has a node the rows were computed for moved to another pool since?"""
    row = con.execute(
        f"""SELECT 1 FROM {c.T_POOL_NODES} p JOIN ({nodes_sql()}) n USING (cluster, node)
        WHERE p.node_pool IS DISTINCT FROM coalesce(n.node_pool, '') LIMIT 1"""
    ).fetchone()
    return row is not None


def refresh(
    con: duckdb.DuckDBPyConnection,
    lo: datetime | None,
    hi: datetime | None,
    full: bool,
    added: tuple[datetime, datetime] | None = None,
) -> None:
    """Recompute the hours [lo, hi) (hour-aligned), or everything when `full` (pass `not in_sync(con)` as read before
    the commit's writes) or when a node changed pool; record the counts and pools. `added`: the commit only added
    steps [start, end) no source held before (at any cluster): merge them into their hours instead. A no-op before
    schema 17. Call inside the commit, after the coverage rollup's refresh."""
    if not exists(con):
        return
    full = full or _moved(con)
    spans = (c.T_NODE_SAMPLES, c.T_POD_ALLOCATIONS)
    tables = (c.T_POOL_ROLLUP, c.T_POD_REQUEST_ROLLUP)
    refresh_hours(con, lo, hi, full, added, tables=tables, spans=spans, insert=_insert, merge=_add_steps)
    con.execute(f"DELETE FROM {c.T_POOL_NODES}")
    con.execute(f"INSERT INTO {c.T_POOL_NODES} SELECT cluster, node, coalesce(node_pool, '') FROM ({nodes_sql()})")
    _STATE.record(con)


def _rows_sql(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> str:
    """The rollup rows of the steps in [$start, $end), both MIG share modes."""
    reported, hour = undeclared_sql(con, start, end), HOUR_SQL
    return " UNION ALL ".join(
        f"SELECT '{share}' AS mig_share, * FROM ({pool_figures_sql(pool_steps_sql(share, reported), hour)})"
        for share in MIG_SHARES
    )


def _insert(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> None:
    params = {"start": start, "end": end}
    con.execute(f"INSERT INTO {c.T_POOL_ROLLUP} {_rows_sql(con, start, end)}", params)
    con.execute(f"INSERT INTO {c.T_POD_REQUEST_ROLLUP} {pod_requests_sql(HOUR_SQL)}", params)


def _add_steps(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> None:
    """Merge the new steps [start, end) into their hours: sums add, maxima take the larger (the steps are new at every
    cluster, so no pool-step is split between the hour's row and the new one)."""
    touched = "hour >= date_trunc('hour', $start::TIMESTAMP) AND hour < $end"
    merged = f"""SELECT mig_share, hour, node_pool, sum(steps) AS steps, sum(capacity_units) AS capacity_units,
            max(peak_alloc_units) AS peak_alloc_units, max(max_node_units) AS max_node_units
        FROM (SELECT * FROM {c.T_POOL_ROLLUP} WHERE {touched} UNION ALL BY NAME {_rows_sql(con, start, end)})
        GROUP BY ALL"""
    rewrite(con, c.T_POOL_ROLLUP, touched, merged, {"start": start, "end": end})
    requests = f"""SELECT hour, cluster, namespace, pod, uid, node, resource, max(amount) AS amount,
            sum(run_s)::BIGINT AS run_s
        FROM (SELECT * FROM {c.T_POD_REQUEST_ROLLUP} WHERE {touched} UNION ALL BY NAME {pod_requests_sql(HOUR_SQL)})
        GROUP BY ALL"""
    rewrite(con, c.T_POD_REQUEST_ROLLUP, touched, requests, {"start": start, "end": end})


def window_hours(start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """The whole hours of [start, end) the rollup can serve, or None."""
    first, last = ceil_to(start, HOUR), floor_to(end, HOUR)
    return (first, last) if first < last else None
