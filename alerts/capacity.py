"""Capacity rules: GPU pods that wait (docs/queues.md), from kube-state-metrics and Kueue's own metrics.

The report's fragmentation test (no Pending pod fits on any node's free GPUs) needs per-node sets PromQL cannot
compare; the alert asks the question it can: are there as many whole GPUs free in the cluster as the largest
Pending GPU pod asks for, while it still pends? Then the free GPUs are scattered (or held back by selectors and
taints): `gpuledger report queues` says which.
"""

from __future__ import annotations

from alerts.model import Rule, alert, gpu_requests, in_phase, runbook
from core import conventions as c


def pending_gpu_pods() -> str:
    """GPUs each Pending pod asks for (whole GPUs, MIG instances and replicas, by count), per pod."""
    return f"sum by (namespace, pod) ({gpu_requests()}) * on (namespace, pod) group_left () {in_phase('Pending')}"


def free_whole_gpus() -> str:
    """Whole GPUs allocatable in the cluster less those Running pods hold."""
    allocatable = f'sum({c.KSM_NODE_ALLOCATABLE}{{resource="{c.RESOURCE_GPU}"}})'
    held = f"sum({gpu_requests(c.RESOURCE_GPU)} * on (namespace, pod) group_left () {in_phase('Running')})"
    return f"({allocatable} - ({held} or vector(0)))"


def rules(pending_for: str, wait_p95_s: float, fragmentation_for: str) -> list[Rule]:
    pending = alert(
        c.ALERT_GPU_POD_PENDING,
        pending_gpu_pods() + " > 0",
        "warning",
        "GPU pod {{ $labels.namespace }}/{{ $labels.pod }} has been Pending for a while",
        f'It asks for {{{{ $value | printf "%.0f" }}}} GPU(s) and has not been scheduled for {pending_for}. '
        "`kubectl describe pod` says why (insufficient nvidia.com/gpu, a selector, a taint, a full queue); "
        "`gpuledger report queues` shows whether GPUs sit free in the wrong shape.",
        runbook(c.ALERT_GPU_POD_PENDING.lower()),
        pending_for,
    )
    wait = alert(
        c.ALERT_QUEUE_WAIT_HIGH,
        f"histogram_quantile(0.95, sum by (cluster_queue, le) (rate({c.KUEUE_ADMISSION_WAIT}[1h]))) > {wait_p95_s:g}",
        "warning",
        "Kueue queue {{ $labels.cluster_queue }} admits workloads slowly",
        f'95% of the workloads admitted over the last hour waited up to {{{{ $value | printf "%.0f" }}}} s, over the '
        f"target of {wait_p95_s:g} s. Check its nominal quota and borrowing against its cohort's idle quota "
        "(`gpuledger report queues`: idle_while_others_waited_gpu_hours).",
        runbook(c.ALERT_QUEUE_WAIT_HIGH.lower()),
        "15m",
    )
    largest = f"max({pending_gpu_pods().replace(gpu_requests(), gpu_requests(c.RESOURCE_GPU))})"
    fragmented = alert(
        c.ALERT_GPUS_FRAGMENTED,
        f"{free_whole_gpus()} >= {largest}",
        "warning",
        "GPUs sit free while a GPU pod pends",
        f'{{{{ $value | printf "%.0f" }}}} whole GPUs have been free for {fragmentation_for}, enough for the largest '
        "Pending GPU pod, which still pends: the free GPUs are on nodes none of them fits (or behind selectors and "
        "taints). Pack small jobs onto fewer nodes (`gpuledger report queues` lists the fragmented nodes).",
        runbook(c.ALERT_GPUS_FRAGMENTED.lower()),
        fragmentation_for,
    )
    return [pending, wait, fragmented]
