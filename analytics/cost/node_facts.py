"""What each GPU node ran over a window, per price row: the one statement the bill-vs-ledger reconciliation and the
chargeback's list of unpriced nodes read.

Per node and price row in force: the seconds the node had a step (what a provider bills a node for), its billable
GPU-unit-seconds (core/store/step_sql.py capacity_steps_sql), and those of them on steps where no source gives the
node a GPU (only its pods' requests put GPUs there), with the node's attributes. Whole hours and days come from the
capacity rollups (analytics/cost/fact_plan.py), the rest from the steps, so a day at 10,000 GPUs reads ~30,000
node-hours instead of 1.8 million node-steps; `use_rollups=False` reads the steps alone (the tests' oracle).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from analytics.cost import fact_plan
from analytics.cost.prices import priced_sql
from analytics.cost.rates import UNIT_HOURS
from core.store.step_sql import MigShare, nodes_sql
from core.timeutil import Window

ATTRIBUTES = ("instance_type", "capacity_type", "region")


@dataclass(frozen=True)
class NodeFact:
    cluster: str
    node: str
    instance_type: str
    capacity_type: str
    region: str
    price_id: str | None
    node_s: int  # seconds with a step
    units: int  # billable GPU-unit-seconds
    no_gpu_units: int  # the part of `units` on steps where no source gives the node a GPU


@dataclass(frozen=True)
class UnpricedNode:
    cluster: str
    node: str
    instance_type: str
    capacity_type: str
    region: str
    gpu_hours: float


def node_facts(
    con: duckdb.DuckDBPyConnection, window: Window, mig_share: MigShare = "compute", use_rollups: bool = True
) -> list[NodeFact]:
    """Per node and price row over `window`, sorted by node then price row (None first)."""
    source = fact_plan.node_capacity_sql(fact_plan.plan(con, window, use_rollups), mig_share)
    attrs = ", ".join(f"coalesce(n.{a}, '')" for a in ATTRIBUTES)
    rows = con.execute(
        f"""SELECT s.cluster, s.node, {attrs}, s.price_id, sum(s.node_s), sum(s.units), sum(s.no_gpu)
        FROM ({priced_sql(source)}) s LEFT JOIN ({nodes_sql()}) n USING (cluster, node)
        GROUP BY ALL ORDER BY 1, 2, 6 NULLS FIRST, 3, 4, 5"""
    ).fetchall()
    return [NodeFact(r[0], r[1], r[2], r[3], r[4], r[5], int(r[6]), int(r[7]), int(r[8])) for r in rows]


def unpriced(facts: list[NodeFact]) -> list[UnpricedNode]:
    """GPU nodes that matched no price row, by name, with their GPU-hours."""
    hours: dict[tuple[str, str, str, str, str], int] = {}
    for f in facts:
        if f.price_id is None and f.units > 0:
            key = (f.cluster, f.node, f.instance_type, f.capacity_type, f.region)
            hours[key] = hours.get(key, 0) + f.units
    return [UnpricedNode(*key, units / UNIT_HOURS) for key, units in sorted(hours.items())]


def unpriced_nodes(
    con: duckdb.DuckDBPyConnection, window: Window, mig_share: MigShare = "compute"
) -> list[UnpricedNode]:
    """GPU nodes that matched no price row in the window, by name, with their GPU-hours."""
    return unpriced(node_facts(con, window, mig_share))
