"""GPU-hour list prices over time, per node: what the cost of unreliability (analytics/health/impact.py) uses.

The chargeback matches prices with analytics/cost/prices.py (zones, discounts, GPU parts); this simpler book
values lost GPU-hours at the list price of the node's region-wide row.

A price row is in force from its `effective_from` until the next row of the same provider, region,
instance type and capacity type; it is matched to a node on instance type, capacity type and region
(the chargeback's ASOF join), and the node's whole hourly price goes to its GPUs: price / GPUs.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import duckdb

from core import conventions as c
from core.money import in_money_context

ZERO = Decimal(0)
PriceKey = tuple[str, str, str]  # instance type, capacity type, region


def gpu_hour_usd(price_per_hour_usd: Decimal | float | str, gpus: int) -> Decimal:
    """A node's hourly price split over its GPUs, exactly."""
    return Decimal(str(price_per_hour_usd)) / Decimal(gpus)


@dataclass(frozen=True)
class PriceBook:
    rows: dict[PriceKey, list[tuple[datetime, Decimal]]]  # per key, (effective_from, $/GPU-hour) by time
    nodes: dict[tuple[str, str], PriceKey]  # (cluster, node) -> its price key

    def segments(
        self, cluster: str, node: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime, Decimal | None]]:
        """[start, end) cut where the price changes, with the $/GPU-hour in force (None = no row)."""
        key = self.nodes.get((cluster, node))
        rows = self.rows.get(key, []) if key else []
        froms = [r[0] for r in rows]
        cuts = [start] + [f for f in froms if start < f < end] + [end]
        out = []
        for a, b in zip(cuts, cuts[1:], strict=False):
            i = bisect_right(froms, a) - 1
            out.append((a, b, rows[i][1] if i >= 0 else None))
        return out


@in_money_context
def price_book(con: duckdb.DuckDBPyConnection) -> PriceBook:
    rows: dict[PriceKey, list[tuple[datetime, Decimal]]] = {}
    prices = con.execute(
        f"""SELECT instance_type, capacity_type, region, effective_from, price_per_hour_usd, gpus
        FROM {c.T_PRICES} ORDER BY instance_type, capacity_type, region, effective_from, provider"""
    ).fetchall()
    for it, ct, rg, effective, price, gpus in prices:
        rows.setdefault((it, ct, rg), []).append((effective, gpu_hour_usd(price, gpus)))
    nodes = con.execute(
        f"""SELECT cluster, node, coalesce(instance_type, ''), coalesce(capacity_type, 'on_demand'), coalesce(region, '')
        FROM {c.T_NODES}"""
    ).fetchall()
    return PriceBook(rows, {(cl, n): (it, ct, rg) for cl, n, it, ct, rg in nodes})
