"""Sloth `prometheus/v1` SLO specs as gpuledger SLOs, so teams bring the specs they already have.

Sloth's SLI queries are PromQL templated on `{{.window}}`. gpuledger evaluates in the warehouse the forms
sli_promql reads (counter ratios, `1 - good / total`, gauges over raw samples or subqueries) over the series it
collects (an SLI over series gpuledger does not collect reports no data). Any other PromQL (other functions,
groupings, offsets) is not guessed at: the SLO is kept as rules only (`SLODef.rules_only` says why), its recordings written from the
queries as they stand, as Sloth writes them; the warehouse reports leave it out. Plugin SLIs run inside Sloth
and are refused. The spec has no period: Sloth takes it from `--default-slo-period` (30d); gpuledger from
`serving.sloth_window`. Sloth's Kubernetes resource (`PrometheusServiceLevel`) is read as the same spec.
"""

from __future__ import annotations

import re
from typing import Any

from analytics.serving import openslo
from analytics.serving.sli import SLI, Alerting, AlertMeta, Pairs, SLODef
from analytics.serving.sli_promql import Parsed, UnsupportedQuery, check_kinds, parse_events, parse_ratio
from core import conventions as c
from core.errors import ConfigError

# Sloth's own checks (pkg/common/validation): names start and end alphanumeric with only `.`, `_`, `-` between;
# label keys are Prometheus label names other than __name__
_NAME = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$")
_LABEL_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _labels(raw: Any, here: str, what: str = "label") -> dict[str, str]:
    """A mapping of labels (or annotations) with its keys checked as Prometheus label names (labels: not
    __name__ either)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{here}: {what}s must be a mapping")
    bad = [str(k) for k in raw if not _LABEL_KEY.match(str(k)) or (what == "label" and k == "__name__")]
    if bad:
        rule = "a Prometheus label name" + (", not __name__" if what == "label" else "")
        raise ConfigError(f"{here}: invalid {what} key {bad[0]!r} ({rule})")
    return {str(k): str(v) for k, v in raw.items()}


_ALERT_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")  # Prometheus' rule files: an alert name is a metric name


def _pairs(raw: Any, here: str, what: str) -> Pairs:
    """Labels or annotations as sorted pairs (an SLO stays hashable)."""
    return tuple(sorted(_labels(raw, here, what).items()))


def _alert_meta(raw: Any, here: str) -> AlertMeta:
    if raw is None:
        return AlertMeta()
    if not isinstance(raw, dict):
        raise ConfigError(f"{here}: must be a mapping")
    disable = raw.get("disable", False)
    if not isinstance(disable, bool):
        raise ConfigError(f"{here}.disable: must be true or false, not {disable!r}")
    return AlertMeta(
        disable, _pairs(raw.get("labels"), here, "label"), _pairs(raw.get("annotations"), here, "annotation")
    )


def _alerting(raw: Any, here: str) -> Alerting:
    """An SLO's `alerting`: its alerts' name (gpuledger's own when absent), labels and annotations, per kind too."""
    if raw is None:
        return Alerting()
    if not isinstance(raw, dict):
        raise ConfigError(f"{here}: alerting must be a mapping")
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not _ALERT_NAME.match(name)):
        raise ConfigError(f"{here}: invalid alert name {name!r} (a Prometheus metric name)")
    return Alerting(
        name,
        _pairs(raw.get("labels"), f"{here}: alerting", "label"),
        _pairs(raw.get("annotations"), f"{here}: alerting", "annotation"),
        _alert_meta(raw.get("page_alert"), f"{here}: alerting.page_alert"),
        _alert_meta(raw.get("ticket_alert"), f"{here}: alerting.ticket_alert"),
    )


