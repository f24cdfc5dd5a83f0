"""OpenSLO (`openslo/v1`, and Sloth's `openslo/v1alpha`) SLOs as Sloth `prometheus/v1` specs, so they take the
same checks, the same warehouse evaluation and the same rules.

One SLO per objective, named `<metadata.name>-<index>` as Sloth names them. Ratio SLIs (`ratioMetric`, inline or
through `indicatorRef` to a `kind: SLI` document) become error ratios: `bad` over `total` as events, `good` as
`1 - good / total`. A query written with `{{.window}}` is used as it stands; a bare selector is read as a counter,
`sum(rate(<selector>[{{.window}}]))`. Threshold SLIs (`thresholdMetric` with an objective's `op` and `value`) become
the share of time slices in breach, `avg_over_time((<query> <breach> bool <value>)[{{.window}}:<slice>])`: computed in
the warehouse when the query is one gauge selector, else rules only. `timeWindow` sets the SLO's period (else the command's). `kind: Service`
documents are accepted and need nothing. Alert policies are not read: gpuledger's burn-rate alerts apply.
"""

from __future__ import annotations

import re
from typing import Any

from core.errors import ConfigError
from core.timeutil import parse_duration

KINDS = ("openslo/v1", "openslo/v1alpha")
_SELECTOR = re.compile(r"^\s*[a-zA-Z_:][a-zA-Z0-9_:]*\s*(\{[^{}]*\})?\s*$")
# a time slice is good when `metric op value`; in breach when the opposite holds
_BREACH = {"lt": ">=", "lte": ">", "gt": "<=", "gte": "<"}
_UNIT_S = {"Second": 1, "Minute": 60, "Hour": 3600, "Day": 86400, "Week": 7 * 86400}  # v1alpha count + unit


def is_openslo(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("apiVersion") in KINDS


def _query(source: Any, where: str, gauge: bool = False) -> str:
    """The PromQL of a metric source: v1 `metricSource.spec.query`, v1alpha `query` (a threshold's gauge as it
    stands)."""
    if not isinstance(source, dict):
        raise ConfigError(f"{where}: needs a metric source")
    inner = source.get("metricSource", source)
    kind = str(inner.get("type") or inner.get("source") or "prometheus").lower()
    if kind not in ("prometheus", "promql"):
        raise ConfigError(f"{where}: metric source {kind!r} is not Prometheus")
    spec = inner.get("spec") if isinstance(inner.get("spec"), dict) else inner
    query = spec.get("query") or spec.get("promql")
    if not isinstance(query, str) or not query.strip():
        raise ConfigError(f"{where}: the metric source has no query")
    if gauge or "{{" in query:
        return query.strip()
    if _SELECTOR.match(query):
        return f"sum(rate({query.strip()}[{{{{.window}}}}]))"
    raise ConfigError(f"{where}: a query must be a selector or use {{{{.window}}}}: {query.strip()}")


def _ratio_sli(ratio: dict[str, Any], where: str) -> dict[str, Any]:
    total = _query(ratio.get("total"), f"{where}.total")
    if ratio.get("bad") is not None:
        return {"events": {"error_query": _query(ratio["bad"], f"{where}.bad"), "total_query": total}}
    if ratio.get("good") is not None:
        good = _query(ratio["good"], f"{where}.good")
        return {"raw": {"error_ratio_query": f"1 - (({good}) / ({total}))"}}
    raise ConfigError(f"{where}: a ratio metric needs good or bad, and total")


def _threshold_sli(metric: dict[str, Any], objective: dict[str, Any], where: str) -> dict[str, Any]:
    op, value = objective.get("op"), objective.get("value")
    if op not in _BREACH or not isinstance(value, int | float):
        raise ConfigError(f"{where}: a threshold objective needs op (lt, lte, gt, gte) and a numeric value")
    query = _query(metric, f"{where}.thresholdMetric", gauge=True)
    slice_ = str(objective.get("timeSliceWindow") or "1m")
    return {
        "raw": {"error_ratio_query": f"avg_over_time((({query}) {_BREACH[op]} bool {value})[{{{{.window}}}}:{slice_}])"}
    }


def _indicator(spec: dict[str, Any], slis: dict[str, dict[str, Any]], where: str) -> dict[str, Any]:
    if isinstance(spec.get("indicator"), dict):
        return spec["indicator"].get("spec") or spec["indicator"]
    ref = spec.get("indicatorRef")
    if ref is not None:
        if ref not in slis:
            raise ConfigError(f"{where}: indicatorRef {ref!r} names no kind: SLI document")
        return slis[ref]
    return spec  # v1alpha: the ratio metrics sit on each objective


def _period_s(spec: dict[str, Any], where: str) -> int | None:
    windows = spec.get("timeWindow") or spec.get("timeWindows") or []
    if not windows:
        return None
    first = windows[0]
    if "duration" in first:
        return parse_duration(str(first["duration"]))
    size = _UNIT_S.get(str(first.get("unit")))
    if size is None:
        raise ConfigError(f"{where}: time window unit {first.get('unit')!r} is not Second, Minute, Hour, Day or Week")
    return int(first.get("count", 0)) * size


def _labels(metadata: dict[str, Any]) -> dict[str, str]:
    raw = metadata.get("labels") or {}
    return {str(k): ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in raw.items()}


def as_sloth_specs(docs: list[tuple[str, Any]]) -> list[tuple[str, dict[str, Any], int | None]]:
    """(where, prometheus/v1 spec, period seconds or None) for each OpenSLO SLO among `docs`."""
    slis = {
        str((d.get("metadata") or {}).get("name")): d.get("spec") or {}
        for _, d in docs
        if is_openslo(d) and d.get("kind") == "SLI"
    }
    out = []
    for where, doc in docs:
        if not is_openslo(doc) or doc.get("kind") != "SLO":
            continue
        metadata, spec = doc.get("metadata") or {}, doc.get("spec") or {}
        here = f"{where}: OpenSLO SLO {metadata.get('name')!r}"
        indicator = _indicator(spec, slis, here)
        slos = []
        for i, objective in enumerate(spec.get("objectives") or []):
            target = objective.get("target")
            percent = objective.get("targetPercent", target * 100 if isinstance(target, int | float) else None)
            source = indicator.get("ratioMetric") or objective.get("ratioMetrics") or indicator.get("ratioMetrics")
            if source is not None:
                sli = _ratio_sli(source, f"{here}.ratioMetric")
            elif indicator.get("thresholdMetric") is not None:
                sli = _threshold_sli(indicator["thresholdMetric"], objective, f"{here}.objectives[{i}]")
            else:
                raise ConfigError(f"{here}: only ratio and threshold SLIs are read")
            slos.append({"name": f"{metadata.get('name')}-{i}", "objective": percent, "sli": sli,
                         "description": spec.get("description") or ""})  # fmt: skip
        if not slos:
            raise ConfigError(f"{here}: the SLO has no objectives")
        prom = {"version": "prometheus/v1", "service": spec.get("service"), "labels": _labels(metadata), "slos": slos}
        out.append((where, prom, _period_s(spec, here)))
    return out
