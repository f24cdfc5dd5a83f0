"""Chargeback: who used which GPU capacity in a window, and what it cost, to the cent.

A pure function of the warehouse, an explicit window and typed options. Order of operations:
1. Per step, every node's billable GPUs (capacity) and every Running pod's GPU share (allocated),
   in exact integer GPU-unit-seconds (analytics/cost/allocation.py), each step priced with the price
   row in force for its node (analytics/cost/prices.py).
2. Allocated cost per pod; idle = capacity - allocated per node, price row (and day): exact, >= 0.
3. Attribution (analytics/cost/attribution.py) and grouping into rows; used GPU-hours from DCGM.
4. Idle sharing (keep as a row, or share weighted/evenly within the cluster or node), then shared
   costs (shared namespaces/labels plus a fixed overhead) to every other row, weighted or evenly
   (analytics/cost/sharing.py). Pools stay visible as rows whose negative share shows what moved.
5. Money is exact Decimal until the end, then rounded once: row totals pinned to the grand total
   (capacity cost + overhead) by the largest-remainder method, components pinned to their row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import duckdb

from analytics.cost import allocation, fact_plan, prices, sharing
from analytics.cost.attribution import Attribution, label_value, matches_selector, workload
from analytics.cost.bill_prices import billed_prices
from analytics.cost.carbon import CarbonTable
from analytics.cost.cost_rows import JOULE_QUANTUM, SHARED, ZERO, ChargebackReport, Row, round_rows, settled, sort_rows
from analytics.cost.rates import UNIT_HOURS, Rates
from core import conventions as c
from core.money import in_money_context, to_cents
from core.store import read_memo
from core.timeutil import Window

USED_QUANTUM = Decimal("0.001")  # used GPU-seconds, as the unused cost reads them


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
    price_source: prices.PriceSource = "list"  # billing | auto: node-hours the bill prices at its cost
    carbon: CarbonTable = field(default_factory=CarbonTable)  # grid intensity and PUE (none: carbon unpriced)

    def describe(self) -> dict[str, Any]:
        return {
            "mig_share": self.mig_share,
            "idle": self.idle,
            "idle_scope": self.idle_scope,
            "shared_namespaces": list(self.shared_namespaces),
            "shared_labels": list(self.shared_labels),
            "shared_overhead_usd_per_hour": str(self.shared_overhead_usd_per_hour),
            "shared_split": self.shared_split,
            "price_source": self.price_source,
        }


@in_money_context
def chargeback(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    options: ChargebackOptions | None = None,
    *,
    use_rollups: bool = True,
) -> ChargebackReport:
    """Chargeback rows for `window`, grouped by options.by (see allocation.GROUPABLE).

    Whole days and hours come from the rollups when they are in sync with the step tables
    (analytics/cost/fact_plan.py); `use_rollups=False` reads only the step tables (the same numbers, slower).
    """
    opts = options or ChargebackOptions()
    bad = [b for b in opts.by if not allocation.is_groupable(b)]
    if bad:
        raise ValueError(
            f"cannot group by {', '.join(bad)}; choose from {', '.join(allocation.GROUPABLE)} or label:<key>"
        )
    plan, infos, billed = priced_plan(con, window, opts, use_rollups)
    builder = _Builder(opts, namespace_labels(con), infos)
    classes = fact_plan.Classes(con, plan, opts.mig_share, _grouping(opts), opts.price_source, zones=opts.carbon.zones)
    try:
        usage = classes.usage()
        builder.meter(usage)  # first: where GPUs' energy is charged as measured, their GPU-hours cost less
        builder.add_allocations(classes.alloc())
        builder.add_capacity(classes.capacity())
        builder.add_usage(usage)
    finally:
        classes.close()
    sharing.share_idle(builder.rows, builder.idle_pools, builder.scope_weights, opts.idle, opts.idle_scope)
    overhead = opts.shared_overhead_usd_per_hour * Decimal(repr(window.hours))
    sharing.share_costs(
        builder.rows,
        builder.shared_keys,
        overhead,
        opts.shared_split,
        builder.shared_row_key(),
        builder.row,
        builder.team_weights,
    )
    # a row with any number in it, so every column sums as a coarser grouping's (a fixed overhead shared out in
    # full is a row of 0.00 whose allocated and shared share cancel: in a by-owner report it is part of __shared__)
    rows = [
        r
        for r in builder.rows.values()
        if r.gpu_hours
        or r.used_gpu_hours
        or r.allocated
        or r.idle_share
        or r.shared_share
        or r.adjustment
        or r.energy_j
        or r.kind == c.IDLE
    ]
    node_cost = to_cents(settled(builder.node_cost))
    round_rows(rows, node_cost + to_cents(overhead))  # the totals the report states, added
    return ChargebackReport(
        window=window,
        by=opts.by,
        rows=sort_rows(rows),
        node_cost_usd=node_cost,
        overhead_usd=to_cents(overhead),
        capacity_gpu_hours=builder.capacity_units / UNIT_HOURS,
        unpriced_gpu_hours=builder.unpriced_units / UNIT_HOURS,
        unpriced_nodes=sorted(builder.unpriced_nodes),
        unpriced_carbon_regions=sorted(builder.unpriced_regions),
        embodied_unmatched_models=sorted(builder.unmatched_models),
        options=opts.describe(),
        bill_prices={p: billed[p] for r in rows for p in r.price_ids if p in billed},
        metered=builder.rates.metered,
    )


def priced_plan(
    con: duckdb.DuckDBPyConnection, window: Window, opts: ChargebackOptions, use_rollups: bool = True
) -> tuple[fact_plan.Plan, dict[str, prices.PriceInfo], dict[str, prices.PriceInfo]]:
    """Where the window's facts come from, every price row by id, and the invoice's prices among them (none at list
    prices). At billed cost this leaves the temp tables `prices.priced_sql` reads the bill's node-hours from."""
    infos = prices.load_prices(con)
    plan = fact_plan.plan(con, window, use_rollups)
    if opts.price_source == "list":
        return plan, infos, {}
    billed = billed_prices(con, plan, opts.mig_share, infos, use_rollups)  # the bill prices node-hours
    plan.mixed = prices.BILLED_MIXED  # days the bill prices hour by hour: read hour by hour
    return plan, {**infos, **billed}, billed


