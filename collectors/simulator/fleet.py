"""The simulated fleet: nodes, GPU devices, and a seeded schedule of pods on them.

Topology (one cluster, `sim-us-east-1`, region us-east-1):

| pool      | nodes                   | instance      | capacity  | GPUs                          |
|-----------|-------------------------|---------------|-----------|-------------------------------|
| od-a100   | gpu-od-1, gpu-od-2      | p4d.24xlarge  | on-demand | 8 x A100 40GB each            |
| mig-a100  | gpu-mig-1               | p4de.24xlarge | on-demand | 8 x A100 80GB, MIG mixed 0-2  |
| ts-a10g   | gpu-ts-1                | g5.xlarge     | on-demand | 1 x A10G time-sliced by 4     |
| spot-v100 | gpu-spot-1 .. gpu-spot-4| p3.2xlarge    | spot      | 1 x V100 16GB each            |

Work is described by *slots*: a set of devices that one pod at a time occupies (a 4-GPU gang, a
single GPU, a MIG instance, a time-slicing replica). Each slot gets a seeded sequence of jobs and
gaps; a slot with no jobs is an idle GPU. Times are sample indices on the scrape grid.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from random import Random

CLUSTER = "sim-us-east-1"
REGION = "us-east-1"


@dataclass(frozen=True)
class GpuModel:
    name: str  # DCGM modelName
    memory_mib: int
    tdp_w: float
    mig_slices: int  # compute slices of a MIG-capable card (0 = no MIG)


A100_40 = GpuModel("NVIDIA A100-SXM4-40GB", 40960, 400.0, 7)
A100_80 = GpuModel("NVIDIA A100-SXM4-80GB", 81920, 400.0, 7)
A10G = GpuModel("NVIDIA A10G", 23028, 300.0, 0)
V100 = GpuModel("Tesla V100-SXM2-16GB", 16384, 300.0, 0)


@dataclass(frozen=True)
class Device:
    """A DCGM entity: a whole GPU, a MIG GPU instance, or one time-slicing replica of a GPU."""

    node: str
    index: int
    uuid: str
    model: GpuModel
    mig_profile: str = ""
    gi_id: str = ""
    vgpu: str = ""  # replica index on a time-sliced GPU

    @property
    def mig_memory_mib(self) -> int:
        if not self.mig_profile:
            return self.model.memory_mib
        gb = int(self.mig_profile.split(".")[1].rstrip("gb"))
        return gb * 1024 - 512


@dataclass(frozen=True)
class Node:
    name: str
    pool: str
    instance_type: str
    capacity_type: str  # karpenter.sh/capacity-type value: on-demand | spot
    zone: str
    model: GpuModel
    gpu_count: int
    mig: dict[int, tuple[str, ...]] = field(default_factory=dict)  # GPU index -> MIG profiles
    replicas: int = 0  # time-slicing replicas per GPU (0 = none)
    node_id: str = ""
    # kube-state-metrics exports nvidia.com/gpu.replicas only where it is allowlisted; without it the
    # replicas are read off the shared capacity over the GPU count, as gpuledger must on most real fleets
    replicas_label: bool = True

    def provider_id(self) -> str:
        """kube_node_info's provider_id: the EC2 instance the node runs on (the bill names it too)."""
        i = NODES.index(self)
        return f"aws:///{self.zone}/i-0{i:02d}5c0ffee{i:04d}"

    def uuid(self, index: int) -> str:
        digest = hashlib.sha256(f"{self.name}/{index}".encode()).hexdigest()
        return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"

    def devices(self) -> list[Device]:
        out: list[Device] = []
        for i in range(self.gpu_count):
            if i in self.mig:
                for gi, profile in zip(_gi_ids(self.mig[i]), self.mig[i], strict=True):
                    out.append(Device(self.name, i, self.uuid(i), self.model, profile, gi))
            else:
                out.append(Device(self.name, i, self.uuid(i), self.model))
        return out


def _gi_ids(profiles: tuple[str, ...]) -> list[str]:
    # NVML numbers GPU instances by placement; these are the ids an A100 hands out in this order.
    base = {"7g.80gb": 0, "4g.40gb": 0, "3g.40gb": 1, "2g.20gb": 5, "1g.10gb": 9}
    used: set[int] = set()
    ids = []
    for profile in profiles:
        gi = base.get(profile, 9)
        while gi in used:
            gi += 1
        used.add(gi)
        ids.append(str(gi))
    return ids


