"""Hourly and daily rollups of the step tables, maintained inside every collection commit.

A 30-day report on a 10,000-GPU fleet at 60 s steps would aggregate about a billion step rows; the
chargeback instead reads, for every whole day (hour) of its window, one row per pod-day (pod-hour)
and node-day (node-hour), and the step tables only for partial edge hours. The rollups hold exactly
what the step SQL (core/store/step_sql.py) sums, so answers are identical (integer GPU-unit-seconds):

  alloc_hourly/daily     GPU-unit-seconds per pod, for both MIG share modes (HAMi cores applied)
  capacity_hourly/daily  billable GPU-unit-seconds per node, and their unhealthy part, for both MIG share modes
  usage_hourly/daily     used GPU-seconds per pod (NULL pod: activity on unallocated GPUs)

Prices are applied at query time (a price or discount change inside an hour sends that hour to the
step tables); labels and attribution too. What the step SQL reads from dimension tables (GPU model,
time-slicing replicas, MIG profiles) is fingerprinted per node: a row whose node's fingerprint has
changed since it was computed is ignored and its node is recomputed from the steps.

`rollup_state` records the step tables' row counts at the last refresh. A warehouse whose counts
differ (rows written outside a collection commit, e.g. by hand or by an older gpuledger) is out of
sync: the chargeback then reads the step tables, and the next commit rebuilds every rollup.

A commit whose window no step table held a row in (a collection appending after the last one) adds its
steps' terms to their hours, since every rollup is a sum of per-step terms; any other commit recomputes
the hours it touched from all their steps.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from core import conventions as c
from core.store import read_memo
from core.store.rollups import bills, coverage, pools, waiting
from core.store.rollups import classes as rollup_classes
from core.store.rollups import sql as rollup_sql
from core.store.step_sql import MIG_SHARES, USAGE_VALUES, fingerprints_sql, stale_rows_sql
from core.store.warehouse import days_holding, one, rewrite, row_counts, ts_span
from core.timeutil import DAY, HOUR, floor_to, hours_covering

SOURCES = (c.T_POD_ALLOCATIONS, c.T_GPU_SAMPLES, c.T_GPU_POD_SAMPLES, c.T_NODE_SAMPLES)
# every step table a rollup here or in core/store/rollups/coverage.py is computed from
STEP_TABLES = tuple(dict.fromkeys([*SOURCES, *coverage.SOURCES, *waiting.SOURCES]))


def table(kind: str, level: str) -> str:
    """kind: alloc | capacity | usage; level: hourly | daily."""
    base = {"alloc": c.T_ALLOC_ROLLUP, "capacity": c.T_CAPACITY_ROLLUP, "usage": c.T_USAGE_ROLLUP}[kind]
    return f"{base}_{level}"


# where a refresh finds work: the steps, and the rows it may have to delete
_DAY_COLUMNS = (
    *((t, "ts") for t in SOURCES),
    *(
        (table(kind, level), col)
        for kind in ("alloc", "capacity", "usage")
        for level, col in (("hourly", "hour"), ("daily", "day"))
    ),
)


def source_rows(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return row_counts(con, SOURCES)


def in_sync(con: duckdb.DuckDBPyConnection) -> bool:
    """Do the rollups hold every step row (no write since the last refresh bypassed them)?"""
    return read_memo.remember(con, "rollups.in_sync", lambda: _in_sync(con))


def _in_sync(con: duckdb.DuckDBPyConnection) -> bool:
    stored = {
        k: v for k, v in con.execute(f"SELECT source, source_rows FROM {c.T_ROLLUP_STATE}").fetchall() if k in SOURCES
    }
    counts = source_rows(con)
    if not stored:
        return not any(counts.values())
    return stored == counts


def refresh(
    con: duckdb.DuckDBPyConnection,
    window: tuple[datetime, datetime] | None,
    full: bool = False,
    coverage_full: bool | None = None,
    waiting_full: bool | None = None,
    pools_full: bool | None = None,
    classes: rollup_classes.Baseline | None = None,
    appended: bool = False,
) -> None:
    """Recompute the rollups of every hour touching [window[0], window[1]] (row ts, inclusive), or
    of everything when `full` (the coverage, waiting and pool rollups: when `coverage_full` / `waiting_full` /
    `pools_full`, by default `full`); then
    record the step tables' row counts. Call inside the commit's transaction, after the facts and
    dimensions are written. `classes`: how the class rows stood before the commit's writes
    (rollup_classes.baseline); without it every class row is recomputed. `appended`: no step table
    (STEP_TABLES) held a row in the window before the commit, so its steps are added to their
    hours instead of recomputing the hours from all their steps."""
    hours = hours_covering(window)
    added = (window[0], window[1] + timedelta(microseconds=1)) if window is not None and appended else None
    coverage.refresh(con, *hours, full=full if coverage_full is None else coverage_full, added=added)
    waiting.refresh(con, *hours, full=full if waiting_full is None else waiting_full, added=added)
    pools.refresh(con, *hours, full=full if pools_full is None else pools_full, added=added)
    if full:
        for kind in ("alloc", "capacity", "usage"):
            for level in ("hourly", "daily"):
                con.execute(f"DELETE FROM {table(kind, level)}")
        hours = hours_covering(ts_span(con, SOURCES))
    lo, hi = hours
    if lo is not None and hi is not None:
        adding = added is not None and not full and _hours_current(con, lo, hi)
        if adding and added is not None:
            _add_steps(con, *added)
        # a day at a time (bounded memory on a full rebuild), and only the days holding steps or rows to replace
        for day in days_holding(con, _DAY_COLUMNS, floor_to(lo, DAY), hi):
            if not adding:
                _refresh_hours(con, max(lo, day), min(hi, day + DAY))
            _refresh_day(con, day)
    _first_allocated(con, None if full else window)
    keys = ", ".join(f"'{t}'" for t in SOURCES)
    con.execute(f"DELETE FROM {c.T_ROLLUP_STATE} WHERE source IN ({keys})")  # class: and coverage: rows are theirs
    con.executemany(f"INSERT INTO {c.T_ROLLUP_STATE} VALUES (?, ?)", list(source_rows(con).items()))
    if rollup_classes.exists(con):  # schema 8 and later
        days = (floor_to(lo, DAY), hi) if lo is not None and hi is not None else None
        rollup_classes.update(con, None if full else classes, days)
    bills.update(con, None if full or lo is None or hi is None else (lo, hi))


def _first_allocated(con: duckdb.DuckDBPyConnection, window: tuple[datetime, datetime] | None) -> None:
    """pods.first_allocated: the earliest step each pod held GPUs, from the window's allocations (every one when
    None). A collection only adds steps, so the earliest stays the earliest; one that re-collects a window with fewer
    allocations leaves an earlier time in place (what was collected before)."""
    col = c.COL_FIRST_ALLOCATED
    where = "WHERE ts BETWEEN $lo AND $hi" if window is not None else ""
    params = {"lo": window[0], "hi": window[1]} if window is not None else {}
    merge = f"least(p.{col}, a.first)" if window is not None else "a.first"
    con.execute(
        f"""UPDATE {c.T_PODS} p SET {col} = {merge} FROM (
            SELECT cluster, namespace, pod, uid, min(ts) AS first FROM {c.T_POD_ALLOCATIONS} {where} GROUP BY ALL) a
        WHERE p.cluster = a.cluster AND p.namespace = a.namespace AND p.pod = a.pod AND p.uid = a.uid""",
        params,
    )


def rebuild_derived(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild what derives from the hourly/daily rollups alone (the class rows), e.g. after a migration."""
    if rollup_classes.exists(con):
        rollup_classes.rebuild(con)


