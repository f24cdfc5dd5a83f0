"""FOCUS 1.2 (FinOps Open Cost and Usage Specification) rows for a chargeback.

One row per team (plus __idle__, __unallocated__, __shared__), UTC day, cluster, node pool and
price row. Money:
- EffectiveCost = the row's chargeback total (its own GPU-hours plus any idle/shared share), so it sums to
  the cost of the GPU capacity (+ overhead) exactly;
- BilledCost = EffectiveCost at list prices; at billed cost (analytics/cost/bill_prices.py), what the invoice
  billed for the same share of its node-hours (nothing for usage a commitment covers, a credit's minus);
- ListCost = the row's own GPU-hours at list (ListUnitPrice x PricingQuantity where the row has one price).
The InvoiceId is the invoice's where the row's node-hours were billed, else a provisional one per account
and month. gpuledger's own columns carry the `x_` prefix after all FOCUS columns. Validated with the
FinOps Foundation's focus-validator (tests/test_focus.py).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from analytics.cost.cost_rows import ChargebackReport, Row
from analytics.cost.prices import PriceInfo
from core.money import in_money_context

FOCUS_VERSION = "1.2"
PROVIDERS = {"aws": "AWS", "gcp": "Google Cloud", "azure": "Microsoft", "oci": "Oracle", "on_prem": "On-Premises"}
PRICING_CATEGORY = {"on_demand": "Standard", "spot": "Dynamic", "reserved": "Committed", "on_prem": "Other"}
COLUMNS = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    "x_Team",
    "x_Cluster",
    "x_NodePool",
    "x_GpuModel",
    "x_CapacityType",
    "x_GpuHours",
    "x_GpuHoursUsed",
    "x_GpuEfficiency",
    "x_EnergyKwh",
    "x_EnergyDerivedKwh",
    "x_Co2eKg",
    "x_EmbodiedCo2eKg",
    "x_AllocatedCost",
    "x_IdleShareCost",
    "x_SharedShareCost",
    "x_AdjustmentCost",
    "x_UnusedCost",
    "x_InvoicePricedCost",
    "x_AllocationMethod",
    "x_PriceSource",
)
FOCUS_BY = ("team", "day", "cluster", "node_pool", "gpu_model", "capacity_type", "instance_type", "region")


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _month(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, 1)
    return start, (start + timedelta(days=32)).replace(day=1)


def _price(row: Row, infos: dict[str, PriceInfo]) -> PriceInfo | None:
    ids = sorted(row.price_ids)
    return infos.get(ids[0]) if len(ids) == 1 else None


def _of_row(row: Row, infos: dict[str, PriceInfo]) -> tuple[str, str | None]:
    """The row's provider (FOCUS name; Unknown when its prices name none or several) and its invoices (None:
    no price came from an invoice)."""
    found = [infos[p] for p in sorted(row.price_ids) if p in infos]
    providers = {PROVIDERS.get(i.provider_name, "Unknown") for i in found}
    invoices = sorted({inv for i in found for inv in i.invoices})
    return (providers.pop() if len(providers) == 1 else "Unknown"), ("; ".join(invoices) or None)


def focus_row(
    row: Row, infos: dict[str, PriceInfo], account: str, method: str, metered: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """`metered`: price ids whose GPUs' energy was charged by the kWh: no one unit price, the row's cost its own."""
    k = row.keys
    day = date.fromisoformat(k["day"])
    start = datetime(day.year, day.month, day.day)
    bill_start, bill_end = _month(day)
    info = None if row.price_ids & metered else _price(row, infos)
    provider, invoice = _of_row(row, infos)
    quantity = Decimal(repr(round(row.gpu_hours, 9)))
    total = row.cost_usd
    exact = Decimal("0.0000000001")
    list_unit = info.list_rate if info else None
    list_cost = (list_unit * quantity).quantize(exact) if list_unit is not None else row.cents["allocated_cost_usd"]
    contracted_unit = info.gpu_hour_usd if info else None
    contracted = (
        (contracted_unit * quantity).quantize(exact)
        if contracted_unit is not None
        else row.cents["allocated_cost_usd"] + row.cents["adjustment_usd"]
    )
    team = k["team"]
    return {
        "BilledCost": total + row.cents.get("billed_delta_usd", Decimal(0)),
        "BillingAccountId": account,
        "BillingAccountName": f"gpuledger {account}",
        "BillingCurrency": "USD",
        "BillingPeriodEnd": _ts(bill_end),
        "BillingPeriodStart": _ts(bill_start),
        "ChargeCategory": "Usage",
        "ChargeClass": None,
        "ChargeDescription": f"GPU capacity on {k['instance_type'] or 'unknown nodes'} charged to {team}",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": _ts(start + timedelta(days=1)),
        "ChargePeriodStart": _ts(start),
        "ConsumedQuantity": quantity,
        "ConsumedUnit": "GPU-Hours",
        "ContractedCost": contracted,
        "ContractedUnitPrice": contracted_unit,
        "EffectiveCost": total,
        # the invoice's own, else a provisional chargeback invoice per account and month, so finance can
        # reconcile by invoice
        "InvoiceId": invoice or f"gpuledger-{account}-{bill_start:%Y-%m}",
        "InvoiceIssuerName": provider,
        "ListCost": list_cost,
        "ListUnitPrice": list_unit,
        "PricingCategory": PRICING_CATEGORY.get(k["capacity_type"], "Other"),
        "PricingQuantity": quantity,
        "PricingUnit": "GPU-Hours",
        "ProviderName": provider,
        "PublisherName": provider,
        "RegionId": k["region"] or None,
        "RegionName": k["region"] or None,
        "ServiceCategory": "Compute",
        "ServiceName": "Kubernetes GPU",
        "ServiceSubcategory": "Containers",
        "SkuId": k["instance_type"] or None,
        "SkuPriceId": info.price_id if info else None,
        "SubAccountId": k["cluster"],
        "SubAccountName": k["cluster"],
        "Tags": json.dumps({"team": team, "cluster": k["cluster"], "node_pool": k["node_pool"]}, sort_keys=True),
        "x_Team": team,
        "x_Cluster": k["cluster"],
        "x_NodePool": k["node_pool"],
        "x_GpuModel": k["gpu_model"],
        "x_CapacityType": k["capacity_type"],
        "x_GpuHours": quantity,
        "x_GpuHoursUsed": Decimal(repr(round(row.used_gpu_hours, 9))),
        "x_GpuEfficiency": round(row.efficiency, 6) if row.efficiency is not None else None,
        "x_EnergyKwh": row.kwh.get("energy_kwh"),
        "x_EnergyDerivedKwh": row.kwh.get("energy_derived_kwh"),
        "x_Co2eKg": row.kwh.get("co2e_kg"),
        "x_EmbodiedCo2eKg": row.kwh.get("embodied_co2e_kg"),
        "x_AllocatedCost": row.cents.get("allocated_cost_usd"),
        "x_IdleShareCost": row.cents.get("idle_share_usd"),
        "x_SharedShareCost": row.cents.get("shared_share_usd"),
        "x_AdjustmentCost": row.cents.get("adjustment_usd"),
        "x_UnusedCost": row.cents.get("unused_cost_usd"),
        "x_InvoicePricedCost": row.cents.get("from_bill_usd"),
        "x_AllocationMethod": method,
        "x_PriceSource": "; ".join(sorted(row.sources)),
    }


@in_money_context
def focus_rows(report: ChargebackReport, infos: dict[str, PriceInfo], account: str = "default") -> list[dict[str, Any]]:
    method = ", ".join(f"{k}={v}" for k, v in sorted(report.options.items()) if v not in ([], "0"))
    # every row with a number to carry, so each column sums to the report's (a row of used GPU-hours alone
    # carries its unused cost; a GPU on a node no source prices still drew energy)
    infos = {**infos, **report.bill_prices}
    metered = frozenset(p for _, p in report.metered)
    return [
        focus_row(r, infos, account, method, metered)
        for r in report.rows
        if r.gpu_hours or r.cost_usd or r.cents.get("unused_cost_usd") or any(r.kwh.values())
    ]
