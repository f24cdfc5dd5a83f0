"""Savings recommendations, each with a monthly dollar figure and the evidence behind it.

1. Release idle capacity: a node pool whose peak allocation left whole nodes unused all window.
2. Right-size low-utilisation pods: a whole GPU at low activity fits a MIG slice (MIG-capable
   cards) or a time-sliced share (others); the slice must cover activity x 1.25 and the pod's
   p95 framebuffer use.
3. Move long-running, busy work from on-demand to spot, at the spot price in the price table for
   the same instance type and region, else at an assumed discount (stated in the evidence). Spot
   capacity can be reclaimed with two minutes' notice: only for jobs that checkpoint.
4. Move batch work off-peak: GPU-hours of non-serving pods in peak hours, up to the idle GPU-hours
   the same pool already pays for off-peak (saves money when the pool scales down at peak).
Monthly figures scale the window's cost to 730 hours. Ranked by monthly savings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import duckdb

from analytics.cost.allocation import nodes_sql
from core import conventions as c
from core.money import HOURS_PER_MONTH, per_month, to_cents
from core.store.sql import literal
from core.timeutil import Window

MIG_CAPABLE = ("A100", "H100", "H200", "A30", "B200", "GB200", "H20")


@dataclass(frozen=True)
class SavingsOptions:
    low_utilization: float = 0.3
    min_run_hours: float = 6.0
    busy_activity: float = 0.5
    assumed_spot_discount: float = 0.6
    peak_hours: tuple[int, int] = (13, 22)  # UTC, [start, end)


@dataclass(frozen=True)
class Recommendation:
    kind: str
    target: str
    team: str
    monthly_savings_usd: Decimal
    action: str
    evidence: str

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "monthly_savings_usd": str(self.monthly_savings_usd)}


def _monthly(amount: Decimal, window: Window) -> Decimal:
    return per_month(amount, window.hours)


def release_idle(pools: list[dict[str, Any]], window: Window) -> list[Recommendation]:
    """pools: node_pool, gpus_per_node, capacity_gpus (avg), peak_alloc_gpus, gpu_hour_usd."""
    out = []
    for p in pools:
        spare = p["capacity_gpus"] - math.ceil(p["peak_alloc_gpus"] - 1e-9)
        nodes = int(spare // p["gpus_per_node"]) if p["gpus_per_node"] else 0
        if nodes <= 0 or not p["gpu_hour_usd"]:
            continue
        gpus = nodes * p["gpus_per_node"]
        monthly = to_cents(Decimal(gpus) * p["gpu_hour_usd"] * HOURS_PER_MONTH)
        out.append(
            Recommendation(
                "release idle capacity",
                p["node_pool"] or "(no pool)",
                c.IDLE,
                monthly,
                f"scale pool down by {nodes} node(s) ({gpus} GPUs)",
                f"{p['capacity_gpus']:.1f} GPUs on average, at most {p['peak_alloc_gpus']:.2f} allocated at any step in the window",
            )
        )
    return out


# Memory of a MIG slice as a fraction of its card, by compute slices (A100/H100/H200: 1g.10gb,
# 2g.20gb, 3g.40gb, 4g.40gb on an 80GB card; A30: 1g.6gb, 2g.12gb, 4g.24gb).
MIG_MEMORY = {1: 1 / 8, 2: 1 / 4, 3: 1 / 2, 4: 1 / 2}
A30_MEMORY = {1: 1 / 4, 2: 1 / 2}


def _mig_fit(activity: float, fb_mib: float, model: str) -> tuple[int, int] | None:
    """Smallest MIG slice (g, slices of the card) covering activity x 1.25 and p95 memory x 1.1."""
    is_a30 = "A30" in model.upper()
    match = re.search(r"(\d+)\s*GB", model.upper().replace("-", " "))
    card_mib = (24 if is_a30 else int(match.group(1)) if match else 80) * 1024
    slices, memory = (4, A30_MEMORY) if is_a30 else (7, MIG_MEMORY)
    for g, fraction in sorted(memory.items()):
        if g / slices >= activity * 1.25 and card_mib * fraction >= fb_mib * 1.1:
            return g, slices
    return None


def right_size_candidate(p: dict[str, Any], opts: SavingsOptions) -> bool:
    """A single whole-GPU pod at low activity that cost something: what right_size considers."""
    eff = p["efficiency"]
    return (
        p["whole"] == 1 and p["resources"] == 1 and eff is not None and eff < opts.low_utilization and p["cost_usd"] > 0
    )


def right_size(pods: list[dict[str, Any]], window: Window, opts: SavingsOptions) -> list[Recommendation]:
    """pods: team, namespace, pod, model, gpu_hours, efficiency, fb_p95_mib, cost_usd (whole-GPU, 1 GPU)."""
    out = []
    for p in pods:
        if not right_size_candidate(p, opts):
            continue
        eff = p["efficiency"]
        if any(m in p["model"].upper() for m in MIG_CAPABLE):
            fit = _mig_fit(eff, p["fb_p95_mib"] or 0.0, p["model"])
            if fit is None:
                continue
            g, slices = fit
            saving, action = (
                p["cost_usd"] * (1 - Decimal(g) / slices),
                f"request a MIG {g}g slice instead of a whole GPU",
            )
        else:
            replicas = max(2, min(4, int(1 / max(eff * 1.25, 0.01))))
            saving, action = (
                p["cost_usd"] * (1 - Decimal(1) / replicas),
                f"share a time-sliced GPU ({replicas} replicas)",
            )
        out.append(
            Recommendation(
                "right-size low-utilisation pod",
                f"{p['namespace']}/{p['pod']}",
                p["team"],
                _monthly(saving, window),
                action,
                f"{eff:.0%} graphics-engine activity over {p['gpu_hours']:.1f} GPU-hours; p95 framebuffer {p['fb_p95_mib'] or 0:.0f} MiB",
            )
        )
    return out


def to_spot(
    pods: list[dict[str, Any]], spot_ratio: dict[str, float], window: Window, opts: SavingsOptions
) -> list[Recommendation]:
    """pods on on-demand nodes (team, namespace, workload, instance_type, run_hours, efficiency, serving,
    cost_usd, gpu_hours, used_gpu_hours), grouped into one recommendation per workload."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for p in pods:
        if p["serving"] or p["run_hours"] < opts.min_run_hours or (p["efficiency"] or 0) < opts.busy_activity:
            continue
        groups.setdefault((p["team"], p["namespace"], p["workload"]), []).append(p)
    out = []
    for (team, namespace, name), members in sorted(groups.items()):
        saving, basis = Decimal(0), set()
        for p in members:
            ratio = spot_ratio.get(p["instance_type"])
            basis.add(
                f"spot/on-demand ratio {ratio:.2f} for {p['instance_type']} from the price table"
                if ratio is not None
                else f"no spot price for {p['instance_type']}: assumed {opts.assumed_spot_discount:.0%} discount"
            )
            saving += p["cost_usd"] * Decimal(
                repr(1 - (ratio if ratio is not None else 1 - opts.assumed_spot_discount))
            )
        # exactly rounded sums: the pods come in no fixed order, and a float sum in row order could print 34.4 or 34.5
        hours = math.fsum(p["gpu_hours"] for p in members)
        activity = math.fsum(p["used_gpu_hours"] for p in members) / hours if hours else 0.0
        out.append(
            Recommendation(
                "move to spot",
                f"{namespace}/{name}",
                team,
                _monthly(saving, window),
                "run on a spot pool with checkpointing (spot nodes can be reclaimed with 2 minutes' notice)",
                f"{len(members)} pod(s) ran {hours:.1f} GPU-hours on on-demand nodes at {activity:.0%} activity, each for "
                f"at least {opts.min_run_hours:g} h; " + "; ".join(sorted(basis)),
            )
        )
    return out


