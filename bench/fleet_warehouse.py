"""A Fleet straight into warehouse tables, with vectorised DuckDB SQL (no exporter text, no parsing).

Rows follow core/store/schema.py exactly as the collectors would write them for 60 s scrapes: one row per
step on the grid, `ts` = step start, `step_s`; dimensions as kube-state-metrics/dcgm-exporter labels
become them (pod labels `team`, `app_kubernetes_io_name`; node labels as GPU feature discovery and
karpenter set them). Facts are inserted one day at a time (so rows are roughly in time order, as
collection writes them, and memory stays flat), then the rollups are refreshed as a commit would.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bench.fleet import CLUSTER, KINDS, MEMORY_SHARE, REGION, TS_BUSY, TS_KEY, Fleet, activity_sql, noise_sql
from collectors.pricing import price_table
from core import conventions as c
from core.store.warehouse import connect, transaction


def write(fleet: Fleet, path: Path, *, prices: bool = True, refresh: bool = True) -> dict[str, object]:
    """Create the warehouse at `path` (replacing it); return rows per table and seconds per phase."""
    for stale in (path, path.with_suffix(path.suffix + ".wal")):
        stale.unlink(missing_ok=True)
    con = connect(path)
    out: dict[str, object] = {}
    try:
        con.execute("SET memory_limit = '3GB'")  # a shared machine: spill rather than crowd others out
        _register(con, fleet)
        started = time.monotonic()
        with transaction(con):
            _dimensions(con, fleet)
            for day in range(int(np.ceil(fleet.spec.days))):
                _facts(con, fleet, day)
        out["facts_s"] = round(time.monotonic() - started, 1)
        if prices:
            rows = price_table.parse_csv(price_table.default_table_text(), "default", price_table.ImportOptions())
            price_table.store(con, rows)
        if refresh:
            started = time.monotonic()
            _refresh(con, fleet)
            out["rollups_s"] = round(time.monotonic() - started, 1)
        _log_run(con, fleet)
        con.execute("CHECKPOINT")
        out["rows"] = {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in c.FACT_TABLES}
    finally:
        con.close()
    return out


def _refresh(con: duckdb.DuckDBPyConnection, fleet: Fleet) -> None:
    from core.store.rollups import hourly

    end = fleet.spec.start + timedelta(seconds=fleet.spec.steps * fleet.spec.step_s)
    with transaction(con):
        hourly.refresh(con, (fleet.spec.start, end), full=True)


def _labels(pairs: dict[str, str]) -> str:
    return json.dumps(pairs, sort_keys=True, separators=(",", ":"))


def _register(con: duckdb.DuckDBPyConnection, fleet: Fleet) -> None:
    """Views of the fleet the SQL below joins: nodes, entities, intervals, pods and their devices."""
    nodes, devices, slots = fleet.nodes, fleet.devices, fleet.slots
    dev = devices.merge(nodes[["node_id", "node", "tdp_w", "memory_mib"]], on="node_id")
    gb = dev["mig_profile"].str.extract(r"\.(\d+)gb", expand=False).astype(float)
    dev["entity_mib"] = np.where(dev["mig_profile"] != "", gb * 1024 - 512, dev["memory_mib"])
    iv = fleet.intervals.merge(dev, on="dev_id")
    kinds = fleet.pods.set_index("pod_id")["kind"]
    share = iv["pod_id"].map(kinds).map(MEMORY_SHARE).fillna(0.0)
    iv["mem_share"] = np.where(iv["code"] == TS_BUSY, 0.45, share)
    iv["key"] = np.where(iv["code"] == TS_BUSY, TS_KEY + iv["dev_id"], iv["pod_id"])
    iv["mig"] = iv["mig_profile"] != ""
    _table(
        con,
        "bf_iv",
        iv[["node", "uuid", "gi_id", "mig", "tdp_w", "entity_mib", "mem_share", "code", "key", "start", "stop"]],
    )
    pods = fleet.pods.merge(slots[["slot_id", "node_id", "resource", "amount", "vgpu"]], on="slot_id")
    pods = pods.merge(nodes[["node_id", "node"]], on="node_id")
    pods["code"] = pods["kind"].map(KINDS.index)
    _table(con, "bf_pods", pods)
    links = pods[["pod_id", "slot_id", "namespace", "pod", "node", "vgpu", "code", "start", "stop"]].merge(
        fleet.slot_devices, on="slot_id"
    )
    links = links.merge(devices[["dev_id", "uuid", "gi_id", "ts"]], on="dev_id")
    _table(con, "bf_links", links)
    _table(con, "bf_nodes", nodes)


def _table(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    """A TEMP copy of a frame: scanning DuckDB's own columns is twice as fast as scanning pandas objects."""
    con.register("bf_frame", frame)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM bf_frame")
    con.unregister("bf_frame")


