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

from collections import defaultdict
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from analytics.cost import prices
from core import conventions as c
from core.store.billing_sql import resource_key_sql
from core.store.step_sql import MigShare, capacity_steps_sql, nodes_sql
from core.timeutil import Window

UNITS_PER_GPU_HOUR = c.GPU_UNITS * 3600

# bill lines spread over the hours of their charge period, within the window
_LINES_SQL = f"""
WITH lines AS (
    SELECT *, greatest(epoch(charge_end) - epoch(charge_start), 0) AS span_s FROM {c.T_BILLING_LINES}
    WHERE charge_end > $start AND charge_start < $end OR (charge_end = charge_start AND charge_start >= $start
        AND charge_start < $end)),
hours AS (
    SELECT l.*, unnest(generate_series(date_trunc('hour', charge_start),
        CASE WHEN span_s = 0 THEN date_trunc('hour', charge_start) ELSE charge_end - INTERVAL 1 MICROSECOND END,
        INTERVAL 1 HOUR)) AS hour
    FROM lines l)
SELECT resource_key, hour, coalesce(account_id, '') AS account_id, coalesce(instance_type, '') AS instance_type,
    coalesce(resource_id, '') AS resource_id, coalesce(invoice_id, '') AS invoice_id, provider, span_s,
    CASE WHEN span_s = 0 THEN 0 ELSE epoch(least(charge_end, hour + INTERVAL 1 HOUR)) - epoch(greatest(charge_start, hour))
        END AS overlap_s,
    sum(effective_cost) AS effective, sum(billed_cost) AS billed, sum(coalesce(list_cost, 0)) AS list
FROM hours WHERE hour >= $start AND hour < $end
GROUP BY ALL"""

# the ledger's node-hours: seconds and billable GPU-unit-seconds per (node, hour, price row in force), from the
# capacity steps every report bills
_NODE_HOURS = """
SELECT s.cluster, s.node, date_trunc('hour', s.ts) AS hour, s.price_id, coalesce(n.instance_type, '') AS instance_type,
    sum(s.step_s) AS node_s, sum(s.units_per_s * s.step_s) AS units
FROM ({priced}) s LEFT JOIN ({nodes}) n USING (cluster, node)
GROUP BY ALL"""


def node_hours(con: duckdb.DuckDBPyConnection, mig_share: MigShare, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(cluster, node, hour, price_id, instance_type, node-seconds, GPU-unit-seconds) of the window."""
    sql = _NODE_HOURS.format(priced=prices.priced_sql(capacity_steps_sql(mig_share)), nodes=nodes_sql())
    return con.execute(sql, params).fetchall()


def sharers(hours: list[tuple[Any, ...]], keys: dict[tuple[str, str], str]) -> dict[tuple[str, Any], int]:
    """Node-seconds per (bill resource key, hour): a resource several nodes share (a scale set) has its lines
    split by its nodes' seconds in the hour."""
    out: dict[tuple[str, Any], int] = defaultdict(int)
    for cluster, node, hour, _, _, node_s, _ in hours:
        key = keys.get((cluster, node))
        if key:
            out[(key, hour)] += int(node_s)
    return out


def billed_prices(
    con: duckdb.DuckDBPyConnection, window: Window, mig_share: MigShare, listed: dict[str, prices.PriceInfo]
) -> dict[str, prices.PriceInfo]:
    """Create the temp table prices.BILLED_HOURS for `window` and return the price of each of its bill ids."""
    params = {"start": window.start, "end": window.end}
    keys, bill = node_keys(con), bill_hours(con, params)
    hours = node_hours(con, mig_share, params)
    shared = sharers(hours, keys)
    per_hour: dict[tuple[str, str, Any], list[Any]] = {}  # a price change mid-hour: the hour's first row's list price
    for cluster, node, hour, price_id, _, node_s, units in hours:
        acc = per_hour.setdefault((cluster, node, hour), [price_id, 0, 0])
        acc[1] += int(node_s)
        acc[2] += int(units)
    out: dict[str, prices.PriceInfo] = {}
    rows: list[tuple[str, str, Any, str]] = []
    for (cluster, node, hour), (list_id, node_s, units) in per_hour.items():
        key = keys.get((cluster, node), "")
        hits = bill.get((key, hour))
        if not hits or not units:
            continue
        share = Decimal(node_s) / Decimal(shared[(key, hour)])
        bill_id = f"bill|{cluster}|{node}|{hour:%Y-%m-%dT%H}"
        out[bill_id] = _bill_price(bill_id, hits, share, Decimal(units) / UNITS_PER_GPU_HOUR, listed.get(list_id or ""))
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


def _bill_price(
    bill_id: str, hits: list[dict[str, Any]], share: Decimal, gpu_hours: Decimal, listed: prices.PriceInfo | None
) -> prices.PriceInfo:
    """A node-hour's price from its share of the invoice lines: effective, billed and (where the invoice states
    it) list cost, each over the hour's capacity in GPU-hours."""

    def total(amount: str) -> Decimal:
        return sum((hit[amount] for hit in hits), Decimal(0)) * share

    stated_list = total("list")
    accounts = ", ".join(sorted({hit["account_id"] for hit in hits}))
    return prices.PriceInfo(
        bill_id,
        total("effective") / gpu_hours,
        f"invoice of account {accounts}",
        stated_list / gpu_hours if stated_list > 0 else (listed.list_rate if listed else None),
        from_bill=True,
        billed_gpu_hour_usd=total("billed") / gpu_hours,
        invoices=tuple(sorted({hit["invoice_id"] for hit in hits} - {""})),
        provider=hits[0]["provider"],
    )


def node_keys(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str]:
    rows = con.execute(
        f"SELECT cluster, node, {resource_key_sql('provider_id')} FROM {c.T_NODES} WHERE provider_id IS NOT NULL"
    ).fetchall()
    return {(cl, n): key for cl, n, key in rows if key}


def bill_hours(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[tuple[str, Any], list[dict[str, Any]]]:
    cur = con.execute(_LINES_SQL, params)
    names = [d[0] for d in cur.description]
    out: dict[tuple[str, Any], list[dict[str, Any]]] = defaultdict(list)
    for row in cur.fetchall():
        hit = dict(zip(names, row, strict=True))
        span, overlap = int(hit.pop("span_s")), int(hit.pop("overlap_s"))
        if span and overlap != span:  # a line longer than the hour (daily lines): its share of the hour
            for amount in ("effective", "billed", "list"):
                hit[amount] = hit[amount] * overlap / span
        out[(hit["resource_key"], hit["hour"])].append(hit)
    return out
