"""A plain-Python statement of how each series maps onto the standard columns: the oracle the
column-wise mapping in collectors/metrics/series_mapping.py is tested against (one series at a time, no SQL)."""

from __future__ import annotations

import json
import re

from collectors.metrics.series import (
    HTTP_HANDLER_REGEX,
    HTTP_NAME,
    KIND_BY_NAME,
    META_COLUMNS,
    PUSHED_KINDS,
    SeriesContext,
)
from core import conventions as c


def kept(name: str, labels: dict[str, str]) -> bool:
    if name == c.KSM_POD_PHASE:
        return labels.get(c.L_PHASE) in ("Running", "Pending")
    if KIND_BY_NAME.get(name) == "queue":  # a queue's GPU resources, or its series without a resource
        return labels.get(c.L_RESOURCE, "").startswith("nvidia.com/") or not labels.get(c.L_RESOURCE)
    if name in (c.KSM_POD_REQUESTS, c.KSM_NODE_CAPACITY, c.KSM_NODE_ALLOCATABLE):
        resource = labels.get(c.L_RESOURCE, "")
        return resource.startswith(c.RESOURCE_GPU) or resource.startswith(c.RESOURCE_MIG_PREFIX)
    if name == HTTP_NAME:
        return re.fullmatch(HTTP_HANDLER_REGEX, labels.get("handler", "")) is not None
    return True


def _first(labels: dict[str, str], names: tuple[str, ...]) -> str:
    return next((labels[n] for n in names if labels.get(n)), "")


def _json(obj: dict[str, str]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _k8s(labels: dict[str, str]) -> str:
    return _json({k.removeprefix(c.KSM_LABEL_PREFIX): v for k, v in labels.items() if k.startswith(c.KSM_LABEL_PREFIX)})


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _process_pod_uid(name: str, labels: dict[str, str]) -> str:
    per_process = (
        name in c.DCGM_PER_PROCESS_FAMILIES and labels.get(c.L_VGPU) and KIND_BY_NAME.get(name) == "dcgm_sample"
    )
    return labels.get(c.L_POD_UID, "") if per_process else ""


def describe(sid: int, name: str, labels: dict[str, str], ctx: SeriesContext) -> dict[str, object]:
    kind = KIND_BY_NAME.get(name) or PUSHED_KINDS[name]
    row: dict[str, object] = dict.fromkeys(META_COLUMNS, "")
    row.update(sid=sid, family=name, kind=kind, cluster=labels.get(c.L_CLUSTER) or ctx.cluster)
    row.update(le=None, gpu_count=None, gpu_replicas=None, gpu_sharing=None)
    get = labels.get
    if kind.startswith("dcgm"):
        ns, pod, container = c.WORKLOAD_LABELS[ctx.workload_label_style]
        row.update(node=_first(labels, c.L_HOSTNAME), gpu_uuid=_first(labels, c.L_UUID), gpu_index=get(c.L_GPU_INDEX, ""),
                   model=get(c.L_MODEL_NAME, ""), mig_profile=get(c.L_GPU_I_PROFILE, ""), gpu_instance=get(c.L_GPU_I_ID, ""),
                   vgpu=get(c.L_VGPU, ""), process_pod_uid=_process_pod_uid(name, labels), namespace=get(ns, ""), pod=get(pod, ""),
                   container=get(container, ""))  # fmt: skip
    elif kind in ("inference", "inference_time"):
        model_label = next((k for k in c.L_MODEL_LABELS if labels.get(k)), "")
        skip = {"namespace", "pod", "le", "cluster", "__name__", model_label}
        le = get(c.L_LE)
        row.update(family=name.removesuffix(c.SAMPLE_TIME_SUFFIX), namespace=get(c.L_NAMESPACE, ""), pod=get(c.L_POD, ""),
                   model=get(model_label, "") if model_label else "", le=_float(le) if le is not None else None,
                   labels=_json({k: v for k, v in labels.items() if k not in skip}))  # fmt: skip
    elif kind == "ksm_node_labels":
        capacity = next(
            (m[labels[label]] for label, m in c.NODE_CAPACITY_TYPE_LABELS.items() if labels.get(label) in m), ""
        )
        count, replicas = get(c.NODE_GPU_COUNT_LABEL, ""), get(c.NODE_GPU_REPLICAS_LABEL, "")
        row.update(node=get(c.L_NODE, ""), instance_type=_first(labels, c.NODE_INSTANCE_TYPE_LABELS),
                   capacity_type=capacity or "on_demand", region=_first(labels, c.NODE_REGION_LABELS),
                   zone=_first(labels, c.NODE_ZONE_LABELS), node_pool=_first(labels, c.NODE_POOL_LABELS),
                   model=get(c.NODE_GPU_PRODUCT_LABEL, ""), gpu_count=int(count) if re.fullmatch("[0-9]+", count) else None,
                   gpu_replicas=int(replicas) if re.fullmatch("[0-9]+", replicas) else None, labels=_k8s(labels))  # fmt: skip
        mig_single = get(c.NODE_MIG_STRATEGY_LABEL) == "single"
        row["gpu_sharing"] = c.MIG_SINGLE if mig_single else (get(c.NODE_GPU_SHARING_LABEL) or None)
    else:
        row.update(namespace=get(c.L_NAMESPACE, ""), pod=get(c.L_POD, ""), uid=get(c.L_UID, ""), node=get(c.L_NODE, ""),
                   container=get("container", ""), resource=get(c.L_RESOURCE, ""), phase=get(c.L_PHASE, ""))  # fmt: skip
        if kind == "queue":  # Kueue / Volcano: the queue, its cohort and flavor, a status, histogram buckets
            le = get(c.L_LE)
            row.update(queue=_first(labels, (c.L_CLUSTER_QUEUE, c.L_QUEUE_NAME)), cohort=get(c.L_COHORT, ""),
                       flavor=get(c.L_FLAVOR, ""), status=get(c.L_STATUS, ""),
                       resource=re.sub(r"[./-]", "_", get(c.L_RESOURCE, "")), le=_float(le) if le is not None else None)  # fmt: skip
        if kind in ("ksm_pod_labels", "ksm_namespace_labels"):
            row["labels"] = _k8s(labels)
        if kind == "ksm_node_info":
            row["provider_id"] = get(c.L_PROVIDER_ID, "")
    return row
