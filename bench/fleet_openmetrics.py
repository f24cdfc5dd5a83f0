"""A Fleet as exporter text: dcgm-exporter and kube-state-metrics series in OpenMetrics, with timestamps.

Label layouts follow collectors/simulator (dcgm-exporter 4.x, kube-state-metrics 2.x started with
--metric-labels-allowlist=pods=[team,app.kubernetes.io/name],nodes=[*],namespaces=[team]); one
scrape per step: kube-state-metrics at the step's start (its states hold from their sample on),
dcgm-exporter SCRAPE_OFFSET_S after it (its samples report the step before). `write_files` covers a window of steps
for the ingest benchmarks; `series` is also what bench/promql.py backfills into Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.fleet import KINDS, MEMORY_SHARE, REGION, TS_BUSY, TS_KEY, Fleet, activity
from core import conventions as c
from core.timeutil import to_epoch

SCRAPE_OFFSET_S = 7
KSM_SCRAPE_OFFSET_S = 0
DRIVER = "550.127.08"
PHASES = ("Pending", "Succeeded", "Failed", "Unknown", "Running")
HELP = {
    c.DCGM_GR_ENGINE_ACTIVE: "Ratio of time the graphics engine is active.",
    c.DCGM_GPU_UTIL: "GPU utilization (in %).",
    c.DCGM_FB_USED: "Framebuffer memory used (in MiB).",
    c.DCGM_POWER: "Power draw (in W).",
    c.DCGM_GPU_TEMP: "GPU temperature (in C).",
    c.KSM_POD_INFO: "[STABLE] Information about pod.",
    c.KSM_POD_LABELS: "[STABLE] Kubernetes labels converted to Prometheus labels.",
    c.KSM_POD_PHASE: "[STABLE] The pods current phase.",
    c.KSM_POD_REQUESTS: "[STABLE] The number of requested request resource by a container.",
    c.KSM_NODE_LABELS: "[STABLE] Kubernetes labels converted to Prometheus labels.",
    c.KSM_NAMESPACE_LABELS: "[STABLE] Kubernetes labels converted to Prometheus labels.",
}


@dataclass
class Series:
    """One series over a run of steps: values already formatted."""

    family: str
    labels: str
    steps: np.ndarray
    values: list[str]


def _fmt(values: np.ndarray, decimals: int) -> list[str]:
    if decimals == 0:
        return [str(int(v)) for v in np.round(values)]
    return [f"{v:.{decimals}f}".rstrip("0").rstrip(".") or "0" for v in values]


def _clip(lo: int, hi: int, a: int, b: int) -> np.ndarray:
    return np.arange(max(lo, a), min(hi, b))


def _device_labels(d: pd.Series) -> str:
    mig = f',GPU_I_PROFILE="{d.mig_profile}",GPU_I_ID="{d.gi_id}"' if d.mig_profile else ""
    bus = f"00000000:{0x07 + 8 * int(d.gpu_index):02X}:00.0"
    return (
        f'gpu="{d.gpu_index}",UUID="{d.uuid}",pci_bus_id="{bus}",device="nvidia{d.gpu_index}",'
        f'modelName="{d.model}"{mig},Hostname="{d.node}",DCGM_FI_DRIVER_VERSION="{DRIVER}"'
    )


def _pod_attrs(pod: pd.Series, vgpu: str = "", pod_uid: bool = False) -> str:
    container = {"training": "trainer", "inference": "server", "notebook": "notebook"}.get(pod.kind, "worker")
    attrs = f',container="{container}",namespace="{pod.namespace}",pod="{pod.pod}"'
    if pod_uid:
        attrs += f',pod_uid="{pod.uid}"'
    return attrs + (f',vgpu="{vgpu}"' if vgpu else "")


def _dcgm_values(act: np.ndarray, d: pd.Series, mem_share: float) -> dict[str, list[str]]:
    mib = d.entity_mib
    out = {
        c.DCGM_GR_ENGINE_ACTIVE: _fmt(act, 6),
        c.DCGM_FB_USED: _fmt(np.full(len(act), round(mem_share * mib)), 0),
        c.DCGM_POWER: _fmt(np.clip(55 + act * (d.tdp_w - 55), 40, d.tdp_w), 3),
        c.DCGM_GPU_TEMP: _fmt(31 + 42 * act, 0),
    }
    if not d.mig_profile:
        out[c.DCGM_GPU_UTIL] = _fmt(np.minimum(100, np.round(act * 104)), 0)
    return out


class _Dcgm:
    def __init__(self, fleet: Fleet, lo: int, hi: int) -> None:
        self.fleet, self.lo, self.hi = fleet, lo, hi
        dev = fleet.devices.merge(fleet.nodes[["node_id", "node", "model", "tdp_w", "memory_mib"]], on="node_id")
        gb = dev["mig_profile"].str.extract(r"\.(\d+)gb", expand=False).astype(float)
        dev["entity_mib"] = np.where(dev["mig_profile"] != "", gb * 1024 - 512, dev["memory_mib"])
        self.devices = dev.set_index("dev_id")
        self.pods = fleet.pods.set_index("pod_id")
        self.step_s = fleet.spec.step_s

    def _act(self, code: int, key: int, k: np.ndarray) -> np.ndarray:
        return activity(np.full(len(k), code), np.full(len(k), key), k, self.step_s)

    def series(self) -> Iterator[Series]:
        iv = self.fleet.intervals
        iv = iv[(iv["start"] < self.hi) & (iv["stop"] > self.lo)]
        for r in iv.itertuples():
            d = self.devices.loc[r.dev_id]
            k = _clip(self.lo, self.hi, r.start, r.stop)
            if d.ts:
                yield from self._time_sliced_device(r, d, k)
                continue
            pod = self.pods.loc[r.pod_id] if r.pod_id >= 0 else None
            act = self._act(r.code, r.pod_id, k) if pod is not None else np.zeros(len(k))
            labels = _device_labels(d) + (_pod_attrs(pod) if pod is not None else "")
            share = MEMORY_SHARE[pod.kind] if pod is not None else 0.0
            for family, values in _dcgm_values(act, d, share).items():
                yield Series(family, labels, k, values)
        yield from self._replicas()

    def _time_sliced_device(self, r: Any, d: pd.Series, k: np.ndarray) -> Iterator[Series]:
        """The GPU's own series: per-process families always, the others only while nobody runs."""
        busy = r.code == TS_BUSY
        act = self._act(TS_BUSY, TS_KEY + int(d.name), k) if busy else np.zeros(len(k))
        for family, values in _dcgm_values(act, d, 0.45 if busy else 0.0).items():
            if busy and family not in (c.DCGM_GPU_UTIL, c.DCGM_FB_USED):
                continue
            yield Series(family, _device_labels(d), k, values)

    def _replicas(self) -> Iterator[Series]:
        """Time-slicing copies (vgpu): device-wide values per sharing pod, plus per-process util/memory."""
        links = self.fleet.pods.merge(self.fleet.slots[["slot_id", "vgpu"]], on="slot_id").merge(
            self.fleet.slot_devices, on="slot_id"
        )
        links = links[links["dev_id"].map(self.devices["ts"]) & (links["start"] < self.hi) & (links["stop"] > self.lo)]
        for p in links.itertuples():
            d = self.devices.loc[p.dev_id]
            k = _clip(self.lo, self.hi, p.start, p.stop)
            device = _dcgm_values(self._act(TS_BUSY, TS_KEY + p.dev_id, k), d, 0.45)
            own = _dcgm_values(self._act(KINDS.index(p.kind), p.pod_id, k), d, MEMORY_SHARE[p.kind])
            pod = self.pods.loc[p.pod_id]
            for family, values in device.items():
                yield Series(family, _device_labels(d) + _pod_attrs(pod, p.vgpu), k, values)
            for family in (c.DCGM_GPU_UTIL, c.DCGM_FB_USED):
                yield Series(family, _device_labels(d) + _pod_attrs(pod, p.vgpu, pod_uid=True), k, own[family])


