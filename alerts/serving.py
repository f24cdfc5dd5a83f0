"""Serving regression rules: the seed's rollback triggers as alerts, comparing the last hour with the
same hour a day earlier (a rollout shows up as a step change against yesterday's traffic pattern).

  latency: p95 end-to-end latency rises by more than `latency_rise` (0.5 = 50%)
  errors:  the 5xx share rises by more than `error_rate_rise` (2.0 = 200%) and is at least 1%
p95 comes from each exporter's own histogram (bucket edges as exported); `sum by (le, ...)` first, so
replicas add up before the quantile. Distribution drift (PSI and friends) needs per-bucket counts over
two windows and each model's own edges: `gpuledger report drift` computes it from the warehouse.
"""

from __future__ import annotations

from alerts.model import Rule
from core import conventions as c

LATENCY_HISTOGRAMS = (  # (bucket metric, model label)
    ("vllm:e2e_request_latency_seconds_bucket", "model_name"),
    ("tgi_request_duration_bucket", "namespace"),
)
ERROR_RATIOS = (  # (bad selector, total selector, group label)
    ('http_requests_total{status=~"5.."}', "http_requests_total", "namespace"),
)


def _p95(metric: str, by: str, offset: str = "") -> str:
    return f"histogram_quantile(0.95, sum by (le, {by}) (rate({metric}[1h]{offset})))"


def latency_rules(rise: float) -> list[Rule]:
    out = []
    for metric, by in LATENCY_HISTOGRAMS:
        out.append(
            Rule(
                alert=c.ALERT_LATENCY_REGRESSION,
                expr=f"{_p95(metric, by)}\n  > {1 + rise:g} * {_p95(metric, by, ' offset 1d')}",
                for_="15m",
                labels={"severity": "warning"},
                annotations={
                    "summary": f"p95 latency of {{{{ $labels.{by} }}}} rose over {rise:.0%} against yesterday",
                    "description": (
                        'p95 end-to-end latency over the last hour is {{ $value | printf "%.2f" }} s, more than '
                        f"{1 + rise:g}x the same hour yesterday (the seed's rollback trigger). Check recent rollouts "
                        "(`gpuledger report canary`) and GPU health on the serving nodes."
                    ),
                    "runbook_url": f"{c.RUNBOOK_BASE_URL}#slos",
                },
            )
        )
    return out


def error_rules(rise: float) -> list[Rule]:
    out = []
    for bad, total, by in ERROR_RATIOS:
        ratio = f"sum by ({by}) (rate({bad}[1h])) / sum by ({by}) (rate({total}[1h]))"
        before = ratio.replace("[1h]", "[1h] offset 1d")
        out.append(
            Rule(
                alert=c.ALERT_ERROR_SPIKE,
                expr=f"({ratio})\n  > {1 + rise:g} * ({before})\nand ({ratio}) > 0.01",
                for_="10m",
                labels={"severity": "critical"},
                annotations={
                    "summary": f"Server errors of {{{{ $labels.{by} }}}} spiked over {rise:.0%} against yesterday",
                    "description": (
                        "The 5xx share over the last hour is {{ $value | humanizePercentage }}, more than "
                        f"{1 + rise:g}x the same hour yesterday (the seed's rollback trigger). Roll back the last change."
                    ),
                    "runbook_url": f"{c.RUNBOOK_BASE_URL}#slos",
                },
            )
        )
    return out
