"""The ledger at what the invoice charged (`pricing.source: billing|auto`): each node-hour the bill prices
gets the invoice's price, so the chargeback's rows for that node-hour sum to the bill's effective cost.

A bill line is spread over the hours of its charge period (LINE_HOURS_SQL: an hourly line falls in its hour
as it is; a longer one gives each hour its seconds' share, to 1e-10 of the currency). The lines of a resource
key (core/store/billing_sql.py) in an hour, effective cost E, fall on the nodes with that key in the hour,
split by their capacity in GPU-unit-seconds (one node per key but for scale sets; a set's nodes with the same
GPUs split by their seconds). A node with capacity C GPU-hours then bills E x C / K, K the key's capacity, at
E / K per GPU-hour: capacity x price gives back the node's part of E, and the split between pods, idle and
unhealthy is the chargeback's as always. The list rate is the invoice's list cost over K where the invoice
states one (else the price table's row in force at the hour's start), so each row's `adjustment` is what the
bill charged beyond (or below) list; the price source names the invoice; the invoice's billed cost over K rides
along (FOCUS BilledCost: nothing for usage a commitment covers, the credit's minus).

All of it is SQL (core/store/rollups/bills.py) over the chargeback's own capacity rows, so a month at 10,000 GPUs
is priced without a row per node-hour reaching Python: a price is named by what it is (`bill|` + a digest of E,
billed, list, K and the invoice's names), and the node-hours sharing one (a reserved pool's full hours) share its
id and its PriceInfo. Where the stored prices are current (every bill import and commit keeps them so) the whole
hours of the window are read from them, a node-day with one price as one row; the window's partial last hour,
and everything when they are not current, is priced from the bill lines here, with the same result.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import duckdb

from analytics.cost import fact_plan, prices
from analytics.cost.rates import UNIT_HOURS
from core import conventions as c
from core.store.rollups import bills
from core.store.rollups import hourly as rollups
from core.store.step_sql import MigShare, capacity_steps_sql, nodes_sql
from core.timeutil import HOUR, Window, ceil_to, floor_to

LINE_HOURS_SQL = bills.LINE_HOURS.format(
    keys="""resource_key, hour, coalesce(account_id, '') AS account_id, coalesce(instance_type, '') AS instance_type,
    coalesce(resource_id, '') AS resource_id, coalesce(invoice_id, '') AS invoice_id, provider""",
    aggregates="",
    group="ALL",
)

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
    """Capacity GPU-unit-seconds per (bill resource key, hour): a resource several nodes share (a scale set) has
    its lines split by its nodes' capacity in the hour, as the billed prices split them."""
    out: dict[tuple[str, Any], int] = defaultdict(int)
    for cluster, node, hour, _, _, _, units in hours:
        key = keys.get((cluster, node))
        if key:
            out[(key, hour)] += int(units)
    return out


_CAPACITY_SQL = """
CREATE OR REPLACE TEMP TABLE billed_capacity AS
SELECT cluster, node, date_trunc('hour', ts) AS hour, sum(units) AS units FROM ({capacity})
GROUP BY ALL HAVING sum(units) > 0"""

# the list price in force where the invoice states no list cost (it is then the rows' list rate, so part of the price)
_LIST_ID_SQL = """
UPDATE {table} t SET list_id = l_.price_id FROM ({listed}) l_
    WHERE t.list <= 0 AND l_.ts = t.hour AND l_.cluster = t.cluster AND l_.node = t.node;
UPDATE {table} SET bill_id = {bill_id} WHERE list <= 0"""