def _life(fleet: Fleet) -> pd.DataFrame:
    """Pods with created (Pending one step) and deleted (Succeeded for two steps), as in the simulator."""
    pods = fleet.pods.merge(fleet.slots[["slot_id", "node_id", "resource", "amount"]], on="slot_id")
    pods = pods.merge(fleet.nodes[["node_id", "node"]], on="node_id")
    pods["created"] = np.maximum(pods["start"] - 1, 0)
    pods["deleted"] = np.minimum(pods["stop"] + 2, fleet.spec.steps)
    return pods


def ksm_series(fleet: Fleet, lo: int, hi: int, minimal: bool = False) -> Iterator[Series]:
    """kube-state-metrics pod, node and namespace series (minimal: only what a chargeback reads)."""
    pods = _life(fleet)
    for p in pods[(pods["created"] < hi) & (pods["deleted"] > lo)].itertuples():
        key = f'namespace="{p.namespace}",pod="{p.pod}",uid="{p.uid}"'
        life = _clip(lo, hi, p.created, p.deleted)
        pending, scheduled = _clip(lo, hi, p.created, p.start), _clip(lo, hi, p.start, p.deleted)
        team = f',label_team="{p.team}"' if p.team else ""
        yield Series(c.KSM_POD_LABELS, f'{key},label_app_kubernetes_io_name="{p.app}"{team}', life, ["1"] * len(life))
        running = (life >= p.start) & (life < p.stop)
        phases = ("Running",) if minimal else PHASES
        for phase in phases:
            values = running if phase == "Running" else (life < p.start if phase == "Pending" else life >= p.stop)
            if phase in ("Failed", "Unknown"):
                values = np.zeros(len(life), dtype=bool)
            yield Series(c.KSM_POD_PHASE, f'{key},phase="{phase}"', life, ["1" if v else "0" for v in values])
        container = {"training": "trainer", "inference": "server", "notebook": "notebook"}.get(p.kind, "worker")
        for steps, node in ((pending, ""), (scheduled, p.node)):
            if not len(steps) or (minimal and not node):
                continue
            base = f'{key},container="{container}",node="{node}"'
            if not minimal:
                yield Series(c.KSM_POD_REQUESTS, f'{base},resource="cpu",unit="core"', steps, ["4"] * len(steps))
            gpu = f'{base},resource="{p.resource}",unit="integer"'
            yield Series(c.KSM_POD_REQUESTS, gpu, steps, [str(p.amount)] * len(steps))
            if not minimal:
                yield Series(c.KSM_POD_INFO, f'{key},node="{node}",created_by_kind="Job"', steps, ["1"] * len(steps))
    if not minimal:
        yield from _node_series(fleet, lo, hi)


