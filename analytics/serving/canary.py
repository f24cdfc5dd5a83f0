"""Canary verdict: a model's canary version against its stable version over one window.

The two sides are either two values of a version label (model_version, Triton's version, Knative's
revision_name) of one model, or two model names. Each side is measured the way the rest of
gpuledger measures it: accuracy from the quality gauge weighted by scored predictions, p95 latency
with PromQL's histogram_quantile over the summed bucket increases, error rate from the same error
source as the error-ratio SLI (server failures, else HTTP 5xx), cost per request from unit costs.

Triggers (seed policy, relative to stable; settings serving.canary):
accuracy degrades > 5%, p95 latency rises > 50%, error rate rises > 200%, cost per request rises
> 100%. The accuracy and error-rate triggers also need a one-sided two-proportion z-test below
p = 0.05, because small canaries make naive ratios jump (1 error in 60 requests is 1.7%).
Verdict: ROLLBACK if any trigger fires; else HOLD while either side has fewer than `min_requests`
requests; else PROMOTE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb

from analytics.cost.chargeback import ChargebackOptions
from analytics.serving.counters import Matcher, Selector, Span, series_increases
from analytics.serving.sli import _error_sources, _status_label, has_data, model_label, service_matchers
from analytics.serving.traffic_drift import _accuracy, one_sided_p
from analytics.serving.unit_cost import UnitCost, serving_pods, unit_costs, version_of
from core import conventions as c
from core.errors import ConfigError
from core.settings import CanarySettings, ServiceSettings
from core.timeutil import Window, iso


@dataclass(frozen=True)
class Side:
    name: str  # version label value, or model name
    model: str
    extra: tuple[Matcher, ...]
    pods: frozenset[tuple[str, str]]


@dataclass
class Check:
    metric: str
    stable: float | None
    canary: float | None
    change: float | None  # relative: (canary - stable) / stable; accuracy: (stable - canary) / stable
    threshold: float
    triggered: bool = False
    p_value: float | None = None
    note: str = ""


@dataclass
class CanaryReport:
    model: str
    window: Window
    stable: str
    canary: str
    verdict: str = "HOLD"
    checks: list[Check] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "window": self.window.as_dict(),
            "stable": self.stable,
            "canary": self.canary,
            "verdict": self.verdict,
            "reasons": self.reasons,
            "checks": [ch.__dict__ for ch in self.checks],
        }


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """PromQL's bucketQuantile: linear interpolation inside the bucket holding rank q x count."""
    edges = sorted(buckets)
    if not edges or not math.isinf(edges[-1]) or len(edges) < 2:
        return None
    counts, running = [], 0.0
    for e in edges:  # ensureMonotonic: extrapolated increases may dip by a hair
        running = max(running, buckets[e])
        counts.append(running)
    if counts[-1] == 0:
        return None
    rank = q * counts[-1]
    b = next(i for i in range(len(edges)) if i == len(edges) - 1 or counts[i] >= rank)
    if b == len(edges) - 1:
        return edges[-2]
    if b == 0 and edges[0] <= 0:
        return edges[0]
    start, count = 0.0, counts[b]
    if b > 0:
        start, count, rank = edges[b - 1], count - counts[b - 1], rank - counts[b - 1]
    return start + (edges[b] - start) * (rank / count)


def sides(con: duckdb.DuckDBPyConnection, model: str, window: Window, canary_model: str | None) -> tuple[Side, Side]:
    """Stable and canary: two model names, or the two versions of one model (the canary is the
    version whose pods appeared last; on a tie, the larger version string)."""
    if canary_model:
        pick = [(m, serving_pods(con, window, m)) for m in (model, canary_model)]
        return tuple(  # type: ignore[return-value]
            Side(m, m, (), frozenset(p for pods in by.values() for p in pods)) for m, by in pick
        )
    by_version = serving_pods(con, window, model)
    versions = sorted(v for (_, v) in by_version if v)
    if len(versions) != 2:
        raise ConfigError(
            f"model {model!r} serves {len(versions)} version(s) {versions} in the window; a canary verdict needs "
            "exactly two (or name the canary with --canary-model)"
        )
    label = _version_label(con, model, window)
    first_seen = {v: _first_seen(con, by_version[(model, v)], window) for v in versions}
    stable, canary = sorted(versions, key=lambda v: (first_seen[v], v))
    return tuple(  # type: ignore[return-value]
        Side(v, model, (Matcher(label, "=", v),), frozenset(by_version[(model, v)])) for v in (stable, canary)
    )


def _version_label(con: duckdb.DuckDBPyConnection, model: str, window: Window) -> str:
    rows = con.execute(
        f"SELECT DISTINCT labels FROM {c.T_INFERENCE_SAMPLES} WHERE ts >= ? AND ts < ? AND model = ?",
        [window.start, window.end, model],
    ).fetchall()
    for label in c.L_VERSION_LABELS:
        if any(version_of(r[0]) and label in r[0] for r in rows):
            return label
    return c.L_VERSION_LABELS[0]


def _first_seen(con: duckdb.DuckDBPyConnection, pods: set[tuple[str, str]], window: Window) -> object:
    rows = con.execute(
        f"SELECT namespace, pod, min(ts) FROM {c.T_INFERENCE_SAMPLES} WHERE ts >= ? AND ts < ? GROUP BY ALL",
        [window.start, window.end],
    ).fetchall()
    return min(r[2] for r in rows if (r[0], r[1]) in pods)


