"""GPUs free but unusable for the shapes that wait: fragmentation, step by step.

At each step where GPU pods are Pending in a cluster, each node's free GPU resources are its allocatable (kube-state-
metrics' kube_node_status_allocatable, per resource: whole GPUs, time-slicing replicas, each MIG profile) less what
Running pods are allocated of them. A node's free resources count as *fragmented* when none of the Pending pods fits
on it: a pod fits where its resource is free in at least the amount it asks for (by GPU count and resource; node
selectors, taints and topology are not read). The report gives:
- fragmented GPU-hours (free GPUs x step, a MIG instance g/7 and a replica 1/replicas of its GPU, as the chargeback
  counts them) and their cost at the node's price in force (the list price table, as the chargeback prices them);
- the largest whole-GPU request the fleet could have placed (the most whole GPUs free on one node), its smallest and
  largest value over the steps with pods waiting;
- per MIG profile: instance-hours free vs asked for, while pods waited;
- per node and hour, the heat map's cells for the most fragmented nodes (`heatmap_nodes`, by fragmented GPU-hours):
  GPU-hours free and fragmented while pods waited, and the largest whole-GPU request waiting.

The rule is stated once, in core/store/rollups/waiting.py (`stage_steps`); whole hours are read from its hourly
rollups (a 30-day report at 10,000 GPUs reads hours, not node-steps), the rest (partial edge hours, hours in which a
price changes, everything while the rollups are out of sync) from the steps, by the same statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb

from analytics.cost import prices
from analytics.cost.fact_plan import Ranges, periods, ranges_sql
from core import conventions as c
from core.money import to_cents
from core.store.rollups import waiting
from core.store.step_sql import nodes_sql, share_units_sql
from core.timeutil import Window

HEATMAP_NODES = 50  # the heat map's rows: the most fragmented nodes (a 10,000-GPU fleet has over a thousand)
_MIG = f"resource LIKE '{c.RESOURCE_MIG_PREFIX}%'"


@dataclass
class Fragmentation:
    fragmented_gpu_hours: float = 0.0
    fragmented_cost_usd: Decimal = Decimal(0)
    unpriced_gpu_hours: float = 0.0  # fragmented on nodes without a price row
    waiting_steps: int = 0  # steps (per cluster) with GPU pods pending
    largest_placeable_gpus_min: int | None = None
    largest_placeable_gpus_max: int | None = None
    fragmented_nodes: int = 0  # nodes with any fragmented GPU-hours (the heat map shows the first HEATMAP_NODES)
    mig: list[dict[str, Any]] = field(default_factory=list)
    heatmap: list[dict[str, Any]] = field(default_factory=list)

    def totals(self) -> dict[str, Any]:
        return {
            "fragmented_gpu_hours": round(self.fragmented_gpu_hours, 6),
            "fragmented_cost_usd": str(to_cents(self.fragmented_cost_usd)),
            "fragmented_unpriced_gpu_hours": round(self.unpriced_gpu_hours, 6),
            "fragmented_nodes": self.fragmented_nodes,
            "waiting_steps": self.waiting_steps,
            "largest_placeable_gpus_min": self.largest_placeable_gpus_min,
            "largest_placeable_gpus_max": self.largest_placeable_gpus_max,
        }


def fragmentation(
    con: duckdb.DuckDBPyConnection, window: Window, heatmap_nodes: int = HEATMAP_NODES, use_rollups: bool = True
) -> Fragmentation:
    params = {"start": window.start, "end": window.end}
    waited = f"SELECT EXISTS (SELECT 1 FROM {c.T_POD_PENDING} WHERE ts >= $start AND ts < $end)"
    if con.execute(waited, params).fetchone() != (True,):  # nobody waited: nothing is fragmented
        return Fragmentation()
    stepped: Ranges = [(window.start, window.end)]
    days, hours, steps = periods(con, window) if use_rollups and waiting.in_sync(con) else ([], [], stepped)
    rows = _gather(con, days, hours, steps)
    out = Fragmentation()
    _price(con, rows, out)
    row = con.execute(
        "SELECT sum(waiting_steps), min(largest_min), max(largest_max) FROM frag_clusters WHERE waiting_steps > 0"
    ).fetchone()
    if row and row[0]:
        out.waiting_steps, out.largest_placeable_gpus_min, out.largest_placeable_gpus_max = map(int, row)
    out.mig = _mig(con, rows, params)
    out.heatmap, out.fragmented_nodes = _heatmap(con, rows, params, heatmap_nodes)
    con.execute("DROP TABLE frag_steps; DROP TABLE frag_clusters; DROP TABLE frag_units; DROP TABLE frag_priced")
    return out


def _gather(con: duckdb.DuckDBPyConnection, days: Ranges, hours: Ranges, steps: Ranges) -> str:
    """The rows (stamp, hour, cluster, node, resource, free_s, fragmented_s, g) as SQL, and the temp tables it reads:
    whole days and hours from the rollup where it stands (a month at 10,000 GPUs is 1.3M node-hours: read, not
    copied), the rest staged from the steps (`frag_steps`); `frag_clusters`; `frag_units`: GPUs per unit of each
    node's resources (`g`, for the node's attributes now). `stamp` is when the price in force holds for the whole row:
    its day in whole days without a price change (24 times fewer rows to price), its hour in whole hours, its step in
    the rest."""
    con.execute("""CREATE OR REPLACE TEMP TABLE frag_steps (stamp TIMESTAMP, hour TIMESTAMP, cluster VARCHAR,
        node VARCHAR, resource VARCHAR, free_s DOUBLE, fragmented_s DOUBLE)""")
    con.execute(f"CREATE OR REPLACE TEMP TABLE frag_clusters AS SELECT * FROM {c.T_WAITING_CLUSTER_ROLLUP} LIMIT 0")
    parts = ["SELECT * FROM frag_steps"]
    for ranges, stamp in ((days, "date_trunc('day', hour)"), (hours, "hour")):
        if ranges:
            where = ranges_sql("hour", ranges)
            parts.append(
                f"""SELECT {stamp} AS stamp, hour, cluster, node, resource, free_s, fragmented_s
                FROM {c.T_WAITING_ROLLUP} WHERE {where}"""
            )
            con.execute(f"INSERT INTO frag_clusters BY NAME SELECT * FROM {c.T_WAITING_CLUSTER_ROLLUP} WHERE {where}")
    for lo, hi in steps:
        waiting.stage_steps(con, lo, hi)
        con.execute(
            f"""INSERT INTO frag_steps BY NAME
            SELECT * EXCLUDE (hour), hour AS stamp, date_trunc('hour', hour) AS hour FROM ({waiting.node_rows_sql("f.ts")})"""
        )
        con.execute(f"INSERT INTO frag_clusters BY NAME {waiting.CLUSTER_ROWS_SQL}")
        waiting.drop_steps(con)
    rows = " UNION ALL ".join(parts)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE frag_units AS
        SELECT r.cluster, r.node, r.resource, {share_units_sql("r.resource")} / {c.GPU_UNITS} AS g
        FROM (SELECT DISTINCT cluster, node, resource FROM ({rows})) r LEFT JOIN ({nodes_sql()}) n USING (cluster, node)""")
    return f"SELECT * FROM ({rows}) JOIN frag_units USING (cluster, node, resource)"