def _objective(value: Any, here: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
        raise ConfigError(f"{here}: the objective must be a number in (0, 100], not {value!r}")
    return float(value)


def _query(part: dict[str, Any], key: str) -> str:
    """A query of an SLI, by its snake_case key or the camelCase one Sloth's loader also reads."""
    head, *rest = key.split("_")
    value = part.get(key, part.get(head + "".join(w.title() for w in rest)))
    return str(value or "")


def _sli(sli: Any, here: str) -> tuple[Parsed, tuple[str, ...]]:
    """The terms of an SLO's `sli` and its PromQL: exactly one of events and raw, as Sloth requires."""
    kinds = [k for k in ("events", "raw", "plugin") if isinstance(sli, dict) and sli.get(k) is not None]
    if len(kinds) > 1:
        raise ConfigError(f"{here}: only one SLI type is allowed, not {' and '.join(kinds)}")
    if kinds == ["events"]:
        error, total = _query(sli["events"], "error_query"), _query(sli["events"], "total_query")
        if error.strip() == total.strip():
            raise ConfigError(f"{here}: the error and total queries are the same")
        _templated(error, f"{here}.sli.events.error_query")
        _templated(total, f"{here}.sli.events.total_query")
        bad = parse_events(error, f"{here}.sli.events.error_query")
        parsed = (bad, parse_events(total, f"{here}.sli.events.total_query"), 0.0)
        check_kinds(parsed, f"{here}.sli.events", f"{error} / {total}")
        return parsed, (error, total)
    if kinds == ["raw"]:
        ratio = _query(sli["raw"], "error_ratio_query")
        _templated(ratio, f"{here}.sli.raw.error_ratio_query")
        parsed = parse_ratio(ratio, f"{here}.sli.raw.error_ratio_query")
        check_kinds(parsed, f"{here}.sli.raw.error_ratio_query", ratio)
        return parsed, (ratio,)
    if kinds == ["plugin"]:
        raise ConfigError(f"{here}: SLI plugins run inside Sloth; gpuledger reads events and raw SLIs only")
    raise ConfigError(f"{here}: the SLO needs an events or raw SLI")


_CRD = ("sloth.slok.dev/v1", "PrometheusServiceLevel")
# the Kubernetes form spells its keys in camelCase (queries are read either way: _query)
_CRD_ALERTS = {"pageAlert": "page_alert", "ticketAlert": "ticket_alert"}


def _as_prometheus_v1(doc: Any, where: str) -> dict[str, Any]:
    """A `prometheus/v1` spec, or Sloth's Kubernetes resource (`PrometheusServiceLevel`) as one."""
    if isinstance(doc, dict) and doc.get("version") == "prometheus/v1":
        return doc
    if not isinstance(doc, dict) or (doc.get("apiVersion"), doc.get("kind")) != _CRD:
        raise ConfigError(
            f"{where}: not a Sloth spec (version: prometheus/v1, or apiVersion: {_CRD[0]} with kind: {_CRD[1]})"
        )
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: the {_CRD[1]} has no spec")
    slos = []
    for slo in spec.get("slos") or []:
        alerting = slo.get("alerting") if isinstance(slo, dict) else None
        if isinstance(alerting, dict):
            slo = {**slo, "alerting": {_CRD_ALERTS.get(k, k): v for k, v in alerting.items()}}
        slos.append(slo)
    return {"version": "prometheus/v1", "service": spec.get("service"), "labels": spec.get("labels"), "slos": slos}


WINDOW_VAR = re.compile(r"\{\{\s*\.window\s*\}\}")  # Sloth's template variable, spaces allowed


def with_window(query: str, window: str) -> str:
    """A Sloth query with its `{{.window}}` filled in."""
    return WINDOW_VAR.sub(window, query)


def _templated(query: str, where: str) -> None:
    if not query.strip():
        raise ConfigError(f"{where}: the query is missing")
    if not WINDOW_VAR.search(query):
        raise ConfigError(f"{where}: the query must contain the {{{{.window}}}} variable")


def _readable(sli: Any, here: str) -> tuple[Parsed, tuple[str, ...], str | None]:
    """The SLI as the warehouse reads it, or (a query it cannot read) its PromQL alone and why: Sloth takes any
    PromQL, so such an SLO is written as rules only."""
    try:
        parsed, promql = _sli(sli, here)
    except UnsupportedQuery as exc:
        part = sli["events"] if sli.get("events") is not None else sli["raw"]
        keys = ("error_query", "total_query") if sli.get("events") is not None else ("error_ratio_query",)
        return ((), (), 0.0), tuple(_query(part, k) for k in keys), str(exc)
    return parsed, promql, None


def slos_from_spec(doc: dict[str, Any], where: str, window_s: int) -> list[SLODef]:
    """Every SLO of one Sloth spec (already loaded from YAML), checked as Sloth checks it."""
    spec = _as_prometheus_v1(doc, where)
    service = spec.get("service")
    if not isinstance(service, str) or not _NAME.match(service):
        raise ConfigError(f"{where}: service {service!r}: invalid service name ({_NAME_RULE})")
    spec_labels = _labels(spec.get("labels"), f"{where}: service {service!r}")
    out: list[SLODef] = []
    for i, slo in enumerate(spec.get("slos") or []):
        name = slo.get("name") if isinstance(slo, dict) else None
        here = f"{where}: SLO {name!r} (slos[{i}])"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{here}: invalid SLO name ({_NAME_RULE})")
        objective = _objective(slo.get("objective"), here)
        (bad, total, offset), promql, rules_only = _readable(slo.get("sli"), here)
        labels = {**spec_labels, **_labels(slo.get("labels"), here)}
        description = str(slo.get("description") or "sloth events")
        alerting = _alerting(slo.get("alerting"), here)
        sli = SLI(bad, total, description, offset)
        source = f"sloth:{where}"
        out.append(
            SLODef(service, name, objective, window_s, sli, "events", source, labels, alerting, promql, rules_only)
        )
    unique(out)
    return out


_NAME_RULE = "alphanumeric at both ends, only '.', '_' and '-' between"


def slos_from_documents(docs: list[tuple[str, Any]], window_s: int) -> list[SLODef]:
    """Every SLO of Sloth and OpenSLO documents ((where, document) pairs); an OpenSLO `timeWindow` sets its SLOs'
    period, else `window_s`."""
    out: list[SLODef] = []
    for where, doc in docs:
        if not openslo.is_openslo(doc):
            out += slos_from_spec(doc, where, window_s)
    for where, spec, period_s in openslo.as_sloth_specs(docs):
        problem = c.slo_period_problem(period_s or window_s)
        if problem:
            raise ConfigError(f"{where}: service {spec['service']!r}: SLO period of {period_s} s: {problem}")
        out += slos_from_spec(spec, where, period_s or window_s)
    return out


def unique(slos: list[SLODef]) -> None:
    """Refuse a service's SLO declared twice (its rule groups would repeat, which promtool rejects)."""
    seen: dict[tuple[str, str], SLODef] = {}
    for d in slos:
        first = seen.setdefault((d.service, d.name), d)
        if first is not d:
            where = d.source.removeprefix("sloth:")
            raise ConfigError(
                f"{where}: SLO {d.name!r} of service {d.service!r} is declared twice "
                f"(also in {first.source.removeprefix('sloth:')})"
            )
