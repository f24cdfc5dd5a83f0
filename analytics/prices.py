"""Which price applies to a node at a step, and what one GPU-hour costs under it.

The chargeback calls two things here and nothing else:
  priced_sql(facts_cte)  SQL adding `price_id` (NULL = unpriced) to per-node-step facts
  load_prices(con)       price_id -> PriceInfo (Decimal $/GPU-hour and provenance)
so price matching (history, regions, capacity types, discounts) can evolve without touching the
allocation arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import duckdb

from core import conventions as c

PRICE_ID_SQL = "p.provider || '|' || p.region || '|' || p.instance_type || '|' || p.capacity_type || '|' || strftime(p.effective_from, '%Y-%m-%dT%H:%M:%S')"


@dataclass(frozen=True)
class PriceInfo:
    price_id: str
    gpu_hour_usd: Decimal  # what one GPU-hour costs under this row (node price / GPUs)
    source: str  # provenance shown in reports and exports


def priced_sql(facts: str) -> str:
    """SELECT facts.* plus `price_id`: the row in force at each fact's ts for its node.

    Matching: instance type, capacity type and region of the node (from kube_node_labels); the
    latest effective_from at or before the step (ASOF), so a mid-window price change bills each
    step at its own price.
    """
    return f"""
    WITH n_ AS (
        SELECT cluster, node, coalesce(instance_type, '') AS n_it, coalesce(capacity_type, 'on_demand') AS n_ct,
            coalesce(region, '') AS n_rg
        FROM {c.T_NODES}),
    f_n AS (SELECT f.*, n_.n_it, n_.n_ct, n_.n_rg FROM ({facts}) f LEFT JOIN n_ USING (cluster, node))
    SELECT f_n.* EXCLUDE (n_it, n_ct, n_rg), {PRICE_ID_SQL} AS price_id
    FROM f_n ASOF LEFT JOIN {c.T_PRICES} p
        ON p.instance_type = f_n.n_it AND p.capacity_type = f_n.n_ct AND p.region = f_n.n_rg
        AND f_n.ts >= p.effective_from
    """


def load_prices(con: duckdb.DuckDBPyConnection) -> dict[str, PriceInfo]:
    rows = con.execute(
        f"""SELECT {PRICE_ID_SQL}, p.price_per_hour_usd, p.gpus, p.provider, p.region, p.instance_type,
            p.capacity_type, p.effective_from, coalesce(p.source, '')
        FROM {c.T_PRICES} p"""
    ).fetchall()
    out = {}
    for price_id, price, gpus, provider, region, itype, ctype, effective, source in rows:
        label = f"{provider}/{region}/{itype}/{ctype}@{effective:%Y-%m-%d}" + (f" ({source})" if source else "")
        out[price_id] = PriceInfo(price_id, Decimal(price) / Decimal(gpus), label)
    return out