def off_peak(rows: list[dict[str, Any]], window: Window) -> list[Recommendation]:
    """rows: node_pool, team, peak_gpu_hours (batch), offpeak_idle_gpu_hours, gpu_hour_usd."""
    out = []
    left = {r["node_pool"]: r["offpeak_idle_gpu_hours"] for r in rows}  # one pool's idle can absorb work once
    for r in sorted(rows, key=lambda r: -r["peak_gpu_hours"]):
        movable = min(r["peak_gpu_hours"], left[r["node_pool"]])
        left[r["node_pool"]] -= max(movable, 0.0)
        if movable <= 0 or not r["gpu_hour_usd"]:
            continue
        saving = Decimal(repr(movable)) * r["gpu_hour_usd"]
        out.append(
            Recommendation(
                "move batch work off-peak",
                r["node_pool"] or "(no pool)",
                r["team"],
                _monthly(saving, window),
                "schedule these jobs outside peak hours, on capacity that is idle then",
                f"{r['peak_gpu_hours']:.1f} batch GPU-hours ran in peak hours while {r['offpeak_idle_gpu_hours']:.1f} GPU-hours sat idle off-peak in the same pool",
            )
        )
    return out


def rank(recs: list[Recommendation]) -> list[Recommendation]:
    return sorted(
        (r for r in recs if r.monthly_savings_usd > 0), key=lambda r: (-r.monthly_savings_usd, r.kind, r.target)
    )


