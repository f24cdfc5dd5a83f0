"""Hourly coverage: which steps each GPU reported and each node was up, for the health report.

The health report needs, for every GPU of a month, when it was reporting or expected to (its span)
and the runs of steps where its node was up but it sent nothing (silences). Read from the step
tables, both are a DISTINCT over every sample of the window: 51M rows and a minute at 1,000 GPUs.
This table holds, per hour, one row per GPU (distinct steps with a DCGM sample, the first step, the
last step's end) and one per node (gpu_uuid NULL: steps where kube-state-metrics listed the node or
any of its GPUs reported; `declared_steps`: those where kube-state-metrics gave its GPU capacity;
`gpus` and `gpu_min_steps`: how many of its GPUs have a row in the hour, and their fewest steps).
Spans are the min and max of those; a GPU can only have a silent step in
an hour where its node has more steps than it, so the step tables are read for those hours only
(analytics/health/coverage.py).

Every collection commit recomputes the hours it touched. `rollup_state` keeps the step tables' row
counts under `coverage:<table>`; while they differ (a write outside a commit, or a warehouse just
upgraded to schema 9) the health report reads the step tables and the next commit rebuilds it all.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from core import conventions as c
from core.store.rollups.state import Counted, refresh_hours
from core.store.warehouse import rewrite

SOURCES = (c.T_GPU_SAMPLES, c.T_HEALTH_SAMPLES, c.T_NODE_SAMPLES)
PREFIX = "coverage:"
# the hourly rows the steps [$start, $end) fall in
HOURS_TOUCHED = "hour >= date_trunc('hour', $start::TIMESTAMP) AND hour < $end"


_STATE = Counted(c.T_COVERAGE_ROLLUP, PREFIX, SOURCES)


exists = _STATE.exists
in_sync = _STATE.in_sync  # do the rollups speak for every step row (no write since the last refresh bypassed them)?


def _add_steps(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> None:
    """The hours' rows merged with those of the new steps: step counts add up (the steps are new, so no
    step is counted twice), spans widen, and a node's GPU count and fewest steps are taken again
    over its merged GPU rows. 5 minutes of steps read instead of the hour's 60."""
    merged = f"""
        WITH parts AS (SELECT * FROM {c.T_COVERAGE_ROLLUP} WHERE {HOURS_TOUCHED} UNION ALL SELECT * FROM ({hourly_sql()}) h),
        gpu AS (
            SELECT hour, cluster, node, gpu_uuid, sum(steps) AS steps, min(first_ts) AS first_ts,
                max(last_end) AS last_end
            FROM parts WHERE gpu_uuid IS NOT NULL GROUP BY ALL),
        per_node AS (SELECT hour, cluster, node, count(*) AS gpus, min(steps) AS gpu_min_steps FROM gpu GROUP BY ALL),
        node AS (
            SELECT hour, cluster, node, sum(steps) AS steps, min(first_ts) AS first_ts, max(last_end) AS last_end,
                sum(declared_steps) AS declared_steps
            FROM parts WHERE gpu_uuid IS NULL GROUP BY ALL)
        SELECT hour, cluster, node, gpu_uuid, steps, first_ts, last_end,
            NULL AS declared_steps, NULL AS gpus, NULL AS gpu_min_steps
        FROM gpu
        UNION ALL
        SELECT n.hour, n.cluster, n.node, NULL, n.steps, n.first_ts, n.last_end, n.declared_steps,
            coalesce(p.gpus, 0), p.gpu_min_steps
        FROM node n LEFT JOIN per_node p USING (hour, cluster, node)"""
    rewrite(con, c.T_COVERAGE_ROLLUP, HOURS_TOUCHED, merged, {"start": start, "end": end})


def _insert(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> None:
    con.execute(f"INSERT INTO {c.T_COVERAGE_ROLLUP} {hourly_sql()}", {"start": start, "end": end})


def hourly_sql() -> str:
    """(hour, cluster, node, gpu_uuid, steps, first_ts, last_end, declared_steps, gpus, gpu_min_steps) of the
    steps in [$start, $end); the last three on node rows only."""
    window = "ts >= $start AND ts < $end"
    return f"""
    WITH cov AS (
        SELECT cluster, node, gpu_uuid, ts, step_s FROM {c.T_GPU_SAMPLES} WHERE {window}
        UNION ALL SELECT cluster, node, gpu_uuid, ts, step_s FROM {c.T_HEALTH_SAMPLES} WHERE {window}),
    up AS (
        SELECT cluster, node, ts, step_s, gpu_capacity IS NOT NULL AS declared FROM {c.T_NODE_SAMPLES} WHERE {window}
        UNION ALL SELECT cluster, node, ts, step_s, false FROM cov),
    gpu AS (
        SELECT date_trunc('hour', ts) AS hour, cluster, node, gpu_uuid, count(DISTINCT ts) AS steps,
            min(ts) AS first_ts, max(ts + to_seconds(step_s)) AS last_end
        FROM cov GROUP BY ALL),
    per_node AS (
        SELECT hour, cluster, node, count(*) AS gpus, min(steps) AS gpu_min_steps FROM gpu GROUP BY ALL),
    node AS (
        SELECT date_trunc('hour', ts) AS hour, cluster, node, count(DISTINCT ts) AS steps, min(ts) AS first_ts,
            max(ts + to_seconds(step_s)) AS last_end, count(DISTINCT ts) FILTER (WHERE declared) AS declared_steps
        FROM up GROUP BY ALL)
    SELECT hour, cluster, node, gpu_uuid, steps, first_ts, last_end, NULL, NULL, NULL FROM gpu
    UNION ALL
    SELECT n.hour, n.cluster, n.node, NULL, n.steps, n.first_ts, n.last_end, n.declared_steps, coalesce(p.gpus, 0),
        p.gpu_min_steps
    FROM node n LEFT JOIN per_node p USING (hour, cluster, node)"""


def refresh(
    con: duckdb.DuckDBPyConnection,
    lo: datetime | None,
    hi: datetime | None,
    full: bool,
    added: tuple[datetime, datetime] | None = None,
) -> None:
    """Recompute the hours [lo, hi) (hour-aligned), or everything when `full` (pass `not in_sync(con)` as
    read before the commit's writes); record the counts. `added`: the commit only added steps
    [start, end) no source held before: merge them into their hours instead. A no-op before
    schema 9. Call inside the commit."""
    if not exists(con):
        return
    refresh_hours(
        con, lo, hi, full, added, tables=(c.T_COVERAGE_ROLLUP,), spans=SOURCES, insert=_insert, merge=_add_steps
    )
    _STATE.record(con)
