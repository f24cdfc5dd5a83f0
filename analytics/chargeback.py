"""Chargeback: who used which GPU capacity in a window, and what it cost, to the cent.

Pure function of the warehouse and an explicit window. The order of operations:
1. Per step, every node's billable GPUs (capacity) and every Running pod's GPU share (allocated),
   both in exact integer GPU-unit-seconds (analytics/allocation.py).
2. Each node-step is priced with the price row in force at that step (price history), matched on
   instance type, capacity type and region; GPUs get the node's whole price (price / GPUs).
3. Idle = capacity - allocated, per price row and node attributes: it is exact, never negative.
4. Money is computed in Decimal from the integer units, then rounded to cents with the
   largest-remainder method across all rows, so rows always sum to the capacity's cost.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb

from analytics import allocation, usage
from analytics.prices import gpu_hour_usd
from core import conventions as c
from core.money import allocate_cents, to_cents
from core.timeutil import Window

ZERO = Decimal(0)
PRICE_KEY = (
    "provider",
    "p_instance_type",
    "p_capacity_type",
    "p_region",
    "effective_from",
    "price_per_hour_usd",
    "price_gpus",
    "source",
)


@dataclass
class ChargebackRow:
    keys: dict[str, str]
    gpu_hours: float
    used_gpu_hours: float
    allocated_cost_usd: Decimal
    idle_share_usd: Decimal = ZERO
    shared_share_usd: Decimal = ZERO
    adjustment_usd: Decimal = ZERO
    cost_usd: Decimal = ZERO
    price_sources: list[str] = field(default_factory=list)

    @property
    def efficiency(self) -> float | None:
        return self.used_gpu_hours / self.gpu_hours if self.gpu_hours > 0 else None

    def as_dict(self) -> dict[str, Any]:
        eff = self.efficiency
        return {
            **self.keys,
            "gpu_hours": round(self.gpu_hours, 6),
            "used_gpu_hours": round(self.used_gpu_hours, 6),
            "efficiency": round(eff, 6) if eff is not None else None,
            "allocated_cost_usd": str(self.allocated_cost_usd),
            "idle_share_usd": str(self.idle_share_usd),
            "shared_share_usd": str(self.shared_share_usd),
            "adjustment_usd": str(self.adjustment_usd),
            "cost_usd": str(self.cost_usd),
            "price_sources": self.price_sources,
        }


@dataclass
class ChargebackReport:
    window: Window
    by: tuple[str, ...]
    rows: list[ChargebackRow]
    node_cost_usd: Decimal
    capacity_gpu_hours: float
    unpriced_gpu_hours: float

    def total(self, key: str | None = None) -> Decimal:
        """Sum of row costs; key=IDLE / UNALLOCATED / None (= every row)."""
        return sum((r.cost_usd for r in self.rows if key is None or self.kind(r) == key), ZERO)

    def kind(self, row: ChargebackRow) -> str:
        values = set(row.keys.values())
        if c.IDLE in values:
            return c.IDLE
        if row.keys.get("team") == c.UNALLOCATED or c.UNALLOCATED in values:
            return c.UNALLOCATED
        return "allocated"

    def totals(self) -> dict[str, Any]:
        return {
            "node_cost_usd": str(self.node_cost_usd),
            "allocated_cost_usd": str(self.total("allocated")),
            "idle_cost_usd": str(self.total(c.IDLE)),
            "unallocated_cost_usd": str(self.total(c.UNALLOCATED)),
            "capacity_gpu_hours": round(self.capacity_gpu_hours, 6),
            "unpriced_gpu_hours": round(self.unpriced_gpu_hours, 6),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.as_dict(),
            "by": list(self.by),
            "rows": [r.as_dict() for r in self.rows],
            "totals": self.totals(),
        }


def _query(by: tuple[str, ...], team_label: str) -> str:
    node_cols = [a for a in allocation.NODE_ATTRIBUTES if a in by]
    pod_cols = ["team"] + [a for a in ("namespace", "pod") if a in by]
    select_cols = ", ".join(
        [f"f.{p}" for p in pod_cols] + [f"n.{a}" if a not in ("cluster", "node") else f"f.{a}" for a in node_cols]
    )
    return f"""
    WITH facts AS ({allocation.step_facts_sql(team_label)}),
    nodes_ AS (
        SELECT cluster, node, coalesce(node_pool, '') AS node_pool, coalesce(gpu_model, '') AS gpu_model,
            coalesce(capacity_type, 'on_demand') AS capacity_type, coalesce(instance_type, '') AS instance_type,
            coalesce(region, '') AS region
        FROM {c.T_NODES}),
    f_n AS (SELECT f.*, n.instance_type AS n_it, n.capacity_type AS n_ct, n.region AS n_rg FROM facts f LEFT JOIN nodes_ n USING (cluster, node)),
    priced AS (
        SELECT f_n.*, p.provider, p.instance_type AS p_instance_type, p.capacity_type AS p_capacity_type,
            p.region AS p_region, p.effective_from, p.price_per_hour_usd, p.gpus AS price_gpus, p.source
        FROM f_n ASOF LEFT JOIN {c.T_PRICES} p
            ON p.instance_type = f_n.n_it AND p.capacity_type = f_n.n_ct AND p.region = f_n.n_rg
            AND f_n.ts >= p.effective_from)
    SELECT f.kind, {select_cols + ", " if select_cols else ""}{", ".join("f." + k for k in PRICE_KEY)},
        sum(f.units) AS units
    FROM priced f LEFT JOIN nodes_ n USING (cluster, node)
    GROUP BY ALL
    """


def chargeback(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    by: tuple[str, ...] = ("team",),
    team_label: str = c.TEAM_LABEL,
    fallback_gpu_hour_usd: Decimal | None = None,
) -> ChargebackReport:
    """Chargeback rows for `window` grouped by `by` (see allocation.GROUPABLE)."""
    unknown = [b for b in by if b not in allocation.GROUPABLE]
    if unknown:
        raise ValueError(f"cannot group by {', '.join(unknown)}; choose from {', '.join(allocation.GROUPABLE)}")
    params = [window.start, window.end] * 3
    cur = con.execute(_query(by, team_label), params)
    names = [d[0] for d in cur.description]
    facts = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    used = usage.used_gpu_hours(con, window, by, team_label)
    return _assemble(window, by, facts, used, fallback_gpu_hour_usd)


def _price_per_unit_second(fact: dict[str, Any], fallback: Decimal | None) -> tuple[Decimal, str | None]:
    """$ per GPU-unit-second, and the provenance string (None when unpriced)."""
    per_hour_units = Decimal(c.GPU_UNITS) * 3600
    if fact["price_per_hour_usd"] is None:
        return (fallback or ZERO) / per_hour_units, None
    gpu_hour = gpu_hour_usd(fact["price_per_hour_usd"], fact["price_gpus"])
    source = (
        f"{fact['provider']}/{fact['p_region']}/{fact['p_instance_type']}/{fact['p_capacity_type']}"
        f"@{fact['effective_from']:%Y-%m-%d}" + (f" ({fact['source']})" if fact["source"] else "")
    )
    return gpu_hour / per_hour_units, source


def _assemble(
    window: Window,
    by: tuple[str, ...],
    facts: list[dict[str, Any]],
    used: dict[tuple[str, ...], float],
    fallback: Decimal | None,
) -> ChargebackReport:
    node_keys = [a for a in allocation.NODE_ATTRIBUTES if a in by]
    pod_keys = [a for a in allocation.POD_ATTRIBUTES if a in by]
    exact: dict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    units: dict[tuple[str, ...], int] = defaultdict(int)
    sources: dict[tuple[str, ...], set[str]] = defaultdict(set)
    idle_units: dict[tuple[Any, ...], int] = defaultdict(int)
    node_cost, capacity_units, unpriced_units = ZERO, 0, 0
    for f in facts:
        rate, source = _price_per_unit_second(f, fallback)
        n_units = int(f["units"])
        node_part = tuple(str(f[k]) for k in node_keys)
        price_part = tuple(str(f[k]) for k in PRICE_KEY)
        if f["kind"] == "capacity":
            node_cost += n_units * rate
            capacity_units += n_units
            unpriced_units += n_units if source is None else 0
            idle_units[node_part + price_part] += n_units
            continue
        idle_units[node_part + price_part] -= n_units
        key = _row_key(f, pod_keys, node_part)
        exact[key] += n_units * rate
        units[key] += n_units
        if source:
            sources[key].add(source)
    for idle_key, n_units in idle_units.items():
        fact = dict(zip(PRICE_KEY, _restore_price(facts, idle_key[len(node_keys) :]), strict=True))
        rate, source = _price_per_unit_second(fact, fallback)
        key = tuple(c.IDLE for _ in pod_keys) + idle_key[: len(node_keys)]
        if not pod_keys:
            key = (c.IDLE,) + key
        exact[key] += n_units * rate
        units[key] += n_units
        if source:
            sources[key].add(source)
    return _report(
        window, by, pod_keys, node_keys, exact, units, sources, used, node_cost, capacity_units, unpriced_units
    )


def _row_key(f: dict[str, Any], pod_keys: list[str], node_part: tuple[str, ...]) -> tuple[str, ...]:
    if pod_keys:
        return tuple(str(f[k]) for k in pod_keys) + node_part
    # Grouped by node attributes only: allocated rows still keep unallocated pods apart.
    return ((c.UNALLOCATED if f["team"] == c.UNALLOCATED else ""),) + node_part


def _restore_price(facts: list[dict[str, Any]], price_part: tuple[str, ...]) -> tuple[Any, ...]:
    for f in facts:
        if tuple(str(f[k]) for k in PRICE_KEY) == price_part:
            return tuple(f[k] for k in PRICE_KEY)
    raise AssertionError("price key without a fact")


def _report(
    window: Window,
    by: tuple[str, ...],
    pod_keys: list[str],
    node_keys: list[str],
    exact: dict[tuple[str, ...], Decimal],
    units: dict[tuple[str, ...], int],
    sources: dict[tuple[str, ...], set[str]],
    used: dict[tuple[str, ...], float],
    node_cost: Decimal,
    capacity_units: int,
    unpriced_units: int,
) -> ChargebackReport:
    names = pod_keys + node_keys if pod_keys else ["owner"] + node_keys
    str_keys = {"|".join(k): k for k in exact}
    cents = allocate_cents({s: exact[k] for s, k in str_keys.items()})
    unit_hours = c.GPU_UNITS * 3600
    rows = []
    for s, key in str_keys.items():
        if not pod_keys and key[0] == "" and units[key] == 0:
            continue
        keys = dict(zip(names, key, strict=True))
        if not pod_keys:
            keys["owner"] = key[0] or "allocated"
        rows.append(
            ChargebackRow(
                keys=keys,
                gpu_hours=units[key] / unit_hours,
                used_gpu_hours=used.get(key, 0.0),
                allocated_cost_usd=cents[s],
                cost_usd=cents[s],
                price_sources=sorted(sources[key]),
            )
        )
    rows.sort(key=lambda r: (_special_rank(r.keys), -r.cost_usd, tuple(r.keys.values())))
    return ChargebackReport(
        window, by, rows, to_cents(node_cost), capacity_units / unit_hours, unpriced_units / unit_hours
    )


def _special_rank(keys: dict[str, str]) -> int:
    values = set(keys.values())
    return 2 if c.IDLE in values else 1 if c.UNALLOCATED in values else 0
