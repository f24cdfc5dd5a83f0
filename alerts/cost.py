"""Cost rules: GPU shares and $/hour as recording rules, and the alerts built on them.

Prometheus has no prices, so the generator writes them in: one term per instance type (and spot
override) from the price table the rules were generated with (the default table for rules/).
Shares follow the chargeback: whole GPUs 1, MIG g/7 (A30 g/4 is not distinguishable in PromQL:
documented), time-sliced replicas 1/`time_slicing_replicas`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from alerts.model import Rule, promql_string
from core import conventions as c

MIG_PROFILES = (1, 2, 3, 4, 7)


def _num(value: Decimal | float) -> str:
    """A stable, exact-enough literal (no float noise in golden files)."""
    text = f"{Decimal(str(value)):.10f}".rstrip("0").rstrip(".")
    return text or "0"


def share_rule(replicas: int) -> Rule:
    """Physical GPUs each Running pod holds, per node (MIG slices and time-sliced replicas weighted).

    Built from the raw requests (not the allocation recording) so it depends on no other recording.
    """
    requests = "max by (namespace, pod, container, node, resource) ({sel})"
    other = f'{c.KSM_POD_REQUESTS}{{resource=~"{c.GPU_RESOURCE_REGEX}",resource!~"{c.RESOURCE_MIG_PREFIX}.*|{c.RESOURCE_GPU_SHARED}|nvidia_com_gpumem.*|nvidia_com_gpucores"}}'
    terms = [requests.format(sel=other)]
    terms += [
        requests.format(sel=f'{c.KSM_POD_REQUESTS}{{resource=~"{c.RESOURCE_MIG_PREFIX}{g}g_.*"}}') + f" * {g} / 7"
        for g in MIG_PROFILES
    ]
    terms.append(requests.format(sel=f'{c.KSM_POD_REQUESTS}{{resource="{c.RESOURCE_GPU_SHARED}"}}') + f" / {replicas}")
    body = "\n    or ".join(terms)
    running = f'max by (namespace, pod) ({c.KSM_POD_PHASE}{{phase="Running"}} == 1)'
    return Rule(
        record=c.REC_POD_GPU_SHARE,
        expr=f"sum by (namespace, pod, node) (\n    {body}\n)\n  * on (namespace, pod) group_left () {running}",
    )


def price_rule(prices: Mapping[tuple[str, str], Decimal]) -> Rule:
    """$/GPU-hour of every node: spot prices first (`or` keeps the left side), then on-demand."""
    labels = c.NODE_INSTANCE_TYPE_LABELS[0]
    spot_label = "label_karpenter_sh_capacity_type"
    terms = []
    for capacity in ("spot", "on_demand"):
        for (itype, ctype), price in sorted(prices.items()):
            if ctype != capacity:
                continue
            match = f"{labels}={promql_string(itype)}" + (f', {spot_label}="spot"' if capacity == "spot" else "")
            terms.append(f"max by (node) ({c.KSM_NODE_LABELS}{{{match}}}) * {_num(price)}")
    if not terms:
        terms = [f"max by (node) ({c.KSM_NODE_LABELS}) * 0"]
    return Rule(record=c.REC_NODE_GPU_PRICE, expr="\n  or ".join(terms))


def cost_rules() -> list[Rule]:
    pod = Rule(
        record=c.REC_POD_GPU_COST,
        expr=f"{c.REC_POD_GPU_SHARE}\n  * on (node) group_left () {c.REC_NODE_GPU_PRICE}",
    )
    team = Rule(
        record=c.REC_TEAM_GPU_COST,
        expr=(
            f"sum by ({c.L_KSM_TEAM}) (\n  sum by (namespace, pod) ({c.REC_POD_GPU_COST})\n"
            f"  * on (namespace, pod) group_left ({c.L_KSM_TEAM}) max by (namespace, pod, {c.L_KSM_TEAM}) ({c.KSM_POD_LABELS})\n)"
        ),
    )
    return [pod, team]


def budget_rules(budgets: Mapping[str, Decimal]) -> list[Rule]:
    """One series per team with a monthly budget: the hourly pace that spends it in 730 hours."""
    return [
        Rule(record=c.REC_TEAM_BUDGET_PACE, expr=f"vector({_num(Decimal(budget) / 730)})", labels={c.L_KSM_TEAM: team})
        for team, budget in sorted(budgets.items())
    ]
