"""Service level indicators as event counts: bad events and all events, each a signed sum of
counter selectors, so an SLI is `sum(increase(bad[W])) / sum(increase(total[W]))`: traffic-weighted
by construction, never an average of ratios.

A declared SLO (settings) becomes selectors by looking at what the service actually exports:
the first histogram of the signal with data (vLLM's current name before its older one, then TGI,
KServe, Knative, Triton), the threshold checked against the bucket edges found in the data, and
the first error source with data (the server's own failure counter, else HTTP 5xx).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb

from analytics.serving.counters import Matcher, Reading, Selector
from core import conventions as c
from core.errors import ConfigError
from core.settings import ServiceSettings, SLOSettings
from core.store.warehouse import one
from core.timeutil import Window


@dataclass(frozen=True)
class Term:
    sign: int  # +1 or -1
    selector: Selector
    reading: Reading = Reading()  # sum(increase()): events; a gauge's *_over_time for Sloth's gauge SLIs


@dataclass(frozen=True)
class SLI:
    """bad / total, or (no total: a raw error ratio of gauges, as `1 - avg_over_time(up[W])`) `offset` + bad."""

    bad: tuple[Term, ...]
    total: tuple[Term, ...]
    description: str = ""
    offset: float = 0.0

    @property
    def counts_events(self) -> bool:
        """Is every term a counter (bad and total are events), rather than a gauge reading?"""
        return all(t.reading.counts_events for t in self.bad + self.total)

    def promql(self, window: str) -> tuple[str, str]:
        """The equivalent PromQL for bad and total events over `window` (a missing bad series is zero)."""
        bad = _expr(self.bad, window, zero_if_absent=self.counts_events, offset=self.offset)
        return bad, _expr(self.total, window, zero_if_absent=False) if self.total else "vector(1)"


def _expr(terms: tuple[Term, ...], window: str, zero_if_absent: bool, offset: float = 0.0) -> str:
    out = f"{offset:g}" if offset else ""
    for t in terms:
        part = t.reading.promql(t.selector, window)
        if zero_if_absent and len(terms) == 1:
            part = f"({part} or vector(0))"
        if out:
            out += (" + " if t.sign > 0 else " - ") + part
        else:
            out = part if t.sign > 0 else f"-{part}"
    return out


Pairs = tuple[tuple[str, str], ...]  # labels or annotations, sorted: an SLO stays hashable


@dataclass(frozen=True)
class AlertMeta:
    """One kind of an SLO's alerts (Sloth's `page_alert` / `ticket_alert`)."""

    disable: bool = False
    labels: Pairs = ()
    annotations: Pairs = ()


@dataclass(frozen=True)
class Alerting:
    """An SLO's alert metadata (Sloth's `alerting`): the alerts' name, the labels and annotations of all of them,
    and of each kind."""

    name: str | None = None
    labels: Pairs = ()
    annotations: Pairs = ()
    page: AlertMeta = AlertMeta()
    ticket: AlertMeta = AlertMeta()

    def of(self, kind: str) -> AlertMeta:
        return self.page if kind == "page" else self.ticket

    @property
    def alert_name(self) -> str:
        """The name of the SLO's alerts: the spec's, else gpuledger's own."""
        return self.name or c.ALERT_SLO_BURN


@dataclass(frozen=True)
class SLODef:
    service: str
    name: str
    objective: float  # percent
    window_s: int
    sli: SLI
    kind: str  # latency | ttft | error_ratio | availability | events
    source: str = "settings"
    labels: dict[str, str] = field(default_factory=dict)
    alerting: Alerting = Alerting()
    # a Sloth SLI's own PromQL, `{{.window}}` in it: (error_query, total_query), or (error_ratio_query,)
    promql: tuple[str, ...] = ()
    # why the warehouse cannot evaluate it (a query gpuledger cannot read): the SLO is then rules only, its
    # recordings made of `promql` as written (Sloth passes any PromQL through)
    rules_only: str | None = None


def model_label(family: str) -> str | None:
    """The label that carries the model name in this server's series (None: it has none)."""
    if family.startswith("nv_"):
        return "model"
    if family.startswith("revision_"):
        return "service_name"
    if family.startswith(("tgi_", "http_")):
        return None
    return "model_name"


