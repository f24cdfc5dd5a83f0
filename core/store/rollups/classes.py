"""Daily rollups by attribution class: what a month's report by team, workload or node attributes reads.

A pod-day rollup still holds one row per pod (~1M a month at 10,000 GPUs) and needs the pods table to
find each pod's labels. Pods with the same namespace and labels, on nodes with the same attributes
(the inputs of pricing and of grouping), bill alike, so `rebuild` sums the pod-day rows into one row
per (day, node group, namespace, labels[, pod name when the workload needs it]) with the labels as the
attribution reads them (core/facts.labelled_sql).

Those rows are only as current as the pods and nodes tables they were built from: `rollup_state`
keeps a fingerprint of both, and a report uses the class rows only while they match (otherwise it
falls back to the pod-day rows, with the same result). Every commit brings them up to date after the
hourly and daily refresh (`update`), so a collection leaves them current: it recomputes the days it
collected and the days of the pods whose attribution it changed, or everything when a node changed
or the rows were not current before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from core import conventions as c
from core.store import read_memo
from core.store.step_sql import USAGE_VALUES, fingerprints_sql, has_app_sql, labelled_sql, nodes_sql, stale_rows_sql
from core.store.warehouse import one

MAX_BIGINT = 9_223_372_036_854_775_807


def exists(con: duckdb.DuckDBPyConnection) -> bool:
    row = one(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [c.T_CLASS_ALLOC])
    return bool(row and row[0])


def fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Hashes of everything the class rows baked in: pods' labels (and names, uids, last seen) and nodes' attributes."""
    return {"class:pods": _pods_fingerprint(con), "class:nodes": _nodes_fingerprint(con)}


def _pods_fingerprint(con: duckdb.DuckDBPyConnection) -> int:
    pods = one(
        con, f"SELECT coalesce(bit_xor(hash(cluster, namespace, pod, uid, labels, last_seen)), 0) FROM {c.T_PODS}"
    )
    return int(pods[0]) % MAX_BIGINT  # type: ignore[index]


def _nodes_fingerprint(con: duckdb.DuckDBPyConnection) -> int:
    nodes = one(
        con,
        f"""SELECT coalesce(bit_xor(hash(n.cluster, n.node, n.instance_type, n.capacity_type, n.region, n.zone,
                s.node_pool, s.gpu_model, s.gpu_replicas, f.fp)), 0)
        FROM {c.T_NODES} n JOIN ({nodes_sql()}) s USING (cluster, node) FULL JOIN ({fingerprints_sql()}) f USING (cluster, node)""",
    )
    return int(nodes[0]) % MAX_BIGINT  # type: ignore[index]


@dataclass(frozen=True)
class Baseline:
    """The class rows were current before a commit's writes: the nodes they were built under, and
    (temp table class_pods_before) how the commit's pods were attributed then."""

    nodes: int


# How a pod name is attributed: its uids' labels, and the labels a uid without any borrows from the
# name's latest uid (core/facts.labelled_sql). Only the names a commit stages can change.
_POD_STATES = f"""
    SELECT p.cluster, p.namespace, p.pod,
        hash(list((p.uid, p.labels) ORDER BY p.uid, p.labels), arg_max(p.labels, p.last_seen)) AS state
    FROM {c.T_PODS} p JOIN (SELECT DISTINCT cluster, namespace, pod FROM st_pods) k USING (cluster, namespace, pod)
    GROUP BY ALL"""


def baseline(con: duckdb.DuckDBPyConnection) -> Baseline | None:
    """Before a commit writes pods and nodes: None unless the class rows are current (then the commit
    rebuilds them all)."""
    stored = _stored(con)
    if not stored or stored != fingerprints(con):
        return None
    con.execute(f"CREATE OR REPLACE TEMP TABLE class_pods_before AS {_POD_STATES}")
    return Baseline(stored["class:nodes"])


def valid(con: duckdb.DuckDBPyConnection) -> bool:
    """Do the class rows reflect the current pods and nodes tables?"""
    return read_memo.remember(con, "rollup_classes.valid", lambda: _valid(con))


def _valid(con: duckdb.DuckDBPyConnection) -> bool:
    stored = _stored(con)
    return bool(stored) and stored == fingerprints(con)


