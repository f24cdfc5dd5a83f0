"""SLO rules: traffic-weighted SLI recordings and multiwindow, multi-burn-rate alerts.

For each SLO, `slo:gpuledger_sli_error:ratio_rate<w>` records bad / total events over each window the
alerts need and over the SLO's period (a ratio of sums over the whole period, never a mean of short
ratios, so uneven traffic weighs right; `total > 0` makes zero-traffic windows record nothing
instead of 0/0). One alert per window pair (Google SRE Workbook, Sloth's catalog), so the firing pair
is visible in its labels: page 14.4x on 1h/5m and 6x on 6h/30m, ticket 3x on 1d/2h and 1x on 3d/6h,
factors scaled by period / 30 days (28d: 13.44, 5.6, 2.8, 0.933).
"""

from __future__ import annotations

from dataclasses import dataclass

from alerts.model import Group, Rule, RuleFile
from core import conventions as c

WINDOW_MARK = "__GPULEDGER_WINDOW__"
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
PAIRS = (  # long, short, factor at 30 days, kind, severity
    ("1h", "5m", 14.4, "page", "critical"),
    ("6h", "30m", 6.0, "page", "critical"),
    ("1d", "2h", 3.0, "ticket", "warning"),
    ("3d", "6h", 1.0, "ticket", "warning"),
)


@dataclass(frozen=True)
class SLORule:
    """One SLO as PromQL: bad and total event counts with WINDOW_MARK where the window goes."""

    service: str
    slo: str
    objective: float  # percent
    period_days: int
    bad: str
    total: str
    description: str = ""

    @property
    def budget(self) -> float:
        return round(1 - self.objective / 100, 12)

    def ratio(self, window: str) -> str:
        bad, total = self.bad.replace(WINDOW_MARK, window), self.total.replace(WINDOW_MARK, window)
        return f"({bad})\n/\n(({total}) > 0)"

    @property
    def labels(self) -> dict[str, str]:
        return {c.L_SLO_SERVICE: self.service, c.L_SLO_NAME: self.slo}

    def selector(self, record: str) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{record}{{{inner}}}"


def ratio_record(window: str) -> str:
    return f"{c.REC_SLO_ERROR_RATIO}{window}"


def _num(value: float) -> str:
    return f"{value:.10f}".rstrip("0").rstrip(".")


def recordings(s: SLORule) -> Group:
    period = f"{s.period_days}d"
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


def alerts(s: SLORule) -> Group:
    out = []
    for long, short, factor, kind, severity in PAIRS:
        threshold = _num(factor * s.period_days / 30 * s.budget)
        out.append(
            Rule(
                alert=c.ALERT_SLO_BURN,
                expr=f"{s.selector(ratio_record(long))} > {threshold}\nand\n{s.selector(ratio_record(short))} > {threshold}",
                labels={"severity": severity, "burn": kind, "long": long, "short": short},
                annotations={
                    "summary": f"{s.service} {s.slo} SLO is burning its error budget {factor:g}x too fast ({long}/{short})",
                    "description": (
                        f"Bad events over {long} and {short} exceed {factor * s.period_days / 30:g}x the error budget of a "
                        f"{s.objective:g}% objective over {s.period_days}d ({kind}: at this rate the budget is gone in "
                        f"{s.period_days / (factor * s.period_days / 30):.1f} days). Check `gpuledger report slo`, recent "
                        "rollouts and the canary verdict."
                    ),
                    "runbook_url": f"{c.RUNBOOK_BASE_URL}#slos",
                },
            )
        )
    return Group(f"{c.RULE_GROUP_PREFIX}-slo-{s.service}-{s.slo}-alerts", tuple(out))


def slo_file(slos: list[SLORule], namespace: str) -> RuleFile:
    groups: list[Group] = []
    for s in sorted(slos, key=lambda x: (x.service, x.slo)):
        groups += [recordings(s), alerts(s)]
    return RuleFile(f"{c.RULE_GROUP_PREFIX}-slo", namespace, tuple(groups))