def pod_stats_sql(requests: str) -> str:
    """Per pod: its single whole-GPU request, node attributes, run hours, serving? (p95 framebuffer: fb_p95_sql).

    `requests`: per pod (uid), node and resource, hour by hour or step by step, the most it asked for and its seconds
    Running (core/store/rollups/pools.py pod_requests_sql: the pod-requests rollup's whole hours and the steps of the
    rest). A pod's run time is the longest of its resources' sums: a pod asking for two resources (a GPU and HAMi
    cores) is not counted as running twice as long."""
    return f"""
    WITH r AS (
        SELECT cluster, namespace, pod, uid, node, resource, max(amount) AS amount, sum(run_s) AS run_s
        FROM ({requests}) GROUP BY ALL),
    a AS (
        SELECT cluster, namespace, pod, uid, node, max(amount) FILTER (WHERE resource = '{c.RESOURCE_GPU}') AS whole,
            count(*) AS resources, max(run_s) / 3600.0 AS run_hours
        FROM r GROUP BY ALL),
    serving AS (SELECT DISTINCT cluster, namespace, pod FROM {c.T_INFERENCE_SAMPLES} WHERE ts >= $start AND ts < $end)
    SELECT a.*, n.gpu_model AS model, n.instance_type, n.capacity_type, n.region, n.node_pool,
        s.pod IS NOT NULL AS serving
    FROM a LEFT JOIN ({nodes_sql()}) n USING (cluster, node)
    LEFT JOIN serving s USING (cluster, namespace, pod)
    """


def fb_p95_sql(pods: list[tuple[str, str, str]]) -> str:
    """(cluster, namespace, pod, fb_p95_mib) for the given (cluster, namespace, pod) keys only.

    A quantile over steps: no rollup holds it, so it reads the step tables, but only for the pods a
    right-size recommendation can use it for (the rest of the fleet's samples are skipped). The GPUs' samples are
    narrowed by UUID alone, the join then matching every key: a semi-join on (cluster, node, UUID) before it removed
    no row the UUID had not, and cost 15% of the query (10,000 GPUs, 3,767 pods, medians of 5 runs: 2.59 -> 2.16 s)."""

    keys = (
        ", ".join(f"({literal(cl)}, {literal(ns)}, {literal(pod)})" for cl, ns, pod in sorted(pods))
        or "(NULL, NULL, NULL)"
    )
    return f"""
    WITH k AS (SELECT * FROM (VALUES {keys}) v(cluster, namespace, pod)),
    m AS (SELECT m.* FROM {c.T_GPU_POD_SAMPLES} m SEMI JOIN k USING (cluster, namespace, pod)
          WHERE m.ts >= $start AND m.ts < $end AND m.pod IN (SELECT pod FROM k)),
    s AS (SELECT s.* FROM {c.T_GPU_SAMPLES} s WHERE s.ts >= $start AND s.ts < $end AND s.gpu_uuid IN (SELECT gpu_uuid FROM m))
    SELECT m.cluster, m.namespace, m.pod, quantile_cont(s.fb_used_mib, 0.95) AS fb_p95_mib
    FROM m JOIN s USING (ts, cluster, node, gpu_uuid, gpu_instance)
    GROUP BY ALL
    """


def spot_ratios(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """instance type -> latest spot price / latest on-demand price (same provider and region)."""
    rows = con.execute(
        f"""WITH latest AS (SELECT provider, region, instance_type, capacity_type, arg_max(price_per_hour_usd, effective_from) AS p
                            FROM {c.T_PRICES} GROUP BY ALL)
        SELECT s.instance_type, CAST(s.p AS DOUBLE) / CAST(o.p AS DOUBLE) FROM latest s JOIN latest o
            ON s.provider = o.provider AND s.region = o.region AND s.instance_type = o.instance_type
        WHERE s.capacity_type = 'spot' AND o.capacity_type = 'on_demand' AND o.p > 0"""
    ).fetchall()
    return {it: float(r) for it, r in rows}