# a node-day whose capacity hours the bill prices alike (one price, or none at all) is read from the daily rollups,
# priced at its start (an entry at 00:00 where the node's first hour is later); any other, hour by hour
_DAYS_SQL = """
CREATE OR REPLACE TEMP TABLE days_ AS
SELECT cap.cluster, cap.node, date_trunc('day', cap.hour) AS day, count(DISTINCT coalesce(b.bill_id, '')) AS prices,
    min(b.bill_id) AS bill_id
FROM billed_capacity cap LEFT JOIN {table} b USING (cluster, node, hour) GROUP BY ALL;
CREATE OR REPLACE TEMP TABLE {mixed} AS SELECT cluster, node, day FROM days_ WHERE prices > 1;
INSERT INTO {table} BY NAME
    SELECT d.cluster, d.node, d.day AS hour, d.bill_id FROM days_ d
    ANTI JOIN {table} b ON b.cluster = d.cluster AND b.node = d.node AND b.hour = d.day
    WHERE d.prices = 1 AND d.bill_id IS NOT NULL;
DROP TABLE days_"""


def billed_prices(
    con: duckdb.DuckDBPyConnection,
    plan: fact_plan.Plan,
    mig_share: MigShare,
    listed: dict[str, prices.PriceInfo],
    use_rollups: bool = True,
) -> dict[str, prices.PriceInfo]:
    """Create the temp tables prices.BILLED_HOURS (cluster, node, hour, bill_id) and prices.BILLED_MIXED (cluster,
    node, day) for the window of `plan` (the chargeback's), and return the price of each bill id."""
    assert plan.window is not None
    stored = _stored(con, plan, mig_share, listed) if use_rollups and _store_serves(con, plan) else None
    if stored is not None:
        return stored
    hourly = fact_plan.plan(con, plan.window, use_rollups, days=False)
    found = _priced_live(con, fact_plan.sources_sql(hourly, mig_share)["capacity"], plan.window, prices.BILLED_HOURS)
    con.execute(_DAYS_SQL.format(table=prices.BILLED_HOURS, mixed=prices.BILLED_MIXED))
    con.execute("DROP TABLE billed_capacity")
    return {k: _bill_price(row, listed) for k, row in found.items()}


def _store_serves(con: duckdb.DuckDBPyConnection, p: fact_plan.Plan) -> bool:
    """The stored prices hold the window's whole hours: current, and every rollup row the plan reads is too."""
    return bool(p.days or p.hours) and not p.stale and bills.current(con) and rollups.in_sync(con)


def _priced_live(
    con: duckdb.DuckDBPyConnection, capacity: str, window: Window, table: str
) -> dict[str, tuple[Any, ...]]:
    """Price the node-hours of `capacity` (a SELECT of ts, cluster, node, units, at most hour by hour) from the bill
    lines of `window` into the temp table `table` (left with billed_capacity); the amounts of each bill id."""
    con.execute(_CAPACITY_SQL.format(capacity=capacity))
    bills.priced_hours(con, "billed_capacity", table, window.start, window.end)
    unlisted = f"SELECT hour AS ts, cluster, node FROM {table} WHERE list <= 0"
    if con.execute(f"SELECT count(*) FROM ({unlisted})").fetchone() != (0,):
        bill_id = bills.BILL_ID.format(p="", units="key_units", list_id="coalesce(list_id, '')")
        con.execute(_LIST_ID_SQL.format(table=table, listed=prices.priced_sql(unlisted), bill_id=bill_id))
    cur = con.execute(
        f"""SELECT DISTINCT bill_id, list_id, key_units, effective, billed, list, accounts, invoices, provider
        FROM {table} WHERE key_units IS NOT NULL"""
    )
    return {row[0]: row for row in cur.fetchall()}


# the stored prices of the window's whole hours: a node-day of the plan's days with one price as one row at its
# start, the hours of the others (and of the plan's hours and whole-hour steps) as they are
_STORED_SQL = f"""
CREATE OR REPLACE TEMP TABLE {prices.BILLED_MIXED} AS
SELECT cluster, node, day FROM {c.T_BILL_DAYS} WHERE mig_share = $share AND {{days}} AND prices > 1;
CREATE OR REPLACE TEMP TABLE {prices.BILLED_HOURS} AS
SELECT cluster, node, day AS hour, bill_id FROM {c.T_BILL_DAYS}
    WHERE mig_share = $share AND {{days}} AND prices = 1 AND bill_id IS NOT NULL
UNION ALL
SELECT h.cluster, h.node, h.hour, h.bill_id FROM {c.T_BILL_HOURS} h
    WHERE h.mig_share = $share AND h.bill_id IS NOT NULL AND h.hour >= $first AND h.hour < $last AND (NOT {{hours}}
        OR EXISTS (SELECT 1 FROM {prices.BILLED_MIXED} m_
                   WHERE m_.cluster = h.cluster AND m_.node = h.node AND m_.day = date_trunc('day', h.hour)))"""