def _dimensions(con: duckdb.DuckDBPyConnection, fleet: Fleet) -> None:
    spec = fleet.spec
    end = spec.start + timedelta(seconds=spec.steps * spec.step_s)
    nodes = fleet.nodes
    labels = [
        _labels(
            {
                "karpenter_sh_capacity_type": n.capacity_type,
                "karpenter_sh_nodepool": n.pool,
                "node_kubernetes_io_instance_type": n.instance_type,
                "nvidia_com_gpu_count": str(n.gpus),
                "nvidia_com_gpu_product": n.product,
                "topology_kubernetes_io_region": REGION,
                "topology_kubernetes_io_zone": n.zone,
                **({"nvidia_com_gpu_replicas": str(n.replicas)} if n.replicas else {}),
            }
        )
        for n in nodes.itertuples()
    ]
    frame = pd.DataFrame(
        {
            "cluster": CLUSTER,
            "node": nodes["node"],
            "instance_type": nodes["instance_type"],
            "capacity_type": nodes["capacity_type"].str.replace("-", "_"),
            "region": REGION,
            "zone": nodes["zone"],
            "node_pool": nodes["pool"],
            "gpu_model": nodes["product"],
            "gpu_count": nodes["gpus"],
            "gpu_replicas": nodes["replicas"].where(nodes["replicas"] > 0),
            "labels": labels,
            "first_seen": spec.start,
            "last_seen": end,
        }
    )
    con.register("bf_dim", frame)
    con.execute(f"INSERT INTO {c.T_NODES} BY NAME SELECT * FROM bf_dim")
    _gpus(con, fleet, end)
    _pods_dim(con, fleet)


def _gpus(con: duckdb.DuckDBPyConnection, fleet: Fleet, end: datetime) -> None:
    con.register("bf_devices", fleet.devices)
    con.execute(
        f"""INSERT INTO {c.T_GPUS} BY NAME
        SELECT '{CLUSTER}' AS cluster, n.node, d.uuid AS gpu_uuid, d.gi_id AS gpu_instance, d.gpu_index,
            n.model, d.mig_profile, ?::TIMESTAMP AS first_seen, ?::TIMESTAMP AS last_seen
        FROM bf_devices d JOIN bf_nodes n USING (node_id)""",
        [fleet.spec.start, end],
    )