NODES: tuple[Node, ...] = (
    Node("gpu-od-1", "od-a100", "p4d.24xlarge", "on-demand", "us-east-1a", A100_40, 8),
    Node("gpu-od-2", "od-a100", "p4d.24xlarge", "on-demand", "us-east-1b", A100_40, 8),
    Node(
        "gpu-mig-1",
        "mig-a100",
        "p4de.24xlarge",
        "on-demand",
        "us-east-1a",
        A100_80,
        8,
        mig={0: ("3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"), 1: ("3g.40gb", "3g.40gb"), 2: ("1g.10gb",) * 7},
    ),
    Node("gpu-ts-1", "ts-a10g", "g5.xlarge", "on-demand", "us-east-1c", A10G, 1, replicas=4),
    Node("gpu-spot-1", "spot-v100", "p3.2xlarge", "spot", "us-east-1a", V100, 1),
    Node("gpu-spot-2", "spot-v100", "p3.2xlarge", "spot", "us-east-1a", V100, 1),
    Node("gpu-spot-3", "spot-v100", "p3.2xlarge", "spot", "us-east-1b", V100, 1),
    Node("gpu-spot-4", "spot-v100", "p3.2xlarge", "spot", "us-east-1b", V100, 1),
    Node("gpu-ts-2", "ts-a10g-x4", "g5.12xlarge", "on-demand", "us-east-1c", A10G, 4, replicas=4, replicas_label=False),
)


@dataclass(frozen=True)
class Workload:
    """A kind of job that runs on one slot: who owns it and how long jobs and gaps last (hours)."""

    namespace: str
    team: str | None  # value of the pod label `team`; None = the pod carries no team label
    app: str
    kind: str  # training | inference | notebook | batch
    run_hours: tuple[float, float]
    gap_hours: tuple[float, float]
    always_on: bool = False
    weekdays_only: bool = False
    linger: int = 2  # scrapes a finished pod stays Succeeded before it is deleted (0: ttlSecondsAfterFinished: 0)


@dataclass(frozen=True)
class Slot:
    devices: tuple[Device, ...]
    resource: str  # kube-state-metrics resource name
    amount: int
    workload: Workload | None  # None = idle GPU(s)


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    uid: str
    team: str | None
    app: str
    kind: str
    node: str
    resource: str
    amount: int
    devices: tuple[Device, ...]
    created: int  # sample index: Pending from here
    start: int  # Running from here (inclusive)
    end: int  # Running until here (exclusive)
    deleted: int  # object gone from here (Succeeded in between)

    @property
    def container(self) -> str:
        return {"training": "trainer", "inference": "server", "notebook": "notebook"}.get(self.kind, "worker")


VISION_TRAIN = Workload("team-vision", "vision", "resnet-train", "training", (6, 30), (1, 6))
VISION_FT = Workload("team-vision", "vision", "vit-finetune", "training", (2, 10), (1, 8))
NLP_INFER = Workload("team-nlp", "nlp", "llm-infer", "inference", (0, 0), (0, 0), always_on=True)
NLP_TRAIN = Workload("team-nlp", "nlp", "llama-sft", "training", (8, 36), (2, 10))
NLP_EMBED = Workload("team-nlp", "nlp", "embed-infer", "inference", (0, 0), (0, 0), always_on=True)
RESEARCH_NB = Workload("team-research", "research", "jupyter", "notebook", (2, 8), (3, 20), weekdays_only=True)
RESEARCH_SPOT = Workload("team-research", "research", "diffusion-train", "training", (4, 20), (1, 8))
ADS_BATCH = Workload("team-ads", "ads", "ctr-batch", "batch", (0.5, 2), (0.5, 4))
ADS_SPOT = Workload("team-ads", "ads", "ctr-train", "training", (3, 12), (2, 10))
SANDBOX = Workload("sandbox", None, "experiment", "training", (1, 6), (2, 24))
# five-to-ten-minute evaluation jobs whose pods are deleted the moment they finish: their series just stop
RESEARCH_EVAL = Workload("team-research", "research", "eval-job", "batch", (1 / 12, 1 / 6), (0.25, 1.5), linger=0)


def _whole(node: Node, indexes: list[int], workload: Workload | None) -> Slot:
    by_index = {d.index: d for d in node.devices() if not d.mig_profile}
    return Slot(tuple(by_index[i] for i in indexes), "nvidia_com_gpu", len(indexes), workload)


def _mig(node: Node, gpu: int, position: int, workload: Workload | None) -> Slot:
    device = [d for d in node.devices() if d.index == gpu][position]
    resource = "nvidia_com_mig_" + device.mig_profile.replace(".", "_")
    return Slot((device,), resource, 1, workload)


