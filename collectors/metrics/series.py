"""Which series gpuledger ingests, and the form both collection paths hand them over in.

Both collection paths (files and the Prometheus HTTP API) produce a SeriesTable; collectors/metrics/series_mapping.py
maps it onto standard columns, the single place that knows every exporter's label spelling, so the
two paths cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import pyarrow as pa

from core import conventions as c

# Families read from Prometheus, one query each. The file path reads the same set.
# Serving: every histogram bucket by bucket (edges are read from each scrape), counters, gauges.
# Only the HTTP routes an inference server answers: other apps' http_requests_total stay out.
HTTP_HANDLER_REGEX = "/v1/.+|/generate.*|/invocations|/predict.*|/v2/models/.+"
HTTP_NAME = "http_requests_total"

HEALTH_NAMES = (*c.DCGM_HEALTH_METRICS, c.DCGM_ENERGY)

KIND_BY_NAME: dict[str, str] = {
    **{name: "dcgm_sample" for name in c.DCGM_SAMPLE_COLUMNS},
    **{name: "dcgm_health" for name in HEALTH_NAMES},
    c.KSM_POD_REQUESTS: "ksm_requests",
    c.KSM_POD_PHASE: "ksm_phase",
    c.KSM_POD_LABELS: "ksm_pod_labels",
    c.KSM_POD_INFO: "ksm_pod_info",
    c.KSM_NODE_LABELS: "ksm_node_labels",
    c.KSM_NODE_INFO: "ksm_node_info",
    c.KSM_NODE_CAPACITY: "ksm_node_capacity",
    c.KSM_NODE_ALLOCATABLE: "ksm_node_capacity",
    c.KSM_NAMESPACE_LABELS: "ksm_namespace_labels",
    c.KSM_POD_CREATED: "ksm_pod_times",
    c.KSM_POD_SCHEDULED: "ksm_pod_times",
    c.KSM_POD_UNSCHEDULABLE: "ksm_unschedulable",
    **{name: "queue" for name in c.QUEUE_FAMILIES},
    **{name: "inference" for name in c.SERVING_SAMPLE_NAMES},
}

# Series the Prometheus collector reads already aggregated (core/promql.py); files never carry them.
PUSHED_KINDS: dict[str, str] = {
    c.REC_POD_ALLOCATION_RUNNING: c.KIND_POD_ALLOCATION,
    c.REC_POD_DEVICE: c.KIND_DCGM_MAPPING,
    c.REC_POD_PENDING: c.KIND_POD_PENDING,
}

# The PromQL each family is read with: the same selection the file path applies.
PROMQL_BY_NAME: dict[str, str] = {
    **{name: name for name in KIND_BY_NAME},
    c.KSM_POD_REQUESTS: f'{c.KSM_POD_REQUESTS}{{resource=~"{c.GPU_RESOURCE_REGEX}"}}',
    c.KSM_POD_PHASE: f'{c.KSM_POD_PHASE}{{phase=~"Running|Pending"}}',
    **{name: f'{name}{{resource=~"{c.GPU_RESOURCE_REGEX}"}}' for name in (c.KSM_NODE_CAPACITY, c.KSM_NODE_ALLOCATABLE)},
    HTTP_NAME: f'{HTTP_NAME}{{handler=~"{HTTP_HANDLER_REGEX}"}}',
}
# Increases are computed as PromQL's increase() does, which needs each sample's own time: the
# Prometheus path reads it with timestamp() next to every serving family (files carry it already).
PROMQL_BY_NAME.update(
    {name + c.SAMPLE_TIME_SUFFIX: f"timestamp({PROMQL_BY_NAME[name]})" for name in c.SERVING_SAMPLE_NAMES}
)
KIND_BY_NAME.update({name + c.SAMPLE_TIME_SUFFIX: "inference_time" for name in c.SERVING_SAMPLE_NAMES})

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
    "process_pod_uid",
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
    "gpu_sharing",
    "provider_id",
    "queue",
    "cohort",
    "flavor",
    "status",
)


def wants_family(name: str) -> bool:
    return name in KIND_BY_NAME


@dataclass(frozen=True)
class SeriesContext:
    cluster: str  # used when a series has no `cluster` label
    workload_label_style: str  # plain | exported


@dataclass
class SeriesTable:
    """Series as columns: series i is `family[i]` with the labels of the rows whose `label_sid` is i.

    Both collection paths hand their series over in this form, and collectors/metrics/series_mapping.py maps them
    onto standard columns in one query: no Python work per series or per label."""

    family: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    label_sid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    label_name: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    label_value: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))

    def __len__(self) -> int:
        return len(self.family)

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, dict[str, str]]]) -> SeriesTable:
        dicts = [labels for _, labels in pairs]
        sizes = np.fromiter(map(len, dicts), dtype=np.int64, count=len(dicts))
        return cls(
            pa.array([name for name, _ in pairs], pa.string()),
            np.repeat(np.arange(len(pairs), dtype=np.int32), sizes),
            pa.array(list(chain.from_iterable(map(dict.keys, dicts))), pa.string()),
            pa.array(list(chain.from_iterable(map(dict.values, dicts))), pa.string()),
        )

    @classmethod
    def concat(cls, tables: list[SeriesTable]) -> SeriesTable:
        """One table of all series, renumbered in order (series i of the second table is len(first) + i)."""
        tables = [cls(), *tables]  # concatenating nothing gives the empty table
        offsets = np.cumsum([0] + [len(t) for t in tables[:-1]])
        return cls(
            pa.concat_arrays([t.family.cast(pa.string()) for t in tables]),
            np.concatenate([t.label_sid + off for t, off in zip(tables, offsets, strict=True)]).astype(np.int32),
            pa.concat_arrays([t.label_name.cast(pa.string()) for t in tables]),
            pa.concat_arrays([t.label_value.cast(pa.string()) for t in tables]),
        )

    def pairs(self) -> list[tuple[str, dict[str, str]]]:
        """(family, labels) of every series: for tests and error messages, not for volume."""
        out: list[tuple[str, dict[str, str]]] = [(name, {}) for name in self.family.to_pylist()]
        for sid, name, value in zip(
            self.label_sid.tolist(), self.label_name.to_pylist(), self.label_value.to_pylist(), strict=True
        ):
            out[sid][1][name] = value
        return out


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
