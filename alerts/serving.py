"""Serving regression rules: the seed's rollback triggers as alerts, comparing the last hour with the
same hour a day earlier (a rollout shows up as a step change against yesterday's traffic pattern).

  latency: p95 end-to-end latency rises by more than `latency_rise` (0.5 = 50%)
  errors:  the failure share rises by more than `error_rate_rise` (2.0 = 200%) and is at least 1%
The thresholds are the canary's (settings serving.canary): one definition for the canary verdict and
the alert. p95 comes from each exporter's own histogram (bucket edges as exported), `sum by (le, ...)`
first so replicas add up before the quantile. Each server family gets its own rule, grouped by the
label that carries its model (the namespace for servers without one, such as TGI). Distribution
drift (PSI and friends) needs each model's own bucket edges over two windows: `gpuledger drift
check` computes it from the warehouse.
"""

from __future__ import annotations

from alerts.model import Rule, alert
from analytics.serving.sli import model_label
from core import conventions as c

SUSTAINED = "1h"
STATUS_LABELS = ("status", "code")  # Python instrumentators use status, Go's promhttp code
MIN_ERROR_SHARE = 0.01
REGRESSIONS = f"{c.RUNBOOK_BASE_URL}#serving-regressions"


def _by(family: str) -> str:
    return model_label(family) or "namespace"


def _unit(scale: float) -> str:
    return "ms" if scale == 1e-3 else "s"


def _p95(family: str, by: str, offset: str = "") -> str:
    return f"histogram_quantile(0.95, sum by (le, {by}) (rate({family}_bucket[{SUSTAINED}]{offset})))"


def latency_rules(rise: float) -> list[Rule]:
    out = []
    for family, (signal, scale) in sorted(c.SERVING_HISTOGRAMS.items()):
        if signal != c.SIG_E2E:
            continue
        by = _by(family)
        out.append(
            alert(
                c.ALERT_LATENCY_REGRESSION,
                f"{_p95(family, by)}\n  > {1 + rise:g} * {_p95(family, by, ' offset 1d')}",
                "warning",
                f"p95 latency of {{{{ $labels.{by} }}}} rose over {rise:.0%} against yesterday",
                f'p95 end-to-end latency over the last hour is {{{{ $value | printf "%.2f" }}}} {_unit(scale)}, '
                f"more than {1 + rise:g}x the same hour yesterday (the canary's rollback trigger). Check "
                "recent rollouts (`gpuledger report canary`) and GPU health on the serving nodes.",
                REGRESSIONS,
                "15m",
                histogram=family,
            )
        )
    return out


def _sum_rate(metric: str, by: str, offset: str) -> str:
    return f"sum by ({by}) (rate({metric}[{SUSTAINED}]{offset}))"


def _error_ratio(bad: str, total: str, status: str | None, by: str, offset: str = "") -> str:
    """bad / total; a total starting with + counts the successes only, so total = it + bad (Triton);
    with a status, the bad events are the total's series with a 5xx status."""
    if status is not None:
        parts = [_sum_rate(f'{bad}{{{label}=~"5..|5xx"}}', by, offset) for label in STATUS_LABELS]
        failures = "(" + " or ".join(parts) + ")"
    else:
        failures = _sum_rate(bad, by, offset)
    denominator = _sum_rate(total.lstrip("+"), by, offset)
    if total.startswith("+"):
        denominator = f"({denominator} + {failures})"
    return f"({failures} / {denominator})"


def error_rules(rise: float) -> list[Rule]:
    out = []
    for bad, total, status in (*c.SERVER_ERROR_SOURCES, *c.HTTP_ERROR_SOURCES):
        by = _by(bad)
        now, before = _error_ratio(bad, total, status, by), _error_ratio(bad, total, status, by, " offset 1d")
        out.append(
            alert(
                c.ALERT_ERROR_SPIKE,
                f"{now}\n  > {1 + rise:g} * {before}\nand {now} > {MIN_ERROR_SHARE:g}",
                "critical",
                f"Server errors of {{{{ $labels.{by} }}}} spiked over {rise:.0%} against yesterday",
                "The failure share over the last hour is {{ $value | humanizePercentage }}, more than "
                f"{1 + rise:g}x the same hour yesterday and over {MIN_ERROR_SHARE:.0%} (the canary's rollback "
                "trigger). Roll back the last change (`gpuledger report canary`).",
                REGRESSIONS,
                "10m",
                counter=bad,
            )
        )
    return out


def drift_rules(psi_major: float) -> list[Rule]:
    """Distribution and accuracy drift from the gauges `gpuledger report drift --textfile` writes: the
    report's own PSI, tests and verdict (PSI on the reference's decile bins cannot be rebuilt from
    bucket series in PromQL, which cannot subtract neighbouring `le` buckets without naming them)."""
    m, f = c.L_DRIFT_MODEL, c.L_DRIFT_FEATURE
    runbook = f"{c.RUNBOOK_BASE_URL}#drift"
    distribution = alert(
        c.ALERT_DISTRIBUTION_DRIFT,
        f"max by ({m}, {f}) ({c.METRIC_DRIFT_PSI}) >= {psi_major:g}\n"
        f'or max by ({m}, {f}) ({c.METRIC_DRIFT_DETECTED}{{kind="categorical"}}) == 1',
        "warning",
        f"{{{{ $labels.{f} }}}} of {{{{ $labels.{m} }}}} drifted from its reference",
        f"PSI at or over {psi_major:g} (major), or a categorical test flags drift, between the drift "
        "report's reference and current windows. Check what changed in the traffic (clients, prompts, "
        "a rollout) with `gpuledger report drift`; retrain or re-evaluate if it persists.",
        runbook,
    )
    accuracy = alert(
        c.ALERT_ACCURACY_DRIFT,
        f"max by ({m}) ({c.METRIC_ACCURACY_DEGRADED}) == 1",
        "warning",
        f"Accuracy of {{{{ $labels.{m} }}}} dropped against its reference",
        "The evaluator's scored accuracy fell by more than serving.accuracy_degradation against the "
        "reference, significantly (one-sided test). Compare versions with `gpuledger report canary` and "
        "roll back or retrain.",
        runbook,
    )
    return [distribution, accuracy]