def _price(con: duckdb.DuckDBPyConnection, rows: str, out: Fragmentation) -> None:
    """Fragmented GPU-hours at the node's list price in force (as the chargeback prices them); keeps `frag_priced`,
    the fragmented GPU-seconds per node and price stamp, for the heat map's ranking."""
    infos = prices.load_prices(con)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE frag_priced AS
        SELECT stamp, cluster, node, sum(fragmented_s * g) AS gpu_s FROM ({rows}) WHERE fragmented_s > 0 GROUP BY ALL""")
    stamps = "SELECT stamp AS ts, cluster, node FROM frag_priced"
    cur = con.execute(
        f"""SELECT x.price_id, sum(f.gpu_s) / 3600 FROM frag_priced f
        JOIN ({prices.priced_sql(stamps)}) x ON x.ts = f.stamp AND x.cluster = f.cluster AND x.node = f.node
        GROUP BY 1"""
    )
    for price_id, gpu_hours in cur.fetchall():
        out.fragmented_gpu_hours += gpu_hours
        info = infos.get(price_id) if price_id is not None else None
        if info is None:
            out.unpriced_gpu_hours += gpu_hours
        else:
            out.fragmented_cost_usd += Decimal(repr(gpu_hours)) * info.gpu_hour_usd


def _mig(con: duckdb.DuckDBPyConnection, rows: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Per MIG profile, while pods waited: instance-hours free on the nodes, and instance-hours asked for."""
    mig = con.execute(f"SELECT count(*) FROM frag_units WHERE {_MIG}").fetchone()
    free_rows = rows if mig and mig[0] else f"SELECT * FROM ({rows}) LIMIT 0"  # no MIG node: skip the scan
    cur = con.execute(
        f"""WITH free AS (SELECT resource, sum(free_s) / 3600 AS free FROM ({free_rows}) WHERE {_MIG} GROUP BY 1),
            asked AS (SELECT resource, sum(amount * step_s) / 3600 AS asked FROM {c.T_POD_PENDING}
                WHERE ts >= $start AND ts < $end AND {_MIG} GROUP BY 1)
        SELECT resource, coalesce(f.free, 0), coalesce(p.asked, 0) FROM free f FULL JOIN asked p USING (resource)
        ORDER BY 1""",
        params,
    )
    return [
        {"profile": r, "free_instance_hours": round(free, 6), "pending_instance_hours": round(asked, 6)}
        for r, free, asked in cur.fetchall()
    ]


