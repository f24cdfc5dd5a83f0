"""SLO rules: traffic-weighted SLI recordings and multiwindow, multi-burn-rate alerts.

For each SLO, `slo:gpuledger_sli_error:ratio_rate<w>` records bad / total events over each window the
alerts need and over the SLO's period (a ratio of sums over the whole period, never a mean of short
ratios, so uneven traffic weighs right; `total > 0` makes zero-traffic windows record nothing
instead of 0/0). One alert per window pair (Google SRE Workbook, Sloth's catalog), so the firing pair
is visible in its labels: page 14.4x on 1h/5m and 6x on 6h/30m, ticket 3x on 1d/2h and 1x on 3d/6h,
factors scaled by period / 30 days (28d: 13.44, 5.6, 2.8, 0.933); a 7-day period spends Sloth's 7d shares
(13.44, 3.5, 1.4, 0.98: core/conventions.burn_rate_windows).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from alerts.model import Group, Rule, RuleFile
from analytics.serving.counters import Matcher, Selector
from analytics.serving.sli import SLI, Alerting, SLODef, Term
from analytics.serving.sloth import with_window
from core import conventions as c
from core.timeutil import parse_duration

WINDOW_MARK = "__GPULEDGER_WINDOW__"
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
SEVERITY = {"page": "critical", "ticket": "warning"}


def burn_factor(budget_percent: float, long: str, period_days: float) -> float:
    """The burn rate that spends budget_percent of the period's error budget in `long`."""
    return budget_percent / 100 * period_days * 86400 / parse_duration(long)


@dataclass(frozen=True)
class SLORule:
    """One SLO as PromQL: bad and total event counts with WINDOW_MARK where the window goes."""

    service: str
    slo: str
    objective: float  # percent
    period_days: float
    bad: str
    total: str
    description: str = ""
    # the spec's and the SLO's own labels (Sloth `labels`), on every recording and alert
    spec_labels: tuple[tuple[str, str], ...] = ()
    alerting: Alerting = Alerting()  # Sloth's `alerting`: name, labels, annotations, disabled kinds
    # the SLI's terms as written in `bad` and `total` (none for PromQL the warehouse cannot read): the generated
    # promtool tests synthesise their series (alerts/slo_unittests.py)
    bad_terms: tuple[Term, ...] = ()
    total_terms: tuple[Term, ...] = ()

    @property
    def budget(self) -> float:
        return round(1 - self.objective / 100, 12)

    def ratio(self, window: str) -> str:
        bad, total = self.bad.replace(WINDOW_MARK, window), self.total.replace(WINDOW_MARK, window)
        if not total:  # a raw error ratio, as the spec writes it
            return f"({bad})"
        return f"({bad})\n/\n(({total}) > 0)"

    @property
    def ids(self) -> dict[str, str]:
        """The labels that tell this SLO's series from every other SLO's."""
        return {c.L_SLO_SERVICE: self.service, c.L_SLO_NAME: self.slo}

    @property
    def labels(self) -> dict[str, str]:
        return {**dict(self.spec_labels), **self.ids}

    def selector(self, record: str) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.ids.items()))
        return f"{record}{{{inner}}}"


def ratio_record(window: str) -> str:
    return f"{c.REC_SLO_ERROR_RATIO}{window}"


def _num(value: float) -> str:
    return f"{value:.10f}".rstrip("0").rstrip(".")


def _le_variants(value: str) -> str:
    """Prometheus 3 stores classic-histogram `le` as a float string (`1.0`), Prometheus 2 as exported
    (`1`): match both spellings of the same edge."""
    if value in ("+Inf", "Inf", "inf"):
        return "[+]?Inf"
    number = float(value)
    spellings = {value, repr(number), f"{number:g}"}
    if number == int(number):
        spellings.add(str(int(number)))
    return "|".join(re.escape(x) for x in sorted(spellings))


def _portable(term: Term) -> Term:
    matchers = tuple(
        Matcher(m.label, "=~", _le_variants(m.value)) if m.label == c.L_LE and m.op == "=" else m
        for m in term.selector.matchers
    )
    return replace(term, selector=Selector(term.selector.metric, matchers))


