"""Read-side views of a HealthResult: a node's state from its GPUs, and rows for reports and JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analytics.health.coverage import GpuInfo
from analytics.health.policy import RANK
from analytics.health.report import HealthResult, Period, XidEvent
from core.timeutil import iso


@dataclass
class NodePeriod:
    cluster: str
    node: str
    state: str
    start: datetime
    end: datetime
    gpus: tuple[str, ...]  # the GPUs in this (worst) state when the period began

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "node": self.node,
            "state": self.state,
            "start": iso(self.start),
            "end": iso(self.end),
            "gpus": list(self.gpus),
        }


def node_periods(result: HealthResult) -> list[NodePeriod]:
    """A node's state over time: the most severe state of its GPUs at each instant."""
    by_node: dict[tuple[str, str], list[Period]] = {}
    for p in result.periods:
        by_node.setdefault((p.key.cluster, p.key.node), []).append(p)
    out: list[NodePeriod] = []
    for (cluster, node), periods in sorted(by_node.items()):
        cuts = sorted({p.start for p in periods} | {p.end for p in periods})
        current: NodePeriod | None = None
        for a, b in zip(cuts, cuts[1:], strict=False):
            live = [p for p in periods if p.start <= a < p.end]
            if not live:
                current = None
                continue
            state = max((p.state for p in live), key=RANK.__getitem__)
            if current is not None and current.state == state and current.end == a:
                current.end = b
                continue
            current = NodePeriod(
                cluster, node, state, a, b, tuple(sorted(p.key.gpu_uuid for p in live if p.state == state))
            )
            out.append(current)
    return out


def period_dict(p: Period, info: GpuInfo, evidence: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "cluster": p.key.cluster,
        "node": p.key.node,
        "gpu_uuid": p.key.gpu_uuid,
        "gpu_index": info.gpu_index,
        "model": info.model,
        "node_pool": info.node_pool,
        "state": p.state,
        "from_state": p.from_state,
        "start": iso(p.start),
        "end": iso(p.end),
        "began": iso(p.began),
        "ongoing": p.ongoing,
        "hours": round(p.hours, 6),
        "action": p.action,
    }
    if evidence:
        out["evidence"] = [e.as_dict() for e in p.evidence]
    return out


def event_dict(e: XidEvent) -> dict[str, Any]:
    return {
        "cluster": e.key.cluster,
        "node": e.key.node,
        "gpu_uuid": e.key.gpu_uuid,
        "ts": iso(e.ts),
        "xid": e.xid,
        "previous_xid": e.previous,
        "mnemonic": e.mnemonic,
        "cause": e.cause,
        "severity": e.severity,
        "action": e.action,
        "device_plugin_ignores": e.device_plugin_ignores,
        "pods": list(e.pods),
        "teams": list(e.teams),
        "why": e.why,
    }
