"""Drift of a served model's traffic and quality, reference window vs current window, from the
histograms and counters the servers already export (no request payloads needed).

- Numeric traffic signals (prompt and generation length, end-to-end latency, TTFT, inter-token
  latency): per-bucket request counts in each window = increase() of every `_bucket` series summed
  per `le`, de-cumulated. Edges are the ones both windows share (a server upgrade that changed the
  buckets re-bins both sides onto the common edges).
- Finish reasons: requests per `finished_reason` (chi-square and Jensen-Shannon).
- Accuracy: the exported quality gauge (model_accuracy_ratio), averaged per pod over the window and
  weighted by the predictions each pod scored (model_accuracy_evaluations_total). Relative
  degradation = (reference - current) / reference; judged only when both windows scored at least
  `min_samples` predictions, and flagged when it exceeds the threshold and a one-sided
  two-proportion z-test agrees (p below `p_value`).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from analytics.serving.counters import Matcher, Selector, Span, gauge_means, series_increases
from analytics.serving.drift import DriftPolicy, FeatureDrift, _stats, counts_drift, histogram_drift, insufficient
from analytics.serving.sli import has_data
from core import conventions as c
from core.timeutil import Window

NUMERIC_SIGNALS = (c.SIG_PROMPT_LEN, c.SIG_GEN_LEN, c.SIG_E2E, c.SIG_TTFT, c.SIG_ITL)


def _span(window: Window) -> Span:
    return Span(window.end, int((window.end - window.start).total_seconds()))


def _matchers(model: str, extra: tuple[Matcher, ...]) -> tuple[Matcher, ...]:
    return (Matcher("model_name", "=", model), *extra)


def _bucket_counts(con: duckdb.DuckDBPyConnection, bucket: Selector, spans: list[Span]) -> list[dict[float, float]]:
    """Cumulative count per `le` edge in each span."""
    per_span = series_increases(con, bucket, spans)
    out = []
    for i in range(len(spans)):
        by_le: dict[float, float] = defaultdict(float)
        for key, value in per_span.get(i, {}).items():
            by_le[float(str(key[5]))] += value
        out.append(dict(by_le))
    return out


def _common(ref: dict[float, float], cur: dict[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    edges = np.array(sorted(set(ref) & set(cur)))
    r = np.diff(np.concatenate([[0.0], [ref[e] for e in edges]]))
    k = np.diff(np.concatenate([[0.0], [cur[e] for e in edges]]))
    # Extrapolation may scale neighbouring buckets a hair differently: never a negative count.
    return edges, np.clip(r, 0, None), np.clip(k, 0, None)


def traffic_drift(
    con: duckdb.DuckDBPyConnection,
    model: str,
    reference: Window,
    current: Window,
    policy: DriftPolicy,
    extra: tuple[Matcher, ...] = (),
) -> list[FeatureDrift]:
    """Every traffic signal the model exports, reference vs current."""
    spans = [_span(reference), _span(current)]
    out: list[FeatureDrift] = []
    for signal in NUMERIC_SIGNALS:
        for family, (sig, _) in c.SERVING_HISTOGRAMS.items():
            bucket = Selector(f"{family}_bucket", _matchers(model, extra))
            absent = _absent(con, bucket, reference, current) if sig == signal else "skip"
            if absent == "skip":
                continue
            if absent:
                out.append(insufficient(signal, "numeric", 0.0, 0.0, absent))
                break
            ref, cur = _bucket_counts(con, bucket, spans)
            edges, r, k = _common(ref, cur)
            out.append(
                histogram_drift(signal, edges, r, k, policy)
                if len(edges)
                else insufficient(signal, "numeric", 0.0, 0.0, "the two windows share no bucket edge")
            )
            break
    finished = Selector(c.VLLM_FINISHED, _matchers(model, extra))
    absent = _absent(con, finished, reference, current)
    if absent != "skip":
        out.append(
            insufficient("finish_reason", "categorical", 0.0, 0.0, absent)
            if absent
            else _finish_reasons(con, finished, spans, policy)
        )
    return out


def _absent(con: duckdb.DuckDBPyConnection, sel: Selector, reference: Window, current: Window) -> str | None:
    """ "skip" when neither window holds the series (the model does not export it), the reason when one does not
    (a signal absent on one side is not judged, never "stable"), else None."""
    have = has_data(con, sel, reference), has_data(con, sel, current)
    if not any(have):
        return "skip"
    if all(have):
        return None
    return f"the {'reference' if not have[0] else 'current'} window has no {sel.metric} series"


def _finish_reasons(
    con: duckdb.DuckDBPyConnection, sel: Selector, spans: list[Span], policy: DriftPolicy
) -> FeatureDrift:
    per_span = series_increases(con, sel, spans)
    counts: list[dict[str, float]] = [defaultdict(float), defaultdict(float)]
    for i in (0, 1):
        for key, value in per_span.get(i, {}).items():
            counts[i][json.loads(str(key[6])).get(c.L_FINISHED_REASON, "")] += value
    reasons = sorted(set(counts[0]) | set(counts[1]))
    r = np.array([counts[0].get(x, 0.0) for x in reasons])
    k = np.array([counts[1].get(x, 0.0) for x in reasons])
    return counts_drift("finish_reason", reasons, r, k, policy)


@dataclass
class AccuracyDrift:
    reference: float | None
    current: float | None
    n_reference: float
    n_current: float
    degradation: float | None
    p_value: float | None
    verdict: str  # stable | degraded | insufficient | no data

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _accuracy(
    con: duckdb.DuckDBPyConnection, model: str, span: Span, extra: tuple[Matcher, ...]
) -> tuple[float | None, float]:
    means = gauge_means(con, Selector(c.QUALITY_GAUGE, _matchers(model, extra)), [span]).get(0, {})
    evals = series_increases(con, Selector(c.QUALITY_EVALUATIONS, _matchers(model, extra)), [span]).get(0, {})
    weight_by_pod: dict[tuple[object, ...], float] = defaultdict(float)
    for key, value in evals.items():
        weight_by_pod[(key[0], key[1], key[2], key[6])] += value
    total = weighted = 0.0
    for key, (mean, _) in means.items():
        w = weight_by_pod.get((key[0], key[1], key[2], key[6]), 0.0)
        total, weighted = total + w, weighted + w * mean
    return (weighted / total if total else None), total


def accuracy_drift(
    con: duckdb.DuckDBPyConnection,
    model: str,
    reference: Window,
    current: Window,
    threshold: float,
    min_samples: int,
    p_value: float,
    extra: tuple[Matcher, ...] = (),
) -> AccuracyDrift:
    ref, n_ref = _accuracy(con, model, _span(reference), extra)
    cur, n_cur = _accuracy(con, model, _span(current), extra)
    if ref is None or cur is None:
        return AccuracyDrift(ref, cur, n_ref, n_cur, None, None, "no data")
    degradation = (ref - cur) / ref if ref else None
    p = one_sided_p(ref, n_ref, cur, n_cur)
    if n_ref < min_samples or n_cur < min_samples:
        verdict = "insufficient"
    elif degradation is not None and degradation > threshold and p is not None and p < p_value:
        verdict = "degraded"
    else:
        verdict = "stable"
    return AccuracyDrift(ref, cur, n_ref, n_cur, degradation, p, verdict)


def one_sided_p(p1: float, n1: float, p2: float, n2: float) -> float | None:
    """Two-proportion z-test, H1: the second proportion is lower than the first."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0 if p2 >= p1 else 0.0
    return float(_stats().norm.sf((p1 - p2) / se))
