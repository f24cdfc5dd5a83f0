"""Daily rollups by attribution class: what a month's report by team, workload or node attributes reads.

A pod-day rollup still holds one row per pod (~1M a month at 10,000 GPUs) and needs the pods table to
find each pod's labels. Pods with the same namespace and labels, on nodes with the same attributes
(the inputs of pricing and of grouping), bill alike, so `rebuild` sums the pod-day rows into one row
per (day, node group, namespace, labels[, pod name when the workload needs it]) with the labels as the
attribution reads them (core/facts.labelled_sql).

Those rows are only as current as the pods and nodes tables they were built from: `rollup_state`
keeps a fingerprint of both, and a report uses the class rows only while they match (otherwise it
falls back to the pod-day rows, with the same result). Every commit rebuilds them after the hourly
and daily refresh, so a collection leaves them current.
"""

from __future__ import annotations

import duckdb

from core import conventions as c
from core import snapshot
from core.facts import fingerprints_sql, has_app_sql, labelled_sql, nodes_sql
from core.warehouse import one

STATE = ("class:pods", "class:nodes")
MAX_BIGINT = 9_223_372_036_854_775_807


def exists(con: duckdb.DuckDBPyConnection) -> bool:
    row = one(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [c.T_CLASS_ALLOC])
    return bool(row and row[0])


def fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Hashes of everything the class rows baked in: pods' labels (and names, uids, last seen) and nodes' attributes."""
    pods = one(
        con, f"SELECT coalesce(bit_xor(hash(cluster, namespace, pod, uid, labels, last_seen)), 0) FROM {c.T_PODS}"
    )
    nodes = one(
        con,
        f"""SELECT coalesce(bit_xor(hash(n.cluster, n.node, n.instance_type, n.capacity_type, n.region, n.zone,
                s.node_pool, s.gpu_model, s.gpu_replicas, f.fp)), 0)
        FROM {c.T_NODES} n JOIN ({nodes_sql()}) s USING (cluster, node) FULL JOIN ({fingerprints_sql()}) f USING (cluster, node)""",
    )
    return {"class:pods": int(pods[0]) % MAX_BIGINT, "class:nodes": int(nodes[0]) % MAX_BIGINT}  # type: ignore[index]


def valid(con: duckdb.DuckDBPyConnection) -> bool:
    """Do the class rows reflect the current pods and nodes tables?"""
    return snapshot.remember(con, "rollup_classes.valid", lambda: _valid(con))


def _valid(con: duckdb.DuckDBPyConnection) -> bool:
    if not exists(con):
        return False
    stored = dict(
        con.execute(f"SELECT source, source_rows FROM {c.T_ROLLUP_STATE} WHERE source LIKE 'class:%'").fetchall()
    )
    return bool(stored) and stored == fingerprints(con)


def _stale_day_rows(con: duckdb.DuckDBPyConnection) -> bool:
    """Any pod-day row computed under other dimension values than the node's current ones?"""
    fps = f"LEFT JOIN ({fingerprints_sql()}) f USING (cluster, node)"
    for table in ("rollup_alloc_daily", "rollup_usage_daily"):
        row = one(con, f"SELECT count(*) FROM {table} r {fps} WHERE r.fp IS DISTINCT FROM coalesce(f.fp, 0)")
        if row and row[0]:
            return True
    return False


def rebuild(con: duckdb.DuckDBPyConnection) -> None:
    """Recompute every class row from the pod-day rollups (call inside the commit's transaction)."""
    for table in (c.T_CLASS_ALLOC, c.T_CLASS_USAGE, c.T_CLASS_NODES):
        con.execute(f"DELETE FROM {table}")
    con.execute(f"DELETE FROM {c.T_ROLLUP_STATE} WHERE source LIKE 'class:%'")
    if _stale_day_rows(con):
        return  # reports read the pod-day rows until the nodes' rows are recomputed
    con.execute(
        f"""INSERT INTO {c.T_CLASS_NODES}
        SELECT n.cluster, n.node, min(n.node) OVER (PARTITION BY n.cluster, n.instance_type, n.capacity_type, n.region,
            n.zone, s.node_pool, s.gpu_model)
        FROM {c.T_NODES} n JOIN ({nodes_sql()}) s USING (cluster, node)"""
    )
    group = f"LEFT JOIN {c.T_CLASS_NODES} cn USING (cluster, node)"
    for table, target, sums, extra in (
        ("rollup_alloc_daily", c.T_CLASS_ALLOC, "sum(units_compute), sum(units_memory)", ""),
        ("rollup_usage_daily", c.T_CLASS_USAGE, "sum(used_s)", ", lab.a_pod IS NOT NULL"),
    ):
        cols = "units_compute, units_memory" if target == c.T_CLASS_ALLOC else "used_s"
        con.execute(
            f"""INSERT INTO {target}
            WITH per_pod AS (
                SELECT r.day, r.cluster, coalesce(cn.class_node, r.node) AS class_node, r.namespace, r.pod,
                    r.pod AS a_pod, r.uid, {", ".join(f"sum({x}) AS {x}" for x in cols.split(", "))}
                FROM {table} r {group} GROUP BY ALL),
            {labelled_sql("per_pod")}
            SELECT day, cluster, class_node, namespace, labels, CASE WHEN NOT {has_app_sql("labels")} THEN pod END{extra},
                {sums.replace("sum(", "sum(lab.")}
            FROM lab GROUP BY ALL"""
        )
    con.executemany(f"INSERT INTO {c.T_ROLLUP_STATE} VALUES (?, ?)", list(fingerprints(con).items()))