def _grouping(opts: ChargebackOptions) -> fact_plan.Grouping:
    """Keep a node's name, attributes, day and pod names apart only where the report needs them."""
    return fact_plan.Grouping(
        node="node" in opts.by or opts.idle_scope == "node",
        attributes=tuple(k for k in opts.by if k in allocation.NODE_ATTRIBUTES and k not in ("cluster", "node"))
        + (("gpu_model",) if opts.carbon.embodied and "gpu_model" not in opts.by else ()),  # embodied: per model
        # idle is shared per day whatever the grouping: a team's by-team bill is what its by-day rows add up to
        day="day" in opts.by or opts.idle != "keep",
        pods="pod" in opts.by,  # a workload is its app label; the SQL keeps the name of pods without one
    )


def labels_of(text: str | None) -> dict[str, str]:
    """Stored label JSON as a dict of strings (none: empty)."""
    return {str(k): str(v) for k, v in json.loads(text).items()} if text else {}


def namespace_labels(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict[str, str]]:
    """(cluster, namespace) -> its labels; read once per warehouse version (core/store/read_memo.py), a new dict of
    new label dicts each call (a caller may change what it gets)."""
    stored = read_memo.remember(con, "chargeback.namespace_labels", lambda: _namespace_labels(con))
    return {k: dict(v) for k, v in stored.items()}


def _namespace_labels(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict[str, str]]:
    return {
        (cl, ns): labels_of(lb)
        for cl, ns, lb in con.execute(f"SELECT cluster, namespace, labels FROM {c.T_NAMESPACES}").fetchall()
    }


def attribute(
    opts: ChargebackOptions, ns_labels: Mapping[str, str], ns: str, pod: str | None, labels: Mapping[str, str]
) -> tuple[dict[str, str], bool]:
    """A pod's values for every grouping key (team, namespace, pod, workload, label:<key>, owner), and whether its
    cost is shared (a shared namespace or label selector: its pod attributes read `__shared__`)."""
    team = opts.attribution.team(labels, ns, ns_labels)
    shared = ns in opts.shared_namespaces or any(matches_selector(labels, s) for s in opts.shared_labels)
    values = {"team": team, "namespace": ns, "pod": pod or "", "workload": workload(pod or "", labels)}
    for key in opts.by:
        if key.startswith("label:"):
            values[key] = label_value(labels, key.removeprefix("label:")) or c.UNALLOCATED
    values["owner"] = c.UNALLOCATED if team == c.UNALLOCATED else "allocated"
    if shared:
        values = {
            k: (SHARED if k in values and k not in ("namespace", "pod", "workload") else v) for k, v in values.items()
        }
        values["owner"] = SHARED
    return values, shared


