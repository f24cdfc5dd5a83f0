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

All of it is SQL over the chargeback's own capacity rows (hourly rollups where current, steps at the edges and
in hours a price changes), so a month at 10,000 GPUs is priced without a row per node-hour reaching Python: a
price is named by what it is (`bill|` + a digest of E, billed, list, K and the invoice's names), and the node-hours
sharing one (a reserved pool's full hours) share its id, its PriceInfo and the chargeback's class rows.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import duckdb

from analytics.cost import prices
from core import conventions as c
from core.store.billing_sql import resource_key_sql
from core.store.step_sql import MigShare, capacity_steps_sql, nodes_sql
from core.timeutil import Window

UNITS_PER_GPU_HOUR = c.GPU_UNITS * 3600

# a longer line's part of an hour: its amount x the seconds of the hour / its seconds, truncated at 1e-10 (DuckDB
# divides a DECIMAL as a DOUBLE: integer division keeps it exact to that digit)
_SPREAD = "CAST((({x} * overlap_s) * 10000000000)::HUGEINT // span_s AS DECIMAL(38, 0)) * 0.0000000001"


def _part(x: str) -> str:
    return f"sum(CASE WHEN span_s = 0 OR overlap_s = span_s THEN {x} ELSE {_SPREAD.format(x=x)} END)"


# bill lines spread over the hours of their charge period, within the window, summed per `keys`: the rule every
# reading of the bill uses (the billed prices, the reconciliation)
_LINE_HOURS = f"""
WITH lines AS (
    SELECT *, greatest(CAST(epoch(charge_end) - epoch(charge_start) AS BIGINT), 0) AS span_s,
        date_trunc('hour', charge_start) AS first_hour,
        date_trunc('hour', greatest(charge_end - INTERVAL 1 MICROSECOND, charge_start)) AS last_hour
    FROM {c.T_BILLING_LINES}
    WHERE charge_end > $start AND charge_start < $end OR (charge_end = charge_start AND charge_start >= $start
        AND charge_start < $end)),
parts AS (
    -- a line within one hour (hourly lines: nearly all) falls in it whole; a longer one over its hours
    SELECT *, first_hour AS hour, span_s AS overlap_s FROM lines WHERE first_hour = last_hour
    UNION ALL BY NAME
    SELECT *, CAST(epoch(least(charge_end, hour + INTERVAL 1 HOUR)) - epoch(greatest(charge_start, hour)) AS BIGINT)
        AS overlap_s
    FROM (SELECT *, unnest(generate_series(first_hour, last_hour, INTERVAL 1 HOUR)) AS hour FROM lines
          WHERE first_hour < last_hour))
SELECT {{keys}}, {_part("effective_cost")} AS effective, {_part("billed_cost")} AS billed,
    {_part("coalesce(list_cost, 0)")} AS list{{aggregates}}
FROM parts WHERE hour >= $start AND hour < $end GROUP BY {{group}}"""
LINE_HOURS_SQL = _LINE_HOURS.format(
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


# per node-hour the bill prices: its capacity (from the chargeback's own capacity rows, hour by hour), its key's
# capacity and invoice amounts, and the id of that price (with the list price in force at the hour's start where
# the invoice states no list cost: _LIST_ID_SQL)
_CAPACITY_SQL = """
CREATE OR REPLACE TEMP TABLE billed_capacity AS
SELECT cluster, node, date_trunc('hour', ts) AS hour, sum(units) AS units FROM ({capacity})
GROUP BY ALL HAVING sum(units) > 0"""

_BILLED_SQL = """
CREATE OR REPLACE TEMP TABLE {table} AS
WITH keys_ AS ({keys}),
shared AS (SELECT resource_key FROM keys_ GROUP BY resource_key HAVING count(*) > 1),
keyed AS (
    SELECT cap.*, k_.resource_key, k_.resource_key IN (SELECT resource_key FROM shared) AS is_shared
    FROM billed_capacity cap JOIN keys_ k_ USING (cluster, node)),
key_units AS (SELECT resource_key, hour, sum(units) AS key_units FROM keyed WHERE is_shared GROUP BY ALL),
bill AS ({lines})
SELECT k.cluster, k.node, k.hour, NULL::VARCHAR AS list_id, coalesce(u.key_units, k.units) AS key_units, b.effective,
    b.billed, b.list, b.accounts, coalesce(b.invoices, '') AS invoices, b.provider, {bill_id} AS bill_id
FROM keyed k JOIN bill b USING (resource_key, hour) LEFT JOIN key_units u USING (resource_key, hour)"""


def _names_sql(col: str, sep: str) -> str:
    """The distinct values of `col` in a group, sorted and joined (one value, nearly always: no list is built)."""
    return (
        f"CASE WHEN min({col}) = max({col}) THEN min({col}) "
        f"ELSE array_to_string(list_sort(list_distinct(list({col}))), '{sep}') END"
    )


# a node-hour's price id: the digest of what its price is made of
_BILL_ID = """'bill|' || md5(concat_ws('|', {p}effective, {p}billed, {p}list, {units}, {list_id},
    {p}accounts, coalesce({p}invoices, ''), {p}provider))"""

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

_KEYS_SQL = f"""SELECT cluster, node, {resource_key_sql("provider_id")} AS resource_key FROM {c.T_NODES}
    WHERE provider_id IS NOT NULL"""


def billed_prices(
    con: duckdb.DuckDBPyConnection, capacity: str, window: Window, listed: dict[str, prices.PriceInfo]
) -> dict[str, prices.PriceInfo]:
    """Create the temp tables prices.BILLED_HOURS (cluster, node, hour, bill_id) and prices.BILLED_MIXED (cluster,
    node, day) for `window`, from `capacity` (a SELECT of ts, cluster, node, units, at most hour by hour), and
    return the price of each bill id."""
    params = {"start": window.start, "end": window.end}
    con.execute(_CAPACITY_SQL.format(capacity=capacity))
    names = _names_sql("coalesce(account_id, '')", ", ")
    invoices = _names_sql("nullif(invoice_id, '')", "; ")
    lines = _LINE_HOURS.format(keys="resource_key, hour", group="resource_key, hour",
                               aggregates=f", {names} AS accounts, {invoices} AS invoices, min(provider) AS provider")  # fmt: skip
    bill_id = _BILL_ID.format(p="b.", units="coalesce(u.key_units, k.units)", list_id="''")
    billed = _BILLED_SQL.format(table=prices.BILLED_HOURS, keys=_KEYS_SQL, lines=lines, bill_id=bill_id)
    con.execute(billed, params)
    unlisted = f"SELECT hour AS ts, cluster, node FROM {prices.BILLED_HOURS} WHERE list <= 0"
    if con.execute(f"SELECT count(*) FROM ({unlisted})").fetchone() != (0,):
        listed_sql = prices.priced_sql(unlisted)
        con.execute(
            _LIST_ID_SQL.format(
                table=prices.BILLED_HOURS,
                listed=listed_sql,
                bill_id=_BILL_ID.format(p="", units="key_units", list_id="coalesce(list_id, '')"),
            )
        )
    con.execute(_DAYS_SQL.format(table=prices.BILLED_HOURS, mixed=prices.BILLED_MIXED))
    cur = con.execute(
        f"""SELECT DISTINCT bill_id, list_id, key_units, effective, billed, list, accounts, invoices, provider
        FROM {prices.BILLED_HOURS} WHERE key_units IS NOT NULL"""
    )
    found = {row[0]: _bill_price(row, listed) for row in cur.fetchall()}
    con.execute("DROP TABLE billed_capacity")
    return found


def _bill_price(row: tuple[Any, ...], listed: dict[str, prices.PriceInfo]) -> prices.PriceInfo:
    """The price of the invoice's amounts for a resource's hour over its capacity, K GPU-hours."""
    bill_id, list_id, key_units, effective, billed, stated_list, accounts, invoices, provider = row
    gpu_hours = Decimal(key_units) / UNITS_PER_GPU_HOUR
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
    return {(cl, n): key for cl, n, key in con.execute(_KEYS_SQL).fetchall() if key}


def bill_hours(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[tuple[str, Any], list[dict[str, Any]]]:
    """The window's bill lines by (resource key, hour), each with its part of the hour (LINE_HOURS_SQL)."""
    cur = con.execute(LINE_HOURS_SQL, params)
    names = [d[0] for d in cur.description]
    out: dict[tuple[str, Any], list[dict[str, Any]]] = defaultdict(list)
    for row in cur.fetchall():
        hit = dict(zip(names, row, strict=True))
        out[(hit["resource_key"], hit["hour"])].append(hit)
    return out
