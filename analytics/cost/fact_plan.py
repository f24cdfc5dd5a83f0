"""Where a report's facts come from (rollups or step tables), and their SQL, grouped for the chargeback.

`plan(con, window)` splits a window into whole days served by the daily rollups, whole hours by the
hourly ones, and steps (partial edge hours, hours in which a price or discount changes, nodes whose
dimension fingerprint changed since their rollups were computed). Every source yields the same
integer GPU-unit-seconds (core/store/rollups/hourly.py), each row stamped with a time at which its price is the
one in force for all of it (a day's or hour's start; a step's ts), so pricing is exact.

The chargeback then needs rows per *attribution class*, not per pod: pods with the same namespace
and labels on the same node attributes, price row and day bill the same way. The SQL here groups
them so a month at 10,000 GPUs (~1M pod-days) reaches Python as a few thousand rows; the pod name
is kept only when the report groups by pod, or when a pod's workload needs its name (no app label).
Rows come sorted, so cent rounding breaks ties the same way on every run and from every source.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import duckdb

from analytics.cost.prices import PriceSource, priced_sql
from core import conventions as c
from core.store import read_memo, step_ranges
from core.store.rollups import classes as rollup_classes
from core.store.rollups import hourly as rollups
from core.store.step_sql import (
    USAGE_VALUES,
    MigShare,
    alloc_steps_sql,
    capacity_steps_sql,
    has_app_sql,
    labelled_sql,
    nodes_sql,
    scaled_sql,
    stale_rows_sql,
    usage_steps_sql,
)
from core.timeutil import DAY, HOUR, Window, ceil_to, floor_to

Ranges = list[tuple[datetime, datetime]]
_USAGE = ", ".join(USAGE_VALUES)


@dataclass
class Plan:
    days: Ranges = field(default_factory=list)  # served by *_daily (day-aligned)
    hours: Ranges = field(default_factory=list)  # served by *_hourly (hour-aligned)
    steps: Ranges = field(default_factory=list)  # served by the step tables
    stale: list[tuple[str, str]] = field(default_factory=list)  # (cluster, node): the whole window from steps
    window: Window | None = None
    # a temp table of (cluster, node, day) whose day the hourly rollups serve instead of the daily ones: days whose
    # hours the bill prices differently (analytics/cost/bill_prices.py)
    mixed: str | None = None


def plan(con: duckdb.DuckDBPyConnection, window: Window, use_rollups: bool = True, days: bool = True) -> Plan:
    """Which part of `window` each source serves. Without usable rollups: all steps. `days=False`: no
    daily rows (whole days from the hourly rollups), for reports that split by hour of day."""
    if not use_rollups or not rollups.in_sync(con):
        return Plan(steps=[(window.start, window.end)], window=window)
    out = _split(con, window, days)
    if out.days or out.hours:
        out.stale = _stale_nodes(con, out)
    return out


def periods(con: duckdb.DuckDBPyConnection, window: Window) -> tuple[Ranges, Ranges, Ranges]:
    """(days, hours, steps): the window's whole days, then whole hours, in which no price or discount changes (a
    rollup row summed over one is priced at its start), and the rest (priced step by step)."""
    out = _split(con, window, days=True)
    return out.days, out.hours, out.steps


def _split(con: duckdb.DuckDBPyConnection, window: Window, days: bool) -> Plan:
    changes = _price_changes(con, window)
    dirty_hours = {floor_to(t, HOUR) for t in changes if t != floor_to(t, HOUR)}
    dirty_days = {floor_to(t, DAY) for t in changes if t != floor_to(t, DAY)}
    out = Plan(window=window)
    first, last = ceil_to(window.start, HOUR), floor_to(window.end, HOUR)
    if first >= last:
        out.steps.append((window.start, window.end))
        return out
    _add(out.steps, window.start, first)
    t = first
    while t < last:
        day = floor_to(t, DAY)
        if days and t == day and day + DAY <= last and day not in dirty_days:
            _add(out.days, day, day + DAY)
            t = day + DAY
            continue
        _add(out.steps if t in dirty_hours else out.hours, t, t + HOUR)
        t += HOUR
    _add(out.steps, last, window.end)
    return out


def _add(ranges: Ranges, lo: datetime, hi: datetime) -> None:
    if hi <= lo:
        return
    if ranges and ranges[-1][1] == lo:
        ranges[-1] = (ranges[-1][0], hi)
    else:
        ranges.append((lo, hi))


def _price_changes(con: duckdb.DuckDBPyConnection, window: Window) -> set[datetime]:
    """Instants inside the window at which a price row or a discount starts or ends (every such instant read once
    per warehouse version: core/store/read_memo.py)."""
    instants = read_memo.remember(con, "facts.price_changes", lambda: _price_instants(con))
    return {t for t in instants if window.start < t < window.end}


def _price_instants(con: duckdb.DuckDBPyConnection) -> tuple[datetime, ...]:
    rows = con.execute(
        f"""SELECT effective_from FROM {c.T_PRICES}
        UNION SELECT effective_from FROM {c.T_PRICE_DISCOUNTS}
        UNION SELECT effective_to FROM {c.T_PRICE_DISCOUNTS} WHERE effective_to IS NOT NULL"""
    ).fetchall()
    return tuple(r[0] for r in rows)


def _ts(t: datetime) -> str:
    return f"TIMESTAMP '{t:%Y-%m-%d %H:%M:%S.%f}'"


def ranges_sql(col: str, ranges: Ranges) -> str:
    if not ranges:
        return "FALSE"
    return "(" + " OR ".join(f"({col} >= {_ts(lo)} AND {col} < {_ts(hi)})" for lo, hi in ranges) + ")"


def _stale_nodes(con: duckdb.DuckDBPyConnection, p: Plan) -> list[tuple[str, str]]:
    """Nodes with a rollup row (in the planned days/hours) computed under other dimension values."""
    key = ("facts.stale_nodes", tuple(p.days), tuple(p.hours))
    return list(read_memo.remember(con, key, lambda: _find_stale_nodes(con, p)))


def _find_stale_nodes(con: duckdb.DuckDBPyConnection, p: Plan) -> tuple[tuple[str, str], ...]:
    parts = []
    for level, col, ranges in (("daily", "day", p.days), ("hourly", "hour", p.hours)):
        if ranges:
            parts += [
                f"SELECT cluster, node, fp FROM {rollups.table(kind, level)} WHERE {ranges_sql(col, ranges)}"
                for kind in ("alloc", "capacity", "usage")
            ]
    if not parts:
        return ()
    rows = con.execute(f"SELECT DISTINCT * FROM ({stale_rows_sql(' UNION ALL '.join(parts))}) ORDER BY 1, 2").fetchall()
    return tuple((str(a), str(b)) for a, b in rows)


def _stale(p: Plan, t: str, col: str) -> str:
    """A rollup row `t` (its time in `col`) of a stale node, whose rows the steps replace."""
    if not p.stale:
        return "FALSE"
    stale = [(cl, n, datetime.min, datetime.max) for cl, n in p.stale]
    return step_ranges.within(t, step_ranges.literal_ranges(stale), col)


def _step_where(p: Plan) -> str | None:
    """The step tables' part of the plan, as a `where` template for core/store/step_sql.py ({t}: the table alias)."""
    parts = [ranges_sql("{t}.ts", p.steps)]
    if p.stale and p.window is not None:  # a stale node's rollups are not used: all its steps in the window are
        stale = [(cl, n, p.window.start, p.window.end) for cl, n in p.stale]
        parts.append(step_ranges.within("{t}", step_ranges.literal_ranges(stale)))
    parts = [x for x in parts if x != "FALSE"]
    return " OR ".join(f"({x})" for x in parts) if parts else None


