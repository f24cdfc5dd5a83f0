"""Which series gpuledger ingests, and how each maps onto standard columns.

Both collection paths (files and the Prometheus HTTP API) produce (metric name, labels) pairs;
this module is the single place that knows every exporter's label spelling, so the two paths
cannot drift apart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from core import conventions as c

# Families read from Prometheus, one query each. The file path reads the same set.
# Serving: every histogram bucket by bucket (edges are read from each scrape), counters, gauges.
SERVING_SAMPLE_NAMES = (
    tuple(f"{h}{suffix}" for h in c.SERVING_HISTOGRAMS for suffix in ("_bucket", "_count", "_sum"))
    + tuple(c.SERVING_COUNTERS)
    + c.SERVING_GAUGES
)
# Only the HTTP routes an inference server answers: other apps' http_requests_total stay out.
HTTP_HANDLER_REGEX = "/v1/.+|/generate.*|/invocations|/predict.*|/v2/models/.+"
_HTTP_NAME = "http_requests_total"

HEALTH_NAMES = (*c.DCGM_HEALTH_METRICS, c.DCGM_ENERGY)

KIND_BY_NAME: dict[str, str] = {
    **{name: "dcgm_sample" for name in c.DCGM_SAMPLE_COLUMNS},
    **{name: "dcgm_health" for name in HEALTH_NAMES},
    c.KSM_POD_REQUESTS: "ksm_requests",
    c.KSM_POD_PHASE: "ksm_phase",
    c.KSM_POD_LABELS: "ksm_pod_labels",
    c.KSM_POD_INFO: "ksm_pod_info",
    c.KSM_NODE_LABELS: "ksm_node_labels",
    c.KSM_NAMESPACE_LABELS: "ksm_namespace_labels",
    **{name: "inference" for name in SERVING_SAMPLE_NAMES},
}

# Series the Prometheus collector reads already aggregated (core/promql.py); files never carry them.
PUSHED_KINDS: dict[str, str] = {
    c.REC_POD_ALLOCATION_RUNNING: c.KIND_POD_ALLOCATION,
    c.REC_POD_DEVICE: c.KIND_DCGM_MAPPING,
}

# The PromQL each family is read with: the same selection the file path applies.
PROMQL_BY_NAME: dict[str, str] = {
    **{name: name for name in KIND_BY_NAME},
    c.KSM_POD_REQUESTS: f'{c.KSM_POD_REQUESTS}{{resource=~"{c.GPU_RESOURCE_REGEX}"}}',
    c.KSM_POD_PHASE: f'{c.KSM_POD_PHASE}{{phase="Running"}}',
    _HTTP_NAME: f'{_HTTP_NAME}{{handler=~"{HTTP_HANDLER_REGEX}"}}',
}
# Increases are computed as PromQL's increase() does, which needs each sample's own time: the
# Prometheus path reads it with timestamp() next to every serving family (files carry it already).
PROMQL_BY_NAME.update(
    {name + c.SAMPLE_TIME_SUFFIX: f"timestamp({PROMQL_BY_NAME[name]})" for name in SERVING_SAMPLE_NAMES}
)
KIND_BY_NAME.update({name + c.SAMPLE_TIME_SUFFIX: "inference_time" for name in SERVING_SAMPLE_NAMES})
_HTTP_HANDLER = re.compile(HTTP_HANDLER_REGEX)

META_COLUMNS = (
    "sid",
    "family",
    "kind",
    "cluster",
    "node",
    "gpu_uuid",
    "gpu_index",
    "model",
    "mig_profile",
    "gpu_instance",
    "vgpu",
    "namespace",
    "pod",
    "container",
    "uid",
    "pod_uid",
    "resource",
    "phase",
    "le",
    "labels",
    "instance_type",
    "capacity_type",
    "region",
    "zone",
    "node_pool",
    "gpu_count",
    "gpu_replicas",
)


def wants_family(name: str) -> bool:
    return name in KIND_BY_NAME


def wants_series(name: str, labels: dict[str, str]) -> bool:
    if name == c.KSM_POD_PHASE:
        return labels.get(c.L_PHASE) == "Running"
    if name == c.KSM_POD_REQUESTS:
        resource = labels.get(c.L_RESOURCE, "")
        return resource.startswith(c.RESOURCE_GPU) or resource.startswith(c.RESOURCE_MIG_PREFIX)
    if name == _HTTP_NAME:
        return _HTTP_HANDLER.fullmatch(labels.get("handler", "")) is not None
    return True


@dataclass(frozen=True)
class SeriesContext:
    cluster: str  # used when a series has no `cluster` label
    workload_label_style: str  # plain | exported


def _first(labels: dict[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        if labels.get(name):
            return labels[name]
    return ""


def describe(sid: int, name: str, labels: dict[str, str], ctx: SeriesContext) -> dict[str, object]:
    """Standard columns for one series (empty strings where a label does not apply)."""
    kind = KIND_BY_NAME.get(name) or PUSHED_KINDS[name]
    row: dict[str, object] = dict.fromkeys(META_COLUMNS, "")
    row.update(sid=sid, family=name, kind=kind, cluster=labels.get(c.L_CLUSTER) or ctx.cluster)
    row["le"] = None
    row["gpu_count"] = None
    row["gpu_replicas"] = None
    if kind.startswith("dcgm"):
        _dcgm(row, labels, ctx)
    elif kind in ("inference", "inference_time"):
        _serving(row, name.removesuffix(c.SAMPLE_TIME_SUFFIX), labels)
    elif kind == "ksm_node_labels":
        _node(row, labels)
    else:
        _ksm(row, labels)
    return row


def _dcgm(row: dict[str, object], labels: dict[str, str], ctx: SeriesContext) -> None:
    ns_label, pod_label, container_label = c.WORKLOAD_LABELS[ctx.workload_label_style]
    row.update(
        node=_first(labels, c.L_HOSTNAME),
        gpu_uuid=_first(labels, c.L_UUID),
        gpu_index=labels.get(c.L_GPU_INDEX, ""),
        model=labels.get(c.L_MODEL_NAME, ""),
        mig_profile=labels.get(c.L_GPU_I_PROFILE, ""),
        gpu_instance=labels.get(c.L_GPU_I_ID, ""),
        vgpu=labels.get(c.L_VGPU, ""),
        pod_uid=labels.get(c.L_POD_UID, ""),
        namespace=labels.get(ns_label, ""),
        pod=labels.get(pod_label, ""),
        container=labels.get(container_label, ""),
    )


def _ksm(row: dict[str, object], labels: dict[str, str]) -> None:
    row.update(
        namespace=labels.get(c.L_NAMESPACE, ""),
        pod=labels.get(c.L_POD, ""),
        uid=labels.get(c.L_UID, ""),
        node=labels.get(c.L_NODE, ""),
        container=labels.get("container", ""),
        resource=labels.get(c.L_RESOURCE, ""),
        phase=labels.get(c.L_PHASE, ""),
    )
    if row["kind"] in ("ksm_pod_labels", "ksm_namespace_labels"):
        row["labels"] = _k8s_labels(labels)


def _k8s_labels(labels: dict[str, str]) -> str:
    """kube-state-metrics `label_<key>` labels as a JSON object keyed by the sanitised key."""
    found = {k.removeprefix(c.KSM_LABEL_PREFIX): v for k, v in labels.items() if k.startswith(c.KSM_LABEL_PREFIX)}
    return json.dumps(found, sort_keys=True, separators=(",", ":"))


def _node(row: dict[str, object], labels: dict[str, str]) -> None:
    capacity = ""
    for label, mapping in c.NODE_CAPACITY_TYPE_LABELS.items():
        if labels.get(label) in mapping:
            capacity = mapping[labels[label]]
            break
    count = labels.get(c.NODE_GPU_COUNT_LABEL, "")
    replicas = labels.get(c.NODE_GPU_REPLICAS_LABEL, "")
    row.update(
        node=labels.get(c.L_NODE, ""),
        instance_type=_first(labels, c.NODE_INSTANCE_TYPE_LABELS),
        capacity_type=capacity or "on_demand",
        region=_first(labels, c.NODE_REGION_LABELS),
        zone=_first(labels, c.NODE_ZONE_LABELS),
        node_pool=_first(labels, c.NODE_POOL_LABELS),
        model=labels.get(c.NODE_GPU_PRODUCT_LABEL, ""),
        gpu_count=int(count) if count.isdigit() else None,
        gpu_replicas=int(replicas) if replicas.isdigit() else None,
        labels=_k8s_labels(labels),
    )


def _serving(row: dict[str, object], name: str, labels: dict[str, str]) -> None:
    """Serving series of any server: the model label (model_name, Triton's model, Knative's
    service_name) becomes `model`; the rest (version, engine, finished_reason, status, ...) stays in
    `labels`. `family` is the sample name as exported, without the Prometheus-path time suffix."""
    model_label = next((k for k in c.L_MODEL_LABELS if labels.get(k)), "")
    skip = {"namespace", "pod", "le", "cluster", "__name__", model_label}
    extra = {k: v for k, v in labels.items() if k not in skip}
    le = labels.get(c.L_LE)
    row.update(
        family=name,
        namespace=labels.get(c.L_NAMESPACE, ""),
        pod=labels.get(c.L_POD, ""),
        model=labels.get(model_label, "") if model_label else "",
        le=float(le) if le is not None else None,
        labels=json.dumps(extra, sort_keys=True, separators=(",", ":")),
    )


def warnings_for(kinds: set[str]) -> list[str]:
    """Conventions a run can detect are missing from its input (each reported once per run)."""
    out = []
    pod_kinds = {"ksm_requests", "ksm_phase", "ksm_pod_info", c.KIND_POD_ALLOCATION}
    if kinds & pod_kinds and "ksm_pod_labels" not in kinds:
        out.append(
            f"no {c.KSM_POD_LABELS} series: kube-state-metrics exports pod labels only when started with "
            "--metric-labels-allowlist (e.g. pods=[team]); until then every GPU pod is charged to "
            f"{c.UNALLOCATED}"
        )
    return out