def service_pods(con: duckdb.DuckDBPyConnection, svc: ServiceSettings, window: Window) -> list[str]:
    """The service's pods in the window: those exporting its model label, else (servers without a
    model label, such as TGI) those matching `pods`."""
    sql = f"SELECT DISTINCT pod FROM {c.T_INFERENCE_SAMPLES} WHERE ts >= ? AND ts < ? AND pod <> ''"
    params: list[object] = [window.start, window.end]
    if svc.namespace:
        sql += " AND namespace = ?"
        params.append(svc.namespace)
    if svc.pods:
        sql += " AND regexp_full_match(pod, ?)"
        params.append(svc.pods)
    labelled = sorted(r[0] for r in con.execute(sql + " AND model = ?", [*params, svc.model]).fetchall())
    if labelled or not svc.pods:
        return labelled
    return sorted(r[0] for r in con.execute(sql, params).fetchall())


def service_matchers(family: str, svc: ServiceSettings, pods: list[str]) -> tuple[Matcher, ...] | None:
    """Matchers selecting the service's series of `family` (None when it cannot be told apart)."""
    out = [Matcher("namespace", "=", svc.namespace)] if svc.namespace else []
    label = model_label(family)
    if label is not None:
        out.append(Matcher(label, "=", svc.model))
        if svc.pods:
            out.append(Matcher("pod", "=~", svc.pods))
    elif pods:
        out.append(Matcher("pod", "=~", "|".join(re.escape(p) for p in pods)))
    else:
        return None
    return tuple(out)


def has_data(con: duckdb.DuckDBPyConnection, selector: Selector, window: Window) -> bool:
    where, params = selector.where()
    row = one(
        con,
        f"SELECT count(*) FROM (SELECT 1 FROM {c.T_INFERENCE_SAMPLES} WHERE ts >= ? AND ts < ? AND {where} LIMIT 1)",
        [window.start, window.end, *params],
    )
    return bool(row and row[0])


def bucket_edges(con: duckdb.DuckDBPyConnection, bucket: Selector, window: Window) -> list[float]:
    where, params = bucket.where()
    rows = con.execute(
        f"SELECT DISTINCT le FROM {c.T_INFERENCE_SAMPLES} WHERE ts >= ? AND ts < ? AND {where} AND le IS NOT NULL",
        [window.start, window.end, *params],
    ).fetchall()
    return sorted(r[0] for r in rows)


def le_text(edge: float) -> str:
    """An edge spelled as prometheus_client exports it (0.5, 5.0, +Inf)."""
    return "+Inf" if math.isinf(edge) else repr(float(edge))


def le_matcher(edge: float) -> Matcher:
    """`le` of one edge. An integral edge is spelled "5" by some exporters (Knative, Triton) and "5.0"
    by others (prometheus_client; Prometheus 3 normalises to it), so it is matched both ways."""
    if float(edge).is_integer():
        return Matcher("le", "=~", f"{int(edge)}(\\.0)?")
    return Matcher("le", "=", le_text(edge))


def _latency_sli(
    con: duckdb.DuckDBPyConnection, svc: ServiceSettings, slo: SLOSettings, pods: list[str], window: Window, who: str
) -> SLI:
    signal = c.SIG_E2E if slo.sli == "latency" else c.SIG_TTFT
    if slo.threshold_seconds is None:
        raise ConfigError(f"SLO {who}: sli {slo.sli} needs threshold_seconds")
    for family, (sig, scale) in c.SERVING_HISTOGRAMS.items():
        matchers = service_matchers(family, svc, pods)
        if sig != signal or matchers is None:
            continue
        count = Selector(f"{family}_count", matchers)
        if not has_data(con, count, window):
            continue
        edges = bucket_edges(con, Selector(f"{family}_bucket", matchers), window)
        edge = _matching_edge(slo.threshold_seconds / scale, edges)
        if edge is None:
            raise ConfigError(f"SLO {who}: {_not_an_edge(slo.threshold_seconds, edges, scale, family)}")
        good = Selector(f"{family}_bucket", (*matchers, le_matcher(edge)))
        text = f"{family} <= {slo.threshold_seconds:g} s"
        return SLI(bad=(Term(1, count), Term(-1, good)), total=(Term(1, count),), description=text)
    raise ConfigError(f"SLO {who}: no {signal} histogram of model {svc.model!r} in the warehouse for the window")


