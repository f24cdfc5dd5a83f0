"""A month's bill for the import benchmark: FOCUS 1.2 lines of GPU instances, one per instance and hour, as
AWS Data Exports writes them (Parquet, in a BILLING_PERIOD= folder), built column-wise with numpy/pyarrow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ACCOUNT = "123456789012"


def write_month(folder: Path, instances: int, hours: int = 720) -> int:
    """folder/BILLING_PERIOD=2026-11/part-0.parquet with instances x hours lines; returns the line count."""
    target = folder / "BILLING_PERIOD=2026-11"
    target.mkdir(parents=True, exist_ok=True)
    n = instances * hours
    inst, hour = np.repeat(np.arange(instances), hours), np.tile(np.arange(hours), instances)
    base = np.datetime64("2026-11-01T00:00:00")
    start = np.char.add((base + hour.astype("timedelta64[h]")).astype(str), "Z")
    end = np.char.add((base + (hour + 1).astype("timedelta64[h]")).astype(str), "Z")
    ids = np.char.add(f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-", np.char.zfill(inst.astype(str), 17))

    def same(value: str) -> pa.Array:
        return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value])).cast(pa.string())

    table = pa.table({
        "ProviderName": same("AWS"), "BillingAccountId": same(ACCOUNT), "SubAccountId": same(ACCOUNT),
        "BillingCurrency": same("USD"), "BillingPeriodStart": same("2026-11-01T00:00:00Z"),
        "BillingPeriodEnd": same("2026-12-01T00:00:00Z"), "ChargePeriodStart": pa.array(start),
        "ChargePeriodEnd": pa.array(end), "ChargeCategory": same("Usage"), "PricingCategory": same("Committed"),
        "BilledCost": same("0"), "EffectiveCost": same("60.1234"), "ListCost": same("98.32"),
        "ResourceId": pa.array(ids), "SkuPriceDetails": same('{"InstanceType":"p5.48xlarge"}'),
        "RegionId": same("us-east-1"),
    })  # fmt: skip
    pq.write_table(table, target / "part-0.parquet", row_group_size=1_000_000)
    return n
