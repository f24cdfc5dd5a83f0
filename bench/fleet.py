"""Synthetic GPU fleets at any size, with the simulator's realism, described as numpy arrays.

`build(FleetSpec(gpus=10_000, days=30))` returns a `Fleet`: nodes, DCGM entities, pods with their
Running span in steps, and per-entity occupancy intervals. Writers turn it into warehouse rows
(bench/fleet_warehouse.py), OpenMetrics text (bench/fleet_openmetrics.py) or a Prometheus TSDB
(bench/promql.py). Nothing here loops per sample: a 10,000-GPU month is ~0.5M pods and builds in
seconds.

Realism, as in collectors/simulator (one cluster, AWS us-east-1, default price table):

| pool      | instance      | capacity  | GPUs | share of GPUs | layout per node                        |
|-----------|---------------|-----------|------|---------------|----------------------------------------|
| od-a100   | p4d.24xlarge  | on-demand | 8    | 40%           | 4-GPU gang, fine-tune, inference, notebook, sandbox or idle |
| od-h100   | p5.48xlarge   | on-demand | 8    | 20%           | 8-GPU gang, or two 4-GPU gangs         |
| mig-a100  | p4de.24xlarge | on-demand | 8    | 15%           | MIG on GPUs 0-2 (3g/2g/1g slices), 2-GPU fine-tune, inference, batch, idle |
| ts-a10g   | g5.12xlarge   | on-demand | 4    | 15%           | every GPU time-sliced by 4 replicas: inference, notebook, batch, training |
| spot-v100 | p3.2xlarge    | spot      | 1    | 10%           | training or batch; every 5th node idle |

Teams own pods through the `team` label (8 teams, namespaces team-<name>); the `sandbox`
namespace's pods carry none. Jobs start and stop mid-window (training 6-30 h, fine-tune 2-10 h,
notebooks 2-8 h on weekdays, batch 0.5-2 h); inference runs all window, redeployed weekly.
Activity is a deterministic function of (pod, step) (`activity`), so truth is computable anywhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

CLUSTER = "bench"
REGION = "us-east-1"
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
TEAMS = ("vision", "nlp", "research", "ads", "search", "speech", "recsys", "robotics")
SANDBOX = "sandbox"
KINDS = ("training", "finetune", "inference", "notebook", "batch", "sandbox")
TS_BUSY = len(KINDS)  # activity code of a time-sliced GPU while any replica runs
TS_KEY = 10_000_000  # its activity key: TS_KEY + dev_id (pod ids stay below)
# (run hours lo, hi, gap hours lo, hi); inference is always on (redeployed weekly)
JOBS = {
    "training": (6, 30, 1, 6),
    "finetune": (2, 10, 1, 8),
    "notebook": (2, 8, 3, 20),
    "batch": (0.5, 2, 0.5, 4),
    "sandbox": (1, 6, 2, 24),
}
MEMORY_SHARE = {"training": 0.82, "finetune": 0.78, "inference": 0.71, "notebook": 0.27, "batch": 0.45, "sandbox": 0.45}
P = 2_147_483_647  # Park-Miller prime: noise() uses only int64-safe products


@dataclass(frozen=True)
class Model:
    name: str  # DCGM modelName
    product: str  # nvidia.com/gpu.product (GPU feature discovery)
    memory_mib: int
    tdp_w: float


A100_40 = Model("NVIDIA A100-SXM4-40GB", "NVIDIA-A100-SXM4-40GB", 40960, 400.0)
A100_80 = Model("NVIDIA A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB", 81920, 400.0)
H100 = Model("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3", 81559, 700.0)
A10G = Model("NVIDIA A10G", "NVIDIA-A10G-SHARED", 23028, 300.0)
V100 = Model("Tesla V100-SXM2-16GB", "Tesla-V100-SXM2-16GB", 16384, 300.0)


@dataclass(frozen=True)
class Pool:
    name: str
    instance_type: str
    capacity_type: str  # karpenter.sh/capacity-type value
    model: Model
    gpus: int
    share: float
    replicas: int = 0


POOLS = (
    Pool("od-a100", "p4d.24xlarge", "on-demand", A100_40, 8, 0.40),
    Pool("od-h100", "p5.48xlarge", "on-demand", H100, 8, 0.20),
    Pool("mig-a100", "p4de.24xlarge", "on-demand", A100_80, 8, 0.15),
    Pool("ts-a10g", "g5.12xlarge", "on-demand", A10G, 4, 0.15, replicas=4),
    Pool("spot-v100", "p3.2xlarge", "spot", V100, 1, 0.10),
)
TS_KINDS = ("inference", "notebook", "batch", "training")  # per time-slicing replica
MIG_LAYOUT = {0: ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"), 1: ("3g.40gb", "3g.40gb"), 2: ("1g.10gb",) * 7}
GI_BASE = {"3g.40gb": 1, "2g.20gb": 5, "1g.10gb": 9}  # NVML placement ids, as collectors/simulator numbers them


@dataclass(frozen=True)
class FleetSpec:
    gpus: int
    days: float = 30
    step_s: int = 60
    seed: int = 7
    start: datetime = datetime(2026, 10, 5)  # a Monday, 00:00 UTC

    @property
    def steps(self) -> int:
        return int(round(self.days * 86400)) // self.step_s

    @property
    def key(self) -> str:
        return f"g{self.gpus}-d{self.days:g}-s{self.step_s}-r{self.seed}-{self.start:%Y%m%d}"


@dataclass
class Fleet:
    spec: FleetSpec
    nodes: (
        pd.DataFrame
    )  # node_id, node, pool, instance_type, capacity_type, zone, model, product, gpus, replicas, tdp_w, memory_mib
    devices: pd.DataFrame  # dev_id, node_id, gpu_index, uuid, gi_id, mig_profile, slices (g of 7, or 7), ts
    slots: pd.DataFrame  # slot_id, node_id, kind, team, resource, amount, share (GPUs per unit), vgpu
    slot_devices: pd.DataFrame  # slot_id, dev_id
    pods: pd.DataFrame = field(
        default_factory=pd.DataFrame
    )  # pod_id, slot_id, start, stop, kind, team, namespace, app, pod, uid
    intervals: pd.DataFrame = field(
        default_factory=pd.DataFrame
    )  # dev_id, start, stop, pod_id (-1 idle, -2 ts busy), code

    @property
    def physical_gpus(self) -> int:
        return int(self.nodes["gpus"].sum())


def build(spec: FleetSpec) -> Fleet:
    """The fleet's topology and its seeded schedule (all vectorised)."""
    rng = np.random.default_rng(spec.seed)
    nodes = _nodes(spec)
    devices, slots, slot_devices = _layout(nodes, rng)
    fleet = Fleet(spec, nodes, devices, slots, slot_devices)
    fleet.pods = _pods(spec, slots, rng)
    fleet.intervals = _intervals(fleet)
    return fleet


