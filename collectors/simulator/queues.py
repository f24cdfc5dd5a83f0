"""Waiting for GPUs in the simulated fleet: gang jobs that wait for whole GPUs, a job that never starts, the Kueue
ClusterQueues the teams submit through, and the truth `report queues` must reproduce.

- A training gang (4 GPUs or more) waits 1-12 scrapes before it is scheduled (a hash of its uid: no draw from the
  schedule's random stream, so the seeded schedule stays as it was).
- `llama-pretrain` (team nlp) asks for 8 whole GPUs at the first 10:00 of the window, waits an hour, unschedulable,
  and is deleted: no node ever has 8 GPUs free, so the free GPUs of that hour are fragmented.
- Kueue (v0.13 names): one ClusterQueue per team in cohort `gpu-pool`, nominal whole-GPU quotas QUOTAS, usage = the
  team's Running whole GPUs, pending = its Pending pods, admitted workloads counted as they start.

`truth` computes every figure from the schedule itself (not from the files), with the report's rules stated again.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import replace
from typing import Any

import numpy as np

from collectors.simulator.fleet import NODES, Pod, gpu_fraction
from core import conventions as c

COHORT = "gpu-pool"
QUOTAS = {"vision": 6, "nlp": 6, "research": 2, "ads": 2}  # whole GPUs
Segment = tuple[str, np.ndarray, list[str]]


def gang_wait(uid: str) -> int:
    """Scrapes a gang job waits for its GPUs (1-12), from its uid."""
    return 1 + int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) % 12


def with_gang_waits(pods: list[Pod]) -> list[Pod]:
    return [
        replace(p, created=max(p.start - gang_wait(p.uid), 0))
        if p.kind == "training" and p.amount >= 4 and p.start > 0
        else p
        for p in pods
    ]


def never_started(n: int, interval_s: int, hour0: float) -> list[Pod]:
    """The 8-GPU job that waits an hour at the first 10:00 of the window and is deleted unscheduled."""
    per_hour = 3600 // interval_s
    first = int(round(((10 - hour0) % 24) * per_hour))
    if first + per_hour > n:
        return []
    node = NODES[0]
    devices = tuple(d for d in node.devices() if not d.mig_profile)
    uid = "7e57a11e-0000-4000-a000-000000007e00"
    return [
        Pod("team-nlp", "llama-pretrain-0", uid, "nlp", "llama-pretrain", "training", node.name, c.RESOURCE_GPU, 8,
            devices, first, first + per_hour, first + per_hour, first + per_hour)
    ]  # fmt: skip


def _pending(p: Pod, k: int) -> bool:
    return p.created <= k < p.start


def _running(p: Pod, k: int) -> bool:
    return p.start <= k < p.end


def _equivalent(p: Pod) -> float:
    """GPUs one pending unit stands for before placement: a MIG instance g/7, anything else 1."""
    return int(p.resource.removeprefix("nvidia_com_mig_").split("g_")[0]) / 7 if "mig" in p.resource else 1.0


class KueueFamilies:
    def __init__(self, pods: list[Pod], n: int) -> None:
        self.n = n
        self.used = {t: np.zeros(n) for t in QUOTAS}
        self.pending = {t: np.zeros(n) for t in QUOTAS}
        self.admitted = {t: np.zeros(n) for t in QUOTAS}
        for p in pods:
            if p.team not in QUOTAS:
                continue
            if p.resource == c.RESOURCE_GPU:
                self.used[p.team][p.start : p.end] += p.amount
            self.pending[p.team][p.created : p.start] += 1
            if 0 < p.start < n and p.start < p.end:
                self.admitted[p.team][p.start :] += 1

    def segments(self, family: str) -> list[Segment]:
        idx, out = np.arange(self.n), []
        for team, quota in QUOTAS.items():
            queue = f'cluster_queue="{team}-cq"'
            gpu = f'cluster_queue="{team}-cq",cohort="{COHORT}",flavor="default",resource="nvidia.com/gpu"'
            values = {
                c.KUEUE_NOMINAL: (gpu, [str(quota)] * self.n),
                c.KUEUE_BORROWING: (gpu, ["0"] * self.n),
                c.KUEUE_USAGE: (gpu, [f"{v:g}" for v in self.used[team]]),
                c.KUEUE_ADMITTED: (queue, [f"{v:g}" for v in self.admitted[team]]),
            }
            if family == c.KUEUE_PENDING:
                out.append((f'{queue},status="active"', idx, [f"{v:g}" for v in self.pending[team]]))
            elif family in values:
                labels, vals = values[family]
                out.append((labels, idx, vals))
        return out


def _free(pods: list[Pod], k: int) -> dict[str, dict[str, float]]:
    """Each node's free units per resource at step k (capacity less what Running pods hold)."""
    free: dict[str, dict[str, float]] = {}
    for node in NODES:
        whole = node.gpu_count - len(node.mig)
        counts: dict[str, float] = defaultdict(float)
        counts["nvidia_com_gpu_shared" if node.replicas else c.RESOURCE_GPU] = whole * (node.replicas or 1)
        for profiles in node.mig.values():
            for profile in profiles:
                counts["nvidia_com_mig_" + profile.replace(".", "_")] += 1
        free[node.name] = counts
    for p in pods:
        if _running(p, k):
            free[p.node][p.resource] -= p.amount
    return free


