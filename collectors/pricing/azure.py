"""Azure prices from Retail Prices API pages (`prices.azure.com/api/retail/prices`).

The traps, each handled by a rule rather than by the unit of measure (which says "1 Hour" everywhere):
- `type` Consumption is pay-as-you-go; Reservation rows carry the price of the WHOLE term in
  retailPrice (1 Year = 8,760 h, 3 Years = 26,280 h), so the hourly rate is price / hours;
  DevTestConsumption is a discounted dev/test rate and never what production nodes pay.
- Spot and Low Priority are not types but suffixes of meterName/skuName ("NC4as T4 v3 Spot"). AKS spot
  node pools run Spot VMs; Low Priority (Batch, legacy scale sets) is a different mode and is skipped.
- Windows prices are separate products ("... Series Windows") and are skipped.
- Numbers are JSON numbers: they are read as Decimal, never float.
The VM size's GPUs come from collectors/gpu_catalog.AZURE; a size not listed there is skipped.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from collectors.pricing import gpu_catalog
from collectors.pricing.price_table import ImportOptions, Parsed, PriceRow, finish, money, timestamp
from core import conventions as c
from core.errors import InputError

TERMS = {"1 Year": "1yr", "3 Years": "3yr"}


def parse_page(doc: dict[str, Any], source: str, options: ImportOptions) -> Parsed:
    return parse_pages([(doc, source)], source, options)


def parse_pages(pages: list[tuple[dict[str, Any], str]], source: str, options: ImportOptions) -> Parsed:
    rows: list[PriceRow] = []
    skipped: Counter[str] = Counter()
    for doc, page in pages:
        items = doc.get("Items")
        if not isinstance(items, list):
            raise InputError(page, "not a Retail Prices page (no `Items` array)")
        for i, item in enumerate(items):
            row = _row(item, f"Items[{i}] ({item.get('meterId', '?')})", page, options, skipped)
            if row is not None:
                rows.append(row)
    return finish(rows, source, options, skipped)


def _skip_reason(item: dict[str, Any], options: ImportOptions) -> str | None:
    kind, meter = item.get("type"), f"{item.get('meterName', '')} {item.get('skuName', '')}"
    if item.get("serviceName") != "Virtual Machines":
        return "non-VM rows"
    if kind == "DevTestConsumption":
        return "DevTest rows"
    if kind not in ("Consumption", "Reservation"):
        return "other price types"
    if str(item.get("productName", "")).endswith(" Windows"):
        return "Windows rows"
    if "Low Priority" in meter:
        return "Low Priority rows"
    if item.get("isPrimaryMeterRegion") is False:
        return "non-primary meter rows"
    if item.get("armSkuName") not in gpu_catalog.AZURE:
        return "non-GPU sizes"
    if kind == "Reservation" and TERMS.get(str(item.get("reservationTerm"))) != options.reserved_term:
        return "other reservation terms"
    return None


def _row(
    item: dict[str, Any], where: str, source: str, options: ImportOptions, skipped: Counter[str]
) -> PriceRow | None:
    reason = _skip_reason(item, options)
    if reason is not None:
        skipped[reason] += 1
        return None
    if item.get("unitOfMeasure") != "1 Hour":
        raise InputError(source, f"{where}: unknown unit of measure {item.get('unitOfMeasure')!r} (expected '1 Hour')")
    if item.get("currencyCode") != "USD":
        raise InputError(source, f"{where}: price in {item.get('currencyCode')!r}, expected USD")
    size = str(item["armSkuName"])
    gpus, model = gpu_catalog.AZURE[size]
    price = money(item.get("retailPrice"), source, f"{where} retailPrice")
    capacity, term, note = "on_demand", "", "Consumption"
    if item["type"] == "Reservation":
        term = TERMS[str(item["reservationTerm"])]
        hours = c.RESERVED_TERMS[term] * c.HOURS_PER_YEAR
        capacity, note, price = "reserved", f"Reservation {price} per {term} / {hours} h", price / Decimal(hours)
    elif any(str(item.get(k, "")).endswith(" Spot") for k in ("meterName", "skuName")):
        capacity, note = "spot", "Spot"
    return PriceRow(
        provider="azure",
        region=str(item.get("armRegionName", "")),
        instance_type=size,
        capacity_type=capacity,
        gpu_model=model,
        gpus=gpus,
        price_per_hour_usd=price,
        effective_from=timestamp(item.get("effectiveStartDate"), source, f"{where} effectiveStartDate"),
        source=f"{Path(source).name} (Azure Retail Prices {note}: {item.get('meterName', '')})",
        term=term,
        sku=str(item.get("meterId", "")),
    )