def _node_series(fleet: Fleet, lo: int, hi: int) -> Iterator[Series]:
    steps = np.arange(lo, hi)
    for n in fleet.nodes.itertuples():
        pairs = {
            "karpenter_sh_capacity_type": n.capacity_type,
            "karpenter_sh_nodepool": n.pool,
            "node_kubernetes_io_instance_type": n.instance_type,
            "nvidia_com_gpu_count": str(n.gpus),
            "nvidia_com_gpu_product": n.product,
            "topology_kubernetes_io_region": REGION,
            "topology_kubernetes_io_zone": n.zone,
            **({"nvidia_com_gpu_replicas": str(n.replicas)} if n.replicas else {}),
        }
        labels = f'node="{n.node}",' + ",".join(f'label_{k}="{v}"' for k, v in sorted(pairs.items()))
        yield Series(c.KSM_NODE_LABELS, labels, steps, ["1"] * len(steps))
    for ns in sorted(set(fleet.pods["namespace"])):
        team = f',label_team="{ns.removeprefix("team-")}"' if ns.startswith("team-") else ""
        yield Series(c.KSM_NAMESPACE_LABELS, f'namespace="{ns}"{team}', steps, ["1"] * len(steps))


def render(series: Iterable[Series], stamps: list[str], kinds: dict[str, str] | None = None) -> Iterator[str]:
    """OpenMetrics text: each family's series together (promtool needs that), `# EOF` at the end."""
    by_family: dict[str, dict[str, list[tuple[np.ndarray, list[str]]]]] = {}
    for s in series:
        by_family.setdefault(s.family, {}).setdefault(s.labels, []).append((s.steps, s.values))
    for family, members in by_family.items():
        kind = (kinds or {}).get(family, "gauge")
        yield f"# HELP {family} {HELP.get(family, family)}\n# TYPE {family} {kind}\n"
        for labels, parts in members.items():
            prefix = f"{family}{{{labels}}} "
            rows = sorted((int(k), v) for steps, values in parts for k, v in zip(steps, values, strict=True))
            yield "".join(f"{prefix}{v} {stamps[k]}\n" for k, v in rows)
    yield "# EOF\n"


def stamps(fleet: Fleet, offset_s: int = SCRAPE_OFFSET_S) -> list[str]:
    base = int(to_epoch(fleet.spec.start)) + offset_s
    return [str(base + k * fleet.spec.step_s) for k in range(fleet.spec.steps)]


def write_files(fleet: Fleet, out: Path, lo: int, hi: int) -> dict[str, int]:
    """dcgm-exporter.om and kube-state-metrics.om for steps [lo, hi); returns sample lines per file."""
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, series, ts in (
        ("dcgm-exporter.om", _Dcgm(fleet, lo, hi).series(), stamps(fleet)),
        ("kube-state-metrics.om", ksm_series(fleet, lo, hi), stamps(fleet, KSM_SCRAPE_OFFSET_S)),
    ):
        lines = 0
        with open(out / name, "w", encoding="utf-8", newline="\n") as fh:
            for chunk in render(series, ts):
                fh.write(chunk)
                lines += chunk.count("\n")
        counts[name] = lines
    return counts
