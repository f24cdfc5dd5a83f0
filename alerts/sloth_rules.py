"""SLO rules as Sloth writes them (`rules import-sloth --naming sloth`), so Sloth's Grafana dashboards and any
query written against Sloth's series work unchanged.

Rule for rule what `sloth generate` writes for the same spec and period (its recording_rules.go and
alert_rules.go): per SLO a group of SLI recordings `slo:sli_error:ratio_rate<window>` (the spec's own PromQL with
`{{.window}}` filled in, the period's as the mean of the 5-minute ratios), a group of metadata recordings
(objective, error budget, period, current and period burn rate, budget remaining, `sloth_slo_info`) and a group
with one page and one ticket alert, each OR-ing its two window pairs. Labels `sloth_id`, `sloth_service`,
`sloth_slo`, `sloth_window`, `sloth_severity`; windows written as Prometheus writes durations (28d is `4w`);
the layout of Sloth's current output (its alerts `max(...) without (sloth_window)`, its period rule fully labelled);
numbers as Go prints a float64 (14.4, 0.0009999999999999432), computed in the same order, so they are the
same doubles. gpuledger's own naming stays the default: its period SLI is traffic-weighted (a ratio of sums,
not Sloth's mean of 5-minute ratios) and a window without traffic records nothing instead of NaN.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from alerts.model import Group, Rule, RuleFile
from analytics.serving.sli import AlertMeta, SLODef
from analytics.serving.sloth import with_window
from core import conventions as c
from core.timeutil import parse_duration

SEVERITIES = ("page", "ticket")
_UNITS = (("y", 365 * 86400, True), ("w", 7 * 86400, True), ("d", 86400, False), ("h", 3600, False),
          ("m", 60, False), ("s", 1, False))  # fmt: skip


def prom_duration(seconds: int) -> str:
    """A duration as Prometheus writes it (model.Duration.String): years and weeks only when exact."""
    if seconds == 0:
        return "0s"
    out, left = "", seconds
    for unit, size, exact in _UNITS:
        if exact and left % size:
            continue
        if left >= size:
            out += f"{left // size}{unit}"
            left %= size
    return out


def go_float(value: float) -> str:
    """A float64 as Go's %v and %g print it: the shortest digits that read back the same double."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _filter(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


class _SLO:
    """One SLO's names as Sloth derives them."""

    def __init__(self, d: SLODef) -> None:
        self.d = d
        self.ids = {"sloth_id": f"{d.service}-{d.name}", "sloth_service": d.service, "sloth_slo": d.name}
        self.labels = {**self.ids, **d.labels}
        self.filter = _filter(self.ids)
        self.period = prom_duration(d.window_s)
        self.windows = c.burn_rate_windows(d.window_s)

    def metric(self, window: str) -> str:
        return f"slo:sli_error:ratio_rate{window}"


def _sli_rules(s: _SLO) -> tuple[Rule, ...]:
    seconds = {prom_duration(parse_duration(w)): parse_duration(w) for pair in s.windows for w in pair[:2]}
    rules = []
    for window in sorted(seconds, key=seconds.__getitem__):
        queries = [with_window(q, window) for q in s.d.promql]
        expr = f"({queries[0]})\n/\n({queries[1]})\n" if len(queries) == 2 else f"({queries[0]})"
        rules.append(Rule(record=s.metric(window), expr=expr, labels={**s.labels, "sloth_window": window}))
    short = s.metric(s.windows[0][1])
    period = f"""sum_over_time({short}{s.filter}[{s.period}])
/ ignoring (sloth_window)
count_over_time({short}{s.filter}[{s.period}])
"""
    rules.append(Rule(record=s.metric(s.period), expr=period, labels={**s.labels, "sloth_window": s.period}))
    return tuple(rules)


def _burn_rate(s: _SLO, window: str) -> str:
    return f"""{s.metric(window)}{s.filter}
/ on(sloth_id, sloth_slo, sloth_service) group_left
slo:error_budget:ratio{s.filter}
"""


def _meta_rules(s: _SLO, spec_version: str, version: str) -> tuple[Rule, ...]:
    objective = s.d.objective / 100
    info = {"sloth_version": version, "sloth_mode": "cli-gen-prom", "sloth_spec": spec_version,
            "sloth_objective": go_float(s.d.objective)}  # fmt: skip
    return tuple(
        Rule(record=record, expr=expr, labels=labels)
        for record, expr, labels in (
            ("slo:objective:ratio", f"vector({go_float(objective)})", s.labels),
            ("slo:error_budget:ratio", f"vector(1-{go_float(objective)})", s.labels),
            ("slo:time_period:days", f"vector({go_float(s.d.window_s / 86400)})", s.labels),
            ("slo:current_burn_rate:ratio", _burn_rate(s, s.windows[0][1]), s.labels),
            ("slo:period_burn_rate:ratio", _burn_rate(s, s.period), s.labels),
            ("slo:period_error_budget_remaining:ratio", f"1 - slo:period_burn_rate:ratio{s.filter}", s.labels),
            ("sloth_slo_info", "vector(1)", {**s.labels, **info}),
        )
    )


def _alert(s: _SLO, kind: str, meta: AlertMeta) -> Rule:
    budget = go_float((100 - s.d.objective) / 100)
    quick, slow = [w for w in s.windows if w[3] == kind]
    parts = []
    for long, short, percent, _ in (quick, slow):
        factor = go_float(percent * (s.d.window_s / 3600) / 100 / (parse_duration(long) / 3600))
        parts.append(
            f"    max({s.metric(short)}{s.filter} > ({factor} * {budget})) without (sloth_window)\n"
            "    and\n"
            f"    max({s.metric(long)}{s.filter} > ({factor} * {budget})) without (sloth_window)\n"
        )
    expr = "(\n" + parts[0] + ")\nor\n(\n" + parts[1] + ")\n"
    a = s.d.alerting
    names = "{{$labels.sloth_service}} {{$labels.sloth_slo}}"
    annotations = {
        "title": f"({kind}) {names} SLO error budget burn rate is too fast.",
        "summary": f"{names} SLO error budget burn rate is over expected.",
    }
    return Rule(
        alert=a.alert_name,
        expr=expr,
        labels={"sloth_severity": kind, **dict(a.labels), **dict(meta.labels)},
        annotations={**annotations, **dict(a.annotations), **dict(meta.annotations)},
    )


def sloth_file(defs: list[SLODef], namespace: str, spec_version: str = "prometheus/v1") -> RuleFile:
    """Every SLO of a spec as Sloth's three groups each (an SLO whose alerts are both disabled has two)."""
    version = f"gpuledger-{_version()}"
    groups: list[Group] = []
    for d in defs:
        s = _SLO(d)
        slo_id = s.ids["sloth_id"]
        groups.append(Group(f"sloth-slo-sli-recordings-{slo_id}", _sli_rules(s)))
        groups.append(Group(f"sloth-slo-meta-recordings-{slo_id}", _meta_rules(s, spec_version, version)))
        alerts = tuple(_alert(s, k, d.alerting.of(k)) for k in SEVERITIES if not d.alerting.of(k).disable)
        if alerts:
            groups.append(Group(f"sloth-slo-alerts-{slo_id}", alerts))
    return RuleFile(f"{c.RULE_GROUP_PREFIX}-slo", namespace, tuple(groups))


def _version() -> str:
    try:
        return version("gpuledger")
    except PackageNotFoundError:
        return "dev"
