"""Pure generator: RuleSpec -> RuleFile models. No I/O; every name comes from core.conventions.

The seed document's own example rules apply rate() to gauges such as DCGM_FI_DEV_GPU_UTIL; ours
average gauges over time (avg_over_time) and only apply rate/increase to counters.
"""

from __future__ import annotations

from dataclasses import dataclass

from alerts.model import Group, Rule, RuleFile
from core import conventions as c
from core import promql


@dataclass(frozen=True)
class RuleSpec:
    namespace: str = "monitoring"
    workload_label_style: str = "plain"
    low_utilization_threshold: float = 0.10
    low_utilization_for: str = "2h"
    not_reporting_for: str = "10m"


def _runbook(anchor: str) -> str:
    return f"{c.RUNBOOK_BASE_URL}#{anchor}"


def _gpu_requests() -> str:
    return f'{c.KSM_POD_REQUESTS}{{resource=~"{c.GPU_RESOURCE_REGEX}"}}'


def _running() -> str:
    return f'max by (namespace, pod) ({c.KSM_POD_PHASE}{{phase="Running"}} == 1)'


def _dcgm_workload(metric: str, style: str) -> str:
    """DCGM series with the workload's namespace/pod labels, for either scrape style."""
    if style == "exported":
        inner = f'{metric}{{exported_pod!=""}}'
        return (
            f'label_replace(label_replace({inner}, "pod", "$1", "exported_pod", "(.+)"), '
            f'"namespace", "$1", "exported_namespace", "(.+)")'
        )
    return f'{metric}{{pod!=""}}'


def recording(spec: RuleSpec) -> RuleFile:
    allocation = Rule(
        record=c.REC_POD_GPU_ALLOCATION,
        expr=(
            f"sum by (namespace, pod, node, resource) ({_gpu_requests()})\n"
            f"  * on (namespace, pod) group_left () {_running()}"
        ),
    )
    active = Rule(
        record=c.REC_POD_GPU_ACTIVE,
        expr=f"avg by (namespace, pod) ({_dcgm_workload(c.DCGM_GR_ENGINE_ACTIVE, spec.workload_label_style)})",
    )
    team = Rule(
        record=c.REC_TEAM_GPU_ALLOCATION,
        expr=(
            f"sum by (label_team) (\n  sum by (namespace, pod) ({c.REC_POD_GPU_ALLOCATION})\n"
            f"  * on (namespace, pod) group_left (label_team) max by (namespace, pod, label_team) ({c.KSM_POD_LABELS})\n)"
        ),
    )
    group = Group(f"{c.RULE_GROUP_PREFIX}-recording", (allocation, active, team))
    return RuleFile(f"{c.RULE_GROUP_PREFIX}-recording", spec.namespace, (group,))


def cost(spec: RuleSpec) -> RuleFile:
    low = Rule(
        alert=c.ALERT_LOW_GPU_UTILIZATION,
        expr=(
            f"avg_over_time({c.REC_POD_GPU_ACTIVE}[{spec.low_utilization_for}]) < {spec.low_utilization_threshold}\n"
            f"  and on (namespace, pod) sum by (namespace, pod) ({c.REC_POD_GPU_ALLOCATION}) > 0"
        ),
        for_="15m",
        labels={"severity": "warning"},
        annotations={
            "summary": "GPU pod {{ $labels.namespace }}/{{ $labels.pod }} is barely using its GPUs",
            "description": (
                f"Graphics-engine activity averaged {{{{ $value | humanizePercentage }}}} over {spec.low_utilization_for} "
                f"(threshold {spec.low_utilization_threshold:.0%}). Release the GPUs, or move the work to a MIG slice "
                "or a time-sliced share."
            ),
            "runbook_url": _runbook("gpuledgerlowgpuutilization"),
        },
    )
    group = Group(f"{c.RULE_GROUP_PREFIX}-cost", (low,))
    return RuleFile(f"{c.RULE_GROUP_PREFIX}-cost", spec.namespace, (group,))


def health(spec: RuleSpec) -> RuleFile:
    seen = f"max by (Hostname, UUID) (present_over_time({c.DCGM_GPU_TEMP}[1h]))"
    recent = f"max by (Hostname, UUID) (present_over_time({c.DCGM_GPU_TEMP}[{spec.not_reporting_for}]))"
    stopped = Rule(
        alert=c.ALERT_GPU_NOT_REPORTING,
        expr=f"{seen}\n  unless on (Hostname, UUID) {recent}",
        labels={"severity": "critical"},
        annotations={
            "summary": "GPU {{ $labels.UUID }} on {{ $labels.Hostname }} stopped reporting",
            "description": (
                f"dcgm-exporter reported this GPU within the last hour but not for {spec.not_reporting_for}. "
                "It may have fallen off the bus (Xid 79) while its pods stay scheduled: check `nvidia-smi` on the node, "
                "drain it and reset or reboot."
            ),
            "runbook_url": _runbook("gpuledgergpustoppedreporting"),
        },
    )
    group = Group(f"{c.RULE_GROUP_PREFIX}-health", (stopped,))
    return RuleFile(f"{c.RULE_GROUP_PREFIX}-health", spec.namespace, (group,))


def compliance(spec: RuleSpec) -> RuleFile:
    no_team = Rule(
        alert=c.ALERT_GPU_POD_WITHOUT_TEAM,
        expr=(
            f"sum by (namespace, pod) ({c.REC_POD_GPU_ALLOCATION}) > 0\n"
            f'  unless on (namespace, pod) max by (namespace, pod) ({c.KSM_POD_LABELS}{{label_team!=""}})'
        ),
        for_="15m",
        labels={"severity": "warning"},
        annotations={
            "summary": "GPU pod {{ $labels.namespace }}/{{ $labels.pod }} names no team",
            "description": (
                "GPU use must name its owner (pod label `team`); its cost lands on __unallocated__. Add the label, "
                "and make sure kube-state-metrics runs with --metric-labels-allowlist=pods=[team]."
            ),
            "runbook_url": _runbook("gpuledgergpupodwithoutteam"),
        },
    )
    group = Group(f"{c.RULE_GROUP_PREFIX}-compliance", (no_team,))
    return RuleFile(f"{c.RULE_GROUP_PREFIX}-compliance", spec.namespace, (group,))


def collector(spec: RuleSpec) -> RuleFile:
    """The aggregations the collector pushes down (core/promql.py), precomputed for large fleets.

    The collector reads them for a window only when the heartbeat covers every step of it; the
    group's interval must not exceed the collector's step (collect.step)."""
    rules = [Rule(record=c.REC_HEARTBEAT, expr="vector(1)")]
    rules += [Rule(record=c.rec_device_gauge(m), expr=promql.device_gauge(m)) for m in c.DCGM_SAMPLE_COLUMNS]
    rules.append(Rule(record=c.REC_POD_DEVICE, expr=promql.pod_device_mapping(spec.workload_label_style)))
    rules.append(Rule(record=c.REC_POD_ALLOCATION_RUNNING, expr=promql.pod_allocation()))
    group = Group(f"{c.RULE_GROUP_PREFIX}-collector", tuple(rules))
    return RuleFile(f"{c.RULE_GROUP_PREFIX}-collector", spec.namespace, (group,))


def generate(spec: RuleSpec) -> list[RuleFile]:
    """Every rule file for a spec, in a stable order."""
    return [recording(spec), cost(spec), health(spec), compliance(spec), collector(spec)]