def from_def(d: SLODef) -> SLORule:
    """An SLO as the analytics resolved it (settings or Sloth), as PromQL with the window to fill in."""
    sli = replace(d.sli, bad=tuple(map(_portable, d.sli.bad)), total=tuple(map(_portable, d.sli.total)))
    if d.rules_only is not None or not sli.counts_events:
        # PromQL the warehouse cannot read, or a gauge SLI: the spec's own, as Sloth writes it; the generated
        # promtool tests synthesise counters only, so a gauge SLI has none
        bad, total = (with_window(q, WINDOW_MARK) for q in (*d.promql, "")[:2])
        sli = replace(sli, bad=(), total=())
    else:
        bad, total = SLI.promql(sli, WINDOW_MARK)
    labels = tuple(sorted(d.labels.items()))
    return SLORule(d.service, d.name, d.objective, d.window_s / 86400, bad, total, d.sli.description, labels,
                   d.alerting, sli.bad, sli.total)  # fmt: skip


def _period(days: float) -> str:
    return f"{days:g}d" if days == int(days) else f"{round(days * 24)}h"


def recordings(s: SLORule) -> Group:
    period = _period(s.period_days)
    rules = [Rule(record=ratio_record(w), expr=s.ratio(w), labels=s.labels) for w in (*WINDOWS, period)]
    rules.append(Rule(record=c.REC_SLO_OBJECTIVE, expr=f"vector({_num(s.objective / 100)})", labels=s.labels))
    rules.append(
        Rule(
            record=c.REC_SLO_BUDGET_REMAINING,
            expr=f"1 - {s.selector(ratio_record(period))} / {_num(s.budget)}",
            labels=s.labels,
        )
    )
    return Group(f"{c.RULE_GROUP_PREFIX}-slo-{s.service}-{s.slo}-sli", tuple(rules))


def pair_thresholds(s: SLORule) -> dict[str, str]:
    """Each window pair's alert threshold (burn factor x budget), by its long window, as its alert writes it."""
    period_s = round(s.period_days * 86400)
    return {
        long: _num(burn_factor(pct, long, s.period_days) * s.budget)
        for long, _, pct, _ in c.burn_rate_windows(period_s)
    }


def alerts(s: SLORule, severities: dict[str, str] = SEVERITY) -> Group | None:
    """The SLO's burn-rate alerts, one per window pair, less the kinds its spec disables (None: all of them)."""
    out, thresholds = [], pair_thresholds(s)
    for long, short, budget_percent, kind in c.burn_rate_windows(round(s.period_days * 86400)):
        meta = s.alerting.of(kind)
        if meta.disable:
            continue
        factor = burn_factor(budget_percent, long, s.period_days)
        threshold = thresholds[long]
        # the spec's alert labels may restate the severity; burn, long and short stay gpuledger's: they tell the
        # four alerts of an SLO apart
        labels = {**s.labels, "severity": severities[kind], **dict(s.alerting.labels), **dict(meta.labels)}
        out.append(
            Rule(
                alert=s.alerting.alert_name,
                expr=f"{s.selector(ratio_record(long))} > {threshold}\nand\n{s.selector(ratio_record(short))} > {threshold}",
                labels={**labels, "burn": kind, "long": long, "short": short},
                annotations={**_annotations(s, factor, (long, short), budget_percent, kind),
                             **dict(s.alerting.annotations), **dict(meta.annotations)},
            )
        )  # fmt: skip
    return Group(f"{c.RULE_GROUP_PREFIX}-slo-{s.service}-{s.slo}-alerts", tuple(out)) if out else None


def _annotations(s: SLORule, factor: float, pair: tuple[str, str], budget_percent: float, kind: str) -> dict[str, str]:
    long, short = pair
    return {
        "summary": f"{s.service} {s.slo} SLO is burning its error budget {factor:.4g}x too fast ({long}/{short})",
        "description": (
            f"Bad events over {long} and {short} exceed {factor:.4g}x the error budget of a {s.objective:g}% "
            f"objective over {_period(s.period_days)} ({kind}: {budget_percent:g}% of the budget gone in {long}; at "
            f"this rate all of it in {s.period_days / factor:.1f} days). Check `gpuledger report slo`, recent "
            "rollouts and the canary verdict."
        ),
        "runbook_url": f"{c.RUNBOOK_BASE_URL}#slos",
    }


def slo_file(slos: list[SLORule], namespace: str, severities: dict[str, str] = SEVERITY) -> RuleFile:
    groups: list[Group] = []
    for s in sorted(slos, key=lambda x: (x.service, x.slo)):
        groups.append(recordings(s))
        burn = alerts(s, severities)
        if burn is not None:
            groups.append(burn)
    return RuleFile(f"{c.RULE_GROUP_PREFIX}-slo", namespace, tuple(groups))
