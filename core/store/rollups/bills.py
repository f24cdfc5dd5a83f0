"""The bill's price of every node-hour, stored: what a chargeback at billed cost reads instead of working it out
from the bill lines each time (a month at 10,000 GPUs: 1.7 million node-hours, 4 s a report).

The rule (analytics/cost/bill_prices.py says it in full): the lines of a resource key in an hour (LINE_HOURS)
fall on the nodes with that key, split by their capacity in GPU-unit-seconds; a node-hour's price is named by
what it is made of (`bill|` + a digest of the key's effective, billed and list cost, its capacity and the
invoice's names). `priced_hours` is that rule in SQL over a table of node-hour capacities; the report applies
it to its own capacity rows where it must (the steps, the window's partial last hour), and this module to the
hourly capacity rollups, per MIG share, into three tables:
- T_BILL_HOURS: (cluster, node, hour, mig_share) -> bill_id (NULL: the node had capacity but no bill line);
- T_BILL_DAYS: per node-day, how many prices its capacity hours have (a missing bill counting as one), and the
  price when there is one: a node-day with one price is read from the daily rollups;
- T_BILL_PRICES: bill_id -> the amounts its price is made of.

They are as current as the bill lines, the nodes' provider IDs and the hourly rollups they were computed from;
`rollup_state` keeps a fingerprint of each (`bill:` rows), and a report uses the stored rows only while all
three match (else it works the prices out from the lines, with the same result). A bill import recomputes them
all; a commit the hours whose rollups it refreshed (all of them when a node's provider ID or the bill changed).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from core import conventions as c
from core.store import read_memo
from core.store.billing_sql import resource_key_sql
from core.store.step_sql import MIG_SHARES
from core.store.warehouse import one
from core.timeutil import DAY, floor_to

PREFIX = "bill:"

# a longer line's part of an hour: its amount x the seconds of the hour / its seconds, truncated at 1e-10 (DuckDB
# divides a DECIMAL as a DOUBLE: integer division keeps it exact to that digit)
_SPREAD = "CAST((({x} * overlap_s) * 10000000000)::HUGEINT // span_s AS DECIMAL(38, 0)) * 0.0000000001"


def _part(x: str) -> str:
    return f"sum(CASE WHEN span_s = 0 OR overlap_s = span_s THEN {x} ELSE {_SPREAD.format(x=x)} END)"


# bill lines spread over the hours of their charge period, within [$start, $end), summed per `keys`: the rule every
# reading of the bill uses (the billed prices, the reconciliation)
LINE_HOURS = f"""
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

NODE_KEYS = f"""SELECT cluster, node, {resource_key_sql("provider_id")} AS resource_key FROM {c.T_NODES}
    WHERE provider_id IS NOT NULL"""


def _names_sql(col: str, sep: str) -> str:
    """The distinct values of `col` in a group, sorted and joined (one value, nearly always: no list is built)."""
    return (
        f"CASE WHEN min({col}) = max({col}) THEN min({col}) "
        f"ELSE array_to_string(list_sort(list_distinct(list({col}))), '{sep}') END"
    )


# a node-hour's price id: the digest of what its price is made of
BILL_ID = """'bill|' || md5(concat_ws('|', {p}effective, {p}billed, {p}list, {units}, {list_id},
    {p}accounts, coalesce({p}invoices, ''), {p}provider))"""

# per node-hour of `capacity` (cluster, node, hour, units > 0) the bill prices: its key's capacity and invoice
# amounts in the hour, and the id of that price (list_id: filled by the report where the invoice states no list)
_PRICED_SQL = """
CREATE OR REPLACE TEMP TABLE {table} AS
WITH keys_ AS ({keys}),
shared AS (SELECT resource_key FROM keys_ GROUP BY resource_key HAVING count(*) > 1),
keyed AS (
    SELECT cap.*, k_.resource_key, k_.resource_key IN (SELECT resource_key FROM shared) AS is_shared
    FROM {capacity} cap JOIN keys_ k_ USING (cluster, node)),
key_units AS (SELECT resource_key, hour, sum(units) AS key_units FROM keyed WHERE is_shared GROUP BY ALL),
bill AS ({lines})
SELECT k.cluster, k.node, k.hour, NULL::VARCHAR AS list_id, coalesce(u.key_units, k.units) AS key_units, b.effective,
    b.billed, b.list, b.accounts, coalesce(b.invoices, '') AS invoices, b.provider, {bill_id} AS bill_id
FROM keyed k JOIN bill b USING (resource_key, hour) LEFT JOIN key_units u USING (resource_key, hour)"""


