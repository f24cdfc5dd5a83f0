"""The PromQL that pushes gpuledger's aggregations down into the metrics store.

One module for the collector's queries and the recording rules gpuledger ships, so a rule and the
query it replaces compute the same series. Every aggregation here is one the warehouse would
otherwise do after reading many more raw series (collectors/metrics/grid_stage.py does the same in SQL for
files and for `collect.pushdown: off`):

- per-pod GPU allocation per step: requests of Running pods, HA kube-state-metrics copies
  deduplicated (max), containers summed;
- per-device DCGM gauges: MIG instances keep their own series, but the copies dcgm-exporter makes
  for time-slicing replicas (`vgpu`) and exporter target labels collapse into one series (max,
  never sum: the copies all hold the whole GPU's value);
- which pod each device or replica serves (one series per device x pod instead of one per gauge).

`sel` wraps every selector; the VictoriaMetrics collector uses it to pin the lookback window.
"""

from __future__ import annotations

from collections.abc import Callable

from core import conventions as c

Selector = Callable[[str], str]


def plain(selector: str) -> str:
    return selector


def _by(*labels: str) -> str:
    return ", ".join(labels)


DEVICE = _by(*c.DCGM_DEVICE_LABELS)


def workload(style: str) -> tuple[str, str, str]:
    """(namespace, pod, container) label names on DCGM series for a scrape style."""
    ns, pod, container = c.WORKLOAD_LABELS[style]
    return ns, pod, container


def device_gauge(metric: str, sel: Selector = plain) -> str:
    """One series per device entity (GPU or MIG instance) for a DCGM gauge; per-process copies
    (pod_uid and vgpu both set, c.DCGM_PER_PROCESS_FAMILIES) excluded."""
    if metric not in c.DCGM_PER_PROCESS_FAMILIES:
        return f"max by ({DEVICE}) ({sel(metric)})"
    no_pod_uid, no_vgpu = sel(f'{metric}{{{c.L_POD_UID}=""}}'), sel(f'{metric}{{{c.L_VGPU}=""}}')
    return f"max by ({DEVICE}) ({no_pod_uid} or {no_vgpu})"


def device_health(metric: str, sel: Selector = plain) -> str:
    """One series per device entity for a DCGM health signal (Xid copies per err_code collapse: max)."""
    return f"max by ({DEVICE}) ({sel(metric)})"


def per_process_util(style: str, sel: Selector = plain) -> str:
    """dcgm-exporter >= 4.5's per-pod GPU_UTIL of time-sliced GPUs (series with pod_uid and vgpu)."""
    labels = _by(DEVICE, c.L_VGPU, *workload(style), c.L_POD_UID)
    selector = f'{c.DCGM_GPU_UTIL}{{{c.L_POD_UID}!="", {c.L_VGPU}!=""}}'
    return f"max by ({labels}) ({sel(selector)})"


def pod_device_mapping(style: str, sel: Selector = plain) -> str:
    """Which pod each device entity or time-slicing replica serves, across all DCGM gauges."""
    ns, pod, container = workload(style)
    names = "|".join(c.DCGM_SAMPLE_COLUMNS)
    selector = f'{{__name__=~"{names}", {pod}!=""}}'
    return f"count by ({DEVICE}, {c.L_VGPU}, {ns}, {pod}, {container}) ({sel(selector)})"


def _requests_in_phase(sel: Selector, phase: str, on_node: bool) -> str:
    """GPU requests of pods in `phase` per (pod[, node], resource): HA copies max-ed, containers summed."""
    node = f", {c.L_NODE}" if on_node else ""
    requests = sel(
        f'{c.KSM_POD_REQUESTS}{{{c.L_RESOURCE}=~"{c.GPU_RESOURCE_REGEX}"'
        + (f', {c.L_NODE}!=""' if on_node else "")
        + "}"
    )
    in_phase = sel(f'{c.KSM_POD_PHASE}{{{c.L_PHASE}="{phase}"}}')
    pod = _by(c.L_CLUSTER, c.L_NAMESPACE, c.L_POD)
    return (
        f"sum by ({pod}, {c.L_UID}{node}, {c.L_RESOURCE}) (\n"
        f"  max by ({pod}, {c.L_UID}, container{node}, {c.L_RESOURCE}) ({requests})\n"
        f")\n"
        f"* on ({pod}) group_left () (max by ({pod}) ({in_phase}) == 1)\n"
        f"> 0"
    )


def pod_allocation(sel: Selector = plain) -> str:
    """GPU requests of Running pods per (pod, node, resource)."""
    return _requests_in_phase(sel, "Running", on_node=True)


def pod_pending(sel: Selector = plain) -> str:
    """GPU requests of Pending pods per (pod, resource): no node yet."""
    return _requests_in_phase(sel, "Pending", on_node=False)


def recorded(rule: str, window_ms: int) -> str:
    """Read a recording rule's series at a grid point: its latest evaluation within the window
    (one step for interval families; one evaluation interval for state, so a grid point reads the
    state at its own time, not up to a step before).

    A plain selector would carry a vanished rule output forward for the whole lookback when the
    store holds no staleness marker (backfilled rules, remote-written copies).
    """
    return f"last_over_time({rule}[{window_ms - 1}ms])"
