"""The chargeback by team written the straightforward way: pandas over the raw step rows.

What a data scientist would write against the same warehouse without rollups: read each day's
step rows into DataFrames (a month at once does not fit in memory past a few hundred GPUs),
join requests to node prices and pod labels, sum. Prices are the rows in force at the window
start (the bench fleets' prices do not change), shares follow the README's rules (whole GPU 1,
MIG g/7, time-slicing 1/replicas), capacity is what nodes declare. Returns the same numbers as
`gpuledger report chargeback --by team`: GPU-hours, used GPU-hours and cost per team, idle.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from core import conventions as c


def _team(labels: str | None, ns_team: object) -> str:
    found = json.loads(labels) if labels else {}
    return found.get("team") or (ns_team if isinstance(ns_team, str) and ns_team else c.UNALLOCATED)


def _static(con: duckdb.DuckDBPyConnection, at: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    nodes = con.execute(f"SELECT node, instance_type, capacity_type, region, gpu_replicas FROM {c.T_NODES}").df()
    prices = con.execute(
        f"""SELECT instance_type, capacity_type, region, gpu_price_per_hour_usd, gpus, effective_from
        FROM {c.T_PRICES} WHERE zone = '' AND effective_from <= ?""",
        [at],
    ).df()
    prices = prices.sort_values("effective_from").groupby(["instance_type", "capacity_type", "region"]).last()
    prices["usd_per_gpu_s"] = prices["gpu_price_per_hour_usd"].astype(float) / prices["gpus"] / 3600
    nodes = nodes.merge(
        prices["usd_per_gpu_s"].reset_index(), on=["instance_type", "capacity_type", "region"], how="left"
    )
    nodes["usd_per_gpu_s"] = nodes["usd_per_gpu_s"].fillna(0.0)
    pods = con.execute(
        f"""SELECT p.namespace, p.pod, p.uid, p.labels, json_extract_string(n.labels, '$.team') AS ns_team
        FROM {c.T_PODS} p LEFT JOIN {c.T_NAMESPACES} n USING (cluster, namespace)"""
    ).df()
    pods["team"] = [_team(lb, nt) for lb, nt in zip(pods["labels"], pods["ns_team"], strict=True)]
    return nodes, pods[["namespace", "pod", "uid", "team"]]


def _share(alloc: pd.DataFrame) -> pd.Series:
    mig = alloc["resource"].str.extract(r"^nvidia_com_mig_(\d+)g", expand=False).astype(float)
    share = pd.Series(1.0, index=alloc.index)
    share = share.where(mig.isna(), mig / 7)
    shared = alloc["resource"] == c.RESOURCE_GPU_SHARED
    return share.where(~shared, 1.0 / alloc["gpu_replicas"].fillna(1))


def _day(
    con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, nodes: pd.DataFrame, pods: pd.DataFrame
) -> pd.DataFrame:
    where = "WHERE ts >= ? AND ts < ?"
    alloc = con.execute(
        f"SELECT ts, node, namespace, pod, uid, resource, amount, step_s FROM {c.T_POD_ALLOCATIONS} {where}", [lo, hi]
    ).df()
    alloc = alloc.merge(nodes, on="node", how="left").merge(pods, on=["namespace", "pod", "uid"], how="left")
    alloc["gpu_s"] = alloc["amount"] * _share(alloc) * alloc["step_s"]
    alloc["cost"] = alloc["gpu_s"] * alloc["usd_per_gpu_s"]
    out = alloc.groupby("team")[["gpu_s", "cost"]].sum()
    cap = con.execute(f"SELECT node, gpu_capacity, step_s FROM {c.T_NODE_SAMPLES} {where}", [lo, hi]).df()
    cap = cap.merge(nodes, on="node", how="left")
    capacity_s = float((cap["gpu_capacity"] * cap["step_s"]).sum())
    capacity_cost = float((cap["gpu_capacity"] * cap["step_s"] * cap["usd_per_gpu_s"]).sum())
    out.loc[c.IDLE] = [capacity_s - out["gpu_s"].sum(), capacity_cost - out["cost"].sum()]
    out["used_s"] = _used(con, lo, hi, pods).reindex(out.index).fillna(0.0)
    return out


def _used(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, pods: pd.DataFrame) -> pd.Series:
    """Activity x MIG share x the pod's share of the device, per team."""
    where = "WHERE ts >= ? AND ts < ?"
    dev = con.execute(
        f"""SELECT s.ts, s.node, s.gpu_uuid, s.gpu_instance, s.step_s, coalesce(s.gr_engine_active, s.gpu_util / 100.0, 0) AS act,
            g.mig_profile FROM {c.T_GPU_SAMPLES} s LEFT JOIN {c.T_GPUS} g USING (cluster, node, gpu_uuid, gpu_instance) {where}""",
        [lo, hi],
    ).df()
    g = dev["mig_profile"].fillna("").str.extract(r"^(\d+)g", expand=False).astype(float)
    dev["act"] = dev["act"] * np.where(g.isna(), 1.0, g / 7)
    mapped = con.execute(
        f"SELECT ts, node, gpu_uuid, gpu_instance, namespace, pod, gpu_util FROM {c.T_GPU_POD_SAMPLES} {where}",
        [lo, hi],
    ).df()
    key = ["ts", "node", "gpu_uuid", "gpu_instance"]
    per = mapped.groupby(key).agg(sharers=("pod", "size"), util_total=("gpu_util", "sum")).reset_index()
    mapped = mapped.merge(per, on=key)
    even = 1.0 / mapped["sharers"]
    mapped["share"] = np.where(
        (mapped["util_total"] > 0) & mapped["gpu_util"].notna(), mapped["gpu_util"] / mapped["util_total"], even
    )
    used = mapped.merge(dev, on=key)
    used["used_s"] = used["act"] * used["step_s"] * used["share"]
    uids = con.execute(f"SELECT DISTINCT ts, namespace, pod, uid FROM {c.T_POD_ALLOCATIONS} {where}", [lo, hi]).df()
    used = used.merge(uids, on=["ts", "namespace", "pod"], how="left").merge(
        pods, on=["namespace", "pod", "uid"], how="left"
    )
    return used.groupby(used["team"].fillna(c.UNALLOCATED))["used_s"].sum()


def chargeback_by_team(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> dict[str, dict[str, float]]:
    """team -> gpu_hours, used_gpu_hours, cost_usd (idle as __idle__), one day of raw rows at a time."""
    nodes, pods = _static(con, start)
    total: pd.DataFrame | None = None
    day = start
    while day < end:
        part = _day(con, day, min(day + timedelta(days=1), end), nodes, pods)
        total = part if total is None else total.add(part, fill_value=0.0)
        day += timedelta(days=1)
    assert total is not None
    return {
        str(team): {"gpu_hours": r.gpu_s / 3600, "used_gpu_hours": r.used_s / 3600, "cost_usd": r.cost}
        for team, r in total.iterrows()
    }