def priced_hours(con: duckdb.DuckDBPyConnection, capacity: str, table: str, start: datetime, end: datetime) -> None:
    """Create the temp table `table` of the node-hours of `capacity` (a table of cluster, node, hour, units) the
    bill prices in [start, end): cluster, node, hour, list_id (NULL), key_units, effective, billed, list,
    accounts, invoices, provider, bill_id."""
    names = _names_sql("coalesce(account_id, '')", ", ")
    invoices = _names_sql("nullif(invoice_id, '')", "; ")
    lines = LINE_HOURS.format(keys="resource_key, hour", group="resource_key, hour",
                              aggregates=f", {names} AS accounts, {invoices} AS invoices, min(provider) AS provider")  # fmt: skip
    bill_id = BILL_ID.format(p="b.", units="coalesce(u.key_units, k.units)", list_id="''")
    sql = _PRICED_SQL.format(table=table, keys=NODE_KEYS, capacity=capacity, lines=lines, bill_id=bill_id)
    con.execute(sql, {"start": start, "end": end})


# ------------------------------------------------------------------------------------------------ the stored rows


def fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """What the stored rows were computed from: the bill lines (a re-import restamps its period), the nodes'
    provider IDs, and the hourly rollups' state (their step tables' row counts)."""
    row = one(
        con,
        f"""SELECT (SELECT hash(count(*), max(imported_at), sum(effective_cost)) FROM {c.T_BILLING_LINES}),
            (SELECT coalesce(bit_xor(hash(cluster, node, provider_id)), 0) FROM {c.T_NODES}),
            (SELECT coalesce(bit_xor(hash(source, source_rows)), 0) FROM {c.T_ROLLUP_STATE} WHERE source NOT LIKE '%:%')""",
    )
    assert row is not None
    big = 9_223_372_036_854_775_807
    return {
        f"{PREFIX}lines": int(row[0]) % big,
        f"{PREFIX}nodes": int(row[1]) % big,
        f"{PREFIX}rollups": int(row[2]) % big,
    }


