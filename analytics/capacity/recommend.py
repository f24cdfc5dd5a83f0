"""Recommendations from who waits for GPUs, in the savings report's form (kind, target, team, monthly dollars,
action, evidence), so `report savings` ranks them with the others:

- `consolidate`: GPUs sat free but fitting no pending pod; the nodes with the most such GPU-hours are named, and
  the dollars are those stranded GPU-hours' cost, per month (packing the small pods there frees whole nodes);
- `mig_relayout`: a MIG profile was asked for while another sat free; the profile mix that would have served the
  requests, valued at the free mismatched slices' share of the stranded cost;
- `quota_move`: a Kueue queue's quota idled while another queue of its cohort waited: lend it (no dollars: the
  GPUs are paid for either way, the wait is what moves).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from core.money import per_month
from core.timeutil import Window


def _monthly(amount: Decimal, window: Window) -> Decimal:
    return per_month(amount, window.hours)


def recommendations(report: dict[str, Any], window: Window) -> list[dict[str, Any]]:
    """From a queue report (QueueReport.as_dict()): consolidation, MIG re-layout and quota moves, most dollars first."""
    totals = report["totals"]
    out: list[dict[str, Any]] = []
    hours, cost = Decimal(repr(totals["fragmented_gpu_hours"])), Decimal(totals["fragmented_cost_usd"])
    per_gpu_hour = cost / hours if hours > 0 else Decimal(0)
    by_node: dict[str, float] = defaultdict(float)
    for cell in report["heatmap"]:
        by_node[f"{cell['cluster']}/{cell['node']}"] += cell["fragmented_gpu_hours"]
    worst = sorted((n for n, h in by_node.items() if h > 0), key=lambda n: (-by_node[n], n))[:5]
    if hours > 0 and worst:
        out.append({
            "kind": "consolidate", "target": ", ".join(worst), "team": "", "monthly_savings_usd": _monthly(cost, window),
            "action": "pack the small pods on these nodes onto fewer nodes, so whole nodes free up for the waiting jobs",
            "evidence": f"{hours:.1f} GPU-hours free but fitting no pending pod ({', '.join(f'{n} {by_node[n]:.1f}' for n in worst)}); "
            f"the largest whole-GPU request the fleet could place: {totals['largest_placeable_gpus_min']}",
        })  # fmt: skip
    out += _mig(report["mig"], per_gpu_hour, window)
    out += _quota_moves(report["queues"])
    ranked = sorted(out, key=lambda r: (-Decimal(r["monthly_savings_usd"]), r["kind"], r["target"]))
    return [{**r, "monthly_savings_usd": str(r["monthly_savings_usd"])} for r in ranked]


def _mig(profiles: list[dict[str, Any]], per_gpu_hour: Decimal, window: Window) -> list[dict[str, Any]]:
    asked = [p for p in profiles if p["pending_instance_hours"] > 0]
    spare = [p for p in profiles if p["free_instance_hours"] > 0 and p["pending_instance_hours"] == 0]
    if not asked or not spare:
        return []
    slices = sum(Decimal(repr(p["free_instance_hours"])) * _g(p["profile"]) / 7 for p in spare)
    return [{
        "kind": "mig_relayout", "target": ", ".join(p["profile"] for p in asked), "team": "",
        "monthly_savings_usd": _monthly(slices * per_gpu_hour, window),
        "action": f"re-partition GPUs whose {', '.join(p['profile'] for p in spare)} instances sit free into "
        f"{', '.join(p['profile'] for p in asked)}",
        "evidence": "; ".join(f"{p['profile']}: {p['pending_instance_hours']:.1f} instance-hours asked for" for p in asked)
        + "; " + "; ".join(f"{p['profile']}: {p['free_instance_hours']:.1f} free" for p in spare),
    }]  # fmt: skip


def _g(profile: str) -> Decimal:
    digits = profile.removeprefix("nvidia_com_mig_").split("g_")[0]
    return Decimal(digits) if digits.isdigit() else Decimal(1)


def _quota_moves(queues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    waiting = [q for q in queues if q["pending_steps"]]
    out = []
    for q in queues:
        idle = q["idle_while_others_waited_gpu_hours"]
        takers = [w["queue"] for w in waiting if w["queue"] != q["queue"] and w["cohort"] == q["cohort"]]
        if idle > 0 and takers:
            out.append({
                "kind": "quota_move", "target": q["queue"], "team": "", "monthly_savings_usd": Decimal("0.00"),
                "action": f"lend {q['queue']}'s idle quota to {', '.join(takers)} (Kueue lendingLimit / borrowingLimit)",
                "evidence": f"{idle:.1f} GPU-hours of its quota idled while {', '.join(takers)} had work pending",
            })  # fmt: skip
    return out
