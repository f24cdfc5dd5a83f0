"""Chargeback rows and their cost components (the report's data model).

Every row carries explicit components: allocated (the row's own GPU-hours at their price), idle
share, shared-cost share, adjustment (discounts), and the total, which is always their sum.
Idle and shared pools stay visible as rows (`__idle__`, `__shared__`) whose negative share shows
how much of them was handed on. `__unhealthy__` rows hold the idle time of GPUs that stopped reporting
(fallen off the bus, exporter down): billed by the provider, kept in the ledger, never shared out.

Every additive column (GPU-hours, used GPU-hours, each cost component, the unused cost) is a sum over
pod x step facts, so any grouping's rows add up to a coarser grouping's; ratios (efficiency) are
recomputed from sums, never averaged. Surfaces that group rows coarser sum ADDITIVE_COLUMNS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from analytics.cost.prices import PriceInfo
from core import conventions as c
from core.money import CENT, allocate_cents, to_cents
from core.timeutil import Window

ZERO = Decimal(0)
SHARED = "__shared__"
COMPONENTS = ("allocated_cost_usd", "idle_share_usd", "shared_share_usd", "adjustment_usd")
# A row's dollar columns and its measures, in the order every surface shows them (CLI, dashboard, exports)
# from_bill_usd: the part of cost_usd priced from the invoice (pricing.source billing|auto); the rest is the price
# table's
MONEY_COLUMNS = (*COMPONENTS, "cost_usd", "unused_cost_usd", "from_bill_usd")
# energy measured at the GPU (kWh), and the part of it integrated from power where a GPU has no energy counter
# and its carbon: kWh x PUE x the grid's intensity in the node's region (analytics/cost/carbon.py)
ENERGY_COLUMNS = ("energy_kwh", "energy_derived_kwh", "co2e_kg", "embodied_co2e_kg")
ROW_COLUMNS = ("gpu_hours", "used_gpu_hours", "efficiency", *ENERGY_COLUMNS, *MONEY_COLUMNS)
# What a coarser grouping sums; its efficiency is then used_gpu_hours / gpu_hours of the sums
ADDITIVE_COLUMNS = ("gpu_hours", "used_gpu_hours", *ENERGY_COLUMNS, *MONEY_COLUMNS)
# kWh are rounded to the milliwatt-hour (3.6 J) once, pinned like cents: the rows add up to the fleet's kWh exactly
KWH_UNIT = Decimal("0.000001")
# a fact's joules, to the millijoule (the energy counter's unit): DuckDB's float sums vary in their last bits
JOULE_QUANTUM = Decimal("0.001")
_PARTS = tuple(zip(COMPONENTS, ("allocated", "idle_share", "shared_share", "adjustment"), strict=True))
# Sums are settled before they are rounded to cents: the same amount summed over another grouping differs in its
# 40th digit (divisions) or, for usage, its 15th (DuckDB doubles summed in any order); an exact half cent must
# round the same way whatever the grouping
EXACT_NOISE, USAGE_NOISE = Decimal("1e-20"), Decimal("1e-9")


def settled(value: Decimal, unit: Decimal = EXACT_NOISE) -> Decimal:
    return value.quantize(unit) if value.adjusted() < 18 else value  # (beyond $10^18 no cent survives anyway)


@dataclass(slots=True)  # a per-pod report holds ~190,000 rows at 10,000 GPUs: slots halve their build time
class Row:
    keys: dict[str, str]
    gpu_hours: float = 0.0
    used_gpu_hours: float = 0.0
    allocated: Decimal = ZERO  # exact, before rounding
    idle_share: Decimal = ZERO
    shared_share: Decimal = ZERO
    adjustment: Decimal = ZERO
    # allocated minus used GPU-hours, each at the list price in force where it ran: linear, so it sums exactly
    # from pod x step upward (a time-sliced pod using more than its share makes it negative; never clipped per row)
    unused: Decimal = ZERO
    # amounts that travel with the cost they are part of (shared out with it, in proportion): the cost priced from
    # the invoice, and what the invoice billed beyond that effective cost (FOCUS BilledCost - EffectiveCost)
    from_bill: Decimal = ZERO
    billed_delta: Decimal = ZERO
    energy_j: Decimal = ZERO  # exact, before rounding: the GPU energy of the row's facts (J)
    derived_j: Decimal = ZERO  # the part of it integrated from power (no energy counter)
    co2e_g: Decimal = ZERO  # its carbon, exact
    unpriced_carbon_j: Decimal = ZERO  # energy drawn in regions without a carbon intensity
    embodied_g: Decimal = ZERO  # the GPUs' amortised manufacturing carbon over the row's GPU-hours, exact
    hourly_carbon_j: Decimal = ZERO  # the part of its energy priced at an hourly grid intensity
    energy_usd: Decimal = ZERO  # the part of `allocated` that is measured energy charged by the kWh (on-prem), exact
    kwh: dict[str, Decimal] = field(default_factory=dict)  # rounded energy columns
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
        for special in (c.IDLE, c.UNHEALTHY, SHARED, c.UNALLOCATED):
            if special in values:
                return special
        return "allocated"

    def as_dict(self) -> dict[str, Any]:
        eff = self.efficiency
        return {
            **self.keys,
            "gpu_hours": round(self.gpu_hours, 6),
            "used_gpu_hours": round(self.used_gpu_hours, 6),
            "efficiency": round(eff, 6) if eff is not None else None,
            **{name: float(self.kwh.get(name, ZERO)) for name in ENERGY_COLUMNS},
            **{name: str(self.cents.get(name, ZERO)) for name in COMPONENTS},
            "cost_usd": str(self.cost_usd),
            "unused_cost_usd": str(self.cents.get("unused_cost_usd", ZERO)),
            "from_bill_usd": str(self.cents.get("from_bill_usd", ZERO)),
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
    unpriced_carbon_regions: list[str] = field(default_factory=list)
    embodied_unmatched_models: list[str] = field(default_factory=list)  # GPU models embodied carbon has no figure for
    options: dict[str, Any] = field(default_factory=dict)
    bill_prices: dict[str, PriceInfo] = field(default_factory=dict)  # the invoice's prices the rows name
    # (cluster, price_id) -> the price its GPU-hours paid where their measured energy was charged by the kWh
    metered: dict[tuple[str, str], PriceInfo] = field(default_factory=dict)

    def total(self, kind: str | None = None) -> Decimal:
        """Sum of row totals; kind = allocated / __idle__ / __unhealthy__ / __unallocated__ / __shared__ / None (all)."""
        return sum((r.cost_usd for r in self.rows if kind is None or r.kind == kind), ZERO)

    def totals(self) -> dict[str, Any]:
        return {
            "node_cost_usd": str(self.node_cost_usd),
            "overhead_usd": str(self.overhead_usd),
            "total_usd": str(self.total()),
            "allocated_cost_usd": str(self.total("allocated")),
            "idle_cost_usd": str(self.total(c.IDLE)),
            "unhealthy_cost_usd": str(self.total(c.UNHEALTHY)),
            "unallocated_cost_usd": str(self.total(c.UNALLOCATED)),
            "shared_cost_usd": str(self.total(SHARED)),
            **{name: float(sum((r.kwh.get(name, ZERO) for r in self.rows), ZERO)) for name in ENERGY_COLUMNS},
            # energy drawn where the grid's carbon intensity is unknown: not in co2e_kg, and not taken as zero
            "carbon_unpriced_kwh": float(sum((r.kwh.get("carbon_unpriced_kwh", ZERO) for r in self.rows), ZERO)),
            "carbon_unpriced_regions": self.unpriced_carbon_regions,
            "carbon_hourly_kwh": float(sum((r.kwh.get("carbon_hourly_kwh", ZERO) for r in self.rows), ZERO)),
            "embodied_unmatched_models": self.embodied_unmatched_models,
            # the part of node_cost_usd that is GPUs' measured energy at the electricity price (on-prem, measured)
            "energy_cost_usd": str(to_cents(settled(sum((r.energy_usd for r in self.rows), ZERO)))),
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

    Grand total -> first grouping key (the owner or team) -> that head's components -> rows; a row's
    components sum to its total, and across a head's rows each component sums to the head's. The unused
    cost is rounded the same way (head, then rows). So the rows of a team add up, in every column, to
    exactly what a by-team report shows for that team, whatever finer grouping is asked for, and every
    report adds up to the grand total.
    """
    heads: dict[str, list[Row]] = {}
    for row in rows:
        heads.setdefault(next(iter(row.keys.values()), ""), []).append(row)
    head_totals = allocate_cents(
        {h: settled(sum((r.exact_total for r in rs), ZERO)) for h, rs in heads.items()}, total=grand_total
    )
    for head, members in heads.items():
        _round_head(members, head_totals[head])
    kwh, kg = Decimal(3_600_000), Decimal(1000)  # J per kWh, g per kg
    _round_energy(heads, "energy_kwh", lambda r: r.energy_j / kwh)
    _round_energy(heads, "energy_derived_kwh", lambda r: r.derived_j / kwh)
    _round_energy(heads, "co2e_kg", lambda r: r.co2e_g / kg)
    _round_energy(heads, "embodied_co2e_kg", lambda r: r.embodied_g / kg)
    _round_energy(heads, "carbon_unpriced_kwh", lambda r: r.unpriced_carbon_j / kwh)
    _round_energy(heads, "carbon_hourly_kwh", lambda r: r.hourly_carbon_j / kwh)


