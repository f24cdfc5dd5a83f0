"""`gpuledger simulate`: write the simulated fleet as OpenMetrics files plus truth.json.

Files (each OpenMetrics text with sample timestamps in seconds, ending in `# EOF`):
  dcgm-exporter.om        DCGM gauges per GPU / MIG instance / time-slicing copy
  kube-state-metrics.om   pods, phases, GPU requests, creation and scheduling times, node and namespace labels
  kueue.om                the teams' Kueue ClusterQueues: quota, usage, pending and admitted workloads (queues.py)
  vllm.om                 serving histograms, counters and the accuracy gauge of the inference pods
  truth.json              allocated GPU-hours per team per day, computed from the schedule; under
                          `serving`, expected SLIs, drift and canary verdicts (serving_truth.py); under
                          `billing`, the invoice's effective cost per instance type (bill.py); under `queues`,
                          waits, pending GPU-hours, fragmentation and quota use (queues.py)
  bill/, bill-restated/   the GPU instances' bill in FOCUS 1.2, and its restatement (bill.py)

Pods start and end on interval boundaries. kube-state-metrics is scraped on them (KSM_SCRAPE_OFFSET_S):
a state holds from its sample until the next scrape, so each sample stands for the interval that
follows it. dcgm-exporter and the inference servers are scraped SCRAPE_OFFSET_S seconds later, like
targets that are not aligned with the query grid; their samples report the interval before them. So
truth.json is what an exact ingestion must reproduce for any query step that divides the interval.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from random import Random

import numpy as np

from collectors.simulator import bill, dcgm, fleet, incidents, inference, ksm, queues, serving_truth
from collectors.simulator.signals import Stream, activity, clock
from core import conventions as c
from core.errors import ConfigError
from core.progress import SILENT, Progress
from core.timeutil import iso, to_epoch

SCRAPE_OFFSET_S = 7
KSM_SCRAPE_OFFSET_S = 0
DCGM_FAMILIES = {
    c.DCGM_GR_ENGINE_ACTIVE: ("gauge", "Ratio of time the graphics engine is active."),
    c.DCGM_GPU_UTIL: ("gauge", "GPU utilization (in %)."),
    c.DCGM_FB_USED: ("gauge", "Framebuffer memory used (in MiB)."),
    c.DCGM_POWER: ("gauge", "Power draw (in W)."),
    c.DCGM_GPU_TEMP: ("gauge", "GPU temperature (in C)."),
    c.DCGM_ENERGY: ("unknown", "Total energy consumption since boot (in mJ)."),
}
KSM_FAMILIES = {
    c.KSM_POD_INFO: "[STABLE] Information about pod.",
    c.KSM_POD_LABELS: "[STABLE] Kubernetes labels converted to Prometheus labels.",
    c.KSM_POD_PHASE: "[STABLE] The pods current phase.",
    c.KSM_POD_REQUESTS: "[STABLE] The number of requested request resource by a container.",
    c.KSM_NODE_INFO: "[STABLE] Information about a cluster node.",
    c.KSM_NODE_LABELS: "[STABLE] Kubernetes labels converted to Prometheus labels.",
    c.KSM_NODE_CAPACITY: "[STABLE] The capacity for different resources of a node.",
    c.KSM_NAMESPACE_LABELS: "[STABLE] Kubernetes labels converted to Prometheus labels.",
    c.KSM_POD_CREATED: "[STABLE] Unix creation timestamp",
    c.KSM_POD_SCHEDULED: "[STABLE] Unix timestamp when pod moved into scheduled status",
    c.KSM_POD_UNSCHEDULABLE: "[STABLE] Describes the unschedulable status for the pod.",
}
KUEUE_FAMILIES = {  # kueue v0.13 pkg/metrics/metrics.go help strings (tests/fixtures/kueue_v0.13.x_metrics_sample.prom)
    c.KUEUE_PENDING: ("gauge", "The number of pending workloads, per 'cluster_queue' and 'status'."),
    c.KUEUE_ADMITTED: ("counter", "The total number of admitted workloads per 'cluster_queue'"),
    c.KUEUE_USAGE: ("gauge", "Reports the cluster_queue's total resource usage"),
    c.KUEUE_NOMINAL: ("gauge", "Reports the cluster_queue's resource nominal quota within all the flavors"),
    c.KUEUE_BORROWING: ("gauge", "Reports the cluster_queue's resource borrowing limit within all the flavors"),
}


@dataclass(frozen=True)
class SimConfig:
    start: datetime
    days: float
    seed: int
    interval_s: int = 300
    incidents: bool = True  # the health incidents of collectors/simulator/incidents.py

    @property
    def n_samples(self) -> int:
        return int(round(self.days * 86400)) // self.interval_s


def simulate(cfg: SimConfig, out: Path, progress: Progress = SILENT) -> dict[str, object]:
    """Write the fleet's files into `out`, reporting each file written; return a short summary."""
    if cfg.interval_s < 15 or 86400 % cfg.interval_s:
        raise ConfigError("--interval must divide a day and be at least 15s")
    if cfg.n_samples < 1:
        raise ConfigError("--days must cover at least one scrape interval")
    if cfg.start.second or cfg.start.microsecond or cfg.start.minute % 5:
        raise ConfigError("--start must be on a 5-minute boundary")
    out.mkdir(parents=True, exist_ok=True)
    progress.begin("simulate", 4, "files")
    try:
        return _simulate(cfg, out, progress)
    finally:
        progress.end()