def slots() -> list[Slot]:
    od1, od2, mig, ts = NODES[0], NODES[1], NODES[2], NODES[3]
    out = [
        _whole(od1, [0, 1, 2, 3], VISION_TRAIN),
        _whole(od1, [4], VISION_FT),
        _whole(od1, [5], VISION_FT),
        _whole(od1, [6], None),
        _whole(od1, [7], None),
        _whole(od2, [0], NLP_INFER),
        _whole(od2, [1], NLP_INFER),
        _whole(od2, [2, 3, 4, 5], NLP_TRAIN),
        _whole(od2, [6], SANDBOX),
        _whole(od2, [7], None),
        _mig(mig, 0, 0, NLP_EMBED),
        _mig(mig, 0, 1, SANDBOX),
        _mig(mig, 0, 2, RESEARCH_NB),
        _mig(mig, 0, 3, RESEARCH_NB),
        _mig(mig, 1, 0, NLP_EMBED),
        _mig(mig, 1, 1, None),
    ]
    out += [_mig(mig, 2, p, RESEARCH_NB if p < 3 else None) for p in range(7)]
    out += [_whole(mig, [3, 4], VISION_FT), _whole(mig, [5], None), _whole(mig, [6], None), _whole(mig, [7], None)]
    gpu = ts.devices()[0]
    for replica in range(ts.replicas):
        device = Device(gpu.node, gpu.index, gpu.uuid, gpu.model, vgpu=str(replica))
        out.append(Slot((device,), "nvidia_com_gpu_shared", 1, ADS_BATCH))
    out += [
        _whole(NODES[4], [0], RESEARCH_SPOT),
        _whole(NODES[5], [0], RESEARCH_SPOT),
        _whole(NODES[6], [0], ADS_SPOT),
        _whole(NODES[7], [0], SANDBOX),
    ]
    # three replicas of the unlabelled time-sliced pool's first GPU (appended last: the other slots' seeded
    # schedules stay as they were)
    ts2 = NODES[8].devices()[0]
    out += [
        Slot((Device(ts2.node, ts2.index, ts2.uuid, ts2.model, vgpu=str(r)),), "nvidia_com_gpu_shared", 1, ADS_BATCH)
        for r in range(3)
    ]
    # short jobs on a replica of its second GPU (appended last, for the same reason)
    ts2b = NODES[8].devices()[1]
    out.append(
        Slot(
            (Device(ts2b.node, ts2b.index, ts2b.uuid, ts2b.model, vgpu="0"),), "nvidia_com_gpu_shared", 1, RESEARCH_EVAL
        )
    )
    return out


def schedule(rng: Random, n_samples: int, interval_s: int, start_weekday: int, start_hour: float) -> list[Pod]:
    """Seeded pods for every slot over sample indices [0, n_samples)."""
    pods: list[Pod] = []
    for slot in slots():
        if slot.workload is None:
            continue
        for created, start, end in _jobs(rng, slot.workload, n_samples, interval_s, start_weekday, start_hour):
            pods.append(_make_pod(rng, slot, created, start, end, n_samples))
    return pods


def _jobs(rng: Random, w: Workload, n: int, interval_s: int, weekday0: int, hour0: float) -> list[tuple[int, int, int]]:
    per_hour = 3600 / interval_s
    if w.always_on:
        return [(0, 0, n)]
    jobs = []
    # The first job may already be running when the window opens (started before it).
    t = (
        -int(rng.uniform(0, w.run_hours[1]) * per_hour)
        if rng.random() < 0.5
        else int(rng.uniform(*w.gap_hours) * per_hour)
    )
    while t < n:
        length = max(1, int(rng.uniform(*w.run_hours) * per_hour))
        start, end = max(t, 0), min(t + length, n)
        day = int((hour0 + start / per_hour) // 24)
        if end > start and not (w.weekdays_only and (weekday0 + day) % 7 >= 5):
            jobs.append((max(start - 1, 0) if start > 0 else 0, start, end))
        t = t + length + max(1, int(rng.uniform(*w.gap_hours) * per_hour))
    return jobs


def _make_pod(rng: Random, slot: Slot, created: int, start: int, end: int, n: int) -> Pod:
    w = slot.workload
    assert w is not None
    suffix = "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
    uid_hex = f"{rng.getrandbits(128):032x}"
    uid = f"{uid_hex[:8]}-{uid_hex[8:12]}-4{uid_hex[13:16]}-a{uid_hex[17:20]}-{uid_hex[20:32]}"
    # Finished pods linger as Succeeded (two scrapes, as Jobs do) before they are deleted.
    deleted = n if end >= n else min(end + w.linger, n)
    return Pod(
        w.namespace,
        f"{w.app}-{suffix}",
        uid,
        w.team,
        w.app,
        w.kind,
        slot.devices[0].node,
        slot.resource,
        slot.amount,
        slot.devices,
        created,
        start,
        end,
        deleted,
    )


def gpu_fraction(resource: str, model: GpuModel, replicas: int) -> float:
    """Share of a physical GPU one unit of `resource` represents (the simulator's own truth)."""
    if resource == "nvidia_com_gpu":
        return 1.0
    if resource == "nvidia_com_gpu_shared":
        return 1.0 / replicas
    slices = int(resource.removeprefix("nvidia_com_mig_").split("g_")[0])
    return slices / model.mig_slices


NODE_BY_NAME = {n.name: n for n in NODES}
