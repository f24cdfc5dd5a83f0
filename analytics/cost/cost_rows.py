"""Chargeback rows and their cost components (the report's data model).

Every row carries explicit components: allocated (the row's own GPU-hours at their price), idle
share, shared-cost share, adjustment (discounts), and the total, which is always their sum.
Idle and shared pools stay visible as rows (`__idle__`, `__shared__`) whose negative share shows
how much of them was handed on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core import conventions as c
from core.money import CENT, allocate_cents
from core.timeutil import Window

ZERO = Decimal(0)
SHARED = "__shared__"
COMPONENTS = ("allocated_cost_usd", "idle_share_usd", "shared_share_usd", "adjustment_usd")
# A row's dollar columns and its measures, in the order every surface shows them (CLI, dashboard, exports)
MONEY_COLUMNS = (*COMPONENTS, "cost_usd", "unused_cost_usd")
ROW_COLUMNS = ("gpu_hours", "used_gpu_hours", "efficiency", *MONEY_COLUMNS)


@dataclass(slots=True)  # a per-pod report holds ~190,000 rows at 10,000 GPUs: slots halve their build time
class Row:
    keys: dict[str, str]
    gpu_hours: float = 0.0
    used_gpu_hours: float = 0.0
    allocated: Decimal = ZERO  # exact, before rounding
    idle_share: Decimal = ZERO
    shared_share: Decimal = ZERO
    adjustment: Decimal = ZERO
    sources: set[str] = field(default_factory=set)
    price_ids: set[str] = field(default_factory=set)
    workloads: dict[str, Decimal] = field(default_factory=dict)  # workload -> exact allocated cost
    budget_usd: Decimal | None = None
    cents: dict[str, Decimal] = field(default_factory=dict)  # rounded components and total

    @property
    def exact_total(self) -> Decimal:
        return self.allocated + self.idle_share + self.shared_share + self.adjustment

    @property
    def cost_usd(self) -> Decimal:
        return self.cents.get("cost_usd", ZERO)

    @property
    def efficiency(self) -> float | None:
        if not self.gpu_hours > 0 or not math.isfinite(self.used_gpu_hours):
            return None  # nothing allocated, or stored usage no GPU can report (reports must not fail on it)
        return self.used_gpu_hours / self.gpu_hours

    @property
    def kind(self) -> str:
        values = set(self.keys.values())
        for special in (c.IDLE, SHARED, c.UNALLOCATED):
            if special in values:
                return special
        return "allocated"

    def as_dict(self) -> dict[str, Any]:
        eff = self.efficiency
        unused = (
            self.cents.get("allocated_cost_usd", ZERO) * Decimal(repr(1 - min(eff, 1.0))) if eff is not None else ZERO
        )
        return {
            **self.keys,
            "gpu_hours": round(self.gpu_hours, 6),
            "used_gpu_hours": round(self.used_gpu_hours, 6),
            "efficiency": round(eff, 6) if eff is not None else None,
            **{name: str(self.cents.get(name, ZERO)) for name in COMPONENTS},
            "cost_usd": str(self.cost_usd),
            "unused_cost_usd": str(unused.quantize(CENT)),
            "price_sources": sorted(self.sources),
        }


@dataclass
class ChargebackReport:
    window: Window
    by: tuple[str, ...]
    rows: list[Row]
    node_cost_usd: Decimal
    overhead_usd: Decimal
    capacity_gpu_hours: float
    unpriced_gpu_hours: float
    unpriced_nodes: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def total(self, kind: str | None = None) -> Decimal:
        """Sum of row totals; kind = allocated / __idle__ / __unallocated__ / __shared__ / None (all)."""
        return sum((r.cost_usd for r in self.rows if kind is None or r.kind == kind), ZERO)

    def totals(self) -> dict[str, Any]:
        return {
            "node_cost_usd": str(self.node_cost_usd),
            "overhead_usd": str(self.overhead_usd),
            "total_usd": str(self.total()),
            "allocated_cost_usd": str(self.total("allocated")),
            "idle_cost_usd": str(self.total(c.IDLE)),
            "unallocated_cost_usd": str(self.total(c.UNALLOCATED)),
            "shared_cost_usd": str(self.total(SHARED)),
            "capacity_gpu_hours": round(self.capacity_gpu_hours, 6),
            "unpriced_gpu_hours": round(self.unpriced_gpu_hours, 6),
            "unpriced_nodes": self.unpriced_nodes,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.as_dict(),
            "by": list(self.by),
            "options": self.options,
            "rows": [r.as_dict() for r in self.rows],
            "totals": self.totals(),
        }


def round_rows(rows: list[Row], grand_total: Decimal) -> None:
    """Round to cents hierarchically, each level pinned to the one above (largest remainder).

    Grand total -> first grouping key (the owner or team) -> rows -> each row's components. So the
    rows of a team always add up to exactly what a by-team report bills that team, whatever finer
    grouping is asked for, and every report adds up to the grand total.
    """
    heads: dict[str, list[Row]] = {}
    for row in rows:
        heads.setdefault(next(iter(row.keys.values()), ""), []).append(row)
    head_totals = allocate_cents(
        {h: sum((r.exact_total for r in rs), ZERO) for h, rs in heads.items()}, total=grand_total
    )
    for head, members in heads.items():
        keyed = {str(i): r for i, r in enumerate(members)}
        totals = allocate_cents({k: r.exact_total for k, r in keyed.items()}, total=head_totals[head])
        for k, row in keyed.items():
            parts = {
                name: getattr(row, attr)
                for name, attr in zip(
                    COMPONENTS, ("allocated", "idle_share", "shared_share", "adjustment"), strict=True
                )
            }
            row.cents = allocate_cents(parts, total=totals[k])
            row.cents["cost_usd"] = totals[k]


def sort_rows(rows: list[Row]) -> list[Row]:
    rank = {"allocated": 0, c.UNALLOCATED: 1, SHARED: 2, c.IDLE: 3}
    return sorted(rows, key=lambda r: (rank[r.kind], -r.cost_usd, tuple(r.keys.values())))
