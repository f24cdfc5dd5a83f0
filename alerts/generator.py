"""Pure generator: RuleSpec -> RuleFile models. No I/O; every name comes from core.conventions.

The seed document's own example rules apply rate() to gauges such as DCGM_FI_DEV_GPU_UTIL; ours
average gauges over time (avg_over_time) and only apply rate/increase to counters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from alerts import capacity as capacity_rules
from alerts import cost as cost_rules
from alerts import health as health_rules
from alerts import serving as serving_rules
from alerts import slo as slo_rules
from alerts.model import Group, Rule, RuleFile, alert, gpu_requests, in_phase, runbook
from analytics.health.policy import HealthThresholds
from analytics.health.xid_catalog import XidCatalog, load_catalog
from core import conventions as c
from core import promql
from core.settings import Settings


def _default_thresholds() -> HealthThresholds:
    return HealthThresholds.from_all(Settings())


@dataclass(frozen=True)
class RuleSpec:
    """Everything the generator needs, resolved by the caller (settings, price table, budgets)."""

    namespace: str = "monitoring"
    workload_label_style: str = "plain"
    low_utilization_threshold: float = 0.10
    low_utilization_for: str = "2h"
    idle_power_watts: float = 100.0
    idle_power_activity: float = 0.10
    idle_power_for: str = "2h"
    not_reporting_for: str = "10m"
    pending_for: str = "30m"
    queue_wait_p95_seconds: float = 600.0
    fragmentation_for: str = "15m"
    prices: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)  # (instance type, capacity) -> $/GPU-h
    budgets: Mapping[str, Decimal] = field(default_factory=dict)  # team -> monthly USD
    budget_pace_factor: float = 1.2
    high_job_cost_usd_per_day: Decimal = Decimal(1000)
    min_requests_per_gpu_hour: float = 1000.0
    idle_capacity_ratio: float = 0.5
    time_slicing_replicas: int = 4
    scrape_interval_s: int = 30
    health: HealthThresholds = field(default_factory=_default_thresholds)
    xid_catalog: XidCatalog = field(default_factory=load_catalog)
    latency_rise: float = 0.5  # the canary's rollback triggers
    error_rate_rise: float = 2.0
    psi_major: float = 0.25  # serving.psi_bands[1]: the drift report's "major" band
    slos: tuple[slo_rules.SLORule, ...] = ()
    slo_severities: dict[str, str] = field(default_factory=lambda: dict(slo_rules.SEVERITY))
    collection_stale_after_s: int = 1800  # issue 11: alerts on gpuledger itself
    export_missed_after_s: int = 6 * 3600

    @property
    def rate_window(self) -> str:
        """The health rate window, widened so it always holds at least two scrapes' worth of samples."""
        return f"{max(self.health.rate_window_s, 4 * self.scrape_interval_s)}s"

    @property
    def xid_hold(self) -> str:
        """How long an Xid alert fires after its code first shows: an hour, or four scrapes."""
        return f"{max(3600, 4 * self.scrape_interval_s)}s"


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
            # max first: HA kube-state-metrics replicas export the same request twice
            f"sum by (namespace, pod, node, resource) (max by (namespace, pod, container, node, resource) ({gpu_requests()}))\n"
            f"  * on (namespace, pod) group_left () {in_phase('Running')}"
        ),
    )
    active = Rule(
        record=c.REC_POD_GPU_ACTIVE,
        expr=f"avg by (namespace, pod) ({_dcgm_workload(c.DCGM_GR_ENGINE_ACTIVE, spec.workload_label_style)})",
    )
    team = Rule(
        record=c.REC_TEAM_GPU_ALLOCATION,
        expr=(
            f"sum by ({c.L_KSM_TEAM}) (\n  sum by (namespace, pod) ({c.REC_POD_GPU_ALLOCATION})\n"
            f"  * on (namespace, pod) group_left ({c.L_KSM_TEAM}) max by (namespace, pod, {c.L_KSM_TEAM}) ({c.KSM_POD_LABELS})\n)"
        ),
    )
    power = Rule(
        record=c.REC_POD_GPU_POWER,
        # per GPU (both spellings of its UUID label: MIG instances and time-slicing copies repeat their GPU's
        # power), averaged over the pod's GPUs
        expr=(
            f"avg by (namespace, pod) (max by (namespace, pod, {', '.join(c.L_UUID)}) "
            f"({_dcgm_workload(c.DCGM_POWER, spec.workload_label_style)}))"
        ),
    )
    group = Group(f"{c.RULE_GROUP_PREFIX}-recording", (allocation, active, power, team))
    return RuleFile(f"{c.RULE_GROUP_PREFIX}-recording", spec.namespace, (group,))


