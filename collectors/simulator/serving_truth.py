"""Expected serving results of the simulated fleet, from the simulator's own parameters and counts.

Nothing here reads the written files or calls gpuledger's analytics: SLIs are sums of the per-interval
counts inference.py generated, drift verdicts follow from the generation parameters (PSI of the
parameter distributions on reference-decile bins, computed in closed form), canary error ratios
from the HTTP counts.

Which requests a day's SLI counts: a counter can only show what happened between two scrapes, so a
day window (D, D+1d] counts the increments between consecutive scrapes that both fall inside it
(the interval straddling midnight belongs to neither day). That is what `increase()` sees.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any

import numpy as np

from collectors.simulator import inference as inf
from core.timeutil import iso

SCRAPE_OFFSET_S = 7  # generate.SCRAPE_OFFSET_S (not imported: generate imports this module)

# The SLOs the simulated services are declared with (tests and the demo write them into settings).
SERVICES = {
    "llm-infer": {"model": inf.PROFILES["llm-infer"].model, "namespace": "team-nlp"},
    "embed-infer": {"model": inf.PROFILES["embed-infer"].model, "namespace": "team-nlp"},
}
SLOS = [
    {"service": "llm-infer", "name": "e2e-latency", "sli": "latency", "threshold_seconds": 5.0, "objective": 97.0},
    {"service": "llm-infer", "name": "ttft", "sli": "ttft", "threshold_seconds": 0.5, "objective": 99.0},
    {"service": "llm-infer", "name": "errors", "sli": "error_ratio", "objective": 98.0},
    {"service": "embed-infer", "name": "e2e-latency", "sli": "latency", "threshold_seconds": 1.5, "objective": 99.5},
    {"service": "embed-infer", "name": "errors", "sli": "error_ratio", "objective": 99.5},
]
PSI_BANDS = (0.1, 0.25)
ACCURACY_DEGRADATION = 0.05


def compute(start: datetime, interval_s: int, families: inf.InferenceFamilies) -> dict[str, object]:
    n_days = max(int(t.days.max()) for t in families.traffic) if families.traffic else 0
    days = [iso(start + timedelta(days=d))[:10] for d in range(n_days)]
    return {
        "services": {name: {**spec, "versions": _versions(families, name)} for name, spec in sorted(SERVICES.items())},
        "stable_version": inf.STABLE,
        "canary_version": inf.CANARY,
        "reference_day": days[0] if days else None,
        "slos": [_slo_truth(slo, families, days, interval_s) for slo in SLOS],
        "drift": {app: _drift_truth(app, days) for app in sorted(SERVICES)},
        "canary": {inf.CANARY_APP: _canary_truth(families, days, interval_s)},
        "traffic_by_day": _traffic_truth(families, days, interval_s),
    }


def _traffic_truth(families: inf.InferenceFamilies, days: list[str], interval_s: int) -> dict[str, Any]:
    """Requests finished by the engine and tokens, per model version and day (in-day increments)."""
    out: dict[str, dict[str, dict[str, dict[str, int]]]] = {}
    for t in families.traffic:
        per_version = out.setdefault(inf.PROFILES[t.pod.app].model, {}).setdefault(t.version, {})
        for d, day in enumerate(days, 1):
            mask = _in_day_increments(t, d, interval_s)
            acc = per_version.setdefault(day, {"requests": 0, "prompt_tokens": 0, "generation_tokens": 0})
            acc["requests"] += int(t.n[mask].sum())
            acc["prompt_tokens"] += int(t.histogram_sum("prompt")[mask].sum())
            acc["generation_tokens"] += int(t.histogram_sum("generation")[mask].sum())
    return out


def _versions(families: inf.InferenceFamilies, app: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in families.traffic:
        if t.pod.app == app:
            out.setdefault(t.version, []).append(t.pod.name)
    return out


def _in_day_increments(t: inf.PodTraffic, day: int, interval_s: int) -> np.ndarray:
    """Mask of intervals whose closing and opening scrapes both fall in (D, D + 1d]."""
    times = t.idx * interval_s + SCRAPE_OFFSET_S
    inside = (times > (day - 1) * 86400) & (times <= day * 86400)
    return inside & np.concatenate([[False], inside[:-1]])  # serving pods run without gaps


def _good_total(slo: dict, t: inf.PodTraffic) -> tuple[np.ndarray, np.ndarray]:
    if slo["sli"] == "error_ratio":
        bad = t.share("server_error_rate")
        total = t.n + t.share("client_error_rate") + bad
        return total - bad, total
    kind = "e2e" if slo["sli"] == "latency" else "ttft"
    edges = inf.edges_of(kind, inf.PROFILES[t.pod.app])
    return t.bucket_counts(kind)[:, edges.index(slo["threshold_seconds"])], t.n


def _slo_truth(slo: dict, families: inf.InferenceFamilies, days: list[str], interval_s: int) -> dict[str, object]:
    by_day: dict[str, float | None] = {}
    good_all = total_all = 0
    for d, day in enumerate(days, 1):
        good = total = 0
        for t in families.traffic:
            if t.pod.app != slo["service"]:
                continue
            g, n = _good_total(slo, t)
            mask = _in_day_increments(t, d, interval_s)
            good, total = good + int(g[mask].sum()), total + int(n[mask].sum())
        by_day[day] = good / total if total else None
        good_all, total_all = good_all + good, total_all + total
    return {
        **slo,
        "sli_by_day": by_day,
        "met_by_day": {day: (v is not None and v >= slo["objective"] / 100) for day, v in by_day.items()},
        "good_by_window": good_all,
        "total_by_window": total_all,
    }


def expected_psi(ref: tuple[float, float], cur: tuple[float, float], bins: int = 10) -> float:
    """PSI of two lognormals on the reference's quantile bins, in closed form."""
    unit = NormalDist()
    mu0, s0 = math.log(ref[0]), ref[1]
    mu1, s1 = math.log(cur[0]), cur[1]
    cuts = [-math.inf] + [mu0 + s0 * unit.inv_cdf(i / bins) for i in range(1, bins)] + [math.inf]
    psi = 0.0
    for lo, hi in zip(cuts, cuts[1:], strict=False):
        c = unit.cdf((hi - mu1) / s1) - unit.cdf((lo - mu1) / s1)
        psi += (c - 1 / bins) * math.log(c * bins)
    return psi


