"""What a generated fleet must cost, computed from its schedule alone (no warehouse, no SQL).

The tests compare these with the chargeback of the generated warehouse, of its OpenMetrics text
ingested by gpuledger, and of a Prometheus backfilled from that text.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import numpy as np
import pandas as pd

from bench.fleet import KINDS, REGION, TS_BUSY, TS_KEY, Fleet, activity
from collectors.pricing import price_table
from core import conventions as c


def _team(team: str) -> str:
    return team or c.UNALLOCATED


def pods_with_slots(fleet: Fleet) -> pd.DataFrame:
    cols = ["slot_id", "node_id", "resource", "amount", "share", "vgpu"]
    return fleet.pods.merge(fleet.slots[cols], on="slot_id").merge(fleet.nodes, on="node_id")


def allocated_gpu_hours(fleet: Fleet, lo: int = 0, hi: int | None = None) -> dict[str, float]:
    """GPU-hours per team: each pod's share of physical GPUs x its Running steps (in [lo, hi))."""
    pods = pods_with_slots(fleet)
    hi = fleet.spec.steps if hi is None else hi
    steps = np.clip(pods["stop"], lo, hi) - np.clip(pods["start"], lo, hi)
    hours = pods["share"] * steps * fleet.spec.step_s / 3600
    return {_team(t): float(v) for t, v in hours.groupby(pods["team"]).sum().items()}


def capacity_gpu_hours(fleet: Fleet) -> float:
    return float(fleet.nodes["gpus"].sum() * fleet.spec.steps * fleet.spec.step_s / 3600)


def gpu_hour_prices() -> dict[tuple[str, str], Decimal]:
    """(instance type, capacity type) -> $/GPU-hour in the default table (latest row, us-east-1)."""
    rows = price_table.parse_csv(price_table.default_table_text(), "default", price_table.ImportOptions())
    latest: dict[tuple[str, str], tuple[datetime, Decimal]] = {}
    for r in rows:
        if r.region == REGION and r.zone == "" and r.gpu_price_per_hour_usd is not None:
            key = (r.instance_type, r.capacity_type)
            if key not in latest or r.effective_from > latest[key][0]:
                latest[key] = (r.effective_from, Decimal(r.gpu_price_per_hour_usd) / r.gpus)
    return {k: v[1] for k, v in latest.items()}


def allocated_cost(fleet: Fleet) -> dict[str, float]:
    """$ per team (allocated, before idle): GPU-hours x the node's $/GPU-hour."""
    prices = gpu_hour_prices()
    pods = pods_with_slots(fleet)
    rate = [
        float(prices[(it, ct.replace("-", "_"))])
        for it, ct in zip(pods["instance_type"], pods["capacity_type"], strict=True)
    ]
    cost = pods["share"] * (pods["stop"] - pods["start"]) * fleet.spec.step_s / 3600 * np.array(rate)
    return {_team(t): float(v) for t, v in cost.groupby(pods["team"]).sum().items()}


def capacity_cost(fleet: Fleet) -> float:
    prices = gpu_hour_prices()
    n = fleet.nodes
    rate = np.array(
        [
            float(prices[(it, ct.replace("-", "_"))])
            for it, ct in zip(n["instance_type"], n["capacity_type"], strict=True)
        ]
    )
    return float((n["gpus"] * rate).sum() * fleet.spec.steps * fleet.spec.step_s / 3600)


def used_gpu_hours(fleet: Fleet) -> dict[str, float]:
    """Activity x entity share x the pod's share of the entity, over every Running step (small fleets)."""
    step_h = fleet.spec.step_s / 3600
    links = (
        pods_with_slots(fleet)
        .merge(fleet.slot_devices, on="slot_id")
        .merge(fleet.devices[["dev_id", "slices", "ts"]], on="dev_id")
    )
    out: dict[str, float] = {}
    for row in links[~links["ts"]].itertuples():
        k = np.arange(row.start, row.stop)
        act = activity(np.full(len(k), KINDS.index(row.kind)), np.full(len(k), row.pod_id), k, fleet.spec.step_s)
        out[_team(row.team)] = out.get(_team(row.team), 0.0) + float(act.sum()) * row.slices / 7 * step_h
    for dev_id, group in links[links["ts"]].groupby("dev_id"):
        _time_sliced(fleet, int(dev_id), group, out)
    return out


def _time_sliced(fleet: Fleet, dev_id: int, pods: pd.DataFrame, out: dict[str, float]) -> None:
    """A time-sliced GPU: its activity split by the pods' per-process utilisation at each step."""
    n, step_h = fleet.spec.steps, fleet.spec.step_s / 3600
    k = np.arange(n)
    util = np.zeros((len(pods), n))
    for i, p in enumerate(pods.itertuples()):
        ks = np.arange(p.start, p.stop)
        act = activity(np.full(len(ks), KINDS.index(p.kind)), np.full(len(ks), p.pod_id), ks, fleet.spec.step_s)
        util[i, p.start : p.stop] = np.minimum(100, np.round(act * 104))
    running = np.zeros((len(pods), n), dtype=bool)
    for i, p in enumerate(pods.itertuples()):
        running[i, p.start : p.stop] = True
    device = activity(np.full(n, TS_BUSY), np.full(n, TS_KEY + dev_id), k, fleet.spec.step_s) * running.any(axis=0)
    total = util.sum(axis=0)
    sharers = running.sum(axis=0)
    for i, p in enumerate(pods.itertuples()):
        share = np.where(total > 0, util[i] / np.where(total > 0, total, 1), 1.0 / np.maximum(sharers, 1))
        used = float((device * share * running[i]).sum()) * step_h
        out[_team(p.team)] = out.get(_team(p.team), 0.0) + used