def _rollup_union(p: Plan, kind: str, columns: str, days: bool = True) -> list[str]:
    out = []
    for level, col, ranges in (("daily", "day", p.days if days else []), ("hourly", "hour", p.hours)):
        if ranges:
            mixed = f" ANTI JOIN {p.mixed} m_ USING (cluster, node, day)" if p.mixed and level == "daily" else ""
            out.append(
                f"SELECT {col} AS ts, cluster, node, {columns} FROM {rollups.table(kind, level)} r{mixed} "
                f"WHERE {ranges_sql(col, ranges)} AND NOT {_stale(p, 'r', col)}"
            )
    if p.mixed and p.days:  # the mixed node-days, hour by hour (whether the other days are pod rows or labelled)
        out.append(
            f"SELECT hour AS ts, cluster, node, {columns} FROM {rollups.table(kind, 'hourly')} r "
            f"SEMI JOIN {p.mixed} m_ ON m_.cluster = r.cluster AND m_.node = r.node AND m_.day = date_trunc('day', r.hour) "
            f"WHERE {ranges_sql('hour', p.days)} AND NOT {_stale(p, 'r', 'hour')}"
        )
    return out


def sources_sql(p: Plan, mig_share: MigShare, pod_days: bool = True) -> dict[str, str]:
    """SELECTs alloc (ts, cluster, node, namespace, pod, uid, units), capacity (ts, cluster, node, units) and
    usage (ts, cluster, node, namespace, pod, uid, used_s, energy_j, derived_j), each row's ts a time its price holds
    for all of it."""
    where = _step_where(p)
    alloc = _rollup_union(p, "alloc", f"namespace, pod, uid, units_{mig_share} AS units", pod_days)
    capacity = _capacity_union(p, mig_share, where)
    usage = _rollup_union(p, "usage", f"namespace, pod, uid, {_USAGE}", pod_days)
    if where is not None:
        alloc.append(
            f"SELECT ts, cluster, node, namespace, pod, uid, {scaled_sql('units')} * step_s AS units "
            f"FROM ({alloc_steps_sql(mig_share, where)})"
        )
        # per step, like alloc and capacity: each usage row's ts is then a key of the price table (priced per step)
        steps = usage_steps_sql("j.ts", where)
        usage.append(f"SELECT bucket AS ts, cluster, node, namespace, pod, uid, {_USAGE} FROM ({steps})")
    empty = {
        "alloc": "SELECT NULL::TIMESTAMP AS ts, '' AS cluster, '' AS node, '' AS namespace, '' AS pod, '' AS uid, 0::BIGINT AS units WHERE FALSE",
        "capacity": "SELECT NULL::TIMESTAMP AS ts, '' AS cluster, '' AS node, 0::BIGINT AS units, 0::BIGINT AS unhealthy WHERE FALSE",
        "usage": "SELECT NULL::TIMESTAMP AS ts, '' AS cluster, '' AS node, '' AS namespace, '' AS pod, '' AS uid, "
        + ", ".join(f"0.0 AS {v}" for v in USAGE_VALUES)
        + " WHERE FALSE",
    }
    union = {
        k: " UNION ALL ".join(v) if v else empty[k]
        for k, v in (("alloc", alloc), ("capacity", capacity), ("usage", usage))
    }
    return {k: union[k] for k in ("alloc", "capacity", "usage")}


