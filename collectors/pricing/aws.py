"""AWS prices: the EC2 bulk offer file, GetProducts responses, spot price history and the spot data feed.

Offer file and GetProducts carry the same product/terms records (GetProducts as one JSON *string* per
item, with terms keyed one level less deep). Of the many rows per instance type and region only one is
the price a Linux Kubernetes node pays: productFamily "Compute Instance", operatingSystem Linux, tenancy
Shared, preInstalledSw NA, capacitystatus Used, licenseModel "No License required". Windows, BYOL, RHEL,
SQL, dedicated-host and capacity-reservation rows are rejected and counted.

Reserved terms: the configured lease (1yr/3yr) and purchase option of the standard offering class; the
effective hourly rate is the hourly fee plus the upfront fee spread over the term's hours (8,760 a year).

Spot: DescribeSpotPriceHistory lists price *changes* per availability zone (a step function: a price
holds until the next entry for the same zone), so each entry is a zone-level price row. The spot data
feed (one account's usage) gives the market price per instance-hour and region, with " USD" suffixes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from collectors.pricing import gpu_catalog
from collectors.pricing.price_table import ImportOptions, Parsed, PriceRow, finish, load_json, money, timestamp
from core import conventions as c
from core.errors import InputError
from core.timeutil import parse_ts

CANONICAL = {
    "operatingSystem": "Linux",
    "licenseModel": "No License required",
    "capacitystatus": "Used",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
}
REJECTED = {
    "operatingSystem": "Windows/RHEL/SUSE rows",
    "licenseModel": "BYOL rows",
    "capacitystatus": "capacity-reservation rows",
    "tenancy": "dedicated-tenancy rows",
    "preInstalledSw": "pre-installed software rows",
}
LINUX_SPOT = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")
# Usage-type region prefixes of the spot data feed (us-east-1 usage types carry none).
USAGE_REGIONS = {
    "USE1": "us-east-1",
    "USE2": "us-east-2",
    "USW1": "us-west-1",
    "USW2": "us-west-2",
    "CAN1": "ca-central-1",
    "SAE1": "sa-east-1",
    "EU": "eu-west-1",
    "EUW2": "eu-west-2",
    "EUW3": "eu-west-3",
    "EUC1": "eu-central-1",
    "EUN1": "eu-north-1",
    "APN1": "ap-northeast-1",
    "APN2": "ap-northeast-2",
    "APS1": "ap-southeast-1",
    "APS2": "ap-southeast-2",
    "APS3": "ap-south-1",
}


def parse_offer(doc: dict[str, Any], source: str, options: ImportOptions) -> Parsed:
    """A bulk offer file (`offers/v1.0/aws/AmazonEC2/current/<region>/index.json`)."""
    label = f"{Path(source).name} (AWS offer {doc.get('offerCode', '?')} {doc.get('version', '?')})"
    products, terms = doc.get("products"), doc.get("terms")
    if not isinstance(products, dict) or not isinstance(terms, dict):
        raise InputError(source, "an AWS offer file needs `products` and `terms` objects")
    rows: list[PriceRow] = []
    skipped: Counter[str] = Counter()
    for sku, product in products.items():
        by_kind = {kind: (terms.get(kind) or {}).get(sku) or {} for kind in ("OnDemand", "Reserved")}
        rows += _product_rows(product, by_kind, f"products.{sku}", source, label, options, skipped)
    return finish(rows, source, options, skipped)


def parse_get_products(doc: dict[str, Any], source: str, options: ImportOptions) -> Parsed:
    """A `pricing:GetProducts` response: PriceList items are JSON strings."""
    items = doc.get("PriceList")
    if not isinstance(items, list):
        raise InputError(source, "a GetProducts response needs a `PriceList` array")
    rows: list[PriceRow] = []
    skipped: Counter[str] = Counter()
    for i, text in enumerate(items):
        where = f"PriceList[{i}]"
        item = load_json(text, f"{source}: {where}") if isinstance(text, str) else text
        if not isinstance(item, dict) or not isinstance(item.get("product"), dict):
            raise InputError(source, f"{where}: not a price item (no `product`)")
        label = f"{Path(source).name} (AWS GetProducts {item.get('version', '?')})"
        terms = item.get("terms") or {}
        by_kind = {kind: terms.get(kind) or {} for kind in ("OnDemand", "Reserved")}
        rows += _product_rows(item["product"], by_kind, where, source, label, options, skipped)
    return finish(rows, source, options, skipped)


def _product_rows(
    product: dict[str, Any],
    terms: dict[str, dict[str, Any]],
    where: str,
    source: str,
    label: str,
    options: ImportOptions,
    skipped: Counter[str],
) -> list[PriceRow]:
    """The canonical Linux row of one product: its on-demand price and the configured reserved term."""
    attrs = product.get("attributes") or {}
    if product.get("productFamily") != "Compute Instance":
        skipped["non-compute products"] += 1
        return []
    for attr, wanted in CANONICAL.items():
        if attrs.get(attr) != wanted:
            skipped[REJECTED[attr]] += 1
            return []
    itype = str(attrs.get("instanceType", ""))
    gpus, model = _gpus(itype, attrs.get("gpu"))
    if not gpus:
        skipped["non-GPU instances"] += 1
        return []
    region = attrs.get("regionCode")
    if not region:
        raise InputError(source, f"{where}: product has no regionCode")
    base = PriceRow("aws", region, itype, "on_demand", model, gpus, Decimal(0), parse_ts("1970-01-01"), label)
    rows = []
    for key, term in terms["OnDemand"].items():
        hourly, _, rate = _dimensions(term, f"{where} OnDemand {key}", source)
        effective = timestamp(term.get("effectiveDate"), source, f"{where} OnDemand {key} effectiveDate")
        rows.append(replace(base, price_per_hour_usd=hourly, effective_from=effective, sku=rate))
    for key, term in terms["Reserved"].items():
        row = _reserved(base, key, term, f"{where} Reserved {key}", source, options)
        if row is None:
            skipped["other reserved terms"] += 1
        else:
            rows.append(row)
    return rows


def _reserved(
    base: PriceRow, key: str, term: dict[str, Any], where: str, source: str, options: ImportOptions
) -> PriceRow | None:
    attrs = term.get("termAttributes") or {}
    length, option, offering = (attrs.get(k) for k in ("LeaseContractLength", "PurchaseOption", "OfferingClass"))
    if (length, option, offering) != (options.reserved_term, options.reserved_purchase_option, "standard"):
        return None
    if length not in c.RESERVED_TERMS:
        raise InputError(source, f"{where}: unknown lease {length!r}")
    hourly, upfront, _ = _dimensions(term, where, source)
    hours = c.RESERVED_TERMS[length] * c.HOURS_PER_YEAR
    effective = timestamp(term.get("effectiveDate"), source, f"{where} effectiveDate")
    return replace(
        base,
        capacity_type="reserved",
        term=f"{length} {option} {offering}",
        price_per_hour_usd=hourly + upfront / hours,
        effective_from=effective,
        sku=key,
        source=f"{base.source}: {hourly}/h" + (f" + upfront {upfront} / {hours} h" if upfront else ""),
    )


def _dimensions(term: dict[str, Any], where: str, source: str) -> tuple[Decimal, Decimal, str]:
    """(hourly USD, upfront USD, rate code of the hourly dimension) of one term."""
    hourly, upfront, rate = Decimal(0), Decimal(0), ""
    dims = term.get("priceDimensions")
    if not isinstance(dims, dict) or not dims:
        raise InputError(source, f"{where}: no priceDimensions")
    for code, dim in dims.items():
        prices = dim.get("pricePerUnit") or {}
        if "USD" not in prices:
            raise InputError(source, f"{where} {code}: no USD price (currencies: {', '.join(prices) or 'none'})")
        value = money(prices["USD"], source, f"{where} {code}")
        if dim.get("unit") == "Hrs":
            hourly, rate = value, str(dim.get("rateCode") or code)
        elif dim.get("unit") == "Quantity":
            upfront = value
        else:
            raise InputError(source, f"{where} {code}: unknown unit {dim.get('unit')!r} (expected Hrs or Quantity)")
    if not rate and not upfront:
        raise InputError(source, f"{where}: no hourly price")
    return hourly, upfront, rate


def _gpus(instance_type: str, attribute: object) -> tuple[int, str]:
    """GPU count from the offer's `gpu` attribute (else the static table) and the model from the table."""
    count, model = gpu_catalog.AWS.get(instance_type, (0, ""))
    if isinstance(attribute, str) and attribute.isdigit() and int(attribute) > 0:
        count = int(attribute)
    return count, model


