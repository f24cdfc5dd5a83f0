"""The simulated fleet's bill: its GPU instances' hours as AWS Data Exports writes them in FOCUS 1.2.

One usage line per node and hour of the simulated window, at what each node's purchase option charges:
- `gpu-od-1` is covered by a Reserved Instance: 62% of the on-demand list price, effective;
- `gpu-od-2` by a Compute Savings Plan: 72%;
- the spot nodes at the spot price of the price table; every other node on demand, at list;
plus a training VM outside Kubernetes (a p4d.24xlarge no node runs on) every hour. The restated bill
(`bill-restated/`, what AWS issues when it corrects a closed month) is the same with a $100.00 credit
on `gpu-od-2` in the first hour. List and spot prices come from the default price table, the one the
demo prices the ledger with, so every figure of the reconciliation follows from these numbers.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from collectors.pricing import price_table
from collectors.simulator.fleet import NODES, Node
from core.timeutil import iso

ACCOUNT = "111122223333"
EFFECTIVE_SHARE = {"gpu-od-1": ("Reserved Instance", Decimal("0.62")), "gpu-od-2": ("Savings Plan", Decimal("0.72"))}
OUTSIDE = ("i-0feedface0000001", "p4d.24xlarge")
RESTATEMENT_CREDIT = Decimal("-100.00")


def _prices() -> dict[tuple[str, str], Decimal]:
    rows = price_table.parse_csv(price_table.default_table_text(), "default")
    return {
        (r.instance_type, r.capacity_type): r.price_per_hour_usd for r in rows if r.region == "us-east-1" and not r.zone
    }


def _line(
    instance: str, itype: str, hour: datetime, effective: Decimal, list_: Decimal, pricing: str, kind: str = ""
) -> dict[str, str]:
    usage = f"USE1-{'SpotUsage' if pricing == 'Dynamic' else 'BoxUsage'}:{itype}"
    period = hour.replace(day=1, hour=0)
    end = (period + timedelta(days=32)).replace(day=1)
    return {
        "ProviderName": "AWS", "PublisherName": "AWS", "InvoiceIssuerName": "AWS", "InvoiceId": f"SIM-{period:%Y%m}",
        "BillingAccountId": ACCOUNT, "SubAccountId": ACCOUNT, "BillingCurrency": "USD",
        "BillingPeriodStart": iso(period), "BillingPeriodEnd": iso(end), "ChargePeriodStart": iso(hour),
        "ChargePeriodEnd": iso(hour + timedelta(hours=1)), "ChargeCategory": "Usage", "ChargeClass": "",
        "BilledCost": str(effective if pricing != "Committed" else Decimal(0)), "EffectiveCost": str(effective),
        "ListCost": str(list_), "PricingCategory": pricing, "PricingQuantity": "1", "PricingUnit": "Hours",
        "ConsumedQuantity": "1", "ConsumedUnit": "Hours", "CommitmentDiscountType": kind,
        "ServiceName": "Amazon Elastic Compute Cloud", "ServiceCategory": "Compute", "RegionId": "us-east-1",
        "ResourceId": f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{instance}",
        "SkuPriceDetails": json.dumps({"InstanceType": itype}), "x_UsageType": usage,
    }  # fmt: skip


def _node_line(node: Node, hour: datetime, prices: dict[tuple[str, str], Decimal]) -> dict[str, str]:
    list_ = prices[(node.instance_type, "on_demand")]
    instance = node.provider_id().rsplit("/", 1)[1]
    if node.capacity_type == "spot":
        return _line(instance, node.instance_type, hour, prices[(node.instance_type, "spot")], list_, "Dynamic")
    kind, share = EFFECTIVE_SHARE.get(node.name, ("", Decimal(1)))
    return _line(instance, node.instance_type, hour, list_ * share, list_, "Committed" if kind else "Standard", kind)


def lines(start: datetime, hours: int, restated: bool = False) -> list[dict[str, str]]:
    prices = _prices()
    out = []
    for h in range(hours):
        hour = start + timedelta(hours=h)
        out += [_node_line(node, hour, prices) for node in NODES]
        p4d = prices[(OUTSIDE[1], "on_demand")]
        out.append(_line(OUTSIDE[0], OUTSIDE[1], hour, p4d, p4d, "Standard"))
    if restated:
        credit = _line(NODES[1].provider_id().rsplit("/", 1)[1], "", start, RESTATEMENT_CREDIT, Decimal(0), "")
        out.append({**credit, "ChargeCategory": "Credit", "ChargeClass": "Correction", "BilledCost": str(RESTATEMENT_CREDIT),
                    "SkuPriceDetails": "", "x_UsageType": "", "PricingQuantity": "", "ConsumedQuantity": ""})  # fmt: skip
    return out


def write(out: Path, start: datetime, hours: int) -> dict[str, str]:
    """bill/ and bill-restated/, each `BILLING_PERIOD=YYYY-MM/part-00000.csv.gz` as Data Exports lays them out;
    returns the invoice's effective cost per instance type (the restated bill's), for truth.json."""
    for folder, restated in (("bill", False), ("bill-restated", True)):
        by_period: dict[str, list[dict[str, str]]] = {}
        for line in lines(start, hours, restated):
            by_period.setdefault(line["BillingPeriodStart"][:7], []).append(line)
        for period, rows in by_period.items():
            target = out / folder / f"BILLING_PERIOD={period}"
            target.mkdir(parents=True, exist_ok=True)
            text = io.StringIO(newline="")
            writer = csv.DictWriter(text, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
            # mtime 0: the same seed writes the same bytes
            (target / "part-00000.csv.gz").write_bytes(gzip.compress(text.getvalue().encode(), mtime=0))
    totals: dict[str, Decimal] = {}
    for line in lines(start, hours, restated=True):
        itype = json.loads(line["SkuPriceDetails"])["InstanceType"] if line["SkuPriceDetails"] else "credit"
        totals[itype] = totals.get(itype, Decimal(0)) + Decimal(line["EffectiveCost"])
    return {k: str(v) for k, v in sorted(totals.items())}
