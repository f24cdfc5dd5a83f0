"""Reconciliation against the provider's bill: the list-priced ledger vs what the invoice charged.

Per node-hour, two figures meet:
- the ledger's: the node's hours in the hour (its capacity steps) x the list price in force, the GPUs'
  part (the same price path as the chargeback, analytics/cost/prices.py);
- the invoice's: the effective cost (FOCUS EffectiveCost: amortised reservations and Savings Plans,
  spot at the price charged, credits and refunds) of the bill lines whose resource is the node's
  instance (core/store/billing_sql.py). A line is spread evenly over the hours of its charge period; a
  line several nodes share (an Azure scale set) is split by the nodes' GPU capacity in the hour, as the
  billed prices split it (analytics/cost/bill_prices.py).

Grouped by account, instance type, node or day, with the effective discount (1 - effective / list,
the bill's own list cost where it states one), and listed apart: invoice lines of GPU instances no
cluster saw (GPU spend Kubernetes never saw), nodes no invoice line names, and the coverage (the
share of the ledger's GPU node-hours the bill prices).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import duckdb

from analytics.cost import prices
from analytics.cost.bill_prices import bill_hours, node_hours, node_keys, sharers
from analytics.cost.chargeback import ChargebackOptions, chargeback
from core.money import in_money_context, to_cents
from core.store.step_sql import MigShare
from core.timeutil import Window

BillBy = Literal["account", "instance_type", "node", "day"]
BILL_BY: tuple[BillBy, ...] = ("account", "instance_type", "node", "day")
ZERO = Decimal(0)
NO_LINE = "(no invoice line)"


@dataclass
class BillLine:
    key: str
    node_hours: Decimal = ZERO
    ledger_list: Decimal = ZERO
    invoice_effective: Decimal = ZERO
    invoice_list: Decimal = ZERO  # the bill's own list cost, where its lines state one
    ledger_billed: Decimal = ZERO  # the chargeback at billed cost (pricing.source: billing) of the same node-hours
    unpriced_node_hours: Decimal = ZERO

    def as_dict(self, by: str) -> dict[str, Any]:
        list_basis = self.invoice_list or self.ledger_list
        discount = (1 - self.invoice_effective / list_basis) * 100 if list_basis else None
        return {
            by: self.key,
            "node_hours": float(round(self.node_hours, 6)),
            "ledger_list_usd": str(to_cents(self.ledger_list)),
            "invoice_effective_usd": str(to_cents(self.invoice_effective)),
            "difference_usd": str(to_cents(self.invoice_effective) - to_cents(self.ledger_list)),
            "ledger_billed_usd": str(to_cents(self.ledger_billed)),
            "unexplained_usd": str(to_cents(self.invoice_effective) - to_cents(self.ledger_billed)),
            "effective_discount_pct": None if discount is None else float(round(discount, 2)),
            "unpriced_node_hours": float(round(self.unpriced_node_hours, 6)),
        }


@dataclass
class BillReconciliation:
    window: Window
    by: str
    lines: list[BillLine]
    coverage_pct: float  # share of the ledger's GPU node-hours priced from the bill
    outside_kubernetes: list[dict[str, Any]] = field(default_factory=list)
    nodes_without_invoice: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        total = BillLine("total")
        for line in self.lines:
            total.ledger_list += line.ledger_list
            total.invoice_effective += line.invoice_effective
            total.invoice_list += line.invoice_list
            total.node_hours += line.node_hours
            total.ledger_billed += line.ledger_billed
        totals = total.as_dict("total")
        totals.pop("total")
        return {
            "window": self.window.as_dict(),
            "by": self.by,
            "source": "billing",
            "rows": [line.as_dict(self.by) for line in self.lines],
            "totals": totals,
            "coverage_pct": self.coverage_pct,
            "outside_kubernetes": self.outside_kubernetes,
            "nodes_without_invoice": self.nodes_without_invoice,
        }


@in_money_context
def reconcile_billing(
    con: duckdb.DuckDBPyConnection, window: Window, mig_share: MigShare, by: BillBy = "instance_type"
) -> BillReconciliation:
    """The list-priced ledger vs the invoice's effective cost per `by`, for `window`; pure over the warehouse."""
    if by not in BILL_BY:
        raise ValueError(f"cannot reconcile the bill by {by!r}; choose from {', '.join(BILL_BY)}")
    params = {"start": window.start, "end": window.end}
    hours = node_hours(con, mig_share, params)
    ledger = _ledger(con, hours)
    keys = node_keys(con)
    bill = bill_hours(con, params)
    m = _Matching(by, keys, bill, sharers(hours, keys))
    for (cluster, node, hour), facts in sorted(ledger.items()):
        m.add(cluster, node, hour, *facts)
    _add_billed_ledger(con, window, mig_share, m, {(cl, n): f[2] for (cl, n, _), f in ledger.items()})
    return BillReconciliation(
        window,
        by,
        sorted(m.groups.values(), key=lambda line: line.key),
        round(100 * m.covered_s / m.total_s, 2) if m.total_s else 0.0,
        _outside(bill, m.matched, set(keys.values())),
        _without_invoice(ledger, m.node_matched),
    )