def _p95(con: duckdb.DuckDBPyConnection, side: Side, span: Span, window: Window) -> float | None:
    for family, (signal, scale) in c.SERVING_HISTOGRAMS.items():
        bucket = Selector(f"{family}_bucket", (Matcher("model_name", "=", side.model), *side.extra))
        if signal != c.SIG_E2E or not has_data(con, bucket, window):
            continue
        by_le: dict[float, float] = {}
        for key, value in series_increases(con, bucket, [span]).get(0, {}).items():
            by_le[float(str(key[5]))] = by_le.get(float(str(key[5])), 0.0) + value
        q = histogram_quantile(0.95, by_le)
        return None if q is None else q * scale
    return None


def _error_rate(con: duckdb.DuckDBPyConnection, side: Side, span: Span, window: Window) -> tuple[float | None, float]:
    """Failed / all requests of one side, from the first error source it exports (as the SLI does)."""
    svc = ServiceSettings(model=side.model)
    pods = sorted(p for _, p in side.pods)
    for bad_family, total_family, status in _error_sources("error_ratio"):
        matchers = service_matchers(bad_family, svc, pods)
        if matchers is None:
            continue
        if model_label(bad_family) is not None:  # label-less families are already cut to the side's pods
            matchers = (*matchers, *side.extra)
        total_sel = Selector(total_family.lstrip("+"), matchers)
        if not has_data(con, total_sel, window):
            continue
        bad_sel = Selector(bad_family, matchers)
        if status is not None:
            bad_sel = Selector(bad_family, (*matchers, Matcher(_status_label(con, total_sel, window), "=~", status)))
        bad = sum(series_increases(con, bad_sel, [span]).get(0, {}).values())
        total = sum(series_increases(con, total_sel, [span]).get(0, {}).values())
        if total_family.startswith("+"):
            total += bad
        return (bad / total if total else None), total
    return None, 0.0


def _relative(stable: float | None, canary: float | None) -> float | None:
    if stable is None or canary is None:
        return None
    if stable == 0:
        return math.inf if canary > 0 else 0.0
    return (canary - stable) / stable


def _cost(rows: list[UnitCost], side: Side) -> UnitCost | None:
    return next((r for r in rows if r.model == side.model and (not side.extra or r.version == side.name)), None)


def canary_verdict(
    con: duckdb.DuckDBPyConnection,
    model: str,
    window: Window,
    policy: CanarySettings,
    min_quality_samples: int,
    canary_model: str | None = None,
    fallback_gpu_hour_usd: Decimal | None = None,
) -> CanaryReport:
    stable, canary = sides(con, model, window, canary_model)
    span = Span(window.end, int((window.end - window.start).total_seconds()))
    report = CanaryReport(model, window, stable.name, canary.name)
    acc = [_accuracy(con, s.model, span, s.extra) for s in (stable, canary)]
    drop = None if acc[0][0] is None or acc[1][0] is None or not acc[0][0] else (acc[0][0] - acc[1][0]) / acc[0][0]
    check = Check("accuracy", acc[0][0], acc[1][0], drop, policy.accuracy_drop)
    if drop is not None:
        check.p_value = one_sided_p(acc[0][0] or 0.0, acc[0][1], acc[1][0] or 0.0, acc[1][1])
        enough = min(acc[0][1], acc[1][1]) >= min_quality_samples
        check.note = "" if enough else f"fewer than {min_quality_samples} scored predictions"
        check.triggered = enough and drop > policy.accuracy_drop and _below(check.p_value, policy.p_value)
    report.checks.append(check)
    p95 = [_p95(con, s, span, window) for s in (stable, canary)]
    report.checks.append(Check("p95_latency_seconds", p95[0], p95[1], _relative(*p95), policy.latency_rise))
    errors = [_error_rate(con, s, span, window) for s in (stable, canary)]
    check = Check(
        "error_rate", errors[0][0], errors[1][0], _relative(errors[0][0], errors[1][0]), policy.error_rate_rise
    )
    if check.change is not None:
        check.p_value = one_sided_p(1 - (errors[0][0] or 0.0), errors[0][1], 1 - (errors[1][0] or 0.0), errors[1][1])
    report.checks.append(check)
    costs = unit_costs(con, window, Decimal(0), None, ChargebackOptions(fallback_gpu_hour_usd=fallback_gpu_hour_usd))
    per_1k = [_per_1k(_cost(costs, s)) for s in (stable, canary)]
    report.checks.append(Check("cost_per_1k_requests_usd", per_1k[0], per_1k[1], _relative(*per_1k), policy.cost_rise))
    _decide(report, policy, min(errors[0][1], errors[1][1]))
    return report


def _per_1k(row: UnitCost | None) -> float | None:
    return None if row is None or row.per_request_usd is None else row.per_request_usd * 1000


def _decide(report: CanaryReport, policy: CanarySettings, requests: float) -> None:
    for check in report.checks[1:]:
        if check.change is None:
            check.note = check.note or "not exported by both versions"
            continue
        tested = check.metric != "error_rate" or _below(check.p_value, policy.p_value)
        check.triggered = check.change > check.threshold and tested
    for check in report.checks:
        if check.triggered:
            report.reasons.append(f"{check.metric} {_pct(check.change)} vs trigger {_pct(check.threshold)}")
    if report.reasons:
        report.verdict = "ROLLBACK"
    elif requests < policy.min_requests:
        report.verdict = "HOLD"
        report.reasons.append(f"only {requests:.0f} requests on the smaller side (< {policy.min_requests})")
    else:
        report.verdict = "PROMOTE"
        report.reasons.append(f"no trigger fired over {iso(report.window.start)}..{iso(report.window.end)}")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else "+inf" if math.isinf(value) else f"{value:+.1%}"


def _below(p_value: float | None, limit: float) -> bool:
    return p_value is not None and p_value < limit