def _alert(name: str, expr: str, for_: str, severity: str, summary: str, description: str) -> Rule:
    return alert(name, expr, severity, summary, description, runbook(name.lower()), for_)


def cost(spec: RuleSpec) -> RuleFile:
    recordings = Group(
        f"{c.RULE_GROUP_PREFIX}-cost-recording",
        (
            cost_rules.share_rule(spec.time_slicing_replicas),
            cost_rules.price_rule(spec.prices),
            *cost_rules.cost_rules(),
            *cost_rules.budget_rules(spec.budgets),
        ),
    )
    low = _alert(
        c.ALERT_LOW_GPU_UTILIZATION,
        f"avg_over_time({c.REC_POD_GPU_ACTIVE}[{spec.low_utilization_for}]) < {spec.low_utilization_threshold}\n"
        f"  and on (namespace, pod) sum by (namespace, pod) ({c.REC_POD_GPU_ALLOCATION}) > 0",
        "15m",
        "warning",
        "GPU pod {{ $labels.namespace }}/{{ $labels.pod }} is barely using its GPUs",
        f"Graphics-engine activity averaged {{{{ $value | humanizePercentage }}}} over {spec.low_utilization_for} "
        f"(threshold {spec.low_utilization_threshold:.0%}). Release the GPUs, or move the work to a MIG slice or a "
        "time-sliced share.",
    )
    pace = _alert(
        c.ALERT_TEAM_OVER_BUDGET_PACE,
        f"avg_over_time({c.REC_TEAM_GPU_COST}[1d])\n  > on ({c.L_KSM_TEAM}) {c.REC_TEAM_BUDGET_PACE} * {spec.budget_pace_factor}",
        "1h",
        "warning",
        f"Team {{{{ $labels.{c.L_KSM_TEAM} }}}} is spending GPUs faster than its budget allows",
        f'The last day\'s GPU spend rate, {{{{ $value | printf "%.2f" }}}} $/h, is over {spec.budget_pace_factor}x the pace '
        "of its monthly budget (budget / 730 h). Check `gpuledger report budget` and the team's largest workloads.",
    )
    job = _alert(
        c.ALERT_HIGH_TRAINING_COST,
        f"avg_over_time({c.REC_POD_GPU_COST}[1d]) * 24 > {cost_rules._num(spec.high_job_cost_usd_per_day)}",
        "10m",
        "info",
        "GPU job {{ $labels.namespace }}/{{ $labels.pod }} cost over $"
        f"{cost_rules._num(spec.high_job_cost_usd_per_day)} in a day",
        'The pod\'s GPUs cost {{ $value | printf "%.0f" }} USD over the last 24 hours. Confirm the run is expected '
        "(a sweep left running, a stuck job); long training belongs on spot with checkpointing.",
    )
    requests_rate = f"sum by (namespace, pod) (rate({c.VLLM_REQUEST_SUCCESS}[1h])) * 3600"
    serving = Rule(
        alert=c.ALERT_POOR_INFERENCE_EFFICIENCY,
        expr=(
            f"{requests_rate}\n  / on (namespace, pod) sum by (namespace, pod) ({c.REC_POD_GPU_SHARE})\n"
            f"  < {spec.min_requests_per_gpu_hour:g}\n"
            # zero traffic is not an efficiency problem here: the low-utilisation alert catches idle GPUs
            f"  and on (namespace, pod) {requests_rate} > 0"
        ),
        for_="1h",
        labels={"severity": "warning"},
        annotations={
            "summary": "Inference pod {{ $labels.namespace }}/{{ $labels.pod }} serves few requests per GPU-hour",
            "description": (
                f'{{{{ $value | printf "%.0f" }}}} requests per GPU-hour, under the floor of {spec.min_requests_per_gpu_hour:g}. '
                "Scale the deployment in, batch more, or move it to a MIG slice."
            ),
            "runbook_url": runbook(c.ALERT_POOR_INFERENCE_EFFICIENCY.lower()),
        },
    )
    idle = _alert(
        c.ALERT_IDLE_GPU_CAPACITY,
        f"1 - sum({c.REC_POD_GPU_SHARE}) / {FLEET_GPUS} > {spec.idle_capacity_ratio}",
        "6h",
        "info",
        "More than {{ $value | humanizePercentage }} of the GPU fleet is idle",
        f"Over {spec.idle_capacity_ratio:.0%} of the GPUs dcgm-exporter reports have been requested by no pod for 6 hours. "
        "Scale GPU node pools down (`gpuledger report savings`).",
    )
    burn = _alert(
        c.ALERT_IDLE_GPU_POWER_BURN,
        f"avg_over_time({c.REC_POD_GPU_POWER}[{spec.idle_power_for}]) > {spec.idle_power_watts:g}\n"
        f"  and on (namespace, pod) avg_over_time({c.REC_POD_GPU_ACTIVE}[{spec.idle_power_for}]) < {spec.idle_power_activity:g}",
        "15m",
        "warning",
        "GPU pod {{ $labels.namespace }}/{{ $labels.pod }} holds idle GPUs that draw power",
        f'Its GPUs drew {{{{ $value | printf "%.0f" }}}} W each on average over {spec.idle_power_for} while their '
        f"graphics engines were under {spec.idle_power_activity:.0%} active (an idle GPU draws 60-90 W): energy and "
        "money for nothing. Release the GPUs; check for a process holding clocks up (a stuck job, a busy loop).",
    )
    group = Group(f"{c.RULE_GROUP_PREFIX}-cost", (low, pace, job, serving, idle, burn))
    return RuleFile(f"{c.RULE_GROUP_PREFIX}-cost", spec.namespace, (recordings, group))