def _round_energy(heads: dict[str, list[Row]], name: str, exact_of: Callable[[Row], Decimal]) -> None:
    """kWh (kg) per row, pinned like the cents: the fleet's total, then each head's, then its rows."""
    exact = {h: [exact_of(r) for r in rows] for h, rows in heads.items()}
    if not any(v for values in exact.values() for v in values):  # a column nobody has (no carbon, no power-only GPU)
        for rows in heads.values():
            for row in rows:
                row.kwh[name] = ZERO
        return
    fleet = sum((v for values in exact.values() for v in values), ZERO)
    head_kwh = allocate_cents({h: sum(v, ZERO) for h, v in exact.items()}, unit=KWH_UNIT,
                              total=fleet.quantize(KWH_UNIT))  # fmt: skip
    for head, rows in heads.items():
        parts = allocate_cents({str(i): v for i, v in enumerate(exact[head])}, total=head_kwh[head], unit=KWH_UNIT)
        for i, row in enumerate(rows):
            row.kwh[name] = parts[str(i)]


def _round_head(members: list[Row], total: Decimal) -> None:
    keyed = {str(i): r for i, r in enumerate(members)}
    exact = {name: {k: getattr(r, attr) for k, r in keyed.items()} for name, attr in _PARTS}
    targets = allocate_cents({name: settled(sum(col.values(), ZERO)) for name, col in exact.items()}, total=total)
    totals = allocate_cents({k: r.exact_total for k, r in keyed.items()}, total=total)
    cells = {k: allocate_cents({name: exact[name][k] for name in COMPONENTS}, total=totals[k]) for k in keyed}
    _balance(cells, exact, targets)
    unused = {k: r.unused for k, r in keyed.items()}
    unused_cents = allocate_cents(unused, total=to_cents(settled(sum(unused.values(), ZERO), USAGE_NOISE)))
    # the invoice's part of a row is its total less its list-priced part, so the two add up to the row's cost
    billed = any(r.from_bill for r in members)
    listed = _head_cents({k: r.exact_total - r.from_bill for k, r in keyed.items()}) if billed else {}
    delta = _head_cents({k: r.billed_delta for k, r in keyed.items()})
    for k, row in keyed.items():
        row.cents = {**cells[k], "cost_usd": totals[k], "unused_cost_usd": unused_cents[k],
                     "from_bill_usd": totals[k] - listed[k] if billed else ZERO, "billed_delta_usd": delta[k]}  # fmt: skip