def _matching_edge(value: float, edges: list[float]) -> float | None:
    return next((e for e in edges if not math.isinf(e) and math.isclose(e, value, rel_tol=1e-9)), None)


def _not_an_edge(threshold: float, edges: list[float], scale: float, family: str) -> str:
    finite = [e * scale for e in edges if not math.isinf(e)]
    below = max((e for e in finite if e < threshold), default=None)
    above = min((e for e in finite if e > threshold), default=None)
    near = " and ".join(f"{e:g} s" for e in (below, above) if e is not None) or "none"
    return (
        f"latency threshold {threshold:g} s is not a bucket edge of {family} (nearest edges: {near}); "
        "a good-events count needs an edge at the threshold"
    )


def _error_sources(kind: str) -> list[tuple[str, str, str | None]]:
    """(bad family, total family or '+' for bad + total, status regex) in preference order."""
    server = list(c.SERVER_ERROR_SOURCES) if kind == "error_ratio" else []
    return server + list(c.HTTP_ERROR_SOURCES)


def _error_sli(con: duckdb.DuckDBPyConnection, svc: ServiceSettings, kind: str, pods: list[str], window: Window) -> SLI:
    for bad_family, total_family, status in _error_sources(kind):
        matchers = service_matchers(bad_family, svc, pods)
        if matchers is None:
            continue
        plus = total_family.startswith("+")
        total_sel = Selector(total_family.lstrip("+"), matchers)
        if not has_data(con, total_sel, window):
            continue
        bad = Selector(bad_family, matchers)
        if status is not None:
            label = _status_label(con, total_sel, window)
            bad = Selector(bad_family, (*matchers, Matcher(label, "=~", status)))
        total = (Term(1, total_sel), Term(1, Selector(bad_family, matchers))) if plus else (Term(1, total_sel),)
        return SLI(bad=(Term(1, bad),), total=total, description=f"{bad.promql()} / {total_family.lstrip('+')}")
    raise ConfigError(f"service {svc.model!r}: no failure counter and no HTTP request counter in the warehouse")


def _status_label(con: duckdb.DuckDBPyConnection, selector: Selector, window: Window) -> str:
    """The label holding the HTTP status in these series (status, code, response_code_class...)."""
    for label in c.L_HTTP_STATUS_LABELS:
        probe = Selector(selector.metric, (*selector.matchers, Matcher(label, "=~", ".+")))
        if has_data(con, probe, window):
            return label
    return c.L_HTTP_STATUS_LABELS[0]


def resolve(
    con: duckdb.DuckDBPyConnection, service: str, svc: ServiceSettings, slo: SLOSettings, now: datetime, window_s: int
) -> SLODef:
    """A declared SLO as selectors over what the service exports in [now - window, now)."""
    window = Window(now - timedelta(seconds=window_s), now)
    pods = service_pods(con, svc, window)
    who = f"{service}/{slo.name}"
    if slo.sli in ("latency", "ttft"):
        sli = _latency_sli(con, svc, slo, pods, window, who)
    else:
        sli = _error_sli(con, svc, slo.sli, pods, window)
    return SLODef(service, slo.name, slo.objective, window_s, sli, slo.sli)


def check_edges(con: duckdb.DuckDBPyConnection, slo: SLODef, window: Window) -> None:
    """Refuse an `le` matcher that names no bucket edge in the data (the good count would be empty)."""
    for term in slo.sli.bad + slo.sli.total:
        for m in term.selector.matchers:
            if m.label != c.L_LE or m.op != "=" or m.value == "+Inf":
                continue
            others = tuple(x for x in term.selector.matchers if x is not m)
            edges = bucket_edges(con, Selector(term.selector.metric, others), window)
            if edges and _matching_edge(float(m.value), edges) is None:
                family = term.selector.metric.removesuffix("_bucket")
                raise ConfigError(f"SLO {slo.service}/{slo.name}: {_not_an_edge(float(m.value), edges, 1.0, family)}")