# the GPUs dcgm-exporter reports (a GPU counts once, whatever MIG or time-slicing copies it shows as)
FLEET_GPUS = f"count(count by (Hostname, UUID) ({c.DCGM_GPU_TEMP}))"


def silent_gpus(after: str) -> str:
    """GPUs seen in the last hour that have reported nothing for `after`."""
    seen = f"max by (Hostname, UUID) (present_over_time({c.DCGM_GPU_TEMP}[1h]))"
    recent = f"max by (Hostname, UUID) (present_over_time({c.DCGM_GPU_TEMP}[{after}]))"
    return f"{seen}\n  unless on (Hostname, UUID) {recent}"


def health(spec: RuleSpec) -> RuleFile:
    stopped = Rule(
        alert=c.ALERT_GPU_NOT_REPORTING,
        expr=silent_gpus(spec.not_reporting_for),
        labels={"severity": "critical"},
        annotations={
            "summary": "GPU {{ $labels.UUID }} on {{ $labels.Hostname }} stopped reporting",
            "description": (
                f"dcgm-exporter reported this GPU within the last hour but not for {spec.not_reporting_for}. "
                "It may have fallen off the bus (Xid 79) while its pods stay scheduled: check `nvidia-smi` on the node, "
                "drain it and reset or reboot."
            ),
            "runbook_url": runbook("gpuledgergpustoppedreporting"),
        },
    )
    signals = Group(
        f"{c.RULE_GROUP_PREFIX}-health", (stopped, *health_rules.counter_rules(spec.health, spec.rate_window))
    )
    xids = Group(f"{c.RULE_GROUP_PREFIX}-health-xid", tuple(health_rules.xid_rules(spec.xid_catalog, spec.xid_hold)))
    return RuleFile(f"{c.RULE_GROUP_PREFIX}-health", spec.namespace, (signals, xids))


def drift(spec: RuleSpec) -> RuleFile:
    """Serving regressions against the same hour yesterday (the canary's latency and error triggers), and
    the drift report's distribution and accuracy verdicts."""
    latency = Group(f"{c.RULE_GROUP_PREFIX}-drift-latency", tuple(serving_rules.latency_rules(spec.latency_rise)))
    errors = Group(f"{c.RULE_GROUP_PREFIX}-drift-errors", tuple(serving_rules.error_rules(spec.error_rate_rise)))
    reported = Group(f"{c.RULE_GROUP_PREFIX}-drift-reported", tuple(serving_rules.drift_rules(spec.psi_major)))
    return RuleFile(f"{c.RULE_GROUP_PREFIX}-drift", spec.namespace, (latency, errors, reported))


def slo(spec: RuleSpec) -> RuleFile | None:
    return slo_rules.slo_file(list(spec.slos), spec.namespace, spec.slo_severities) if spec.slos else None