def _capacity_union(p: Plan, mig_share: MigShare, where: str | None, node_s: bool = False) -> list[str]:
    """Capacity rows (ts, cluster, node, units, unhealthy[, node_s, no_gpu]) from each source of the plan."""
    extra = f", node_s, no_gpu_{mig_share} AS no_gpu" if node_s else ""
    out = _rollup_union(p, "capacity", f"units_{mig_share} AS units, unhealthy_{mig_share} AS unhealthy{extra}")
    if where is not None:
        extra = (
            ", step_s AS node_s, CASE WHEN gpus = 0 THEN units_per_s * step_s ELSE 0 END AS no_gpu" if node_s else ""
        )
        out.append(
            f"SELECT ts, cluster, node, units_per_s * step_s AS units, unhealthy_per_s * step_s AS unhealthy{extra} "
            f"FROM ({capacity_steps_sql(mig_share, where)})"
        )
    return out


def node_capacity_sql(p: Plan, mig_share: MigShare) -> str:
    """SELECT (ts, cluster, node, units, unhealthy, node_s, no_gpu): per node, its billable GPU-unit-seconds, their
    unhealthy part, its seconds with a step (what a provider bills a node for) and the billable units on steps where
    no source gives it a GPU, each row's ts a time its price holds for all of it; the plan's rollups and steps."""
    parts = _capacity_union(p, mig_share, _step_where(p), node_s=True)
    empty = (
        "SELECT NULL::TIMESTAMP AS ts, '' AS cluster, '' AS node, 0 AS units, 0 AS unhealthy, 0 AS node_s, 0 AS no_gpu"
    )
    return " UNION ALL ".join(parts) if parts else f"{empty} WHERE FALSE"