@dataclass
class _Matching:
    """Node-hours meeting their invoice lines, grouped as the report asks."""

    by: str
    keys: dict[tuple[str, str], str]
    bill: dict[tuple[str, Any], list[dict[str, Any]]]
    sharers: dict[tuple[str, Any], int]
    groups: dict[str, BillLine] = field(default_factory=dict)
    matched: set[tuple[str, Any]] = field(default_factory=set)
    node_matched: dict[tuple[str, str], bool] = field(default_factory=lambda: defaultdict(bool))
    accounts: dict[tuple[str, str], str] = field(default_factory=dict)
    total_s: int = 0
    covered_s: int = 0

    def add(
        self,
        cluster: str,
        node: str,
        hour: Any,
        node_s: int,
        list_usd: Decimal,
        itype: str,
        unpriced_s: int,
        units: int,
    ) -> None:
        key = self.keys.get((cluster, node), "")
        hits = self.bill.get((key, hour), []) if key else []
        account = hits[0]["account_id"] if hits else NO_LINE
        group = {"account": account, "instance_type": itype, "node": f"{cluster}/{node}", "day": f"{hour:%Y-%m-%d}"}
        line = self.groups.setdefault(group[self.by], BillLine(group[self.by]))
        line.node_hours += Decimal(node_s) / 3600
        line.ledger_list += list_usd
        line.unpriced_node_hours += Decimal(unpriced_s) / 3600
        if hits and units:  # a resource several nodes share (a scale set): split by the nodes' capacity in the hour
            share = Decimal(units) / Decimal(self.sharers[(key, hour)])
            line.invoice_effective += sum((hit["effective"] * share for hit in hits), ZERO)
            line.invoice_list += sum((hit["list"] * share for hit in hits), ZERO)
            self.matched.add((key, hour))
            self.accounts[(cluster, node)] = account
            self.covered_s += node_s
        self.total_s += node_s
        self.node_matched[(cluster, node)] |= bool(hits and units)


def _add_billed_ledger(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    mig_share: MigShare,
    m: _Matching,
    instance_types: dict[tuple[str, str], str],
) -> None:
    """The chargeback at billed cost, per group: what the ledger bills for the node-hours the invoice prices. The
    invoice less it is `unexplained` (0.00 wherever the ledger knows the node's GPUs in every billed hour)."""
    opts = ChargebackOptions(by=("cluster", "node", "day"), mig_share=mig_share, price_source="billing")
    for row in chargeback(con, window, opts).rows:
        cl, n = row.keys["cluster"], row.keys["node"]
        by_group = {"account": m.accounts.get((cl, n), NO_LINE), "instance_type": instance_types.get((cl, n), ""),
                    "node": f"{cl}/{n}", "day": str(row.keys["day"])[:10]}  # fmt: skip
        group = by_group[m.by]
        m.groups.setdefault(group, BillLine(group)).ledger_billed += row.exact_total


def _ledger(
    con: duckdb.DuckDBPyConnection, hours: list[tuple[Any, ...]]
) -> dict[tuple[str, str, Any], tuple[int, Decimal, str, int, int]]:
    """(cluster, node, hour) -> (node-seconds, list USD of the GPUs' part, instance type, unpriced seconds,
    capacity GPU-unit-seconds)."""
    infos = prices.load_prices(con)
    out: dict[tuple[str, str, Any], tuple[int, Decimal, str, int, int]] = {}
    for cluster, node, hour, price_id, instance_type, node_s, units in hours:
        info = infos.get(price_id) if price_id is not None else None
        usd = Decimal(int(node_s)) / 3600 * info.gpu_hour_usd * info.gpus if info else ZERO
        seen, before, _, unpriced, capacity = out.get((cluster, node, hour), (0, ZERO, instance_type, 0, 0))
        out[(cluster, node, hour)] = (seen + int(node_s), before + usd, instance_type,
                                      unpriced + (0 if info else int(node_s)), capacity + int(units))  # fmt: skip
    return out


def _outside(
    bill: dict[tuple[str, Any], list[dict[str, Any]]], matched: set[tuple[str, Any]], node_keys: set[str]
) -> list[dict[str, Any]]:
    """Invoice lines in hours no node of the ledger ran them: per resource, its hours and effective cost, and
    whether the resource is a node at other hours (the collection missed it) or no node at all (GPU spend
    Kubernetes never saw)."""
    out: dict[tuple[str, str, str, bool], list[Decimal]] = {}
    for (key, hour), hits in bill.items():
        if (key, hour) in matched:
            continue
        for hit in hits:
            what = (hit["account_id"], hit["resource_id"], hit["instance_type"], key in node_keys)
            acc = out.setdefault(what, [ZERO, ZERO])
            acc[0] += 1
            acc[1] += hit["effective"]
    return [
        {"account": a, "resource_id": r, "instance_type": it, "hours": int(h), "effective_usd": str(to_cents(usd)),
         "node_at_other_hours": known}
        for (a, r, it, known), (h, usd) in sorted(out.items())
    ]  # fmt: skip


def _without_invoice(
    ledger: dict[tuple[str, str, Any], tuple[int, Decimal, str, int, int]], node_matched: dict[tuple[str, str], bool]
) -> list[dict[str, Any]]:
    out: dict[tuple[str, str], list[Decimal]] = {}
    for (cluster, node, _), (node_s, list_usd, *_) in ledger.items():
        if node_matched[(cluster, node)]:
            continue
        acc = out.setdefault((cluster, node), [ZERO, ZERO])
        acc[0] += Decimal(node_s) / 3600
        acc[1] += list_usd
    return [
        {"cluster": cl, "node": n, "node_hours": float(round(h, 6)), "ledger_list_usd": str(to_cents(usd))}
        for (cl, n), (h, usd) in sorted(out.items())
    ]
