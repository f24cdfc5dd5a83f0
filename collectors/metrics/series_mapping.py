"""Series -> standard columns (stage_meta), column-wise in one DuckDB query.

Both collection paths hand over a SeriesTable: a family per series and its labels as (series,
name, value) rows. This module is the one place that knows every exporter's label spelling
(Hostname/hostname, exported_pod, GPU_I_ID, label_<key>, the serving servers' model labels, ...),
so the two paths cannot drift apart. It is SQL rather than Python per series because a 10,000-GPU
fleet has about 100,000 series per collection: mapping them in Python took longer than parsing
and staging all their samples.

Label JSON (`labels`: pod, namespace and node labels, the serving series' other labels) is built
by string concatenation in the query for the label sets that need no escaping (printable ASCII
without quote or backslash, nearly all); the rest get Python's json.dumps, so the column holds
exactly what json.dumps(sort_keys=True, separators=(",", ":")) gives for every label set.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collectors.metrics.series import (
    HTTP_HANDLER_REGEX,
    HTTP_NAME,
    KIND_BY_NAME,
    META_COLUMNS,
    PUSHED_KINDS,
    SeriesContext,
    SeriesTable,
)
from core import conventions as c
from core.store.sql import literal

_JSON_KINDS = ("ksm_pod_labels", "ksm_namespace_labels", "ksm_node_labels", "inference", "inference_time")
# serving labels that have columns of their own (the chosen model label too) stay out of `labels`
_SERVING_SKIP = ("namespace", "pod", "le", "cluster", "__name__")
_DEVICE = "cluster, node, gpu_uuid, gpu_instance"
# anything but printable ASCII without " and \ (which JSON needs no escape for and json.dumps writes as is)
_NEEDS_ESCAPE = r'[^\x20-\x7e]|["\\]'


def _needed(style: str) -> list[str]:
    """Every label name a column is read from, in a stable order."""
    names = [
        c.L_CLUSTER, *c.L_HOSTNAME, *c.L_UUID, c.L_GPU_INDEX, c.L_MODEL_NAME, c.L_GPU_I_PROFILE, c.L_GPU_I_ID,
        c.L_VGPU, c.L_POD_UID, *c.WORKLOAD_LABELS[style], c.L_NAMESPACE, c.L_POD, c.L_UID, c.L_NODE, "container",
        c.L_RESOURCE, c.L_PHASE, *c.NODE_CAPACITY_TYPE_LABELS, c.NODE_GPU_COUNT_LABEL, c.NODE_GPU_REPLICAS_LABEL,
        c.NODE_GPU_SHARING_LABEL, c.NODE_MIG_STRATEGY_LABEL,
        *c.NODE_INSTANCE_TYPE_LABELS, *c.NODE_REGION_LABELS, *c.NODE_ZONE_LABELS, *c.NODE_POOL_LABELS,
        c.NODE_GPU_PRODUCT_LABEL, *c.L_MODEL_LABELS, c.L_LE, "handler", c.L_PROVIDER_ID,
        c.L_CLUSTER_QUEUE, c.L_QUEUE_NAME, c.L_COHORT, c.L_FLAVOR, c.L_STATUS,
    ]  # fmt: skip
    return list(dict.fromkeys(names))


class _Labels:
    """SQL for a label's value ('' when absent) over the series' label columns: one column per
    needed label some series has (aliases l0, l1, ...: label names differ only in case, and
    DuckDB's identifiers do not)."""

    def __init__(self, names: list[str], table: SeriesTable):
        self.table = table
        encoded = pc.dictionary_encode(table.label_name)
        self.code = {name: i for i, name in enumerate(encoded.dictionary.to_pylist())}
        self.codes = encoded.indices.to_numpy(zero_copy_only=False)
        self.alias = {name: f"l{i}" for i, name in enumerate(names) if name in self.code}

    def get(self, name: str) -> str:
        return f"coalesce(s.{self.alias[name]}, '')" if name in self.alias else "''"

    def first(self, names: tuple[str, ...]) -> str:
        """The first of the labels that is set and not empty."""
        return (
            "coalesce(" + ", ".join([f"nullif(s.{self.alias[n]}, '')" for n in names if n in self.alias] + ["''"]) + ")"
        )

    def columns(self) -> dict[str, pa.Array]:
        """Each label column: the label's value for each series, null where the series lacks it.
        (numpy over the label rows: DuckDB's pivot, 50 filtered aggregates, took a second at 10,000 GPUs)"""
        table, out = self.table, {}
        for name, alias in self.alias.items():
            row_of = np.full(len(table), -1, dtype=np.int64)
            rows = np.flatnonzero(self.codes == self.code[name])
            row_of[table.label_sid[rows]] = rows
            out[alias] = table.label_value.take(pa.array(row_of, mask=row_of < 0))
        return out


def _capacity(lab: _Labels) -> str:
    whens = [
        f"WHEN {lab.get(label)} = {literal(value)} THEN {literal(capacity)}"
        for label, mapping in c.NODE_CAPACITY_TYPE_LABELS.items()
        for value, capacity in mapping.items()
    ]
    return "CASE " + " ".join(whens) + " ELSE 'on_demand' END"


def _count(expr: str) -> str:
    return f"CASE WHEN regexp_full_match({expr}, '[0-9]+') THEN try_cast({expr} AS INTEGER) END"


def _columns(lab: _Labels, ctx: SeriesContext) -> dict[str, str]:
    """Each standard column as a CASE over the series' kind (the columns a kind does not use are '')."""
    ns, pod, container = c.WORKLOAD_LABELS[ctx.workload_label_style]
    dcgm = "s.kind LIKE 'dcgm%'"
    serving = "s.kind IN ('inference', 'inference_time')"
    node = "s.kind = 'ksm_node_labels'"
    queue = "s.kind = 'queue'"
    ksm = f"NOT ({dcgm} OR {serving} OR {node})"  # pod series, and ksm_node_capacity (node, resource)
    by_kind: dict[str, list[tuple[str, str]]] = {
        "node": [(dcgm, lab.first(c.L_HOSTNAME)), (node, lab.get(c.L_NODE)), (ksm, lab.get(c.L_NODE))],
        "gpu_uuid": [(dcgm, lab.first(c.L_UUID))],
        "gpu_index": [(dcgm, lab.get(c.L_GPU_INDEX))],
        "model": [
            (dcgm, lab.get(c.L_MODEL_NAME)),
            (serving, lab.first(c.L_MODEL_LABELS)),
            (node, lab.get(c.NODE_GPU_PRODUCT_LABEL)),
        ],
        "mig_profile": [(dcgm, lab.get(c.L_GPU_I_PROFILE))],
        "gpu_instance": [(dcgm, lab.get(c.L_GPU_I_ID))],
        "vgpu": [(dcgm, lab.get(c.L_VGPU))],
        "process_pod_uid": [(_per_process(lab), lab.get(c.L_POD_UID))],
        "namespace": [(dcgm, lab.get(ns)), (serving, lab.get(c.L_NAMESPACE)), (ksm, lab.get(c.L_NAMESPACE))],
        "pod": [(dcgm, lab.get(pod)), (serving, lab.get(c.L_POD)), (ksm, lab.get(c.L_POD))],
        "container": [(dcgm, lab.get(container)), (ksm, lab.get("container"))],
        "uid": [(ksm, lab.get(c.L_UID))],
        # Kueue and Volcano spell a resource as Kubernetes does (nvidia.com/mig-3g.40gb); kube-state-metrics as a
        # label-safe name (nvidia_com_mig_3g_40gb): one spelling, so a queue's GPUs meet the pods'
        "resource": [
            (queue, f"regexp_replace({lab.get(c.L_RESOURCE)}, '[./-]', '_', 'g')"),
            (ksm, lab.get(c.L_RESOURCE)),
        ],
        "phase": [(ksm, lab.get(c.L_PHASE))],
        "instance_type": [(node, lab.first(c.NODE_INSTANCE_TYPE_LABELS))],
        "capacity_type": [(node, _capacity(lab))],
        "region": [(node, lab.first(c.NODE_REGION_LABELS))],
        "zone": [(node, lab.first(c.NODE_ZONE_LABELS))],
        "node_pool": [(node, lab.first(c.NODE_POOL_LABELS))],
        "provider_id": [("s.kind = 'ksm_node_info'", lab.get(c.L_PROVIDER_ID))],
        "queue": [(queue, lab.first((c.L_CLUSTER_QUEUE, c.L_QUEUE_NAME)))],
        "cohort": [(queue, lab.get(c.L_COHORT))],
        "flavor": [(queue, lab.get(c.L_FLAVOR))],
        "status": [(queue, lab.get(c.L_STATUS))],
    }
    cols = {
        name: "CASE " + " ".join(f"WHEN {w} THEN {e}" for w, e in whens) + " ELSE '' END"
        for name, whens in by_kind.items()
    }
    # the time pseudo family's suffix ('@' is never part of a metric name) goes: both rows name the family
    cols["family"] = (
        f"CASE WHEN {serving} THEN replace(s.family, {literal(c.SAMPLE_TIME_SUFFIX)}, '') ELSE s.family END"
    )
    cols["cluster"] = f"coalesce(nullif({lab.get(c.L_CLUSTER)}, ''), {literal(ctx.cluster)})"
    le = f"s.{lab.alias[c.L_LE]}" if c.L_LE in lab.alias else "NULL"
    cols["le"] = f"CASE WHEN {serving} OR {queue} THEN try_cast({le} AS DOUBLE) END"
    cols["gpu_count"] = f"CASE WHEN {node} THEN {_count(lab.get(c.NODE_GPU_COUNT_LABEL))} END"
    cols["gpu_replicas"] = f"CASE WHEN {node} THEN {_count(lab.get(c.NODE_GPU_REPLICAS_LABEL))} END"
    mig_single = f"{lab.get(c.NODE_MIG_STRATEGY_LABEL)} = 'single'"
    cols["gpu_sharing"] = (
        f"CASE WHEN {node} THEN CASE WHEN {mig_single} THEN {literal(c.MIG_SINGLE)} "
        f"ELSE nullif({lab.get(c.NODE_GPU_SHARING_LABEL)}, '') END END"
    )
    cols["labels"] = (
        f"CASE WHEN s.kind IN ('ksm_pod_labels', 'ksm_namespace_labels', 'ksm_node_labels') "
        f"THEN '{{' || coalesce(j.k8s, '') || '}}' WHEN {serving} THEN '{{' || coalesce(j.extra, '') || '}}' ELSE '' END"
    )
    return cols


def _per_process(lab: _Labels) -> str:
    """A per-process copy (c.DCGM_PER_PROCESS_FAMILIES), not a device series that names its pod."""
    families = ", ".join(literal(f) for f in c.DCGM_PER_PROCESS_FAMILIES)
    return f"s.kind = 'dcgm_sample' AND s.family IN ({families}) AND {lab.get(c.L_VGPU)} <> ''"


def _selected(lab: _Labels) -> str:
    """The series gpuledger keeps: Running and Pending phases, GPU resources (a queue's too), inference servers' HTTP
    routes."""
    gpu = f"(starts_with({lab.get(c.L_RESOURCE)}, {literal(c.RESOURCE_GPU)}) OR starts_with({lab.get(c.L_RESOURCE)}, {literal(c.RESOURCE_MIG_PREFIX)}))"
    queue_gpu = (
        f"(s.kind <> 'queue' OR {lab.get(c.L_RESOURCE)} = '' OR starts_with({lab.get(c.L_RESOURCE)}, 'nvidia.com/'))"
    )
    return (
        f"NOT (s.family = {literal(c.KSM_POD_PHASE)} AND {lab.get(c.L_PHASE)} NOT IN ('Running', 'Pending'))"
        f" AND {queue_gpu}"
        f" AND NOT (s.family IN ({literal(c.KSM_POD_REQUESTS)}, {literal(c.KSM_NODE_CAPACITY)}, "
        f"{literal(c.KSM_NODE_ALLOCATABLE)}) AND NOT {gpu})"
        f" AND NOT (s.family = {literal(HTTP_NAME)} AND NOT regexp_full_match({lab.get('handler')}, {literal(HTTP_HANDLER_REGEX)}))"
    )


def _model_key(lab: _Labels) -> str:
    """Name of the label a serving series' model is read from (it stays out of `labels`)."""
    whens = " ".join(f"WHEN {lab.get(n)} <> '' THEN {literal(n)}" for n in c.L_MODEL_LABELS)
    return f"CASE {whens} ELSE '' END"


def meta_sql(lab: _Labels, ctx: SeriesContext) -> str:
    """series_in (sid, family, a column per needed label) and labels_in (the label rows of the series
    whose labels become JSON) -> the standard columns of the series gpuledger keeps."""
    cols = _columns(lab, ctx)
    pair = "'\"' || {k} || '\":\"' || l.v || '\"'"
    skip = ", ".join(literal(n) for n in _SERVING_SKIP)
    select = ", ".join(f"{cols[col]} AS {col}" if col in cols else f"s.{col}" for col in META_COLUMNS)
    return f"""
    WITH keyed AS (
        SELECT s.*, k.kind, {_model_key(lab)} AS model_key FROM series_in s JOIN kinds_in k USING (family)),
    j AS (
        SELECT l.sid,
            string_agg({pair.format(k="substr(l.k, " + str(len(c.KSM_LABEL_PREFIX) + 1) + ")")}, ',' ORDER BY l.k)
                FILTER (WHERE starts_with(l.k, {literal(c.KSM_LABEL_PREFIX)})) AS k8s,
            string_agg({pair.format(k="l.k")}, ',' ORDER BY l.k)
                FILTER (WHERE l.k NOT IN ({skip}) AND l.k <> s.model_key) AS extra,
            bool_or(regexp_matches(l.k || l.v, {literal(_NEEDS_ESCAPE)})) AS escape
        FROM labels_in l JOIN keyed s USING (sid)
        GROUP BY l.sid),
    described AS (
        SELECT {select}, coalesce(j.escape, false) AS needs_json, s.model_key
        FROM keyed s LEFT JOIN j USING (sid)
        WHERE {_selected(lab)}),
    -- integer keys of the rows a series feeds: grouping millions of points by one integer is far
    -- cheaper than by the strings it stands for (which are joined back once per key)
    devices AS (SELECT {_DEVICE}, row_number() OVER () AS dev_key FROM (SELECT DISTINCT {_DEVICE} FROM described))
    SELECT * FROM described JOIN devices USING ({_DEVICE})"""


def register(con: duckdb.DuckDBPyConnection, table: SeriesTable, ctx: SeriesContext) -> tuple[np.ndarray, set[str]]:
    """Register `stage_meta` (META_COLUMNS, dev_key, and the two columns _escape_json reads) for the
    series gpuledger keeps; return which series were kept (a mask over the table) and their kinds."""
    kinds = {**KIND_BY_NAME, **PUSHED_KINDS}
    lab = _Labels(_needed(ctx.workload_label_style), table)
    sids = pa.array(np.arange(len(table), dtype=np.int32))
    con.register("series_in", pa.table({"sid": sids, "family": table.family, **lab.columns()}))
    # only the label rows that become JSON go to DuckDB: pod, namespace and node labels, serving
    json_families = pa.array([f for f, kind in kinds.items() if kind in _JSON_KINDS], pa.string())
    json_series = pc.is_in(table.family, value_set=json_families).to_numpy(zero_copy_only=False)
    rows = pa.array(np.flatnonzero(json_series[table.label_sid]))
    labels = {"sid": pa.array(table.label_sid, pa.int32()), "k": table.label_name, "v": table.label_value}
    con.register("labels_in", pa.table(labels).take(rows))
    con.register("kinds_in", pa.table({"family": list(kinds), "kind": list(kinds.values())}))
    try:
        # registered as Arrow, not a temp table: writing 30 columns of 100,000 series into one took
        # 0.2-0.4 s at 10,000 GPUs, reading them back as Arrow under 0.1 s
        described = _escape_json(con.sql(meta_sql(lab, ctx)).to_arrow_table(), table)
    finally:
        for name in ("series_in", "labels_in", "kinds_in"):
            con.unregister(name)
    con.register("stage_meta", described)
    kept = np.zeros(len(table), dtype=bool)
    kept[described.column("sid").to_numpy()] = True
    return kept, set(pc.unique(described.column("kind")).to_pylist())


def _escape_json(described: pa.Table, table: SeriesTable) -> pa.Table:
    """`labels` of the label sets with characters JSON escapes: written by json.dumps itself."""
    mask = described.column("needs_json").combine_chunks()
    if not pc.any(mask).as_py():
        return described
    pairs = table.pairs()  # rare (non-ASCII or quoted label values): no need to be fast
    chosen = described.filter(mask)
    fixed = []
    for sid, kind, model_key in zip(*(chosen.column(n).to_pylist() for n in ("sid", "kind", "model_key")), strict=True):
        labels = pairs[sid][1]
        if kind in ("inference", "inference_time"):
            obj = {k: v for k, v in labels.items() if k not in _SERVING_SKIP and k != model_key}
        else:
            obj = {k.removeprefix(c.KSM_LABEL_PREFIX): v for k, v in labels.items() if k.startswith(c.KSM_LABEL_PREFIX)}
        fixed.append(json.dumps(obj, sort_keys=True, separators=(",", ":")))
    column = described.column("labels").combine_chunks()
    column = pc.replace_with_mask(column, mask, pa.array(fixed, column.type))
    return described.set_column(described.schema.get_field_index("labels"), "labels", column)