@dataclass(frozen=True)
class Grouping:
    """What the chargeback keeps apart: node (its name), node attributes, day, pod names."""

    node: bool
    attributes: tuple[str, ...]
    day: bool
    pods: bool

    def node_sql(self, t: str, unpriced_only: str | None = None) -> str:
        if self.node:
            return f"{t}.node"
        return f"CASE WHEN {unpriced_only} IS NULL THEN {t}.node END" if unpriced_only else "NULL::VARCHAR"

    def attrs_sql(self) -> str:
        return "".join(f", coalesce(CAST(na.{a} AS VARCHAR), '') AS {a}" for a in self.attributes)

    def day_sql(self, t: str) -> str:
        return f"date_trunc('day', {t}.ts)" if self.day else "NULL::TIMESTAMP"


class Classes:
    """A chargeback's facts grouped by attribution class; its temp tables live for one report.

    Whole days come from the class rollups (core/store/rollups/classes.py) when the report keeps neither node
    names nor pod names apart and those rows are current; otherwise, and for hours and steps, pod rows
    are labelled here. Either way nodes are grouped by `group_node`: their class-rollup representative
    (same attributes, so the same price and grouping keys) or themselves.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        p: Plan,
        mig_share: MigShare,
        g: Grouping,
        source: PriceSource = "list",
        zones: Mapping[str, str] | None = None,
    ) -> None:
        self.con, self.g, self.mig_share, self.mixed, self.p = con, g, mig_share, p.mixed, p
        self.nodes = read_memo.per_connection(con, "facts.nodes", lambda: _nodes_table(con))
        self.zones = dict(zones or {})
        self.t = f"cb_{uuid.uuid4().hex[:12]}"
        labelled = bool(p.days) and not (g.pods or p.stale) and rollup_classes.valid(con)
        # a class's nodes share a list price, not a bill: at billed cost (or by node) the rows per node are read
        self.by_class = labelled and source == "list" and not g.node
        self.by_node = labelled and not self.by_class
        src = sources_sql(p, mig_share, pod_days=not labelled)
        self.days = ranges_sql("day", p.days) if labelled else "FALSE"
        groups = f"SELECT cluster, node, class_node FROM {c.T_CLASS_NODES}" if self.by_class else _NO_GROUPS
        con.execute(f"CREATE TEMP TABLE {self.t}_groups AS {groups}")
        con.execute(f"CREATE TEMP TABLE {self.t}_alloc AS {self._labelled(src['alloc'], ('units',))}")
        con.execute(f"CREATE TEMP TABLE {self.t}_capacity AS {src['capacity']}")
        # nodes of a class share every attribute a price is matched on, so pricing its representative prices them
        # all: at 10,000 GPUs a month's keys shrink from 65,000 (node, day) to ~1,000 (class, day)
        keys = (
            f"SELECT DISTINCT ts, cluster, node FROM {self.t}_alloc UNION "
            f"SELECT DISTINCT k.ts, k.cluster, coalesce(gr.class_node, k.node) FROM {self.t}_capacity k "
            f"LEFT JOIN {self.t}_groups gr USING (cluster, node)"
        )
        con.execute(
            f"CREATE TEMP TABLE {self.t}_priced AS SELECT ts, cluster, node, price_id FROM ({priced_sql(keys, source)})"
        )
        # hourly grid intensity (carbon.zones): usage hour by hour, each hour's energy at its zone's intensity
        self.usage_src = sources_sql(_by_hours(p), mig_share)["usage"] if self.zones else src["usage"]

    def _labelled(self, pod_rows: str, values: tuple[str, ...], mapped: str = "", days: bool = True) -> str:
        """Pod rows -> (ts, cluster, node = group node, namespace, labels, pod[, mapped], values...), plus class rows
        (unless not `days`: the pod rows then cover the whole window)."""
        pod_keep = "TRUE" if self.g.pods else f"NOT {has_app_sql('lab.labels')}"
        sums = ", ".join(f"sum({v}) AS {v}" for v in values)
        per_pod = f"""(SELECT r.ts, r.cluster, coalesce(gr.class_node, r.node) AS node, r.namespace, r.pod, r.pod AS a_pod,
            r.uid, {sums} FROM ({pod_rows}) r LEFT JOIN {self.t}_groups gr USING (cluster, node) GROUP BY ALL)"""
        out = f"""WITH {labelled_sql(per_pod).strip()}
        SELECT ts, cluster, node, namespace, labels, CASE WHEN {pod_keep} THEN pod END AS pod{mapped}, {sums}
        FROM lab GROUP BY ALL"""
        if (self.by_class or self.by_node) and days:
            alloc = values == ("units",)
            if self.by_class:
                table, node, skip = (c.T_CLASS_ALLOC if alloc else c.T_CLASS_USAGE), "class_node", ""
            else:  # the mixed node-days come hour by hour from the pod rows
                table, node = (c.T_LABELLED_ALLOC if alloc else c.T_LABELLED_USAGE), "node"
                skip = f" ANTI JOIN {self.mixed} m_ USING (cluster, node, day)" if self.mixed else ""
            cols = f"units_{self.mig_share}" if alloc else _USAGE
            flag = ", mapped" if mapped else ""
            out += f""" UNION ALL SELECT day, cluster, {node}, namespace, labels, pod{flag}, {cols}
            FROM {table} r{skip} WHERE {self.days}"""
        return out

    def close(self) -> None:
        for kind in ("alloc", "capacity", "priced", "groups", "zones"):
            self.con.execute(f"DROP TABLE IF EXISTS {self.t}_{kind}")

    def _rows(self, sql: str) -> list[dict[str, Any]]:
        cur = self.con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def alloc(self) -> list[dict[str, Any]]:
        g, t = self.g, self.t
        return self._rows(f"""
        WITH na AS (SELECT * FROM {self.nodes})
        SELECT a.cluster, {g.node_sql("a")} AS node{g.attrs_sql()}, x.price_id, {g.day_sql("a")} AS day, a.namespace,
            a.labels, a.pod, sum(a.units) AS units
        FROM {t}_alloc a JOIN {t}_priced x USING (ts, cluster, node) LEFT JOIN na USING (cluster, node)
        GROUP BY ALL ORDER BY ALL""")

    def capacity(self) -> list[dict[str, Any]]:
        g, t = self.g, self.t
        return self._rows(f"""
        WITH cap AS (SELECT k.cluster, coalesce(gr.class_node, k.node) AS node, x.price_id, {g.day_sql("k")} AS day,
                         sum(k.units) AS units, sum(k.unhealthy) AS unhealthy,
                         list(DISTINCT k.node) FILTER (WHERE x.price_id IS NULL) AS unpriced
                     FROM {t}_capacity k LEFT JOIN {t}_groups gr USING (cluster, node)
                     JOIN {t}_priced x ON x.ts = k.ts AND x.cluster = k.cluster AND x.node = coalesce(gr.class_node, k.node)
                     GROUP BY ALL),
        pool AS (SELECT a.cluster, a.node, x.price_id, {g.day_sql("a")} AS day, sum(a.units) AS units
                 FROM {t}_alloc a JOIN {t}_priced x USING (ts, cluster, node) GROUP BY ALL),
        idle AS (SELECT cap.*, cap.units - coalesce(pool.units, 0) - cap.unhealthy AS idle_units FROM cap LEFT JOIN pool
                 ON pool.cluster = cap.cluster AND pool.node = cap.node  -- NULL price_id (unpriced) and day match too
                 AND pool.price_id IS NOT DISTINCT FROM cap.price_id AND pool.day IS NOT DISTINCT FROM cap.day),
        na AS (SELECT * FROM {self.nodes})
        SELECT idle.cluster, {g.node_sql("idle", "idle.price_id")} AS node{g.attrs_sql()}, idle.price_id, idle.day,
            sum(idle.units) AS units, sum(idle.idle_units) AS idle_units, sum(idle.unhealthy) AS unhealthy_units,
            flatten(list(idle.unpriced)) AS unpriced
        FROM idle LEFT JOIN na USING (cluster, node) GROUP BY ALL ORDER BY ALL""")

    def usage(self) -> list[dict[str, Any]]:
        g = self.g
        labelled = self._labelled(self.usage_src, USAGE_VALUES, ", a_pod IS NOT NULL AS mapped", days=not self.zones)
        values = [f"sum(u.{v}) AS {v}" for v in USAGE_VALUES]
        if self.zones:
            labelled = self._hourly_carbon(labelled)
            values += [f"sum(u.{v}) AS {v}" for v in ("carbon_jg", "hourly_j", "annual_j")]
        # with the price row in force, so used GPU-hours are priced as the allocation is (the unused cost)
        return self._rows(f"""
        WITH u AS ({labelled}), na AS (SELECT * FROM {self.nodes})
        SELECT u.cluster, {g.node_sql("u")} AS node{g.attrs_sql()}, x.price_id, {g.day_sql("u")} AS day, u.namespace,
            u.labels, u.pod, u.mapped, coalesce(na.region, '') AS carbon_region, {", ".join(values)}
        FROM u LEFT JOIN {self.t}_priced x USING (ts, cluster, node) LEFT JOIN na USING (cluster, node)
        GROUP BY ALL ORDER BY ALL""")

    def _hourly_carbon(self, hourly: str) -> str:
        """Usage rows hour by hour -> the same rows at the time their price is keyed by (a whole day's start, else
        their own), each with its energy x its zone's gCO2e/kWh in that hour (`carbon_jg`), the energy that had
        one (`hourly_j`) and the energy that had none (`annual_j`: the annual table's)."""
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {self.t}_zones (key VARCHAR, zone VARCHAR)")
        self.con.executemany(f"INSERT INTO {self.t}_zones VALUES (?, ?)", sorted(self.zones.items()))
        p = self.p
        mixed = (
            f" AND NOT EXISTS (SELECT 1 FROM {p.mixed} m_ WHERE m_.cluster = h.cluster AND m_.node = h.node "
            "AND m_.day = date_trunc('day', h.ts))"
            if p.mixed
            else ""
        )
        key = f"CASE WHEN {ranges_sql('h.ts', p.days)} AND NOT {_stale(p, 'h', 'ts')}{mixed} THEN date_trunc('day', h.ts) ELSE h.ts END"
        return f"""
        SELECT {key} AS ts, h.cluster, h.node, h.namespace, h.labels, h.pod, h.mapped, h.used_s, h.energy_j, h.derived_j,
            h.energy_j * ci.gco2e_per_kwh::DOUBLE AS carbon_jg,
            CASE WHEN ci.zone IS NOT NULL THEN h.energy_j ELSE 0.0 END AS hourly_j,
            CASE WHEN ci.zone IS NULL THEN h.energy_j ELSE 0.0 END AS annual_j
        FROM ({hourly}) h LEFT JOIN {c.T_NODES} n_ USING (cluster, node)
            LEFT JOIN {self.t}_zones zr ON zr.key = n_.region LEFT JOIN {self.t}_zones zc ON zc.key = h.cluster
            LEFT JOIN {c.T_CARBON_HOURLY} ci ON ci.zone = coalesce(zr.zone, zc.zone) AND ci.hour = date_trunc('hour', h.ts)"""


def _nodes_table(con: duckdb.DuckDBPyConnection) -> str:
    """nodes_sql() as a temp table: a chargeback joins it three times, and the query takes 20-25 ms to plan and run
    at 10,000 GPUs each time. Made once per read-only connection, whose warehouse cannot change under it
    (read_memo.per_connection); on a writer made afresh for each report, as its nodes change as it writes."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_NODES_TABLE} AS {nodes_sql()}")
    return _NODES_TABLE


_NODES_TABLE = "facts_nodes"


def _by_hours(p: Plan) -> Plan:
    """The same plan with its whole days served hour by hour (the hourly rollups hold every hour a day row sums)."""
    hours: Ranges = []
    for lo, hi in sorted([*p.days, *p.hours]):
        _add(hours, lo, hi)
    return replace(p, days=[], hours=hours, mixed=None)


_NO_GROUPS = "SELECT ''::VARCHAR AS cluster, ''::VARCHAR AS node, ''::VARCHAR AS class_node WHERE FALSE"
