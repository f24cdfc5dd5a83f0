"""A month's bill for the import benchmark: FOCUS 1.2 lines of GPU instances, one per instance and hour, as
AWS Data Exports writes them (Parquet, in a BILLING_PERIOD= folder), built column-wise with numpy/pyarrow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import duckdb

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


def bill_fleet(warehouse: Path) -> int:
    """Give a generated fleet's nodes AWS instance IDs and a bill for every hour of its month (once: a fleet that
    has one keeps it). A third of the nodes are under a reservation (62% of list), the rest at list; returns the
    bill's lines. The list-priced reports read neither, so the cached fleet's other figures stay as they were."""
    import duckdb

    from core import conventions as c

    con = duckdb.connect(str(warehouse))
    try:
        have = con.execute(f"SELECT count(*) FROM {c.T_BILLING_LINES}").fetchone()
        if have and have[0]:
            _store_prices(con)  # a fleet billed before schema 15 stored no prices
            return int(have[0])
        con.execute(
            f"""UPDATE {c.T_NODES} n SET provider_id = 'aws:///us-east-1a/i-' || lpad(printf('%x', k.i), 17, '0')
            FROM (SELECT cluster, node, row_number() OVER (ORDER BY cluster, node) AS i FROM {c.T_NODES}) k
            WHERE n.cluster = k.cluster AND n.node = k.node"""
        )
        con.execute(f"""
            INSERT INTO {c.T_BILLING_LINES} BY NAME
            WITH span AS (SELECT date_trunc('hour', min(ts)) AS lo, max(ts) AS hi FROM {c.T_NODE_SAMPLES}),
            nodes AS (
                SELECT n.provider_id, n.instance_type, min(p.price_per_hour_usd) AS list,
                    CASE WHEN hash(n.node) % 3 = 0 THEN 0.62 ELSE 1 END AS factor
                FROM {c.T_NODES} n JOIN {c.T_PRICES} p ON p.instance_type = n.instance_type
                WHERE n.gpu_count > 0 GROUP BY ALL),
            hours AS (SELECT unnest(generate_series(lo, hi, INTERVAL 1 HOUR)) AS hour FROM span)
            SELECT date_trunc('month', hour)::DATE AS billing_period, 'aws' AS provider, 'focus' AS format,
                '{ACCOUNT}' AS billing_account_id, '{ACCOUNT}' AS account_id, 'INV-' || strftime(hour, '%Y-%m') AS invoice_id,
                regexp_extract(provider_id, '(i-[0-9a-f]+)$', 1) AS resource_id,
                'aws:' || regexp_extract(provider_id, '(i-[0-9a-f]+)$', 1) AS resource_key, instance_type,
                'us-east-1' AS region, 'Usage' AS charge_category,
                CASE WHEN factor < 1 THEN 'Committed' ELSE 'Standard' END AS pricing_category,
                hour AS charge_start, hour + INTERVAL 1 HOUR AS charge_end, 1 AS quantity, 'Hours' AS unit,
                CASE WHEN factor < 1 THEN 0 ELSE list END AS billed_cost, list * factor AS effective_cost,
                list AS list_cost, 'USD' AS currency, 'USD' AS original_currency, 1 AS fx_rate,
                'bench' AS source_file, row_number() OVER () AS source_row, TIMESTAMP '2026-12-01' AS imported_at
            FROM nodes, hours""")
        _store_prices(con)  # as `billing import` does
        return int(con.execute(f"SELECT count(*) FROM {c.T_BILLING_LINES}").fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


def _store_prices(con: duckdb.DuckDBPyConnection) -> None:
    """The stored bill prices (core/store/rollups/bills.py) of the fleet's whole bill, unless current."""
    from core.store.rollups import bills
    from core.store.warehouse import transaction

    if not bills.current(con):
        with transaction(con):
            bills.update(con)