def _band(psi: float) -> str:
    return "major" if psi >= PSI_BANDS[1] else "moderate" if psi >= PSI_BANDS[0] else "stable"


def _drift_truth(app: str, days: list[str]) -> dict[str, dict[str, object]]:
    ref_stable = inf.profile(app, inf.STABLE, 1)
    out: dict[str, dict[str, object]] = {"prompt_tokens": {}, "e2e_latency": {}, "finish_reason": {}, "accuracy": {}}
    ref_acc = _mean_accuracy(app, 1)
    for d, day in enumerate(days[1:], 2):
        p = inf.profile(app, inf.STABLE, d)
        out["prompt_tokens"][day] = _band(expected_psi(ref_stable.prompt, p.prompt))
        out["e2e_latency"][day] = _band(expected_psi(ref_stable.e2e, p.e2e))
        same_mix = (p.length_share, p.abort_share) == (ref_stable.length_share, ref_stable.abort_share)
        out["finish_reason"][day] = "stable" if same_mix else "drift"
        degradation = (ref_acc - _mean_accuracy(app, d)) / ref_acc
        out["accuracy"][day] = "degraded" if degradation > ACCURACY_DEGRADATION else "stable"
    return out


def _mean_accuracy(app: str, day: int) -> float:
    # Every pod scores the same number of predictions, so the service's accuracy is the pods' mean.
    pods = [inf.STABLE, inf.CANARY] if app == inf.CANARY_APP else [inf.STABLE, inf.STABLE]
    return sum(inf.profile(app, v, day).accuracy for v in pods) / len(pods)


def _canary_truth(families: inf.InferenceFamilies, days: list[str], interval_s: int) -> dict[str, object]:
    """HTTP 5xx ratio per version and day, and the verdict the error-rate trigger (> +200%) gives."""
    by_day: dict[str, dict[str, float]] = {}
    for d, day in enumerate(days, 1):
        counts: dict[str, list[int]] = {}
        for t in families.traffic:
            if t.pod.app != inf.CANARY_APP:
                continue
            bad = t.share("server_error_rate")
            total = t.n + t.share("client_error_rate") + bad
            mask = _in_day_increments(t, d, interval_s)
            acc = counts.setdefault(t.version, [0, 0])
            acc[0] += int(bad[mask].sum())
            acc[1] += int(total[mask].sum())
        by_day[day] = {v: bad / total for v, (bad, total) in sorted(counts.items()) if total}
    rises = [(r[inf.CANARY] - r[inf.STABLE]) / r[inf.STABLE] for r in by_day.values() if len(r) == 2]
    rollback = bool(rises) and min(rises) > 2.0
    return {
        "error_ratio_by_day": by_day,
        "verdict": "ROLLBACK" if rollback else "PROMOTE",
        "triggers": ["error_rate"] if rollback else [],
    }
