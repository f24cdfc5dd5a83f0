"""When each GPU was reporting or expected to, and when it went silent: for the health report.

A GPU is expected to report at every step where its node was up (kube-state-metrics listed it, or
any of its GPUs reported) from the GPU's first sighting on; a silence is a run of expected steps
without a sample. Read from the step tables, both take a DISTINCT over every sample of the window.
Where the hourly coverage rollup (core/store/rollups/coverage.py) is current, they read it instead:

- spans are minima and maxima, so whole hours come from the rollup and only the window's partial
  edge hours (and the hour of a GPU's first sighting) from the steps;
- a silent step can only sit in an hour where the node has more steps than the GPU, so the step
  tables are read for those nodes and hours alone (plus an hour after, to see the GPU come back).

Both paths give the same answer (tests/test_health_coverage.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from analytics.health.signals import GpuKey
from core import conventions as c
from core.store import step_ranges
from core.store.rollups import coverage
from core.store.step_ranges import Range
from core.timeutil import HOUR, ceil_to, floor_to

Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class Silence:
    key: GpuKey
    start: datetime
    end: datetime  # end of the silent rows (the GPU reported again, or its node went away, or data ends)
    reported_again: bool


@dataclass(frozen=True)
class GpuInfo:
    key: GpuKey
    model: str
    node_pool: str
    gpu_index: int | None
    span: Span  # first and last instant the GPU was reporting or expected to


_KNOWN = f"known AS (SELECT cluster, node, gpu_uuid, min(first_seen) AS first_seen FROM {c.T_GPUS} GROUP BY ALL)"


def _raw(table: str, cols: str, ranged: bool) -> str:
    """A step table's rows in [$lo, $hi), restricted to the `ranges` CTE's nodes and times when `ranged`."""
    return f"""SELECT DISTINCT {cols} FROM {table} t WHERE ts >= $lo AND ts < $hi
        {"AND " + step_ranges.within("t") if ranged else ""}"""


def _coverage(ranged: bool) -> str:
    gpu_cols, node_cols = "cluster, node, gpu_uuid, ts, step_s", "cluster, node, ts, step_s"
    return f"""{step_ranges.CTE + "," if ranged else ""}
    cov AS ({_raw(c.T_GPU_SAMPLES, gpu_cols, ranged)} UNION {_raw(c.T_HEALTH_SAMPLES, gpu_cols, ranged)}),
    node_up AS (
        -- a node is up while kube-state-metrics lists it, or while any of its GPUs reports
        {_raw(c.T_NODE_SAMPLES, node_cols, ranged)} UNION SELECT DISTINCT cluster, node, ts, step_s FROM cov),
    {_KNOWN},
    expected AS (
        SELECT u.cluster, u.node, k.gpu_uuid, u.ts, u.step_s
        FROM node_up u JOIN known k ON k.cluster = u.cluster AND k.node = u.node AND u.ts >= k.first_seen)"""


def silences(
    con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, min_s: int, use_rollups: bool = True
) -> list[Silence]:
    """Runs of steps where a GPU's node was up but the GPU sent nothing, lasting at least min_s."""
    if not (use_rollups and coverage.in_sync(con)):
        return _silences(con, lo, hi, min_s, None)
    ranges = _suspect_ranges(con, lo, hi)
    return _silences(con, lo, hi, min_s, ranges) if ranges else []


def _silences(
    con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, min_s: int, ranges: list[Range] | None
) -> list[Silence]:
    sql = f"""WITH {_coverage(ranges is not None).strip()},
    silent AS (SELECT * FROM expected e ANTI JOIN cov USING (cluster, node, gpu_uuid, ts)),
    prev AS (
        SELECT *, lag(ts) OVER (PARTITION BY cluster, node, gpu_uuid ORDER BY ts) + to_seconds(step_s) = ts AS contiguous
        FROM silent),
    runs AS (
        SELECT *, sum(CASE WHEN contiguous THEN 0 ELSE 1 END) OVER (PARTITION BY cluster, node, gpu_uuid ORDER BY ts) AS grp
        FROM prev),
    spans AS (
        SELECT cluster, node, gpu_uuid, min(ts) AS start, max(ts + to_seconds(step_s)) AS end_ FROM runs
        GROUP BY cluster, node, gpu_uuid, grp)
    SELECT s.cluster, s.node, s.gpu_uuid, s.start, s.end_,
        EXISTS (SELECT 1 FROM cov WHERE cov.cluster = s.cluster AND cov.node = s.node AND cov.gpu_uuid = s.gpu_uuid
                AND cov.ts = s.end_) AS again
    FROM spans s WHERE s.end_ - s.start >= to_seconds({int(min_s)}) ORDER BY ALL"""
    rows = con.execute(sql, {"lo": lo, "hi": hi, **(step_ranges.params(ranges) if ranges else {})}).fetchall()
    return [Silence(GpuKey(cl, n, u), start, end, bool(again)) for cl, n, u, start, end, again in rows]