def _nodes(spec: FleetSpec) -> pd.DataFrame:
    rows = []
    for pool in POOLS:
        count = max(1, round(spec.gpus * pool.share / pool.gpus))
        for i in range(count):
            rows.append(
                {
                    "node": f"{pool.name}-{i:05d}",
                    "pool": pool.name,
                    "instance_type": pool.instance_type,
                    "capacity_type": pool.capacity_type,
                    "zone": ZONES[i % len(ZONES)],
                    "model": pool.model.name,
                    "product": pool.model.product,
                    "gpus": pool.gpus,
                    "replicas": pool.replicas,
                    "tdp_w": pool.model.tdp_w,
                    "memory_mib": pool.model.memory_mib,
                    "ordinal": i,
                }
            )
    frame = pd.DataFrame(rows)
    frame.insert(0, "node_id", np.arange(len(frame)))
    return frame


def uuid_of(node: str, index: int) -> str:
    digest = hashlib.sha256(f"{node}/{index}".encode()).hexdigest()
    return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


class _Layout:
    """Accumulates DCGM entities and slots node by node."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.devices: list[dict[str, object]] = []
        self.slots: list[dict[str, object]] = []
        self.links: list[tuple[int, int]] = []

    def device(self, node: Any, index: int, profile: str = "", gi: str = "") -> int:
        slices = int(profile.split("g.")[0]) if profile else 7
        dev_id = len(self.devices)
        self.devices.append(
            {
                "dev_id": dev_id,
                "node_id": node.node_id,
                "gpu_index": index,
                "uuid": uuid_of(node.node, index),
                "gi_id": gi,
                "mig_profile": profile,
                "slices": slices,
                "ts": node.replicas > 0,
            }
        )
        return dev_id

    def slot(self, node: Any, devs: list[int], kind: str | None, resource: str, share: float, vgpu: str = "") -> None:
        team = None
        if kind is not None and kind != "sandbox":
            team = TEAMS[int(self.rng.integers(len(TEAMS)))]
        amount = len(devs) if resource == "nvidia_com_gpu" else 1
        slot_id = len(self.slots)
        self.slots.append(
            {
                "slot_id": slot_id,
                "node_id": node.node_id,
                "kind": kind or "",
                "team": team or "",
                "resource": resource,
                "amount": amount,
                "share": share * amount,
                "vgpu": vgpu,
            }
        )
        self.links += [(slot_id, d) for d in devs]


def _layout(nodes: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    lay = _Layout(rng)
    for node in nodes.itertuples():
        getattr(_Layouts, node.pool.replace("-", "_"))(lay, node)
    devices = pd.DataFrame(lay.devices)
    slots = pd.DataFrame(lay.slots)
    links = pd.DataFrame(lay.links, columns=["slot_id", "dev_id"])
    return devices, slots, links


class _Layouts:
    """Per-pool node layouts: which devices each slot holds and what runs there (None = idle)."""

    @staticmethod
    def _whole(lay: _Layout, node: Any, groups: list[tuple[list[int], str | None]]) -> None:
        for indexes, kind in groups:
            devs = [lay.device(node, i) for i in indexes]
            lay.slot(node, devs, kind, "nvidia_com_gpu", 1.0)

    @staticmethod
    def od_a100(lay: _Layout, node: Any) -> None:
        last = "sandbox" if node.ordinal % 2 else None
        groups = [([0, 1, 2, 3], "training"), ([4], "finetune"), ([5], "inference"), ([6], "notebook"), ([7], last)]
        _Layouts._whole(lay, node, groups)

    @staticmethod
    def od_h100(lay: _Layout, node: Any) -> None:
        if node.ordinal % 2 == 0:
            _Layouts._whole(lay, node, [(list(range(8)), "training")])
        else:
            _Layouts._whole(lay, node, [([0, 1, 2, 3], "training"), ([4, 5, 6, 7], "finetune")])

    @staticmethod
    def mig_a100(lay: _Layout, node: Any) -> None:
        kinds = {0: ("inference", "notebook", "notebook", "batch"), 1: ("inference", None)}
        kinds[2] = ("notebook", "notebook", "notebook", "batch", "batch", None, None)
        for gpu, profiles in MIG_LAYOUT.items():
            used: set[int] = set()
            for profile, kind in zip(profiles, kinds[gpu], strict=True):
                gi = GI_BASE[profile]
                while gi in used:
                    gi += 1
                used.add(gi)
                dev = lay.device(node, gpu, profile, str(gi))
                resource = "nvidia_com_mig_" + profile.replace(".", "_")
                lay.slot(node, [dev], kind, resource, int(profile.split("g.")[0]) / 7)
        _Layouts._whole(lay, node, [([3, 4], "finetune"), ([5], "inference"), ([6], "batch"), ([7], None)])

    @staticmethod
    def ts_a10g(lay: _Layout, node: Any) -> None:
        for gpu in range(node.gpus):
            dev = lay.device(node, gpu)
            for replica in range(node.replicas):
                kind = None if (gpu, replica) == (3, 3) else TS_KINDS[replica]
                lay.slot(node, [dev], kind, "nvidia_com_gpu_shared", 1 / node.replicas, vgpu=str(replica))

    @staticmethod
    def spot_v100(lay: _Layout, node: Any) -> None:
        kind = None if node.ordinal % 5 == 4 else ("training" if node.ordinal % 5 < 2 else "batch")
        _Layouts._whole(lay, node, [([0], kind)])


def _pods(spec: FleetSpec, slots: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Seeded jobs per slot: arrays of (slot, start, stop) in steps, Running over [start, stop)."""
    n, per_hour = spec.steps, 3600 / spec.step_s
    parts = []
    for kind, (run_lo, run_hi, gap_lo, gap_hi) in JOBS.items():
        ids = slots.loc[slots["kind"] == kind, "slot_id"].to_numpy()
        if not len(ids):
            continue
        k = int(np.ceil(spec.days * 24 / (run_lo + gap_lo))) + 2
        runs = np.maximum(1, (rng.uniform(run_lo, run_hi, (len(ids), k)) * per_hour).astype(np.int64))
        gaps = np.maximum(1, (rng.uniform(gap_lo, gap_hi, (len(ids), k)) * per_hour).astype(np.int64))
        # the first job may already be running when the window opens
        first = np.where(rng.random(len(ids)) < 0.5, -(rng.uniform(0, run_hi, len(ids)) * per_hour), gaps[:, 0])
        starts = first.astype(np.int64)[:, None] + np.concatenate(
            [np.zeros((len(ids), 1), np.int64), np.cumsum(runs + gaps, axis=1)[:, :-1]], axis=1
        )
        stops = np.minimum(starts + runs, n)
        starts = np.maximum(starts, 0)
        keep = stops > starts
        if kind == "notebook":  # weekdays only (the window starts on a Monday)
            weekday = ((spec.start.weekday() * 86400 + starts * spec.step_s) // 86400) % 7
            keep &= weekday < 5
        rows, cols = np.nonzero(keep)
        parts.append(pd.DataFrame({"slot_id": ids[rows], "start": starts[rows, cols], "stop": stops[rows, cols]}))
    week = int(7 * 86400 / spec.step_s)
    inference = slots.loc[slots["kind"] == "inference", "slot_id"].to_numpy()
    starts = np.arange(0, n, week)
    parts.append(
        pd.DataFrame(
            {
                "slot_id": np.repeat(inference, len(starts)),
                "start": np.tile(starts, len(inference)),
                "stop": np.tile(np.minimum(starts + week, n), len(inference)),
            }
        )
    )
    pods = pd.concat(parts, ignore_index=True).sort_values(["start", "slot_id"], ignore_index=True)
    return _name_pods(pods, slots)


_SUFFIX = np.array(list("bcdfghjklmnpqrstvwxz2456789"))


def _name_pods(pods: pd.DataFrame, slots: pd.DataFrame) -> pd.DataFrame:
    pods.insert(0, "pod_id", np.arange(len(pods)))
    meta = slots.set_index("slot_id").loc[pods["slot_id"], ["kind", "team"]].reset_index(drop=True)
    pods["kind"] = meta["kind"].to_numpy()
    pods["team"] = meta["team"].to_numpy()
    pods["namespace"] = np.where(pods["team"] == "", SANDBOX, "team-" + pods["team"])
    short = {"training": "train", "finetune": "ft", "inference": "infer", "notebook": "jupyter", "batch": "batch"}
    app = pods["kind"].map(lambda k: short.get(k, "experiment"))
    pods["app"] = np.where(pods["team"] == "", "experiment", pods["team"] + "-" + app)
    digits = pods["pod_id"].to_numpy()[:, None] * 7919 // (27 ** np.arange(5)) % 27
    suffix = pd.Series(["".join(r) for r in _SUFFIX[digits]])
    pods["pod"] = pods["app"] + "-" + suffix
    hexes = pods["pod_id"].map(lambda i: hashlib.md5(str(i).encode()).hexdigest())
    pods["uid"] = hexes.map(lambda h: f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}")
    return pods


def _intervals(fleet: Fleet) -> pd.DataFrame:
    """Per DCGM entity, [start, stop) runs covering the window: a pod, idle (-1) or time-sliced busy (-2)."""
    n = fleet.spec.steps
    runs = fleet.pods.merge(fleet.slot_devices, on="slot_id")[["dev_id", "start", "stop", "pod_id", "kind"]]
    ts_devs = set(fleet.devices.loc[fleet.devices["ts"], "dev_id"])
    plain = runs[~runs["dev_id"].isin(ts_devs)].copy()
    plain["code"] = plain["kind"].map(KINDS.index)
    busy = _union(runs[runs["dev_id"].isin(ts_devs)])
    busy["pod_id"], busy["code"] = -2, TS_BUSY
    occupied = pd.concat([plain.drop(columns="kind"), busy], ignore_index=True)
    idle = _gaps(occupied, fleet.devices["dev_id"].to_numpy(), n)
    out = pd.concat([occupied, idle], ignore_index=True)
    return out.sort_values(["dev_id", "start"], ignore_index=True)[["dev_id", "start", "stop", "pod_id", "code"]]


def _union(runs: pd.DataFrame) -> pd.DataFrame:
    """Merge overlapping [start, stop) runs per device (time-sliced replicas)."""
    if runs.empty:
        return pd.DataFrame({"dev_id": [], "start": [], "stop": []}, dtype=np.int64)
    r = runs.sort_values(["dev_id", "start"], ignore_index=True)
    reach = r.groupby("dev_id")["stop"].cummax().shift().fillna(-1).astype(np.int64)
    new = (r["dev_id"] != r["dev_id"].shift()) | (r["start"] > reach)
    group = new.cumsum()
    return (
        r.groupby(group)
        .agg(dev_id=("dev_id", "first"), start=("start", "min"), stop=("stop", "max"))
        .reset_index(drop=True)
    )


def _gaps(occupied: pd.DataFrame, dev_ids: np.ndarray, n: int) -> pd.DataFrame:
    o = occupied.sort_values(["dev_id", "start"])
    edges = pd.concat(
        [
            o[["dev_id", "start", "stop"]],
            pd.DataFrame({"dev_id": dev_ids, "start": n, "stop": n}),  # sentinel at the end of each device
        ],
        ignore_index=True,
    ).sort_values(["dev_id", "start"], kind="stable", ignore_index=True)
    prev = edges.groupby("dev_id")["stop"].shift().fillna(0).astype(np.int64)
    gap = pd.DataFrame({"dev_id": edges["dev_id"], "start": prev, "stop": edges["start"]})
    gap = gap[gap["stop"] > gap["start"]].copy()
    gap["pod_id"], gap["code"] = -1, -1
    return gap


# --------------------------------------------------------------------------------------------
# Activity: one formula, in numpy (truth) and SQL (warehouse writer), equal to float rounding
# --------------------------------------------------------------------------------------------
def noise(key: np.ndarray, k: np.ndarray, mult: int) -> np.ndarray:
    """Uniform [0, 1) per (key, step), from int64-safe modular products (same digits in SQL)."""
    x = (key.astype(np.int64) * 7919 + k.astype(np.int64) * 104729 + 12345) % P
    return ((x * x) % P * mult % P) / P


def noise_sql(key: str, k: str, mult: int) -> str:
    x = f"(({key})::BIGINT * 7919 + ({k})::BIGINT * 104729 + 12345) % {P}"
    return f"((({x}) * ({x})) % {P} * {mult} % {P}) / {P}.0"


def activity(code: np.ndarray, key: np.ndarray, k: np.ndarray, step_s: int) -> np.ndarray:
    """Graphics-engine activity (0..1, 6 decimals) of kind `code` for pod (or device) `key` at step k."""
    u1 = noise(key, k, 48271)
    u2 = (u1 * 977.0) % 1.0  # a second, independent-looking draw without a second modular chain
    hour = (k * step_s / 3600.0) % 24.0
    diurnal = 0.5 + 0.5 * np.sin(2 * np.pi * (hour - 9.0) / 24.0)
    options = [
        np.where(u2 < 0.03, 0.2, 0.86 + 0.08 * (2 * u1 - 1)),
        0.74 + 0.1 * (2 * u1 - 1),
        0.12 + 0.6 * diurnal + 0.05 * (2 * u1 - 1),
        0.02 + 0.22 * u1**3,
        0.55 + 0.12 * (2 * u1 - 1),
        0.5 + 0.3 * (2 * u1 - 1),
        0.35 + 0.3 * u1,
    ]
    act = np.select([code == i for i in range(len(options))], options, 0.0)
    return np.round(np.clip(act, 0.0, 1.0), 6)


def activity_sql(code: str, u1: str, k: str, step_s: int) -> str:
    """SQL of `activity`, given the row's first draw `u1` = noise_sql(key, k, 48271)."""
    u2 = f"(({u1} * 977.0) % 1.0)"
    hour = f"((({k}) * {step_s} / 3600.0) % 24.0)"
    diurnal = f"(0.5 + 0.5 * sin(2 * pi() * ({hour} - 9.0) / 24.0))"
    return f"""round(greatest(0.0, least(1.0, CASE {code}
        WHEN 0 THEN CASE WHEN {u2} < 0.03 THEN 0.2 ELSE 0.86 + 0.08 * (2 * {u1} - 1) END
        WHEN 1 THEN 0.74 + 0.1 * (2 * {u1} - 1)
        WHEN 2 THEN 0.12 + 0.6 * {diurnal} + 0.05 * (2 * {u1} - 1)
        WHEN 3 THEN 0.02 + 0.22 * pow({u1}, 3)
        WHEN 4 THEN 0.55 + 0.12 * (2 * {u1} - 1)
        WHEN 5 THEN 0.5 + 0.3 * (2 * {u1} - 1)
        WHEN {TS_BUSY} THEN 0.35 + 0.3 * {u1}
        ELSE 0.0 END)), 6)"""