def _heatmap(
    con: duckdb.DuckDBPyConnection, rows: str, params: dict[str, Any], nodes: int
) -> tuple[list[dict[str, Any]], int]:
    """Per node and hour with pods waiting, for the `nodes` most fragmented nodes: GPU-hours free and fragmented,
    and the largest whole-GPU request waiting; and how many nodes had any fragmented GPU-hours."""
    ranked = con.execute(
        """SELECT cluster, node FROM frag_priced GROUP BY ALL HAVING sum(gpu_s) > 0
        ORDER BY sum(gpu_s) DESC, cluster, node"""
    ).fetchall()
    top = ranked[:nodes] if nodes > 0 else ranked
    if not top:
        return [], len(ranked)
    con.execute("CREATE OR REPLACE TEMP TABLE frag_top (cluster VARCHAR, node VARCHAR)")
    con.executemany("INSERT INTO frag_top VALUES (?, ?)", top)
    cur = con.execute(
        f"""WITH largest AS (SELECT date_trunc('hour', ts) AS hour, cluster, max(amount) AS largest
                FROM {c.T_POD_PENDING} WHERE ts >= $start AND ts < $end AND resource = '{c.RESOURCE_GPU}' GROUP BY ALL)
        SELECT f.cluster, f.node, f.hour, sum(f.free_s * f.g) / 3600 AS free_gpu_hours,
            sum(f.fragmented_s * f.g) / 3600 AS fragmented_gpu_hours, any_value(l.largest)
        FROM ({rows}) f SEMI JOIN frag_top USING (cluster, node)
            LEFT JOIN largest l ON l.hour = f.hour AND l.cluster = f.cluster
        GROUP BY f.cluster, f.node, f.hour ORDER BY ALL""",
        params,
    )
    out = [
        {"cluster": cl, "node": n, "hour": h.isoformat(), "free_gpu_hours": round(free, 6),
         "fragmented_gpu_hours": round(frag, 6), "largest_pending_gpus": largest}
        for cl, n, h, free, frag, largest in cur.fetchall()
    ]  # fmt: skip
    con.execute("DROP TABLE frag_top")
    return out, len(ranked)