def _stored(
    con: duckdb.DuckDBPyConnection, p: fact_plan.Plan, mig_share: MigShare, listed: dict[str, prices.PriceInfo]
) -> dict[str, prices.PriceInfo] | None:
    """The stored prices of the window (None where one states no list cost: its list price is per hour, so those
    node-hours are priced from the lines)."""
    assert p.window is not None
    first, last = ceil_to(p.window.start, HOUR), floor_to(p.window.end, HOUR)
    sql = _STORED_SQL.format(days=fact_plan.ranges_sql("day", p.days), hours=fact_plan.ranges_sql("h.hour", p.days))
    mixed_sql, hours_sql = sql.split(";", 1)
    con.execute(mixed_sql, {"share": mig_share})
    con.execute(hours_sql, {"share": mig_share, "first": first, "last": last})
    cur = con.execute(
        f"""SELECT bill_id, NULL, key_units, effective, billed, list, accounts, invoices, provider FROM {c.T_BILL_PRICES}
        WHERE bill_id IN (SELECT DISTINCT bill_id FROM {prices.BILLED_HOURS})"""
    )
    found = {row[0]: row for row in cur.fetchall()}
    if any(row[5] <= 0 for row in found.values()):
        return None
    if last < p.window.end and last >= p.window.start:  # the partial last hour: its capacity in the window
        edge = fact_plan.Plan(steps=[(last, p.window.end)], window=Window(last, p.window.end))
        capacity = fact_plan.sources_sql(edge, mig_share)["capacity"]
        found.update(_priced_live(con, capacity, edge.window, "billed_edge"))  # type: ignore[arg-type]
        con.execute(f"INSERT INTO {prices.BILLED_HOURS} SELECT cluster, node, hour, bill_id FROM billed_edge")
        con.execute("DROP TABLE billed_edge; DROP TABLE billed_capacity")
    return {k: _bill_price(row, listed) for k, row in found.items()}


def _bill_price(row: tuple[Any, ...], listed: dict[str, prices.PriceInfo]) -> prices.PriceInfo:
    """The price of the invoice's amounts for a resource's hour over its capacity, K GPU-hours."""
    bill_id, list_id, key_units, effective, billed, stated_list, accounts, invoices, provider = row
    gpu_hours = Decimal(key_units) / UNIT_HOURS
    in_force = listed.get(list_id) if list_id is not None else None
    return prices.PriceInfo(
        bill_id,
        effective / gpu_hours,
        f"invoice of account {accounts}",
        stated_list / gpu_hours if stated_list > 0 else (in_force.list_rate if in_force else None),
        from_bill=True,
        billed_gpu_hour_usd=billed / gpu_hours,
        invoices=tuple(invoices.split("; ")) if invoices else (),
        provider=provider,
    )


def node_keys(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str]:
    """(cluster, node) -> the bill resource key of its provider ID."""
    return {(cl, n): key for cl, n, key in con.execute(bills.NODE_KEYS).fetchall() if key}


def bill_hours(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[tuple[str, Any], list[dict[str, Any]]]:
    """The window's bill lines by (resource key, hour), each with its part of the hour (LINE_HOURS_SQL)."""
    cur = con.execute(LINE_HOURS_SQL, params)
    names = [d[0] for d in cur.description]
    out: dict[tuple[str, Any], list[dict[str, Any]]] = defaultdict(list)
    for row in cur.fetchall():
        hit = dict(zip(names, row, strict=True))
        out[(hit["resource_key"], hit["hour"])].append(hit)
    return out
