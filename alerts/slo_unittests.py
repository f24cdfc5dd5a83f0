"""promtool unit tests for SLO rules, generated from each SLO's own selectors (settings SLOs and imported Sloth or
OpenSLO specs alike), so `gpuledger rules test` proves an import's alerts as it proves every other domain's.

For each SLO the series its SLI reads are synthesised: one counter per selector of its bad and total terms, with
label values that satisfy the selector's matchers (a regex's shortest example, a value a negative matcher
refuses), and which series each selector then matches is worked out as Prometheus would. Two rates per series
are found: a healthy mix (no bad events) and a failing one. Blending them gives any error ratio between 0 and the
failing mix's. Two scenarios follow, each from a constant ratio at t=0, when every window holds the same ratio
from the first minute (all counters start together, so `increase()` extrapolates alike):

- a ratio of 1.5 x the lowest alert threshold: exactly the pairs whose threshold lies below it fire at 1m (none
  at 0m, one sample), the others never;
- the healthy mix: nothing fires.

An SLO whose PromQL the warehouse cannot read (rules only), a gauge SLI (its series would need a model of the
gauge, not a counter rate), or one whose bad events cannot be made to vary alone, has no generated test: the reason
is returned so the caller can say it.
"""

from __future__ import annotations

import itertools
import json
import re
from re import _constants as sre_c  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from alerts import slo as slo_rules
from alerts.promtool_series import series
from analytics.serving.counters import Matcher
from analytics.serving.sli import Term

MINUTES = 10


def _example(pattern: str) -> str | None:
    """A short string the regex fully matches (None when the pattern is beyond this walk)."""
    try:
        text = _walk(sre_parse.parse(pattern))
    except (re.error, ValueError, IndexError):
        return None
    return text if text is not None and re.fullmatch(pattern, text) else None


def _walk(items: Any) -> str | None:
    out = ""
    for op, arg in items:
        if op is sre_c.LITERAL:
            out += chr(arg)
        elif op is sre_c.ANY:
            out += "x"
        elif op is sre_c.IN:
            out += _one_of(arg)
        elif op is sre_c.BRANCH:
            part = _walk(arg[1][0])
            if part is None:
                return None
            out += part
        elif op is sre_c.SUBPATTERN:
            part = _walk(arg[-1])
            if part is None:
                return None
            out += part
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
            part = _walk(arg[2])
            if part is None:
                return None
            out += part * arg[0]
        elif op is not sre_c.AT:
            return None
    return out


def _one_of(choices: Any) -> str:
    op, arg = choices[0]
    if op is sre_c.LITERAL:
        return chr(arg)
    if op is sre_c.RANGE:
        return chr(arg[0])
    if op is sre_c.CATEGORY:
        return {sre_c.CATEGORY_DIGIT: "0", sre_c.CATEGORY_SPACE: " "}.get(arg, "a")
    return "~"  # a negated set: a character such sets rarely hold


def _value(m: Matcher) -> str | None:
    """A label value the matcher accepts ("" leaves the label out)."""
    if m.op == "=":
        return m.value
    if m.op == "=~":
        return _example(m.value)
    return next((v for v in ("gpuledger-test", "zz", "") if m.accepts(v)), None)


Series = tuple[str, dict[str, str]]


def _series(terms: tuple[Term, ...]) -> list[Series] | None:
    out: list[Series] = []
    for t in terms:
        labels: dict[str, str] = {}
        for m in t.selector.matchers:
            value = _value(m)
            if value is None:
                return None
            if value:
                labels[m.label] = value
        # with each negative matcher also refused (`code!~"5.."` beside code="5xx"): events the other terms count
        # but this one does not, so a `1 - good/total` ratio can have bad events
        refused = [{**labels, m.label: v} for m in t.selector.matchers if m.op in ("!=", "!~")
                   for v in [m.value if m.op == "!=" else _example(m.value)] if v]  # fmt: skip
        for candidate in (labels, *refused):
            if (t.selector.metric, candidate) not in out:
                out.append((t.selector.metric, candidate))
    return out


def _events(terms: tuple[Term, ...], made: list[Series], rates: tuple[float, ...]) -> float:
    return sum(
        t.sign * sum(r for (metric, labels), r in zip(made, rates, strict=True) if t.selector.matches(metric, labels))
        for t in terms
    )