def _simulate(cfg: SimConfig, out: Path, progress: Progress) -> dict[str, object]:
    n = cfg.n_samples
    hour0 = cfg.start.hour + cfg.start.minute / 60
    weekday0 = cfg.start.weekday()
    pods = queues.with_gang_waits(fleet.schedule(Random(cfg.seed), n, cfg.interval_s, weekday0, hour0))
    waiting = queues.never_started(n, cfg.interval_s, hour0)  # in kube-state-metrics and the queues only
    stream = Stream(cfg.seed)
    hours, weekdays = clock(hour0, weekday0, n, cfg.interval_s)
    acts = [activity(stream, p, hours, weekdays) for p in pods]
    stamps = _timestamps(cfg)
    tracks = dcgm.build_tracks(pods, acts, n)
    health = incidents.HealthSim(n, cfg.interval_s, cfg.seed, cfg.incidents)
    dcgm_fams = dcgm.DcgmFamilies(pods, tracks, stream, health)
    dcgm_meta = {**DCGM_FAMILIES, **incidents.HEALTH_FAMILIES}
    _write(out / "dcgm-exporter.om", _gauge_families(dcgm_meta, dcgm_fams.segments, stamps))
    progress.step(file="dcgm-exporter.om")
    ksm_fams = ksm.KsmFamilies(pods + waiting, n, int(to_epoch(cfg.start)) + KSM_SCRAPE_OFFSET_S, cfg.interval_s)
    ksm_meta = {name: ("gauge", help_) for name, help_ in KSM_FAMILIES.items()}
    ksm_stamps = _timestamps(cfg, KSM_SCRAPE_OFFSET_S)
    _write(out / "kube-state-metrics.om", _gauge_families(ksm_meta, ksm_fams.segments, ksm_stamps))
    progress.step(file="kube-state-metrics.om")
    kueue = queues.KueueFamilies(pods + waiting, n)
    _write(out / "kueue.om", _gauge_families(KUEUE_FAMILIES, kueue.segments, stamps))
    inf = inference.InferenceFamilies(pods, acts, stream, cfg.interval_s)
    _write(out / "vllm.om", _inference_families(inf, stamps))
    progress.step(file="vllm.om")
    truth = compute_truth(cfg, pods)
    truth["pods"] = pod_truth(cfg, pods, acts)
    truth["health"] = health.truth(pods, cfg.start)
    truth["queues"] = queues.truth(pods + waiting, n, cfg.interval_s)
    truth["serving"] = serving_truth.compute(cfg.start, cfg.interval_s, inf)
    by_gpu = dcgm_fams.energy_truth()
    truth["energy"] = {"fleet_kwh": sum(by_gpu.values()), "gpu_kwh": by_gpu}
    truth["billing"] = {"invoice_effective_usd": bill.write(out, cfg.start, cfg.n_samples * cfg.interval_s // 3600)}
    (out / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    progress.step(file="truth.json")
    return {"pods": len(pods), "samples_per_series": n, "files": sorted(p.name for p in out.iterdir())}


def _timestamps(cfg: SimConfig, offset_s: int = SCRAPE_OFFSET_S) -> list[str]:
    base = int(to_epoch(cfg.start)) + offset_s
    return [str(base + k * cfg.interval_s) for k in range(cfg.n_samples)]


def _write(path: Path, chunks: Iterable[str]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for chunk in chunks:
            fh.write(chunk)
        fh.write("# EOF\n")
    os.replace(tmp, path)


def _series_lines(name: str, segments: list[tuple[str, np.ndarray, list[str]]], stamps: list[str]) -> Iterable[str]:
    # One series' samples stay together and in time order, whatever order its segments came in.
    merged: dict[str, list[tuple[int, str]]] = {}
    for labels, idx, values in segments:
        merged.setdefault(labels, []).extend(zip(idx.tolist(), values, strict=True))
    for labels in sorted(merged):
        rows = sorted(merged[labels])
        prefix = f"{name}{{{labels}}} "
        yield "".join(f"{prefix}{v} {stamps[i]}\n" for i, v in rows)


def _gauge_families(meta: dict[str, tuple[str, str]], segments_of, stamps: list[str]) -> Iterable[str]:  # type: ignore[no-untyped-def]
    for name, (kind, help_) in meta.items():
        yield f"# HELP {name} {help_}\n# TYPE {name} {kind}\n"
        yield from _series_lines(name, segments_of(name), stamps)


def _inference_families(inf: inference.InferenceFamilies, stamps: list[str]) -> Iterable[str]:
    for kind in inference.HISTOGRAMS:
        family = inference.FAMILY[kind]
        yield f"# HELP {family} {inference.HELP[kind]}\n# TYPE {family} histogram\n"
        for idx, blocks in inf.histogram(kind):
            parts = []
            for i, block in zip(idx.tolist(), blocks, strict=True):
                parts.append("\n".join(f"{line} {stamps[i]}" for line in block.split("\n")) + "\n")
            yield "".join(parts)
    for family, help_ in inference.COUNTERS.items():
        yield f"# HELP {family} {help_}\n# TYPE {family} counter\n"
        yield from _series_lines(family + "_total", inf.counter(family), stamps)
    name, help_ = inference.ACCURACY_GAUGE
    yield f"# HELP {name} {help_}\n# TYPE {name} gauge\n"
    yield from _series_lines(name, inf.accuracy(), stamps)


def compute_truth(cfg: SimConfig, pods: list[fleet.Pod]) -> dict[str, object]:
    """Allocated GPU-hours per team and day straight from the schedule (no warehouse involved)."""
    step_h = cfg.interval_s / 3600
    per_day = 86400 // cfg.interval_s
    days = [iso(cfg.start + timedelta(days=d))[:10] for d in range(-(-cfg.n_samples // per_day))]
    by_team_day: dict[str, dict[str, float]] = {}
    by_team_node: dict[str, dict[str, float]] = {}
    for pod in pods:
        node = fleet.NODE_BY_NAME[pod.node]
        gpus = fleet.gpu_fraction(pod.resource, node.model, node.replicas) * pod.amount
        team = pod.team or c.UNALLOCATED
        for k in range(pod.start, pod.end):
            day = days[k // per_day]
            by_team_day.setdefault(team, {}).setdefault(day, 0.0)
            by_team_day[team][day] += gpus * step_h
        by_team_node.setdefault(team, {}).setdefault(pod.node, 0.0)
        by_team_node[team][pod.node] += gpus * step_h * (pod.end - pod.start)
    capacity_by_node = {n.name: n.gpu_count * step_h * cfg.n_samples for n in fleet.NODES}
    return {
        "meta": {
            "start": iso(cfg.start),
            "days": cfg.days,
            "seed": cfg.seed,
            "interval_s": cfg.interval_s,
            "scrape_offset_s": SCRAPE_OFFSET_S,
            "ksm_scrape_offset_s": KSM_SCRAPE_OFFSET_S,
            "cluster": fleet.CLUSTER,
            "pods": len(pods),
        },
        "allocated_gpu_hours": _rounded(by_team_day),
        "allocated_gpu_hours_by_node": _rounded(by_team_node),
        "capacity_gpu_hours_by_node": {k: round(v, 9) for k, v in capacity_by_node.items()},
        "nodes": {
            n.name: {
                "instance_type": n.instance_type,
                "capacity_type": n.capacity_type.replace("-", "_"),
                "gpus": n.gpu_count,
                "pool": n.pool,
            }
            for n in fleet.NODES
        },
    }


def pod_truth(cfg: SimConfig, pods: list[fleet.Pod], acts: list[np.ndarray]) -> list[dict[str, object]]:
    """Every pod as scheduled: owner labels, placement, Running interval and mean graphics activity."""
    step = timedelta(seconds=cfg.interval_s)
    return [
        {
            "namespace": p.namespace,
            "pod": p.name,
            "team": p.team,
            "cost_center": f"cc-{p.team}" if p.team else None,
            "kind": p.kind,
            "node": p.node,
            "resource": p.resource,
            "amount": p.amount,
            "start": iso(cfg.start + step * p.start),
            "end": iso(cfg.start + step * p.end),
            "mean_activity": round(float(np.mean(a)), 6) if len(a) else None,
        }
        for p, a in zip(pods, acts, strict=True)
    ]


def _rounded(data: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {k: {kk: round(vv, 9) for kk, vv in sorted(v.items())} for k, v in sorted(data.items())}