# the capacity rollups' sums (core/store/rollups/sql.py capacity_hourly_sql)
CAPACITY_VALUES = (
    *(f"{col}_{m}" for col in ("units", "unhealthy") for m in MIG_SHARES),
    "node_s",
    *(f"no_gpu_{m}" for m in MIG_SHARES),
)
_FPS = f"LEFT JOIN ({fingerprints_sql()}) f USING (cluster, node)"
# kind -> (the hourly SQL's value columns after hour, cluster, node; the SQL; how two parts of an hour add up)
_HOURLY = {
    "alloc": (
        "namespace, pod, uid, units_compute, units_memory",
        rollup_sql.alloc_hourly_sql(),
        "sum(units_compute)::BIGINT AS units_compute, sum(units_memory)::BIGINT AS units_memory",
    ),
    "capacity": (
        ", ".join(CAPACITY_VALUES),
        rollup_sql.capacity_hourly_sql(),
        ", ".join(f"sum({v})::BIGINT AS {v}" for v in CAPACITY_VALUES),
    ),
    "usage": (
        "namespace, pod, uid, " + ", ".join(USAGE_VALUES),
        rollup_sql.usage_hourly_sql(),
        ", ".join(f"sum({v}) AS {v}" for v in USAGE_VALUES),
    ),
}