def _pods_dim(con: duckdb.DuckDBPyConnection, fleet: Fleet) -> None:
    spec, step = fleet.spec, timedelta(seconds=fleet.spec.step_s)
    pods = fleet.pods
    labels = np.where(
        pods["team"] == "",
        pods["app"].map(lambda a: _labels({"app_kubernetes_io_name": a})),
        [_labels({"app_kubernetes_io_name": a, "team": t}) for a, t in zip(pods["app"], pods["team"], strict=True)],
    )
    frame = pd.DataFrame({"labels": labels, "pod_id": pods["pod_id"]})
    con.register("bf_pod_labels", frame)
    con.execute(
        f"""INSERT INTO {c.T_PODS} BY NAME
        SELECT '{CLUSTER}' AS cluster, p.namespace, p.pod, p.uid, p.node, l.labels,
            ?::TIMESTAMP + to_seconds(p.start * {spec.step_s}) AS first_seen,
            ?::TIMESTAMP + to_seconds(p.stop * {spec.step_s}) AS last_seen
        FROM bf_pods p JOIN bf_pod_labels l USING (pod_id)""",
        [spec.start, spec.start],
    )
    namespaces = sorted(set(pods["namespace"]))
    rows = [
        (CLUSTER, ns, _labels({"team": ns.removeprefix("team-")} if ns.startswith("team-") else {}), spec.start)
        for ns in namespaces
    ]
    end = spec.start + step * spec.steps
    con.executemany(f"INSERT INTO {c.T_NAMESPACES} VALUES (?, ?, ?, ?, '{end}')", rows)


def _facts(con: duckdb.DuckDBPyConnection, fleet: Fleet, day: int) -> None:
    """One UTC day of every fact table: steps [lo, hi)."""
    spec = fleet.spec
    per_day = 86400 // spec.step_s
    lo, hi = day * per_day, min((day + 1) * per_day, spec.steps)
    ts = f"TIMESTAMP '{spec.start:%Y-%m-%d %H:%M:%S}' + to_seconds(k * {spec.step_s})"
    span = f"unnest(range(greatest(start, {lo}), least(stop, {hi}))) AS k"
    where = f"start < {hi} AND stop > {lo}"
    con.execute(
        f"""INSERT INTO {c.T_NODE_SAMPLES} (ts, step_s, cluster, node, gpu_capacity)
        SELECT {ts}, {spec.step_s}, '{CLUSTER}', node, gpus FROM (SELECT node, gpus, unnest(range({lo}, {hi})) AS k FROM bf_nodes)"""
    )
    act = activity_sql("code", "u1", "k", spec.step_s)
    u1 = noise_sql("key", "k", 48271)
    con.execute(
        f"""INSERT INTO {c.T_GPU_SAMPLES}
        SELECT {ts}, {spec.step_s}, '{CLUSTER}', node, uuid, gi_id, act,
            CASE WHEN mig THEN NULL ELSE least(100, round(act * 104)) END,
            round(mem_share * entity_mib),
            round(greatest(40, least(tdp_w, 55 + act * (tdp_w - 55) + 4 * (2 * ((u1 * 7919.0) % 1.0) - 1))), 3),
            round(31 + 42 * act)
        FROM (SELECT *, {act} AS act FROM (SELECT *, {u1} AS u1 FROM (SELECT *, {span} FROM bf_iv WHERE {where})))"""
    )
    pod_u1 = noise_sql("pod_id", "k", 48271)
    con.execute(
        f"""INSERT INTO {c.T_GPU_POD_SAMPLES}
        SELECT {ts}, {spec.step_s}, '{CLUSTER}', node, uuid, gi_id, vgpu, namespace, pod,
            CASE WHEN ts THEN least(100, round({activity_sql("code", pod_u1, "k", spec.step_s)} * 104)) END
        FROM (SELECT *, {span} FROM bf_links WHERE {where})"""
    )
    con.execute(
        f"""INSERT INTO {c.T_POD_ALLOCATIONS}
        SELECT {ts}, {spec.step_s}, '{CLUSTER}', namespace, pod, uid, node, resource, amount
        FROM (SELECT *, {span} FROM bf_pods WHERE {where})"""
    )


def _log_run(con: duckdb.DuckDBPyConnection, fleet: Fleet) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    end = fleet.spec.start + timedelta(seconds=fleet.spec.steps * fleet.spec.step_s)
    con.execute(
        f"INSERT INTO {c.T_INGEST_RUNS} VALUES (?, ?, ?, ?, ?, ?, NULL, 0, 'ok', ?, 0)",
        [uuid.uuid4().hex, f"bench:{fleet.spec.key}", now, now, fleet.spec.start, end, "bench/fleet_warehouse.py"],
    )
