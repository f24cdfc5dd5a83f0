"""SLOs computed in the warehouse: SLI over the period, error budget remaining, multiwindow burn
rates and daily attainment, all at an explicit `now`.

Every number is a ratio of summed counter increases (analytics/serving/counters.py), so each equals the
PromQL a Prometheus would evaluate at `now` on the same samples:
- SLI(W)              = 1 - bad(W) / total(W)
- burn rate(W)        = (bad(W) / total(W)) / (1 - objective)
- budget remaining    = 1 - burn rate(period)   (Sloth's slo:period_error_budget_remaining:ratio)
with bad(W) = sum(increase(<bad selectors>[W])) and total(W) likewise.

Zero traffic: a window without requests has no SLI and no burn rate (None, shown as "no traffic"),
never 0% or NaN, and it adds nothing to the period: the period SLI is one ratio of sums, so idle
hours neither spend nor earn budget. A day without traffic is left out of the attainment count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from analytics.serving.counters import Reading, Selector, Span, read_sums
from analytics.serving.sli import SLI, SLODef, Term, check_edges, resolve
from analytics.serving.sloth import slos_from_documents, unique
from core import conventions as c
from core.settings import ServingSettings
from core.timeutil import Window, iso, parse_duration


@dataclass
class Burn:
    long: str
    short: str
    severity: str
    factor: float
    long_rate: float | None
    short_rate: float | None

    @property
    def firing(self) -> bool:
        """Both windows burn faster than the factor (the multiwindow alert condition)."""
        return bool(
            self.long_rate is not None
            and self.short_rate is not None
            and self.long_rate > self.factor
            and self.short_rate > self.factor
        )


@dataclass
class Day:
    day: str
    good: float | None
    total: float | None
    sli: float | None
    met: bool | None  # None: no traffic that day
    budget_remaining: float | None  # cumulative from the period start to the end of the day


@dataclass
class SLOReport:
    slo: SLODef
    now: datetime
    good: float | None
    total: float | None
    sli: float | None
    budget_remaining: float | None
    burn: list[Burn] = field(default_factory=list)
    history: list[Day] = field(default_factory=list)

    @property
    def window(self) -> str:
        return _duration_text(self.slo.window_s)

    def as_dict(self) -> dict[str, Any]:
        bad, total = self.slo.sli.promql(self.window)
        return {
            "service": self.slo.service,
            "slo": self.slo.name,
            "sli": self.slo.kind,
            "indicator": self.slo.sli.description,
            "objective": self.slo.objective,
            "window": self.window,
            "at": iso(self.now),
            "source": self.slo.source,
            "good_events": self.good,
            "total_events": self.total,
            "sli_value": self.sli,
            "error_budget_remaining": self.budget_remaining,
            "burn_rates": [{**b.__dict__, "firing": b.firing} for b in self.burn],
            "days_met": sum(1 for d in self.history if d.met),
            "days_with_traffic": sum(1 for d in self.history if d.met is not None),
            "history": [d.__dict__ for d in self.history],
            "promql": {"bad": bad, "total": total},
        }


def _duration_text(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _events(
    con: duckdb.DuckDBPyConnection,
    terms: tuple[Term, ...],
    spans: list[Span],
    known: dict[tuple[Selector, Reading], list[float | None]],
) -> list[float | None]:
    """Signed sum of the terms' readings (summed increases for events) per span; None when the first term has no
    data. `known`: readings already made, added to (a latency SLI's bad and total events both read the request
    count)."""
    for t in terms:
        if (t.selector, t.reading) not in known:
            known[t.selector, t.reading] = read_sums(con, t.selector, t.reading, spans)
    values = [known[t.selector, t.reading] for t in terms]
    out: list[float | None] = []
    for i in range(len(spans)):
        first = values[0][i]
        if first is None:
            out.append(None)
            continue
        acc = first if terms[0].sign > 0 else -first
        for t, v in zip(terms[1:], values[1:], strict=True):
            term = v[i]
            if term is not None:  # PromQL order: ((a - b) - c), left to right
                acc = acc + term if t.sign > 0 else acc - term
        out.append(acc)
    return out


def bad_ratios(
    con: duckdb.DuckDBPyConnection, sli: SLI, spans: list[Span]
) -> list[tuple[float | None, float | None, float | None]]:
    """(bad, total, bad / total) per span; the ratio is None without traffic. A missing bad series
    with traffic present counts as zero bad events. A raw ratio of gauges (no total) is its own value."""
    known: dict[tuple[Selector, Reading], list[float | None]] = {}
    bad = _events(con, sli.bad, spans, known)
    if not sli.total:
        return [(None, None, None) if b is None else (sli.offset + b, 1.0, sli.offset + b) for b in bad]
    total = _events(con, sli.total, spans, known)
    out: list[tuple[float | None, float | None, float | None]] = []
    for b, t in zip(bad, total, strict=True):
        if t is None or t == 0:
            out.append((b, t, None))
        else:
            b = 0.0 if b is None else b
            out.append((b, t, b / t))
    return out


def _history_spans(now: datetime, window_s: int) -> tuple[list[Span], list[Span], list[str]]:
    """Whole UTC days inside the period: each day (D, D+1d], and (period start, D+1d]."""
    period_start = now - timedelta(seconds=window_s)
    first = datetime.combine(period_start.date(), datetime.min.time())
    if first < period_start:
        first += timedelta(days=1)
    days, cumulative, names = [], [], []
    day = first
    while day + timedelta(days=1) <= now:
        end = day + timedelta(days=1)
        days.append(Span(end, 86400))
        cumulative.append(Span(end, int((end - period_start).total_seconds())))
        names.append(iso(day)[:10])
        day = end
    return days, cumulative, names


def evaluate(con: duckdb.DuckDBPyConnection, slo: SLODef, now: datetime) -> SLOReport:
    """The SLO at `now`: period SLI and budget, burn rates of every window pair, daily history."""
    budget = 1 - slo.objective / 100
    windows = c.burn_rate_windows(slo.window_s)
    pairs = [(parse_duration(long), parse_duration(short)) for long, short, _, _ in windows]
    days, cumulative, names = _history_spans(now, slo.window_s)
    spans = [Span(now, slo.window_s)] + [Span(now, s) for pair in pairs for s in pair] + days + cumulative
    ratios = bad_ratios(con, slo.sli, spans)
    bad, total, ratio = ratios[0]
    report = SLOReport(
        slo, now, None if total is None or bad is None else total - bad, total,
        None if ratio is None else 1 - ratio, None if ratio is None else 1 - burn_rate(ratio, budget),
    )  # fmt: skip
    for k, (long, short, percent, severity) in enumerate(windows):
        factor = percent / 100 * slo.window_s / pairs[k][0]
        long_ratio, short_ratio = ratios[1 + 2 * k][2], ratios[2 + 2 * k][2]
        report.burn.append(Burn(long, short, severity, factor, _burn(long_ratio, budget), _burn(short_ratio, budget)))
    offset = 1 + 2 * len(pairs)
    for i, name in enumerate(names):
        b, t, r = ratios[offset + i]
        cum = ratios[offset + len(names) + i][2]
        report.history.append(
            Day(
                name, None if t is None or b is None else t - b, t, None if r is None else 1 - r,
                None if r is None else 1 - r >= slo.objective / 100, None if cum is None else 1 - burn_rate(cum, budget),
            )
        )  # fmt: skip
    return report


def _burn(ratio: float | None, budget: float) -> float | None:
    return None if ratio is None else burn_rate(ratio, budget)


def burn_rate(ratio: float, budget: float) -> float:
    """Bad share over the budget; a 100% objective (no budget) burns infinitely fast at its first bad event, as
    PromQL's x / 0 does."""
    if budget == 0:
        return math.inf if ratio > 0 else 0.0
    return ratio / budget


def build_slos(
    con: duckdb.DuckDBPyConnection,
    serving: ServingSettings,
    specs: list[tuple[str, dict[str, Any]]],
    now: datetime,
    rules_only: bool = False,
) -> list[SLODef]:
    """Every declared SLO: settings (per service) first, then each Sloth spec's, checked against the data.
    Sloth SLOs whose PromQL the warehouse cannot read are left out, unless `rules_only` (the rules take them)."""
    out: list[SLODef] = []
    for service, svc in serving.services.items():
        for declared in svc.slos:
            out.append(resolve(con, service, svc, declared, now, parse_duration(declared.window)))
    window_s = parse_duration(serving.sloth_window)
    out += slos_from_documents(specs, window_s)
    # twice in the settings or twice in the specs is a mistake; the same SLO in both is a comparison (rules, which
    # would repeat its group, refuse it: app/publish/slo_rules.declared)
    unique([d for d in out if d.source == "settings"])
    unique([d for d in out if d.source != "settings"])
    out = [d for d in out if rules_only or d.rules_only is None]
    for slo in out:
        if slo.rules_only is None:
            check_edges(con, slo, Window(now - timedelta(seconds=slo.window_s), now))
    return out
