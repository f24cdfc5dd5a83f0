"""`report queues`: who waits for GPUs, how long, and why free GPUs stay unusable, in one report.

rows: per group (team by default), pending GPU-hours, pods, wait p50/p95/max, never started, still pending;
totals: the same summed (the wait over every pod), with fragmentation (analytics/capacity/fragmentation.py);
queues: Kueue / Volcano quota use (analytics/capacity/quotas.py); mig and heatmap: fragmentation's details;
timeline: pending GPU-hours per hour and group; pods: each pod's wait.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import duckdb

from analytics.capacity import fragmentation, quotas, recommend
from analytics.capacity.queues import QueueOptions, group_rows, pending_timeline, pod_waits
from core import conventions as c
from core.timeutil import Window


@dataclass
class QueueReport:
    window: Window
    by: tuple[str, ...]
    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    queues: list[dict[str, Any]]
    mig: list[dict[str, Any]]
    heatmap: list[dict[str, Any]]
    timeline: list[dict[str, Any]]  # pending GPU-hours per hour and group
    pods: list[dict[str, Any]]  # each pod's wait: the distribution the percentiles summarise
    recommendations: list[dict[str, Any]] = field(default_factory=list)  # analytics/capacity/recommend.py

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.as_dict(), "by": list(self.by), "rows": self.rows, "totals": self.totals,
            "queues": self.queues, "mig": self.mig, "heatmap": self.heatmap, "timeline": self.timeline,
            "pods": self.pods, "recommendations": self.recommendations,
        }  # fmt: skip


def _namespaces(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict[str, str]]:
    rows = con.execute(f"SELECT cluster, namespace, labels FROM {c.T_NAMESPACES}").fetchall()
    return {(cl, ns): {str(k): str(v) for k, v in json.loads(lb or "{}").items()} for cl, ns, lb in rows}


def queue_report(con: duckdb.DuckDBPyConnection, window: Window, opts: QueueOptions | None = None) -> QueueReport:
    opts = opts or QueueOptions()
    waits = pod_waits(con, window, opts, _namespaces(con))
    rows = group_rows(con, waits, opts.by)
    overall = group_rows(con, waits, ())
    frag = fragmentation.fragmentation(con, window)
    head = overall[0] if overall else {}
    totals = {
        "pending_gpu_hours": round(sum(w.pending_gpu_hours for w in waits), 6),
        "pods": len(waits),
        "wait_p50_seconds": head.get("wait_p50_seconds"),
        "wait_p95_seconds": head.get("wait_p95_seconds"),
        "wait_max_seconds": head.get("wait_max_seconds"),
        "never_started": sum(1 for w in waits if w.pending_in_window and not w.started),
        "still_pending": sum(1 for w in waits if w.still_pending),
        **frag.totals(),
    }
    pods = [
        {"cluster": w.cluster, "namespace": w.namespace, "pod": w.pod, **w.keys, "wait_seconds": round(w.wait_s, 3),
         "pending_gpu_hours": round(w.pending_gpu_hours, 6), "started": w.started, "still_pending": w.still_pending}
        for w in waits
    ]  # fmt: skip
    timeline = pending_timeline(con, window, waits)
    out = QueueReport(window, opts.by, rows, totals, quotas.quotas(con, window), frag.mig, frag.heatmap, timeline, pods)
    out.recommendations = recommend.recommendations(out.as_dict(), window)
    return out


def waiting_recommendations(con: duckdb.DuckDBPyConnection, window: Window) -> list[dict[str, Any]]:
    """The recommendations alone (what `report savings` joins): fragmentation and quotas, without the per-pod waits
    (on a 10,000-GPU week those cost 26 s, and no recommendation reads them)."""
    frag = fragmentation.fragmentation(con, window)
    partial = {"totals": frag.totals(), "heatmap": frag.heatmap, "mig": frag.mig, "queues": quotas.quotas(con, window)}
    return recommend.recommendations(partial, window)