def _fragmented_at(pods: list[Pod], k: int) -> float:
    """GPUs free on nodes where none of the pods Pending at k fits (0 when none pends)."""
    waiting = [p for p in pods if _pending(p, k)]
    if not waiting:
        return 0.0
    nodes = {n.name: n for n in NODES}
    total = 0.0
    for name, free in _free(pods, k).items():
        fits = any(free.get(p.resource, 0) >= p.amount for p in waiting if free.get(p.resource, 0) > 0)
        if not fits:
            node = nodes[name]
            total += sum(max(v, 0) * gpu_fraction(r, node.model, node.replicas) for r, v in free.items())
    return total


def truth(pods: list[Pod], n: int, interval_s: int) -> dict[str, Any]:
    """What `report queues` over the whole window must give: per team pending GPU-hours, waits and pods never started;
    fragmented GPU-hours; per ClusterQueue borrowed, idle and idle-while-others-waited GPU-hours."""
    h = interval_s / 3600
    teams: dict[str, dict[str, Any]] = defaultdict(lambda: {"pending_gpu_hours": 0.0, "waits": [], "never_started": 0})
    for p in pods:
        team = p.team or c.UNALLOCATED
        pending = p.start - p.created
        if pending <= 0 and not (p.start == p.created and p.start < n):
            continue
        t = teams[team]
        t["pending_gpu_hours"] += pending * p.amount * _equivalent(p) * h
        t["waits"].append(pending * interval_s)
        t["never_started"] += int(p.start >= p.end and pending > 0)
    kueue = KueueFamilies(pods, n)
    quotas = {}
    for team, quota in QUOTAS.items():
        others = np.zeros(n, bool)
        for other in QUOTAS:
            if other != team:
                others |= kueue.pending[other] > 0
        idle = np.maximum(quota - kueue.used[team], 0)
        quotas[f"{team}-cq"] = {
            "borrowed_gpu_hours": float(np.maximum(kueue.used[team] - quota, 0).sum() * h),
            "idle_quota_gpu_hours": float(idle.sum() * h),
            "idle_while_others_waited_gpu_hours": float(idle[others & (kueue.pending[team] == 0)].sum() * h),
        }
    return {
        "teams": {k: {**v, "waits": sorted(v["waits"])} for k, v in sorted(teams.items())},
        "fragmented_gpu_hours": math.fsum(_fragmented_at(pods, k) for k in range(n)) * h,
        "quotas": quotas,
    }