def _suspect_ranges(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> list[Range]:
    """Per node, the hours where some GPU expected to report has fewer steps than its node (or was first
    seen mid-hour), merged into ranges, each extended by an hour to see the GPU report again."""
    return step_ranges.from_hours(_suspect_hours(con, lo, hi), lo, hi, after=HOUR)


def _suspect_hours(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> list[tuple[Any, ...]]:
    """A node's hour is suspect when a GPU arrived during it, or when fewer GPUs reported in it than were
    known by its start, or one of them reported fewer steps than the node was up: read off the node's row
    (its `gpus` and `gpu_min_steps`), never the GPU rows."""
    return con.execute(
        f"""WITH {_KNOWN},
        per_node AS (
            SELECT cluster, node, count(*) AS n, max(first_seen) AS last_seen, list(first_seen) AS seen
            FROM known GROUP BY ALL),
        judged AS (
            -- most hours come after every GPU of their node was first seen: no list to look through
            SELECT u.cluster, u.node, u.hour, u.steps, u.gpus, u.gpu_min_steps,
                CASE WHEN u.hour >= k.last_seen THEN k.n
                    ELSE len(list_filter(k.seen, lambda s: s <= u.hour)) END AS expected,
                u.hour < k.last_seen
                    AND len(list_filter(k.seen, lambda s: s > u.hour AND s < u.hour + INTERVAL 1 HOUR)) > 0 AS arriving
            FROM {c.T_COVERAGE_ROLLUP} u JOIN per_node k USING (cluster, node)
            WHERE u.gpu_uuid IS NULL AND u.hour >= date_trunc('hour', $lo::TIMESTAMP) AND u.hour < $hi)
        SELECT cluster, node, hour FROM judged
        WHERE arriving OR expected > gpus OR (expected > 0 AND gpu_min_steps < steps)
        ORDER BY ALL""",
        {"lo": lo, "hi": hi},
    ).fetchall()


def gpu_infos(
    con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, use_rollups: bool = True
) -> dict[GpuKey, GpuInfo]:
    """Every GPU reporting or expected in [lo, hi): model, node pool, index and observed span."""
    spans = _spans(con, lo, hi, use_rollups)
    dims = {
        GpuKey(cl, n, u): (model, index)
        for cl, n, u, model, index in con.execute(
            f"""SELECT cluster, node, gpu_uuid, arg_max(model, last_seen), min(gpu_index) FROM {c.T_GPUS}
            GROUP BY ALL"""
        ).fetchall()
    }
    nodes = {
        (cl, n): (model, pool)
        for cl, n, model, pool in con.execute(f"SELECT cluster, node, gpu_model, node_pool FROM {c.T_NODES}").fetchall()
    }
    out = {}
    for key in sorted(spans):
        model, index = dims.get(key, (None, None))
        node_model, pool = nodes.get((key.cluster, key.node), (None, None))
        out[key] = GpuInfo(key, model or node_model or "", pool or "", index, spans[key])
    return out


def _spans(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, use_rollups: bool) -> dict[GpuKey, Span]:
    first, last = ceil_to(lo, HOUR), floor_to(hi, HOUR)
    if not use_rollups or first >= last or not coverage.in_sync(con):
        return _step_spans(con, lo, hi)
    out = _rollup_spans(con, first, last)
    for a, b in [(lo, first), *_first_seen_hours(con, first, last), (last, hi)]:
        if a < b:
            _merge(out, _step_spans(con, a, b).items())
    return out


def _merge(out: dict[GpuKey, Span], more: Iterable[tuple[GpuKey, Span]]) -> None:
    for key, (a, b) in more:
        have = out.get(key)
        out[key] = (min(a, have[0]), max(b, have[1])) if have else (a, b)


def _first_seen_hours(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> list[Span]:
    """Hours in [lo, hi) in which a GPU was first seen after the hour began: the rollup cannot tell which of
    the node's steps in that hour came after it."""
    rows = con.execute(
        f"""WITH {_KNOWN} SELECT DISTINCT date_trunc('hour', first_seen) AS h FROM known
        WHERE first_seen > $lo AND first_seen < $hi AND first_seen <> date_trunc('hour', first_seen) ORDER BY h""",
        {"lo": lo, "hi": hi},
    ).fetchall()
    return [(h, h + HOUR) for (h,) in rows]


def _rollup_spans(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> dict[GpuKey, Span]:
    """Spans from whole hours [lo, hi): a GPU's span is its node's hours from its first sighting on (the
    node's rows count every step any of its GPUs reported, so the GPU's own rows add nothing but the hour it
    was first seen in, which `_spans` reads from the steps). A GPU known before the node's first hour takes
    the node's whole span (one GROUP BY over node rows); only GPUs that arrived later are joined to hours."""
    rows = con.execute(
        f"""WITH {_KNOWN},
        up AS (
            SELECT cluster, node, hour, first_ts, last_end FROM {c.T_COVERAGE_ROLLUP}
            WHERE gpu_uuid IS NULL AND hour >= $lo AND hour < $hi),
        per_node AS (
            SELECT cluster, node, min(hour) AS first_hour, min(first_ts) AS first_ts, max(last_end) AS last_end
            FROM up GROUP BY ALL),
        k AS (SELECT k.*, p.first_hour, p.first_ts, p.last_end FROM known k JOIN per_node p USING (cluster, node))
        SELECT cluster, node, gpu_uuid, first_ts, last_end FROM k WHERE first_seen <= first_hour
        UNION ALL
        SELECT k.cluster, k.node, k.gpu_uuid, min(u.first_ts), max(u.last_end)
        FROM k JOIN up u ON u.cluster = k.cluster AND u.node = k.node AND u.hour >= k.first_seen
        WHERE k.first_seen > k.first_hour GROUP BY ALL""",
        {"lo": lo, "hi": hi},
    ).fetchall()
    return {GpuKey(cl, n, u): (a, b) for cl, n, u, a, b in rows}


def _step_spans(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> dict[GpuKey, Span]:
    """Spans from the step tables. Grouping by node and step (not GPU) is enough to know when a node was up,
    so no DISTINCT over every sample is needed."""
    sql = f"""WITH
    raw AS (
        SELECT cluster, node, gpu_uuid, ts, step_s FROM {c.T_GPU_SAMPLES} WHERE ts >= $lo AND ts < $hi
        UNION ALL SELECT cluster, node, gpu_uuid, ts, step_s FROM {c.T_HEALTH_SAMPLES} WHERE ts >= $lo AND ts < $hi),
    node_up AS (
        SELECT cluster, node, ts, max(ts + to_seconds(step_s)) AS end_ FROM {c.T_NODE_SAMPLES}
        WHERE ts >= $lo AND ts < $hi GROUP BY cluster, node, ts
        UNION ALL SELECT cluster, node, ts, max(ts + to_seconds(step_s)) FROM raw GROUP BY cluster, node, ts),
    {_KNOWN}
    SELECT cluster, node, gpu_uuid, min(lo_), max(hi_) FROM (
        SELECT cluster, node, gpu_uuid, min(ts) AS lo_, max(ts + to_seconds(step_s)) AS hi_ FROM raw GROUP BY ALL
        UNION ALL SELECT k.cluster, k.node, k.gpu_uuid, min(u.ts), max(u.end_)
        FROM known k JOIN node_up u ON k.cluster = u.cluster AND k.node = u.node AND u.ts >= k.first_seen
        GROUP BY ALL)
    GROUP BY ALL"""
    rows = con.execute(sql, {"lo": lo, "hi": hi}).fetchall()
    return {GpuKey(cl, n, u): (a, b) for cl, n, u, a, b in rows}