def _without_label(alert: str, label: str, k8s_key: str) -> Rule:
    return _alert(
        alert,
        f"sum by (namespace, pod) ({c.REC_POD_GPU_ALLOCATION}) > 0\n"
        f'  unless on (namespace, pod) max by (namespace, pod) ({c.KSM_POD_LABELS}{{{label}!=""}})',
        "15m",
        "warning",
        f"GPU pod {{{{ $labels.namespace }}}}/{{{{ $labels.pod }}}} has no {k8s_key} label",
        f"GPU use must name its owner and cost centre (pod label `{k8s_key}`); without it the cost lands on "
        f"__unallocated__. Add the label, and run kube-state-metrics with --metric-labels-allowlist=pods=[team,cost-center].",
    )


def compliance(spec: RuleSpec) -> RuleFile:
    rules = (
        _without_label(c.ALERT_GPU_POD_WITHOUT_TEAM, c.L_KSM_TEAM, "team"),
        _without_label(c.ALERT_GPU_POD_WITHOUT_COST_CENTER, "label_cost_center", "cost-center"),
    )
    group = Group(f"{c.RULE_GROUP_PREFIX}-compliance", rules)
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


def service(spec: RuleSpec) -> RuleFile:
    """Alerts on `gpuledger serve` itself, from its own /metrics (issue 11)."""
    week_s = 7 * 86400
    stale = _alert(
        c.ALERT_COLLECTION_STALE,
        f"time() - max by (source) ({c.M_COLLECTION_LAST_SUCCESS}) > {spec.collection_stale_after_s}",
        "5m",
        "warning",
        "gpuledger has not collected from {{ $labels.source }} for a while",
        f"The last successful collection from {{{{ $labels.source }}}} is over {spec.collection_stale_after_s // 60} "
        'minutes old: chargeback and health lag behind. Check the service\'s log and gpuledger_errors_total{job="collect"} '
        "(transient: the source is down; terminal: the settings or the data are wrong).",
    )
    missed = _alert(
        c.ALERT_EXPORT_MISSED,
        f"time() - max({c.M_EXPORT_LATEST_WEEK_END}) > {week_s + spec.export_missed_after_s}",
        "10m",
        "critical",
        "The weekly chargeback export for finance is missing",
        f"No export covers the week that ended over {spec.export_missed_after_s // 3600} hours ago. gpuledger exports "
        "only complete weeks: check that every source collected past Monday 00:00 UTC (gpuledger_export_pending_weeks), "
        "then the export job's errors. `gpuledger export weekly --week <week>` writes it by hand.",
    )
    failing = _alert(
        c.ALERT_JOB_FAILING,
        f'sum by (job, kind) (increase({c.M_ERRORS}_total{{kind=~"terminal|bug"}}[1h])) > 0',
        "",
        "warning",
        "gpuledger's {{ $labels.job }} job fails ({{ $labels.kind }})",
        "A job failed with an error retrying will not fix (bad settings or input: terminal; an unexpected error: bug). "
        "The service's log names the file, URL or query.",
    )
    down = _alert(
        c.ALERT_SERVICE_DOWN,
        f"absent({c.M_START_TIME})",
        "15m",
        "critical",
        "gpuledger serve is not running (or not scraped)",
        "No gpuledger serve has been scraped for 15 minutes: nothing is collected or exported. Check the pod and its "
        "ServiceMonitor; a second instance exits at once while the first holds the warehouse lock.",
    )
    group = Group(f"{c.RULE_GROUP_PREFIX}-service", (stale, missed, failing, down))
    return RuleFile(f"{c.RULE_GROUP_PREFIX}-service", spec.namespace, (group,))


def capacity(spec: RuleSpec) -> RuleFile:
    """Who waits for GPUs (docs/queues.md): a GPU pod Pending too long, a Kueue queue's admission wait p95 over its
    target, and GPUs free for the largest Pending GPU pod while it still pends (fragmentation)."""
    rules = capacity_rules.rules(spec.pending_for, spec.queue_wait_p95_seconds, spec.fragmentation_for)
    group = Group(f"{c.RULE_GROUP_PREFIX}-capacity", tuple(rules))
    return RuleFile(f"{c.RULE_GROUP_PREFIX}-capacity", spec.namespace, (group,))


def generate(spec: RuleSpec) -> list[RuleFile]:
    """Every rule file for a spec, in a stable order."""
    slos = slo(spec)
    return [
        recording(spec),
        cost(spec),
        capacity(spec),
        health(spec),
        *([slos] if slos else []),
        drift(spec),
        compliance(spec),
        collector(spec),
        service(spec),
    ]
