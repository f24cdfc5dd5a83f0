"""The ledger at what the invoice charged (`pricing.source: billing|auto`): each node-hour the bill prices
gets a price of its own, so the chargeback's rows for that node-hour sum to the bill's effective cost.

A node-hour's matched lines (analytics/cost/bill_reconcile.py: resource key, spread over the hours of their
charge period, a scale set's lines split by its nodes' seconds) give its effective cost E; the ledger bills
the node's capacity in that hour, C GPU-hours (core/store/step_sql.py capacity_steps_sql, the rule every
report uses). Its price is E / C per GPU-hour: capacity x price gives back E, and the split between
pods, idle and unhealthy is the chargeback's as always. The list price in force stays the price's list rate,
so each row's `adjustment` is what the bill charged beyond (or below) list, and its price source names the
invoice. Read at the steps (the rollups hold no bill): slower, and exact.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from analytics.cost import prices
from analytics.cost.bill_reconcile import bill_hours, node_keys
from core import conventions as c
from core.store.step_sql import MigShare, capacity_steps_sql
from core.timeutil import Window

UNITS_PER_GPU_HOUR = c.GPU_UNITS * 3600

_NODE_HOURS = """
SELECT s.cluster, s.node, date_trunc('hour', s.ts) AS hour, any_value(s.price_id) AS list_id,
    sum(s.step_s) AS node_s, sum(s.units_per_s * s.step_s) AS units
FROM ({priced}) s GROUP BY ALL"""


def billed_prices(
    con: duckdb.DuckDBPyConnection, window: Window, mig_share: MigShare, listed: dict[str, prices.PriceInfo]
) -> dict[str, prices.PriceInfo]:
    """Create the temp table prices.BILLED_HOURS for `window` and return the price of each of its bill ids."""
    params = {"start": window.start, "end": window.end}
    keys, bill = node_keys(con), bill_hours(con, params)
    hours = con.execute(_NODE_HOURS.format(priced=prices.priced_sql(capacity_steps_sql(mig_share))), params).fetchall()
    sharers: dict[tuple[str, Any], int] = {}
    for cluster, node, hour, _, node_s, _ in hours:
        key = keys.get((cluster, node))
        if key and (key, hour) in bill:
            sharers[(key, hour)] = sharers.get((key, hour), 0) + int(node_s)
    out: dict[str, prices.PriceInfo] = {}
    rows: list[tuple[str, str, Any, str]] = []
    for cluster, node, hour, list_id, node_s, units in hours:
        key = keys.get((cluster, node), "")
        hits = bill.get((key, hour))
        if not hits or not units:
            continue
        share = Decimal(int(node_s)) / Decimal(sharers[(key, hour)])
        effective = sum((hit["effective"] for hit in hits), Decimal(0)) * share
        bill_id = f"bill|{cluster}|{node}|{hour:%Y-%m-%dT%H}"
        listed_info = listed.get(list_id) if list_id is not None else None
        rate = effective / (Decimal(int(units)) / UNITS_PER_GPU_HOUR)
        accounts = ", ".join(sorted({hit["account_id"] for hit in hits}))
        out[bill_id] = prices.PriceInfo(
            bill_id, rate, f"invoice of account {accounts}", listed_info.list_rate if listed_info else None
        )
        rows.append((cluster, node, hour, bill_id))
    table = pa.table(
        {name: [r[i] for r in rows] for i, name in enumerate(("cluster", "node", "hour", "bill_id"))},
        schema=pa.schema([("cluster", pa.string()), ("node", pa.string()), ("hour", pa.timestamp("us")),
                          ("bill_id", pa.string())]),
    )  # fmt: skip
    con.register("billed_rows", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {prices.BILLED_HOURS} AS SELECT * FROM billed_rows")
    con.unregister("billed_rows")
    return out