def parse_spot_history(doc: dict[str, Any], source: str, options: ImportOptions) -> Parsed:
    """`ec2:DescribeSpotPriceHistory` output: one zone-level row per price change."""
    entries = doc.get("SpotPriceHistory")
    if not isinstance(entries, list):
        raise InputError(source, "a spot price history needs a `SpotPriceHistory` array")
    label = f"{Path(source).name} (EC2 spot price history)"
    rows, skipped = [], Counter[str]()
    for i, entry in enumerate(entries):
        where = f"SpotPriceHistory[{i}]"
        if entry.get("ProductDescription") not in LINUX_SPOT:
            skipped["non-Linux spot rows"] += 1
            continue
        itype, zone = str(entry.get("InstanceType", "")), str(entry.get("AvailabilityZone", ""))
        gpus, model = gpu_catalog.AWS.get(itype, (0, ""))
        if not gpus:
            skipped["non-GPU instances"] += 1
            continue
        if not zone[-1:].isalpha():
            raise InputError(source, f"{where}: AvailabilityZone {zone!r} is not a zone name")
        price = money(entry.get("SpotPrice"), source, f"{where} SpotPrice")
        effective = timestamp(entry.get("Timestamp"), source, f"{where} Timestamp")
        rows.append(PriceRow("aws", zone[:-1], itype, "spot", model, gpus, price, effective, label, zone=zone))
    return finish(rows, source, options, skipped)