def _stored(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """The fingerprints the class rows were last built under ({} when there are none)."""
    if not exists(con):
        return {}
    return dict(
        con.execute(f"SELECT source, source_rows FROM {c.T_ROLLUP_STATE} WHERE source LIKE 'class:%'").fetchall()
    )


def _stale_day_rows(con: duckdb.DuckDBPyConnection) -> bool:
    """Any pod-day row computed under other dimension values than the node's current ones?"""
    rows = " UNION ALL ".join(
        f"SELECT cluster, node, fp FROM {t}" for t in ("rollup_alloc_daily", "rollup_usage_daily")
    )
    return one(con, f"SELECT 1 FROM ({stale_rows_sql(rows)}) LIMIT 1") is not None


def update(con: duckdb.DuckDBPyConnection, since: Baseline | None, days: tuple[datetime, datetime] | None) -> None:
    """After a commit refreshed the pod-day rows of `days` [lo, hi): recompute the class rows of those
    days and of every day holding a pod whose attribution the commit changed. Rebuild everything
    when the class rows were not current before (`since` None) or the nodes changed: a node's group
    and prices reach every day. A 5-minute collection at 10,000 GPUs on a month of history: 5 s
    rebuilding every day, a fraction of that for its own."""
    nodes = _nodes_fingerprint(con)
    if since is None or nodes != since.nodes:
        rebuild(con)
        return
    lo, hi = days or (None, None)
    window_days = "SELECT unnest(range($lo::TIMESTAMP, $hi::TIMESTAMP, INTERVAL 1 DAY)) AS day" if lo else ""
    changed = f"""SELECT cluster, namespace, pod FROM ({_POD_STATES}) a
        FULL JOIN class_pods_before b USING (cluster, namespace, pod) WHERE a.state IS DISTINCT FROM b.state"""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE class_days AS
        WITH changed AS ({changed})
        SELECT DISTINCT day FROM (
            SELECT day FROM rollup_alloc_daily JOIN changed USING (cluster, namespace, pod)
            UNION ALL SELECT day FROM rollup_usage_daily JOIN changed USING (cluster, namespace, pod)
            {"UNION ALL " + window_days if lo else ""})""",
        {"lo": lo, "hi": hi} if lo else None,
    )
    for table in (c.T_CLASS_ALLOC, c.T_CLASS_USAGE, c.T_LABELLED_ALLOC, c.T_LABELLED_USAGE):
        con.execute(f"DELETE FROM {table} WHERE day IN (SELECT day FROM class_days)")
    _insert_days(con, "WHERE r.day IN (SELECT day FROM class_days)")
    _record(con, {"class:pods": _pods_fingerprint(con), "class:nodes": nodes})


def rebuild(con: duckdb.DuckDBPyConnection) -> None:
    """Recompute every class row from the pod-day rollups (call inside the commit's transaction)."""
    for table in (c.T_CLASS_ALLOC, c.T_CLASS_USAGE, c.T_LABELLED_ALLOC, c.T_LABELLED_USAGE, c.T_CLASS_NODES):
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
    _insert_days(con)
    _record(con, fingerprints(con))


def _insert_days(con: duckdb.DuckDBPyConnection, where: str = "") -> None:
    """The labelled and class rows of the pod-day rows `where` selects (alias r): pod-day rows labelled as the
    attribution reads them, per node (what a ledger whose nodes of a class pay different bills reads), then
    those summed over each class's nodes."""
    for table, labelled, target, cols, extra in (
        ("rollup_alloc_daily", c.T_LABELLED_ALLOC, c.T_CLASS_ALLOC, ("units_compute", "units_memory"), ""),
        ("rollup_usage_daily", c.T_LABELLED_USAGE, c.T_CLASS_USAGE, USAGE_VALUES, "lab.a_pod IS NOT NULL, "),
    ):
        sums = ", ".join(f"sum({x}) AS {x}" for x in cols)
        con.execute(
            f"""INSERT INTO {labelled}
            WITH per_pod AS (
                SELECT r.day, r.cluster, r.node, r.namespace, r.pod, r.pod AS a_pod, r.uid, {sums}
                FROM {table} r {where} GROUP BY ALL),
            {labelled_sql("per_pod")}
            SELECT day, cluster, node, namespace, labels, CASE WHEN NOT {has_app_sql("labels")} THEN pod END, {extra}
                {sums.replace("sum(", "sum(lab.")}
            FROM lab GROUP BY ALL"""
        )
        days = "WHERE l.day IN (SELECT day FROM class_days)" if where else ""
        mapped = "l.mapped, " if extra else ""
        con.execute(
            f"""INSERT INTO {target}
            SELECT l.day, l.cluster, coalesce(cn.class_node, l.node), l.namespace, l.labels, l.pod, {mapped}{sums}
            FROM {labelled} l LEFT JOIN {c.T_CLASS_NODES} cn USING (cluster, node) {days} GROUP BY ALL"""
        )


def _record(con: duckdb.DuckDBPyConnection, prints: dict[str, int]) -> None:
    con.execute(f"DELETE FROM {c.T_ROLLUP_STATE} WHERE source LIKE 'class:%'")
    con.executemany(f"INSERT INTO {c.T_ROLLUP_STATE} VALUES (?, ?)", list(prints.items()))
