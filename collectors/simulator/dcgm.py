"""dcgm-exporter 4.x series of the simulated fleet, in the exporter's exact label layout.

Label order (render_metrics.go): gpu, UUID, pci_bus_id, device, modelName, [GPU_I_PROFILE,
GPU_I_ID], Hostname, DCGM_FI_DRIVER_VERSION, then attributes sorted (container, namespace, pod,
pod_uid, vgpu). Idle GPUs carry no pod labels. MIG instances repeat device-wide gauges (power,
temperature). A time-sliced GPU is copied once per sharing pod with `vgpu` (values are the whole
GPU's); GPU_UTIL and FB_USED also get per-pod values with `pod_uid`, next to the device series.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from collectors.simulator.fleet import NODES, Device, Pod
from collectors.simulator.incidents import HEALTH_FAMILIES, XID_MESSAGES, HealthSim
from collectors.simulator.signals import Stream, memory_share, power, temperature
from core import conventions as c

DRIVER = "550.127.08"
Segment = tuple[str, np.ndarray, list[str]]  # label string, sample indices, formatted values


@dataclass
class Track:
    """One DCGM entity over time: which pod (index into pods, -1 = none) and its activity."""

    device: Device
    occ: np.ndarray
    act: np.ndarray


def device_labels(d: Device) -> str:
    bus = f"00000000:{0x07 + 8 * d.index:02X}:00.0"
    mig = f',GPU_I_PROFILE="{d.mig_profile}",GPU_I_ID="{d.gi_id}"' if d.mig_profile else ""
    return (
        f'gpu="{d.index}",UUID="{d.uuid}",pci_bus_id="{bus}",device="nvidia{d.index}",'
        f'modelName="{d.model.name}"{mig},Hostname="{d.node}",DCGM_FI_DRIVER_VERSION="{DRIVER}"'
    )


def pod_attrs(pod: Pod, vgpu: str = "", pod_uid: bool = False) -> str:
    attrs = f',container="{pod.container}",namespace="{pod.namespace}",pod="{pod.name}"'
    if pod_uid:
        attrs += f',pod_uid="{pod.uid}"'
    if vgpu:
        attrs += f',vgpu="{vgpu}"'
    return attrs


def build_tracks(pods: list[Pod], acts: list[np.ndarray], n: int) -> list[Track]:
    """One track per device entity (GPU, MIG instance, time-slicing replica)."""
    tracks: dict[tuple[str, int, str, str], Track] = {}
    for node in NODES:
        for d in node.devices():
            replicas = [str(r) for r in range(node.replicas)] or [""]
            for vgpu in replicas:
                dev = Device(d.node, d.index, d.uuid, d.model, d.mig_profile, d.gi_id, vgpu)
                tracks[(dev.node, dev.index, dev.gi_id, vgpu)] = Track(dev, np.full(n, -1), np.zeros(n))
    for i, (pod, act) in enumerate(zip(pods, acts, strict=True)):
        for d in pod.devices:
            track = tracks[(d.node, d.index, d.gi_id, d.vgpu)]
            track.occ[pod.start : pod.end] = i
            track.act[pod.start : pod.end] = act
    return list(tracks.values())


def _runs(occ: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    for value in np.unique(occ):
        yield int(value), np.nonzero(occ == value)[0]


def _fmt(values: np.ndarray, decimals: int) -> list[str]:
    if decimals == 0:
        return [str(int(v)) for v in np.round(values)]
    return [f"{v:.{decimals}f}" for v in values]


class DcgmFamilies:
    """Builds the segments of each DCGM family for the whole fleet."""

    def __init__(self, pods: list[Pod], tracks: list[Track], stream: Stream, health: HealthSim | None = None) -> None:
        self.pods = pods
        self.tracks = tracks
        self.health = health
        self.noise: dict[tuple[str, int], np.ndarray] = {}
        for t in tracks:  # device-wide noise: MIG instances and replicas repeat their GPU's power
            key = (t.device.node, t.device.index)
            if key not in self.noise:
                self.noise[key] = stream.normal(len(t.act))
        self.device_act = self._device_activity()
        self.interval_s = health.interval_s if health is not None else 300
        self._energy: dict[tuple[str, int], np.ndarray] = {}

    def _device_activity(self) -> dict[tuple[str, int], np.ndarray]:
        """Whole-GPU activity: MIG instances weighted by slices, time-slice replicas summed."""
        total: dict[tuple[str, int], np.ndarray] = {}
        for t in self.tracks:
            d = t.device
            weight = int(d.mig_profile.split("g.")[0]) / d.model.mig_slices if d.mig_profile else 1.0
            key = (d.node, d.index)
            total[key] = total.get(key, 0) + t.act * weight
        return {k: np.clip(v, 0.0, 1.0) for k, v in total.items()}

    def segments(self, family: str) -> list[Segment]:
        out: list[Segment] = []
        shared = [t for t in self.tracks if t.device.vgpu]
        for t in self.tracks:
            if not t.device.vgpu:
                out += self._finish(family, t.device, self._plain(family, t))
        by_gpu: dict[tuple[str, int], list[Track]] = {}
        for t in shared:
            by_gpu.setdefault((t.device.node, t.device.index), []).append(t)
        for replicas in by_gpu.values():
            out += self._finish(family, replicas[0].device, self._time_sliced(family, replicas))
        return out

    def _finish(self, family: str, device: Device, segments: list[Segment]) -> list[Segment]:
        """Drop the samples of a GPU that stopped reporting; give Xid series their err_* labels."""
        if self.health is None:
            return segments
        silent = self.health.silent(device.node, device.index)
        out = []
        for labels, idx, values in segments:
            keep = ~silent[idx]
            kept_values = [v for v, k in zip(values, keep, strict=True) if k]
            if not len(kept_values):
                continue
            if family == c.DCGM_XID:
                out += _split_by_xid(labels, idx[keep], kept_values)
            else:
                out.append((labels, idx[keep], kept_values))
        return out

    def _unsupported(self, family: str, device: Device) -> bool:
        return family in HEALTH_FAMILIES and (self.health is None or self.health.values(family, device) is None)

    def _values(self, family: str, t: Track, act: np.ndarray, occ: np.ndarray) -> np.ndarray:
        d = t.device
        dev_act = self.device_act[(d.node, d.index)]
        if family == "DCGM_FI_PROF_GR_ENGINE_ACTIVE":
            return act
        if family == "DCGM_FI_DEV_GPU_UTIL":
            return np.minimum(100.0, np.round(act * 104.0))
        if family == "DCGM_FI_DEV_FB_USED":
            share = np.array([memory_share(self.pods[o].kind) if o >= 0 else 0.0 for o in occ])
            return np.round(share * d.mig_memory_mib)
        if family == "DCGM_FI_DEV_POWER_USAGE":
            return power(dev_act, d.model.tdp_w, self.noise[(d.node, d.index)])
        if family == c.DCGM_ENERGY:
            return self.energy_counter(d)
        if family in HEALTH_FAMILIES:
            assert self.health is not None
            health = self.health.values(family, d)
            assert health is not None
            return health
        temp = temperature(dev_act)
        return self.health.temperature(d.node, d.index, temp) if self.health is not None else temp

    def energy_per_sample(self, d: Device) -> np.ndarray:
        """The GPU's energy in each scrape interval, mJ: its power held over the interval (as the ledger holds it)."""
        watts = power(self.device_act[(d.node, d.index)], d.model.tdp_w, self.noise[(d.node, d.index)])
        return np.round(watts * self.interval_s * 1000.0)

    def energy_counter(self, d: Device) -> np.ndarray:
        """DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: mJ since the driver loaded (a GPU's index-th kWh before the run, so
        counters differ), restarting at a driver reload: the first reading after it is the energy since the reload."""
        key = (d.node, d.index)
        if key not in self._energy:
            per_sample = self.energy_per_sample(d)
            total = (d.index + 1) * 3_600_000_000.0 + np.cumsum(per_sample)
            k = self.health.reload_at(d.node, d.index) if self.health is not None else None
            if k is not None:
                total[k:] = np.cumsum(per_sample[k:])
            self._energy[key] = total
        return self._energy[key]

    def energy_truth(self) -> dict[str, float]:
        """Each physical GPU's energy from its first to its last reading (kWh), counted through silences: what the
        ledger attributes over the run (its first step held from power, every later step from the counter)."""
        out: dict[str, float] = {}
        for t in self.tracks:
            d = t.device
            if d.uuid in out:
                continue
            visible = np.ones(len(t.act), dtype=bool)
            if self.health is not None:
                visible = ~self.health.silent(d.node, d.index).astype(bool)
            seen = np.nonzero(visible)[0]
            if len(seen):
                out[d.uuid] = float(self.energy_per_sample(d)[seen[0] : seen[-1] + 1].sum()) / 3_600_000_000.0
        return out

    def _plain(self, family: str, t: Track) -> list[Segment]:
        if family == "DCGM_FI_DEV_GPU_UTIL" and t.device.mig_profile:
            return []  # not supported for MIG instances
        if self._unsupported(family, t.device):
            return []  # a blank DCGM field: the exporter emits no series
        decimals = 6 if family in ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_POWER_USAGE") else 0
        values = self._values(family, t, t.act, t.occ)
        base = device_labels(t.device)
        out = []
        for pod_idx, idx in _runs(t.occ):
            labels = base + (pod_attrs(self.pods[pod_idx]) if pod_idx >= 0 else "")
            out.append((labels, idx, _fmt(values[idx], decimals)))
        return out

    def _time_sliced(self, family: str, replicas: list[Track]) -> list[Segment]:
        first = replicas[0].device
        dev = Device(first.node, first.index, first.uuid, first.model)
        if self._unsupported(family, dev):
            return []
        base = device_labels(dev)
        n = len(replicas[0].act)
        dev_act = self.device_act[(dev.node, dev.index)]
        per_process = family in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED")
        decimals = 6 if family in ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_POWER_USAGE") else 0
        any_running = np.zeros(n, dtype=bool)
        out: list[Segment] = []
        for t in replicas:
            running = t.occ >= 0
            any_running |= running
            values = self._values(family, t, t.act, t.occ) if per_process else self._values(family, t, dev_act, t.occ)
            for pod_idx, idx in _runs(t.occ):
                if pod_idx < 0:
                    continue
                attrs = pod_attrs(self.pods[pod_idx], t.device.vgpu, pod_uid=per_process)
                out.append((base + attrs, idx, _fmt(values[idx], decimals)))
        device_rows = np.arange(n) if per_process else np.nonzero(~any_running)[0]
        if len(device_rows):
            total_occ = np.where(any_running, 0, -1)
            if family == "DCGM_FI_DEV_FB_USED":
                values = sum((self._values(family, t, t.act, t.occ) for t in replicas), np.zeros(n))
            else:
                fake = Track(dev, total_occ, dev_act)
                values = self._values(family, fake, dev_act, total_occ)
            out.append((base, device_rows, _fmt(values[device_rows], decimals)))
        return out


def _split_by_xid(labels: str, idx: np.ndarray, values: list[str]) -> list[Segment]:
    """One series per Xid value: dcgm-exporter adds err_code/err_msg, sorted among the attributes
    (container, err_code, err_msg, namespace, ...), so a new Xid is a new series."""
    out: list[Segment] = []
    by_value: dict[str, list[int]] = {}
    for i, v in zip(idx.tolist(), values, strict=True):
        by_value.setdefault(v, []).append(i)
    for value, indices in by_value.items():
        attrs = f',err_code="{value}",err_msg="{XID_MESSAGES.get(int(value), "Unknown Error")}"'
        cut = labels.find(',namespace="')
        merged = labels[:cut] + attrs + labels[cut:] if cut >= 0 else labels + attrs
        out.append((merged, np.array(indices), [value] * len(indices)))
    return out
