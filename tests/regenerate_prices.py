"""Regenerate collectors/pricing/data/prices-default.csv: importer output where the fixtures allow, curated rows elsewhere.

Run `.venv/bin/python -m tests.regenerate_prices` after changing an importer or a fixture;
tests/test_pricing.py fails while the shipped table differs from what this produces.

Generated rows come from the fixtures whose prices are real: the GCP Billing Catalog page (a real
excerpt: every row) and the Azure page's Consumption row (the only real price in that CONSTRUCTED file;
its placeholder meter id is not shipped). They replace any curated row for the same provider, region,
zone, instance type and capacity type. Every other row stays as curated, with its own date and source
(secondary-source list prices; see shared/reference/pricing-and-focus.md section 4).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from collectors.pricing import price_table
from collectors.pricing.importer import parse_text
from collectors.pricing.price_table import ImportOptions, PriceRow

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path("tests/fixtures")
TABLE = ROOT / "collectors" / "pricing" / "data" / price_table.DEFAULT_TABLE
COLUMNS = (*price_table.REQUIRED, "source", "zone", "term", "gpu_price_per_hour_usd", "sku")
GENERATED: list[tuple[str, Callable[[PriceRow], bool]]] = [
    ("gcp-billing-catalog-skus-sample.json", lambda row: True),
    ("azure-retail-prices-CONSTRUCTED.json", lambda row: row.capacity_type == "on_demand"),
]
PROVIDER_ORDER = {"aws": 0, "gcp": 1, "azure": 2}
CAPACITY_ORDER = {"on_demand": 0, "reserved": 1, "spot": 2, "on_prem": 3}


def generated_rows() -> list[PriceRow]:
    out = []
    for name, keep in GENERATED:
        text = (ROOT / FIXTURES / name).read_text(encoding="utf-8")
        for row in parse_text(text, str(FIXTURES / name), None, ImportOptions()).rows:
            if keep(row):
                sku = "" if "PLACEHOLDER" in row.sku else row.sku
                out.append(replace(row, source=f"regenerated from tests/fixtures/{row.source}", sku=sku))
    return out


def _key(row: PriceRow) -> tuple[str, str, str, str, str]:
    return (row.provider, row.region, row.zone, row.instance_type, row.capacity_type)


def regenerate(current: str) -> str:
    new = generated_rows()
    replaced = {_key(r) for r in new}
    curated = [r for r in price_table.parse_csv(current, "default") if _key(r) not in replaced]
    rows = sorted(
        curated + new,
        key=lambda r: (
            PROVIDER_ORDER.get(r.provider, 9),
            r.region,
            CAPACITY_ORDER[r.capacity_type],
            r.instance_type,
            r.zone,
            r.effective_from,
        ),
    )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        gpu_part = "" if r.gpu_price_per_hour_usd == r.price_per_hour_usd else _plain(r.gpu_price_per_hour_usd)
        when = (
            r.effective_from.isoformat()
            if r.effective_from.time().isoformat() != "00:00:00"
            else f"{r.effective_from:%Y-%m-%d}"
        )
        writer.writerow(
            [r.provider, r.region, r.instance_type, r.capacity_type, r.gpu_model, r.gpus,
             _plain(r.price_per_hour_usd), when, r.source, r.zone, r.term, gpu_part, r.sku]
        )  # fmt: skip
    return buf.getvalue()


def _plain(value: object) -> str:
    """A Decimal without trailing zeros (the stored 10-place value prints as the published price)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


if __name__ == "__main__":
    TABLE.write_text(regenerate(TABLE.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {TABLE.relative_to(ROOT)}")