def _stored(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = con.execute(f"SELECT source, source_rows FROM {c.T_ROLLUP_STATE} WHERE source LIKE '{PREFIX}%'").fetchall()
    return dict(rows)


def exists(con: duckdb.DuckDBPyConnection) -> bool:
    row = one(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [c.T_BILL_HOURS])
    return bool(row and row[0])


def current(con: duckdb.DuckDBPyConnection) -> bool:
    """Do the stored rows hold the bill's prices of the current bill lines, nodes and rollups?"""
    return read_memo.remember(con, "bills.current", lambda: exists(con) and _stored(con) == fingerprints(con))


def update(con: duckdb.DuckDBPyConnection, hours: tuple[datetime, datetime] | None = None, bill: bool = False) -> None:
    """Bring the stored rows up to date, inside the writer's transaction: those of the hours [lo, hi] (row ts,
    inclusive) whose rollups a commit refreshed, or whose bill lines an import replaced (`bill`); all of them when
    `hours` is None, or when anything else they were computed from changed since."""
    if not exists(con):  # a warehouse before schema 15, mid-migration
        return
    prints, stored = fingerprints(con), _stored(con)
    kept = [f"{PREFIX}nodes", f"{PREFIX}rollups" if bill else f"{PREFIX}lines"]
    if hours is None or any(stored.get(k) != prints[k] for k in kept):
        _recompute(con, None, None)
    else:  # whole days: their summaries change
        _recompute(con, floor_to(hours[0], DAY), floor_to(hours[1], DAY) + DAY)
    con.execute(f"DELETE FROM {c.T_ROLLUP_STATE} WHERE source LIKE '{PREFIX}%'")
    con.executemany(f"INSERT INTO {c.T_ROLLUP_STATE} VALUES (?, ?)", list(prints.items()))


def _recompute(con: duckdb.DuckDBPyConnection, lo: datetime | None, hi: datetime | None) -> None:
    """The stored rows of the days [lo, hi) (all when None) from the hourly capacity rollups and the bill lines."""
    within = "TRUE" if lo is None else "{col} >= $lo AND {col} < $hi"
    params = {} if lo is None else {"lo": lo, "hi": hi}
    con.execute(f"DELETE FROM {c.T_BILL_HOURS} WHERE {within.format(col='hour')}", params)
    con.execute(f"DELETE FROM {c.T_BILL_DAYS} WHERE {within.format(col='day')}", params)
    overlap = "TRUE" if lo is None else "charge_end > $lo AND charge_start < $hi"
    # node-days no bill line reaches need no rows: a report finds no price for them either way
    if con.execute(f"SELECT EXISTS (SELECT 1 FROM {c.T_BILLING_LINES} WHERE {overlap})", params).fetchone() == (True,):
        span = _span(con, lo, hi)
        for share in MIG_SHARES if span else ():
            _recompute_share(con, share, within.format(col="hour"), params, span)  # type: ignore[arg-type]
    con.execute(
        f"DELETE FROM {c.T_BILL_PRICES} p WHERE NOT EXISTS (SELECT 1 FROM {c.T_BILL_HOURS} h WHERE h.bill_id = p.bill_id)"
    )


def _span(con: duckdb.DuckDBPyConnection, lo: datetime | None, hi: datetime | None) -> tuple[datetime, datetime] | None:
    """The hours of capacity rows within [lo, hi), as [first, last + 1 h)."""
    row = one(con, f"SELECT min(hour), max(hour) FROM {c.T_CAPACITY_ROLLUP}_hourly")
    if row is None or row[0] is None:
        return None
    first, last = max(row[0], lo) if lo else row[0], row[1] + timedelta(hours=1)
    last = min(last, hi) if hi else last
    return (first, last) if first < last else None


def _recompute_share(
    con: duckdb.DuckDBPyConnection,
    share: str,
    within: str,
    params: dict[str, datetime],
    span: tuple[datetime, datetime],
) -> None:
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE bill_capacity AS
        SELECT cluster, node, hour, sum(units_{share}) AS units FROM {c.T_CAPACITY_ROLLUP}_hourly
        WHERE {within} GROUP BY ALL HAVING sum(units_{share}) > 0""",
        params,
    )
    priced_hours(con, "bill_capacity", "bill_priced", *span)
    con.execute(
        f"""INSERT INTO {c.T_BILL_PRICES}
        SELECT DISTINCT bill_id, key_units, effective, billed, list, accounts, invoices, provider FROM bill_priced
        WHERE bill_id NOT IN (SELECT bill_id FROM {c.T_BILL_PRICES})"""
    )
    con.execute(
        f"""INSERT INTO {c.T_BILL_HOURS}
        SELECT cap.cluster, cap.node, cap.hour, '{share}', b.bill_id FROM bill_capacity cap
        LEFT JOIN bill_priced b USING (cluster, node, hour)"""
    )
    # a node-day's prices over its capacity hours, an hour without a bill line counting as one (as the report
    # counts them: such a day is read hour by hour)
    con.execute(
        f"""INSERT INTO {c.T_BILL_DAYS}
        SELECT cluster, node, date_trunc('day', hour), '{share}', count(DISTINCT coalesce(bill_id, '')),
            CASE WHEN count(DISTINCT coalesce(bill_id, '')) = 1 THEN min(bill_id) END
        FROM {c.T_BILL_HOURS} WHERE mig_share = '{share}' AND {within} GROUP BY ALL""",
        params,
    )
    con.execute("DROP TABLE bill_capacity; DROP TABLE bill_priced")