def _head_cents(exact: dict[str, Decimal]) -> dict[str, Decimal]:
    """A traced amount's cents per row, summing to the head's rounded total (all zero without a bill)."""
    if not any(exact.values()):
        return dict.fromkeys(exact, ZERO)
    return allocate_cents(exact, total=to_cents(settled(sum(exact.values(), ZERO))))


def _balance(
    cells: dict[str, dict[str, Decimal]], exact: dict[str, dict[str, Decimal]], targets: dict[str, Decimal]
) -> None:
    """Move single cents between a row's components (its total unchanged) until every component column sums
    to its target. A cent moves from a component rounded up to one rounded down in the same row where
    there is one (else to one that is not zero), so each cell stays within a cent or two of its exact value."""
    excess = {n: int((sum((row[n] for row in cells.values()), ZERO) - targets[n]) / CENT) for n in COMPONENTS}
    queues: dict[tuple[str, str], list[tuple[int, int, Decimal, str]]] = {}

    def candidates(src: str, dst: str) -> list[tuple[int, int, Decimal, str]]:
        found = [
            (
                int(cells[k][dst] < exact[dst][k]),
                int(exact[dst][k] != 0),
                cells[k][src] - exact[src][k] + exact[dst][k] - cells[k][dst],
                k,
            )
            for k in cells
            if cells[k][src] > exact[src][k]
        ]
        return sorted(found)  # popped from the end: the best first

    def usable(entry: tuple[int, int, Decimal, str], src: str) -> bool:
        return cells[entry[3]][src] > exact[src][entry[3]]

    while any(excess.values()):
        src = max(COMPONENTS, key=lambda n: excess[n])
        dst = min(COMPONENTS, key=lambda n: excess[n])
        queue = queues.get((src, dst), [])
        while queue and not usable(queue[-1], src):
            queue.pop()
        if not queue:  # built when first needed, rebuilt when used up (earlier moves make new candidates)
            queue = queues[(src, dst)] = candidates(src, dst)
        if not queue:
            raise AssertionError(f"cannot balance {src} against {dst}: no cell of {src} was rounded up")
        k = queue.pop()[3]
        cells[k][src] -= CENT
        cells[k][dst] += CENT
        excess[src] -= 1
        excess[dst] += 1


def sort_rows(rows: list[Row]) -> list[Row]:
    rank = {"allocated": 0, c.UNALLOCATED: 1, SHARED: 2, c.IDLE: 3, c.UNHEALTHY: 4}
    return sorted(rows, key=lambda r: (rank[r.kind], -r.cost_usd, tuple(r.keys.values())))