class _Builder:
    """Accumulates exact amounts into rows keyed by the requested grouping."""

    def __init__(
        self,
        opts: ChargebackOptions,
        namespaces: Mapping[tuple[str, str], dict[str, str]],
        infos: Mapping[str, prices.PriceInfo],
    ) -> None:
        self.opts, self.namespaces, self.infos = opts, namespaces, infos
        self._classes: dict[tuple[str, str, str | None, str | None], tuple[dict[str, str], bool]] = {}
        self._labels: dict[str | None, dict[str, str]] = {}  # parsed label JSON, read-only
        self.rows: dict[tuple[str, ...], Row] = {}
        self.idle_pools: dict[tuple[Any, ...], sharing.Pool] = {}
        self.scope_weights: dict[tuple[Any, ...], sharing.Weights] = {}  # idle recipients per scope
        self.team_weights: sharing.Weights = {}  # shared-cost recipients
        self.shared_keys: set[tuple[str, ...]] = set()
        self.node_cost, self.capacity_units, self.unpriced_units = ZERO, 0, 0
        self.unpriced_nodes: set[str] = set()
        self.unpriced_regions: set[str] = set()  # regions without a carbon intensity
        self.unmatched_models: set[str] = set()  # GPU models without an embodied figure (when any is configured)
        self.rates = Rates(infos, opts.fallback_gpu_hour_usd)

    # -- keys ---------------------------------------------------------------------------------
    def _key(self, pod_values: Mapping[str, str], fact: Mapping[str, Any]) -> tuple[str, ...]:
        """The row a fact lands on; `fact` carries cluster, node and the node attributes grouped by."""
        day = fact.get("day")
        out = []
        for k in self.opts.by:
            if k in allocation.NODE_ATTRIBUTES:
                out.append(str(fact.get(k) or ""))
            elif k == "day":
                out.append(f"{day:%Y-%m-%d}" if day else "")
            else:
                out.append(pod_values.get(k, ""))
        if not any(k in allocation.POD_ATTRIBUTES or k.startswith("label:") for k in self.opts.by):
            out.insert(0, pod_values.get("owner", "allocated"))
        return tuple(out)

    def row(self, key: tuple[str, ...]) -> Row:
        found = self.rows.get(key)
        if found is None:
            names = self.opts.by if len(key) == len(self.opts.by) else ("owner", *self.opts.by)
            found = self.rows[key] = Row(keys=dict(zip(names, key, strict=True)))
        return found

    def _pod_values(self, f: Mapping[str, Any]) -> tuple[dict[str, str], bool]:
        """Attribution of a class of pods (namespace, labels, and the pod name when kept), cached."""
        cache_key = (f["cluster"], f["namespace"], f["labels"], f["pod"])
        found = self._classes.get(cache_key)
        if found is None:
            labels = self._labels.get(f["labels"])
            if labels is None:  # pods share few label sets (41 among 80,000 pods of the benchmark fleet)
                labels = self._labels[f["labels"]] = labels_of(f["labels"])
            ns_labels = self.namespaces.get((f["cluster"], f["namespace"]), {})
            found = self._classes[cache_key] = attribute(self.opts, ns_labels, f["namespace"], f["pod"], labels)
        return found

    def _idle_key(self, fact: Mapping[str, Any], kind: str = c.IDLE) -> tuple[str, ...]:
        """The row of a node's idle (or, kind __unhealthy__, silent GPUs') time: the kind in every pod attribute."""
        pod_values = {
            k: kind for k in (*allocation.POD_ATTRIBUTES, *[b for b in self.opts.by if b.startswith("label:")])
        }
        pod_values["owner"] = kind
        return self._key(pod_values, fact)

    def shared_row_key(self) -> tuple[str, ...]:
        """Where a fixed overhead lands before it is shared: `__shared__`, with no node attributes."""
        pod_values = {
            k: SHARED for k in (*allocation.POD_ATTRIBUTES, *[b for b in self.opts.by if b.startswith("label:")])
        }
        pod_values["owner"] = SHARED
        return self._key(pod_values, {"cluster": "", "node": "", "day": None})

    # -- facts --------------------------------------------------------------------------------
    def meter(self, usage: list[dict[str, Any]]) -> None:
        """Note the (cluster, price row) pairs whose GPUs' energy is charged as measured (analytics/cost/rates.py)."""
        self.rates.meter((f["cluster"], f["price_id"]) for f in usage if _joules(f["energy_j"]))

    def _rate(self, price_id: str | None, cluster: str) -> tuple[Decimal, Decimal, str | None]:
        return self.rates.rate(price_id, cluster)

    def _trace(self, row: Row, price_id: str | None, units: int, cost: Decimal) -> tuple[Decimal, Decimal]:
        """Note on `row` what of `cost` (`units` at `price_id`) the invoice priced, and what it billed beyond it;
        returns both amounts (zero at list prices)."""
        info = self.infos.get(price_id) if price_id is not None else None
        if info is None or not info.from_bill:
            return ZERO, ZERO
        delta = units * (info.billed_rate - info.gpu_hour_usd) / UNIT_HOURS
        row.from_bill += cost
        row.billed_delta += delta
        return cost, delta

    def add_allocations(self, rows: list[dict[str, Any]]) -> None:
        """Class rows: cluster, node (or None), node attributes, price_id, day, namespace, labels, pod, units."""
        for f in rows:
            values, shared = self._pod_values(f)
            key = self._key(values, f)
            rate, discount, source = self._rate(f["price_id"], f["cluster"])
            units = int(f["units"])
            cost = units * (rate + discount)
            row = self.row(key)
            row.gpu_hours += units / UNIT_HOURS
            row.allocated += units * rate
            row.adjustment += units * discount
            row.unused += units * rate
            row.workloads[values["workload"]] = row.workloads.get(values["workload"], ZERO) + cost
            row.embodied_g += self._embodied(units, f)
            self._trace(row, f["price_id"], units, cost)
            if source:
                row.sources.add(source)
                row.price_ids.add(f["price_id"])
            if shared:
                self.shared_keys.add(key)
            scope = sharing.scope_of(self.opts.idle_scope, f["cluster"], f["node"], f["day"])
            sharing.add_weight(self.scope_weights.setdefault(scope, {}), values["team"], key, cost, units)
            sharing.add_weight(self.team_weights, values["team"], key, units * rate, units)

    def add_capacity(self, rows: list[dict[str, Any]]) -> None:
        """Rows per cluster, node (when kept, and always for unpriced nodes), attributes, price_id, day:
        billable `units`, `idle_units` (capacity minus what pods were allocated and the unhealthy part, exact) and
        `unhealthy_units` (silent GPUs' unallocated time: its own row, never shared)."""
        for f in rows:
            units, idle_units = int(f["units"]), int(f["idle_units"])
            rate, discount, source = self._rate(f["price_id"], f["cluster"])
            self.node_cost += units * (rate + discount)
            self.capacity_units += units
            if source is None:
                self.unpriced_units += units
                for node in f.get("unpriced") or [f["node"]]:
                    self.unpriced_nodes.add(f"{f['cluster']}/{node}")
            key = self._idle_key(f)
            traced = self._bill(key, idle_units, rate, discount, source, f["price_id"])
            self.row(key).embodied_g += self._embodied(idle_units, f)
            if f["unhealthy_units"]:
                sick = self._idle_key(f, c.UNHEALTHY)
                self._bill(sick, int(f["unhealthy_units"]), rate, discount, source, f["price_id"])
                self.row(sick).embodied_g += self._embodied(int(f["unhealthy_units"]), f)
            scope = sharing.scope_of(self.opts.idle_scope, f["cluster"], f["node"], f["day"])
            self.idle_pools[(scope, key, f["price_id"], f["node"])] = sharing.Pool(
                key, idle_units * (rate + discount), *traced
            )

    def _bill(
        self, key: tuple[str, ...], units: int, rate: Decimal, discount: Decimal, source: str | None, price_id: str
    ) -> tuple[Decimal, Decimal]:
        """Bill `units` of idle (or unhealthy) time to `key`; returns what the invoice priced of it and billed beyond."""
        row = self.row(key)
        row.gpu_hours += units / UNIT_HOURS
        row.allocated += units * rate
        row.adjustment += units * discount
        row.unused += units * rate  # nobody's time on it is used, but for activity no pod is mapped to (add_usage)
        if source:
            row.sources.add(source)
            row.price_ids.add(price_id)
        return self._trace(row, price_id, units, units * (rate + discount))

    def _embodied(self, units: int, fact: Mapping[str, Any]) -> Decimal:
        """The amortised manufacturing carbon (g) of `units` GPU-unit-seconds of the fact's GPU model (none when
        embodied carbon is off; a model without a figure is named in the totals)."""
        if not self.opts.carbon.embodied or not units:
            return ZERO
        per_hour = self.opts.carbon.embodied_per_gpu_hour(fact.get("gpu_model"))
        if per_hour is None:
            self.unmatched_models.add(fact.get("gpu_model") or "(no GPU model)")
            return ZERO
        return units * per_hour / UNIT_HOURS

    def _add_carbon(self, row: Row, joules: Decimal, fact: Mapping[str, Any]) -> None:
        """The fact's energy in gCO2e at its node's region and facility (or unpriced carbon, its region named): the
        part in hours its zone's imported intensity covers at that hour's intensity, the rest at the annual one."""
        info = self.infos.get(fact["price_id"]) if fact["price_id"] else None
        provider = info.provider_name if info else ""
        if "annual_j" in fact:  # carbon.zones: usage read hour by hour
            hourly_j = _joules(fact["hourly_j"])
            if hourly_j:
                weighted = Decimal(repr(float(fact["carbon_jg"]))).quantize(JOULE_QUANTUM)
                row.co2e_g += self.opts.carbon.hourly_grams(weighted, fact["cluster"], provider)
                row.hourly_carbon_j += hourly_j
            joules = _joules(fact["annual_j"])
            if not joules:
                return
        grams = self.opts.carbon.grams(joules, fact["carbon_region"], fact["cluster"], provider)
        if grams is None:
            row.unpriced_carbon_j += joules
            self.unpriced_regions.add(fact["carbon_region"] or "(no region label)")
        else:
            row.co2e_g += grams

    def add_usage(self, rows: list[dict[str, Any]]) -> None:
        """Used GPU-seconds and GPU energy per class and price row: used GPU-hours, energy, and the unused cost
        (allocated minus used, both at the list price in force) that falls with them."""
        for f in rows:
            values = self._pod_values(f)[0] if f["mapped"] else None
            if values is not None:
                key = self._key(values, f)
            else:  # no pod: an idle GPU's, or (c.UNHEALTHY) what a GPU drew while it sent nothing
                key = self._idle_key(f, c.UNHEALTHY if f["namespace"] == c.UNHEALTHY else c.IDLE)
            used_s = float(f["used_s"] or 0.0)
            row = self.row(key)
            row.used_gpu_hours += used_s / 3600.0
            joules = _joules(f["energy_j"])
            row.energy_j += joules
            row.derived_j += _joules(f["derived_j"])
            if joules:
                self._add_carbon(row, joules, f)
                self._charge_energy(row, key, joules, f, values)
            if math.isfinite(used_s):
                # to the millisecond: DuckDB sums floats in parallel, so the last bits of used_s vary between runs;
                # the money moves by far less than a cent, and a report is the same on every read
                used = Decimal(repr(used_s)).quantize(USED_QUANTUM)
                row.unused -= used * c.GPU_UNITS * self._rate(f["price_id"], f["cluster"])[0]

    def _charge_energy(
        self, row: Row, key: tuple[str, ...], joules: Decimal, f: Mapping[str, Any], values: dict[str, str] | None
    ) -> None:
        """Where the fact's price charges measured energy: its kWh at that price, on the row that drew them (a pod's
        own cost, weighing as its allocation does; an idle GPU's, shared out with the idle; a silent GPU's, kept)."""
        cost = self.rates.energy_cost(joules, f["cluster"], f["price_id"])
        if cost is None:
            return
        row.allocated += cost
        row.energy_usd += cost
        row.unused += cost if values is None else ZERO  # energy no pod drew bought nothing
        self.node_cost += cost
        scope = sharing.scope_of(self.opts.idle_scope, f["cluster"], f["node"], f["day"])
        if values is not None:
            row.workloads[values["workload"]] = row.workloads.get(values["workload"], ZERO) + cost
            sharing.add_weight(self.scope_weights.setdefault(scope, {}), values["team"], key, cost, 0)
            sharing.add_weight(self.team_weights, values["team"], key, cost, 0)
        elif f["namespace"] != c.UNHEALTHY:
            pool = (scope, key, f["price_id"], f["node"], "energy")
            before = self.idle_pools.get(pool)
            self.idle_pools[pool] = sharing.Pool(key, cost + (before.cost if before else ZERO))


def _joules(value: float | None) -> Decimal:
    """A fact's joules as an exact Decimal to the millijoule (stored values no GPU can report count as none)."""
    return Decimal(repr(value)).quantize(JOULE_QUANTUM) if value is not None and math.isfinite(value) else ZERO