def parse_spot_feed(text: str, source: str, options: ImportOptions) -> Parsed:
    """A spot data feed file: `#Fields:` header, TAB-separated rows, prices with a " USD" suffix."""
    fields: list[str] = []
    rows, skipped = [], Counter[str]()
    label = f"{Path(source).name} (EC2 spot data feed)"
    for line_no, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#Fields:"):
            fields = line.removeprefix("#Fields:").split()
        if line.startswith("#") or not line.strip():
            continue
        values = line.split("\t")
        if not fields or len(values) != len(fields):
            raise InputError(source, f"expected {len(fields)} TAB-separated fields after a #Fields header", line_no)
        record = dict(zip(fields, values, strict=True))
        usage = record.get("UsageType", "")
        prefix, _, itype = usage.partition("SpotUsage:")
        gpus, model = gpu_catalog.AWS.get(itype, (0, ""))
        if not gpus:
            skipped["non-GPU instances"] += 1
            continue
        region = USAGE_REGIONS.get(prefix.rstrip("-") or "USE1")
        if region is None:
            raise InputError(source, f"unknown region prefix in UsageType {usage!r}", line_no)
        amount, _, currency = record.get("MarketPrice", "").partition(" ")
        if currency != "USD":
            raise InputError(source, f"MarketPrice {record.get('MarketPrice')!r} is not in USD", line_no)
        price = money(amount, source, f"line {line_no} MarketPrice")
        when = timestamp(record.get("Timestamp", "").removesuffix(" UTC"), source, f"line {line_no} Timestamp")
        rows.append(PriceRow("aws", region, itype, "spot", model, gpus, price, when, label, sku=usage))
    if not fields:
        raise InputError(source, "no #Fields header: not a spot data feed file", 1)
    return finish(rows, source, options, skipped)