def _mixes(s: slo_rules.SLORule, made: list[Series]) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(healthy, failing) rates per series: no bad events, and the largest bad share a 0/1 mix reaches."""
    healthy = failing = None
    best = 0.0
    for rates in itertools.product((0.0, 1.0), repeat=len(made)):
        bad, total = _events(s.bad_terms, made, rates), _events(s.total_terms, made, rates)
        if total <= 0 or bad < 0 or bad > total:
            continue
        if bad == 0 and healthy is None:
            healthy = rates
        elif bad / total > best:
            best, failing = bad / total, rates
    return (healthy, failing) if healthy is not None and failing is not None else None


def _blend(s: slo_rules.SLORule, made: list[Series], mixes: tuple[Any, Any], ratio: float) -> tuple[float, ...]:
    """Rates whose bad share is `ratio`: healthy x (1 - w) + failing x w, w solved exactly."""
    healthy, failing = mixes
    t_h = _events(s.total_terms, made, healthy)
    b_f, t_f = _events(s.bad_terms, made, failing), _events(s.total_terms, made, failing)
    w = ratio * t_h / (b_f - ratio * t_f + ratio * t_h)
    return tuple(100 * ((1 - w) * h + w * f) for h, f in zip(healthy, failing, strict=True))


def _inputs(made: list[Series], rates: tuple[float, ...]) -> list[dict[str, str]]:
    def label_text(labels: dict[str, str]) -> str:
        return ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))

    return [series(metric, label_text(labels), f"0+{rate:.10g}x{MINUTES}") for (metric, labels), rate in zip(made, rates, strict=True)]  # fmt: skip


def _fired(s: slo_rules.SLORule, severities: dict[str, str], ratio: float) -> list[dict[str, Any]]:
    """The SLO's alerts (as ALERTS samples) that fire at a steady error ratio `ratio`."""
    group, thresholds = slo_rules.alerts(s, severities), slo_rules.pair_thresholds(s)
    out = []
    for rule in group.rules if group else ():
        if ratio > float(thresholds[rule.labels["long"]]):
            labels = {"alertname": s.alerting.alert_name, "alertstate": "firing", **s.labels, **rule.labels}
            inner = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
            out.append({"labels": f"ALERTS{{{inner}}}", "value": 1})
    return out


def _alerts_of(s: slo_rules.SLORule, at: str, fired: list[dict[str, Any]]) -> dict[str, Any]:
    """This SLO's firing alerts at `at` (other SLOs of the file may read the same series: they are not asked)."""
    ids = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(s.ids.items()))
    expr = f'ALERTS{{alertname={json.dumps(s.alerting.alert_name)},alertstate="firing",{ids}}}'
    return {"expr": expr, "eval_time": at, "exp_samples": fired}


def slo_case(s: slo_rules.SLORule, severities: dict[str, str]) -> tuple[list[dict[str, Any]], str | None]:
    """The promtool test groups of one SLO, or none and why."""
    if not s.bad_terms:
        return (
            [],
            "its SLI is not made of counters (PromQL the warehouse cannot read, or gauges), so its series are not synthesised",
        )
    made = _series(s.bad_terms + s.total_terms)
    mixes = _mixes(s, made) if made else None
    if made is None or mixes is None:
        return [], "no label values of its selectors make bad events vary alone"
    group = slo_rules.alerts(s, severities)
    written = slo_rules.pair_thresholds(s)
    thresholds = sorted({float(written[r.labels["long"]]) for r in (group.rules if group else ())})
    failing_max = _events(s.bad_terms, made, mixes[1]) / _events(s.total_terms, made, mixes[1])
    ratio = min(1.5 * thresholds[0], failing_max) if thresholds and thresholds[0] > 0 else failing_max / 2
    cases = []
    for label, rates in (("burns", _blend(s, made, mixes, ratio)), ("healthy", mixes[0])):
        fired = _fired(s, severities, ratio) if label == "burns" else []
        checks = [_alerts_of(s, "0m", []), _alerts_of(s, "1m", fired), _alerts_of(s, f"{MINUTES}m", fired)]
        cases.append({"name": f"{s.service} {s.slo}: {label} at {ratio if label == 'burns' else 0:.6g}",
                      "interval": "1m", "input_series": _inputs(made, rates), "promql_expr_test": checks})  # fmt: skip
    return cases, None


def slo_tests(spec: Any) -> list[dict[str, Any]]:
    """Every SLO's cases, for unittests.test_document (its RuleSpec: slos and slo_severities)."""
    return [case for s in spec.slos for case in slo_case(s, spec.slo_severities)[0]]
