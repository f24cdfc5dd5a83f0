"""Chargeback: who used which GPU capacity in a window, and what it cost, to the cent.

A pure function of the warehouse, an explicit window and typed options. Order of operations:
1. Per step, every node's billable GPUs (capacity) and every Running pod's GPU share (allocated),
   in exact integer GPU-unit-seconds (analytics/allocation.py), each step priced with the price
   row in force for its node (analytics/prices.py).
2. Allocated cost per pod; idle = capacity - allocated per node, price row (and day): exact, >= 0.
3. Attribution (analytics/attribution.py) and grouping into rows; used GPU-hours from DCGM.
4. Idle sharing (keep as a row, or share weighted/evenly within the cluster or node), then shared
   costs (shared namespaces/labels plus a fixed overhead) to every other row, weighted or evenly
   (analytics/sharing.py). Pools stay visible as rows whose negative share shows what moved.
5. Money is exact Decimal until the end, then rounded once: row totals pinned to the grand total
   (capacity cost + overhead) by the largest-remainder method, components pinned to their row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import duckdb

from analytics import allocation, prices, sharing
from analytics.attribution import Attribution, label_value, matches_selector, workload
from analytics.ledger import SHARED, ZERO, ChargebackReport, Row, round_rows, sort_rows
from analytics.usage import usage_facts_sql
from core import conventions as c
from core.money import to_cents
from core.timeutil import Window

UNIT_HOURS = c.GPU_UNITS * 3600


@dataclass(frozen=True)
class ChargebackOptions:
    by: tuple[str, ...] = ("team",)
    attribution: Attribution = field(default_factory=Attribution)
    mig_share: allocation.MigShare = "compute"
    idle: Literal["keep", "weighted", "even"] = "keep"
    idle_scope: Literal["cluster", "node"] = "cluster"
    shared_namespaces: tuple[str, ...] = ()
    shared_labels: tuple[str, ...] = ()  # `key=value` selectors on pod labels
    shared_overhead_usd_per_hour: Decimal = ZERO
    shared_split: Literal["weighted", "even"] = "weighted"
    fallback_gpu_hour_usd: Decimal | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "mig_share": self.mig_share,
            "idle": self.idle,
            "idle_scope": self.idle_scope,
            "shared_namespaces": list(self.shared_namespaces),
            "shared_labels": list(self.shared_labels),
            "shared_overhead_usd_per_hour": str(self.shared_overhead_usd_per_hour),
            "shared_split": self.shared_split,
        }


@dataclass
class Fleet:
    """Dimension lookups loaded once per report."""

    pods: dict[tuple[str, str, str, str], dict[str, str]]
    pods_by_name: dict[tuple[str, str, str], dict[str, str]]
    namespaces: dict[tuple[str, str], dict[str, str]]
    nodes: dict[tuple[str, str], dict[str, str]]


def chargeback(
    con: duckdb.DuckDBPyConnection, window: Window, options: ChargebackOptions | None = None
) -> ChargebackReport:
    """Chargeback rows for `window`, grouped by options.by (see allocation.GROUPABLE)."""
    opts = options or ChargebackOptions()
    bad = [b for b in opts.by if not allocation.is_groupable(b)]
    if bad:
        raise ValueError(
            f"cannot group by {', '.join(bad)}; choose from {', '.join(allocation.GROUPABLE)} or label:<key>"
        )
    by_day = "day" in opts.by
    params = {"start": window.start, "end": window.end}
    fleet = _load_fleet(con)
    infos = prices.load_prices(con)
    alloc = _rows(con, allocation.alloc_facts_sql(opts.mig_share, by_day), params)
    capacity = _rows(con, allocation.capacity_facts_sql(opts.mig_share, by_day), params)
    used = _rows(con, usage_facts_sql(by_day), params)
    builder = _Builder(opts, fleet, infos)
    builder.add_allocations(alloc)
    builder.add_capacity(capacity)
    builder.add_usage(used)
    sharing.share_idle(builder.rows, builder.idle_pools, builder.scope_weights, opts.idle, opts.idle_scope)
    overhead = opts.shared_overhead_usd_per_hour * Decimal(repr(window.hours))
    sharing.share_costs(
        builder.rows, builder.shared_keys, overhead, opts.shared_split, builder.shared_row_key(), builder.row
    )
    rows = [r for r in builder.rows.values() if r.gpu_hours or r.exact_total or r.used_gpu_hours or r.kind == c.IDLE]
    round_rows(rows, to_cents(builder.node_cost + overhead))
    return ChargebackReport(
        window=window,
        by=opts.by,
        rows=sort_rows(rows),
        node_cost_usd=to_cents(builder.node_cost),
        overhead_usd=to_cents(overhead),
        capacity_gpu_hours=builder.capacity_units / UNIT_HOURS,
        unpriced_gpu_hours=builder.unpriced_units / UNIT_HOURS,
        unpriced_nodes=sorted(builder.unpriced_nodes),
        options=opts.describe(),
    )


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, datetime]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _json(text: str | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in json.loads(text).items()} if text else {}


def _load_fleet(con: duckdb.DuckDBPyConnection) -> Fleet:
    pods: dict[tuple[str, str, str, str], dict[str, str]] = {}
    by_name: dict[tuple[str, str, str], dict[str, str]] = {}
    for cluster, ns, pod, uid, labels in con.execute(
        f"SELECT cluster, namespace, pod, uid, labels FROM {c.T_PODS} ORDER BY last_seen"
    ).fetchall():
        pods[(cluster, ns, pod, uid)] = by_name[(cluster, ns, pod)] = _json(labels)
    namespaces = {
        (cl, ns): _json(lb)
        for cl, ns, lb in con.execute(f"SELECT cluster, namespace, labels FROM {c.T_NAMESPACES}").fetchall()
    }
    cur = con.execute(allocation.nodes_sql())
    names = [d[0] for d in cur.description]
    nodes = {(r[0], r[1]): {k: str(v or "") for k, v in zip(names, r, strict=True)} for r in cur.fetchall()}
    return Fleet(pods, by_name, namespaces, nodes)


class _Builder:
    """Accumulates exact amounts into rows keyed by the requested grouping."""

    def __init__(self, opts: ChargebackOptions, fleet: Fleet, infos: Mapping[str, prices.PriceInfo]) -> None:
        self.opts, self.fleet, self.infos = opts, fleet, infos
        self.rows: dict[tuple[str, ...], Row] = {}
        self.idle_pools: dict[tuple[Any, ...], tuple[tuple[str, ...], int, Decimal]] = {}
        self.scope_weights: dict[tuple[Any, ...], dict[tuple[str, ...], Decimal]] = {}
        self.shared_keys: set[tuple[str, ...]] = set()
        self.alloc_units: dict[tuple[Any, ...], int] = {}
        self.node_cost, self.capacity_units, self.unpriced_units = ZERO, 0, 0
        self.unpriced_nodes: set[str] = set()

    # -- keys ---------------------------------------------------------------------------------
    def _key(self, pod_values: Mapping[str, str], cluster: str, node: str, day: datetime | None) -> tuple[str, ...]:
        attrs = self.fleet.nodes.get((cluster, node), {"cluster": cluster, "node": node})
        out = []
        for k in self.opts.by:
            if k in allocation.NODE_ATTRIBUTES:
                out.append(attrs.get(k, ""))
            elif k == "day":
                out.append(f"{day:%Y-%m-%d}" if day else "")
            else:
                out.append(pod_values.get(k, ""))
        if not any(k in allocation.POD_ATTRIBUTES or k.startswith("label:") for k in self.opts.by):
            out.insert(0, pod_values.get("owner", "allocated"))
        return tuple(out)

    def row(self, key: tuple[str, ...]) -> Row:
        if key not in self.rows:
            names = list(self.opts.by)
            if len(key) > len(names):
                names.insert(0, "owner")
            self.rows[key] = Row(keys=dict(zip(names, key, strict=True)))
        return self.rows[key]

    def _pod_values(self, cluster: str, ns: str, pod: str, uid: str | None) -> tuple[dict[str, str], bool]:
        labels = self.fleet.pods.get((cluster, ns, pod, uid or "")) or self.fleet.pods_by_name.get(
            (cluster, ns, pod), {}
        )
        ns_labels = self.fleet.namespaces.get((cluster, ns), {})
        team = self.opts.attribution.team(labels, ns, ns_labels)
        shared = ns in self.opts.shared_namespaces or any(matches_selector(labels, s) for s in self.opts.shared_labels)
        values = {"team": team, "namespace": ns, "pod": pod, "workload": workload(pod, labels)}
        for key in self.opts.by:
            if key.startswith("label:"):
                values[key] = label_value(labels, key.removeprefix("label:")) or c.UNALLOCATED
        values["owner"] = c.UNALLOCATED if team == c.UNALLOCATED else "allocated"
        if shared:
            values = {
                k: (SHARED if k in values and k not in ("namespace", "pod", "workload") else v)
                for k, v in values.items()
            }
            values["owner"] = SHARED
        return values, shared

    def _idle_key(self, cluster: str, node: str, day: datetime | None) -> tuple[str, ...]:
        pod_values = {
            k: c.IDLE for k in (*allocation.POD_ATTRIBUTES, *[b for b in self.opts.by if b.startswith("label:")])
        }
        pod_values["owner"] = c.IDLE
        return self._key(pod_values, cluster, node, day)

    def shared_row_key(self) -> tuple[str, ...]:
        """Where a fixed overhead lands before it is shared: `__shared__`, with no node attributes."""
        pod_values = {
            k: SHARED for k in (*allocation.POD_ATTRIBUTES, *[b for b in self.opts.by if b.startswith("label:")])
        }
        pod_values["owner"] = SHARED
        return self._key(pod_values, "", "", None)

    # -- facts --------------------------------------------------------------------------------
    def _rate(self, price_id: str | None) -> tuple[Decimal, Decimal, str | None]:
        """($ per unit-second at list, the discount per unit-second (<= 0), provenance or None)."""
        info = self.infos.get(price_id) if price_id is not None else None
        if info is None:
            return (self.opts.fallback_gpu_hour_usd or ZERO) / UNIT_HOURS, ZERO, None
        return info.list_rate / UNIT_HOURS, info.discount_gpu_hour_usd / UNIT_HOURS, info.source

    def add_allocations(self, facts: list[dict[str, Any]]) -> None:
        for f in facts:
            values, shared = self._pod_values(f["cluster"], f["namespace"], f["pod"], f["uid"])
            key = self._key(values, f["cluster"], f["node"], f["day"])
            rate, discount, source = self._rate(f["price_id"])
            units = int(f["units"])
            cost = units * (rate + discount)
            row = self.row(key)
            row.gpu_hours += units / UNIT_HOURS
            row.allocated += units * rate
            row.adjustment += units * discount
            row.workloads[values["workload"]] = row.workloads.get(values["workload"], ZERO) + cost
            if source:
                row.sources.add(source)
                row.price_ids.add(f["price_id"])
            if shared:
                self.shared_keys.add(key)
            pool = (f["cluster"], f["node"], f["price_id"], f["day"])
            self.alloc_units[pool] = self.alloc_units.get(pool, 0) + units
            scope = sharing.scope_of(self.opts.idle_scope, f["cluster"], f["node"], f["day"])
            weights = self.scope_weights.setdefault(scope, {})
            weights[key] = weights.get(key, ZERO) + cost

    def add_capacity(self, facts: list[dict[str, Any]]) -> None:
        for f in facts:
            units = int(f["units"])
            rate, discount, source = self._rate(f["price_id"])
            self.node_cost += units * (rate + discount)
            self.capacity_units += units
            if source is None:
                self.unpriced_units += units
                self.unpriced_nodes.add(f"{f['cluster']}/{f['node']}")
            idle_units = units - self.alloc_units.get((f["cluster"], f["node"], f["price_id"], f["day"]), 0)
            key = self._idle_key(f["cluster"], f["node"], f["day"])
            row = self.row(key)
            row.gpu_hours += idle_units / UNIT_HOURS
            row.allocated += idle_units * rate
            row.adjustment += idle_units * discount
            if source:
                row.sources.add(source)
                row.price_ids.add(f["price_id"])
            scope = sharing.scope_of(self.opts.idle_scope, f["cluster"], f["node"], f["day"])
            self.idle_pools[(scope, key, f["price_id"], f["node"])] = (key, idle_units, idle_units * (rate + discount))

    def add_usage(self, facts: list[dict[str, Any]]) -> None:
        for f in facts:
            if f["pod"] is None:
                key = self._idle_key(f["cluster"], f["node"], f["day"])
            else:
                values, _ = self._pod_values(f["cluster"], f["namespace"], f["pod"], f["uid"])
                key = self._key(values, f["cluster"], f["node"], f["day"])
            self.row(key).used_gpu_hours += float(f["used_s"] or 0.0) / 3600.0