# DCGM rows per query when hours are recomputed: the usage rollup's SQL over a whole day of 1,000 GPUs (1.5 million
# rows) needs more than the commit's default 1 GB and fails (some of its operators cannot spill); 12 hours take
# 1.1 s well within it. A full rebuild (after a migration) then stays inside collect.memory_limit at any fleet size.
CHUNK_ROWS = 500_000


def _refresh_hours(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> None:
    params = {"start": lo, "end": hi}
    for kind in ("alloc", "capacity", "usage"):
        con.execute(f"DELETE FROM {table(kind, 'hourly')} WHERE hour >= $start AND hour < $end", params)
    for start, end in _chunks(con, lo, hi):
        for kind, (cols, sql, _) in _HOURLY.items():
            con.execute(
                f"INSERT INTO {table(kind, 'hourly')} BY NAME "
                f"SELECT hour, cluster, node, {cols}, coalesce(f.fp, 0) AS fp FROM ({sql}) {_FPS}",
                {"start": start, "end": end},
            )


def _chunks(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> list[tuple[datetime, datetime]]:
    """[lo, hi) in whole-hour pieces of about CHUNK_ROWS DCGM rows each (a piece is never less than an hour)."""
    counted = one(con, f"SELECT count(*) FROM {c.T_GPU_SAMPLES} WHERE ts >= ? AND ts < ?", [lo, hi])
    per_hour = (counted[0] if counted else 0) / max((hi - lo) / HOUR, 1.0)
    step = HOUR * max(1, int(CHUNK_ROWS / max(per_hour, 1.0)))
    out, start = [], lo
    while start < hi:
        end = min(floor_to(start, HOUR) + step, hi)
        out.append((start, end))
        start = end
    return out


def _hours_current(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> bool:
    """Were the hourly rows of [lo, hi) computed under every node's current dimensions?"""
    rows = " UNION ALL ".join(
        f"SELECT cluster, node, fp FROM {table(kind, 'hourly')} WHERE hour >= ? AND hour < ?" for kind in _HOURLY
    )
    return one(con, f"SELECT 1 FROM ({stale_rows_sql(rows)}) LIMIT 1", [lo, hi] * len(_HOURLY)) is None


def _add_steps(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> None:
    """Add the steps [start, end) to their hours: every rollup is a sum of per-step terms (core/store/rollups/sql.py),
    so an hour's rows plus the new steps' rows, summed by key, are the hour recomputed. A 5-minute
    collection then reads 5 minutes of steps, not the hour's 60 (3-4 s at 10,000 GPUs)."""
    hours = coverage.HOURS_TOUCHED
    for kind, (cols, sql, sums) in _HOURLY.items():
        hourly = table(kind, "hourly")
        keys = "hour, cluster, node" + (", namespace, pod, uid" if "pod" in cols else "") + ", fp"
        summed = f"""SELECT {keys}, {sums} FROM (
                SELECT hour, cluster, node, {cols}, fp FROM {hourly} WHERE {hours}
                UNION ALL
                SELECT hour, cluster, node, {cols}, coalesce(f.fp, 0) AS fp FROM ({sql}) {_FPS})
            GROUP BY ALL"""
        rewrite(con, hourly, hours, summed, {"start": start, "end": end})


def _refresh_day(con: duckdb.DuckDBPyConnection, day: datetime) -> None:
    """A day's rows: the sum of its hours; a day whose hours disagree on a fingerprint gets NULL."""
    params = {"start": day, "end": day + DAY}
    fp = "CASE WHEN min(fp) = max(fp) THEN min(fp) END"
    sums = {
        "alloc": ("namespace, pod, uid", ("units_compute", "units_memory")),
        "capacity": ("", CAPACITY_VALUES),
        "usage": ("namespace, pod, uid", USAGE_VALUES),
    }
    for kind, (pod, values) in sums.items():
        keys = "cluster, node" + (f", {pod}" if pod else "")
        agg = ", ".join(f"sum({v}) AS {v}" for v in values)
        con.execute(f"DELETE FROM {table(kind, 'daily')} WHERE day >= $start AND day < $end", params)
        con.execute(
            f"""INSERT INTO {table(kind, "daily")} BY NAME
            SELECT date_trunc('day', hour) AS day, {keys}, {agg}, {fp} AS fp FROM {table(kind, "hourly")}
            WHERE hour >= $start AND hour < $end GROUP BY date_trunc('day', hour), {keys}""",
            params,
        )
