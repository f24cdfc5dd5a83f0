"""GCP prices from Cloud Billing Catalog SKU pages (`services/6F81-5844-456A/skus`).

GCP bills a GPU machine as its parts, each its own SKU: a machine's hourly price is
  vCPUs x "<family> Instance Core" + GiB x "<family> Instance Ram" + GPUs x "Nvidia <model> GPU"
(a2-highgpu-1g = 12 x 0.031611 + 85 x 0.004237 + 2.933908 = 3.673385 in us-central1), with the shapes
from collectors/gpu_catalog.GCP. Because the GPU has its own price, that price is the GPUs' part of
the node price directly (no GPU-share setting); OpenCost does the same for GCP.

A unit price is `units` (a string) + `nanos` / 1e9, parsed exactly. usageType OnDemand -> on_demand,
Preemptible -> spot, Commit1Yr / Commit3Yr -> reserved (the configured term only). GPU SKUs are found by
description and resourceGroup "GPU"; DWS, calendar-mode, reserved, sole-tenancy and custom/extended SKUs
are excluded. Every pricingInfo entry is kept, so a catalog fetched with a history gives a price history.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from collectors.pricing import gpu_catalog
from collectors.pricing.price_table import ImportOptions, Parsed, PriceRow, finish, money, timestamp
from core.errors import InputError

GPU_SKUS = (  # description pattern -> GPU key (gpu_catalog.GcpMachine.gpu); first match wins
    (re.compile(r"\bNvidia (Tesla )?A100 80GB\b", re.I), "A100 80GB"),
    (re.compile(r"\bNvidia (Tesla )?A100\b", re.I), "A100 40GB"),
    (re.compile(r"\bNvidia H100 80GB Mega\b", re.I), "H100 80GB Mega"),
    (re.compile(r"\bNvidia H100 80GB\b", re.I), "H100 80GB"),
    (re.compile(r"\bNvidia L4\b", re.I), "L4"),
    (re.compile(r"\bNvidia (Tesla )?T4\b", re.I), "T4"),
    (re.compile(r"\bNvidia (Tesla )?V100\b", re.I), "V100 16GB"),
)
PART = re.compile(r"\b(A2|A3|G2)\b.*\b(Core|Cpu|Ram)\b", re.I)
EXCLUDED = re.compile(r"\b(DWS|Dynamic Workload|Calendar|Flex|Reserved|Sole Tenancy|Custom|Extended|slice)\b", re.I)
USAGE = {"OnDemand": ("on_demand", ""), "Preemptible": ("spot", ""), "Commit1Yr": ("reserved", "1yr")}
USAGE["Commit3Yr"] = ("reserved", "3yr")
UNITS = {"gpu": "h", "core": "h", "ram": "GiBy.h"}


@dataclass(frozen=True)
class Part:
    kind: str  # gpu | core | ram
    key: str  # GPU key or machine family
    capacity_type: str
    term: str


@dataclass(frozen=True)
class Price:
    effective: datetime
    usd: Decimal
    sku: str


def parse_catalog(doc: dict[str, Any], source: str, options: ImportOptions) -> Parsed:
    return parse_pages([(doc, source)], source, options)


def parse_pages(pages: list[tuple[dict[str, Any], str]], source: str, options: ImportOptions) -> Parsed:
    """Every page of one catalog listing (all SKUs are needed to price a machine)."""
    parts: dict[tuple[str, Part], list[Price]] = defaultdict(list)
    skipped: Counter[str] = Counter()
    for doc, page in pages:
        skus = doc.get("skus")
        if not isinstance(skus, list):
            raise InputError(page, "not a Billing Catalog page (no `skus` array)")
        for i, sku in enumerate(skus):
            _collect(sku, f"skus[{i}] ({sku.get('skuId', '?')})", page, options, parts, skipped)
    rows = [row for machine in gpu_catalog.GCP for row in _machine_rows(machine, parts, Path(source).name)]
    return finish(rows, source, options, skipped)


def _collect(
    sku: dict[str, Any],
    where: str,
    source: str,
    options: ImportOptions,
    parts: dict[tuple[str, Part], list[Price]],
    skipped: Counter[str],
) -> None:
    part = _part(sku, skipped)
    if part is None:
        return
    if part.term and part.term != options.reserved_term:
        skipped["other commitment terms"] += 1
        return
    infos = sku.get("pricingInfo")
    if not isinstance(infos, list) or not infos:
        raise InputError(source, f"{where}: no pricingInfo")
    for j, info in enumerate(infos):
        usd = _unit_price(info, part, f"{where} pricingInfo[{j}]", source)
        effective = timestamp(info.get("effectiveTime"), source, f"{where} pricingInfo[{j}] effectiveTime")
        for region in sku.get("serviceRegions") or []:
            known = parts[(region, part)]
            clash = next((p for p in known if p.effective == effective and p.usd != usd), None)
            if clash is not None:
                raise InputError(source, f"{where}: {usd} in {region} contradicts SKU {clash.sku} ({clash.usd})")
            known.append(Price(effective, usd, str(sku.get("skuId", ""))))


def _part(sku: dict[str, Any], skipped: Counter[str]) -> Part | None:
    """Which machine part a SKU prices, or None (counted) when it prices nothing gpuledger uses."""
    category = sku.get("category") or {}
    description = str(sku.get("description", ""))
    usage = USAGE.get(str(category.get("usageType", "")))
    if EXCLUDED.search(description):
        skipped["excluded SKUs (DWS, reserved, sole-tenant, custom)"] += 1
        return None
    gpu = next((key for pattern, key in GPU_SKUS if pattern.search(description)), None)
    if gpu is not None and category.get("resourceGroup") == "GPU" and usage is not None:
        return Part("gpu", gpu, *usage)
    match = PART.search(description)
    if match is not None and usage is not None:
        kind = "ram" if match.group(2).lower() == "ram" else "core"
        return Part(kind, match.group(1).upper(), *usage)
    skipped["SKUs of other resources"] += 1
    return None


def _unit_price(info: dict[str, Any], part: Part, where: str, source: str) -> Decimal:
    """units + nanos / 1e9 of the first tier, in USD per hour (per GiB-hour for RAM)."""
    expression = info.get("pricingExpression") or {}
    unit = expression.get("usageUnit")
    if unit != UNITS[part.kind]:
        raise InputError(
            source, f"{where}: unknown usage unit {unit!r} for a {part.kind} SKU (expected {UNITS[part.kind]!r})"
        )
    tiers = expression.get("tieredRates")
    if not isinstance(tiers, list) or not tiers:
        raise InputError(source, f"{where}: no tieredRates")
    price = min(tiers, key=lambda t: Decimal(str(t.get("startUsageAmount", 0)))).get("unitPrice") or {}
    if price.get("currencyCode", "USD") != "USD":
        raise InputError(source, f"{where}: price in {price.get('currencyCode')!r}, expected USD")
    units = money(price.get("units", "0"), source, f"{where} units")
    nanos = price.get("nanos", 0)
    if isinstance(nanos, bool) or not isinstance(nanos, int | Decimal) or not 0 <= nanos < 10**9 or nanos % 1:
        raise InputError(source, f"{where}: nanos {nanos!r} must be an integer from 0 to 999999999")
    return units + Decimal(int(nanos)) / Decimal(10**9)


def _machine_rows(machine_type: str, parts: dict[tuple[str, Part], list[Price]], name: str) -> list[PriceRow]:
    """One row per region, capacity type and price change where all three parts are priced."""
    shape = gpu_catalog.GCP[machine_type]
    rows = []
    for (region, gpu_part), _ in list(parts.items()):
        if gpu_part.kind != "gpu" or gpu_part.key != shape.gpu:
            continue
        keys = [gpu_part] + [Part(k, shape.family, gpu_part.capacity_type, gpu_part.term) for k in ("core", "ram")]
        series = [sorted(parts.get((region, k), []), key=lambda p: p.effective) for k in keys]
        if not all(series):
            continue
        for when in sorted({p.effective for s in series for p in s}):
            gpu, core, ram = (_in_force(s, when) for s in series)
            if gpu is None or core is None or ram is None:
                continue
            gpu_usd = shape.gpus * gpu.usd
            rows.append(
                PriceRow(
                    provider="gcp",
                    region=region,
                    instance_type=machine_type,
                    capacity_type=gpu_part.capacity_type,
                    gpu_model=shape.gpu,
                    gpus=shape.gpus,
                    price_per_hour_usd=gpu_usd + shape.vcpus * core.usd + shape.memory_gib * ram.usd,
                    effective_from=when,
                    source=f"{name} (GCP Billing Catalog: {shape.gpus} GPU x {gpu.usd} + {shape.vcpus} vCPU x "
                    f"{core.usd} + {shape.memory_gib} GiB x {ram.usd})",
                    term=gpu_part.term,
                    gpu_price_per_hour_usd=gpu_usd,
                    sku=f"{gpu.sku}+{core.sku}+{ram.sku}",
                )
            )
    return rows


def _in_force(prices: list[Price], when: datetime) -> Price | None:
    current = None
    for price in prices:
        if price.effective <= when:
            current = price
    return current
