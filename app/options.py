"""Settings -> the typed options each stage takes: the one place they are translated.

Imported by the CLI and the dashboard alike, so it depends on nothing in the CLI.
"""

from __future__ import annotations

from alerts.generator import RuleSpec
from analytics.allocation import GROUPABLE, is_groupable
from analytics.attribution import Attribution
from analytics.chargeback import ChargebackOptions
from analytics.savings import SavingsOptions
from core.errors import ConfigError
from core.settings import Settings


def chargeback_options(settings: Settings, by: tuple[str, ...] = ("team",)) -> ChargebackOptions:
    bad = [b for b in by if not is_groupable(b)]
    if bad:
        raise ConfigError(f"--by {','.join(bad)}: choose from {', '.join(GROUPABLE)} or label:<key>")
    cb = settings.chargeback
    return ChargebackOptions(
        by=by,
        attribution=Attribution(tuple(cb.team_labels), dict(cb.namespace_teams)),
        mig_share=cb.mig_share,
        idle=cb.idle,
        idle_scope=cb.idle_scope,
        shared_namespaces=tuple(cb.shared_namespaces),
        shared_labels=tuple(cb.shared_labels),
        shared_overhead_usd_per_hour=cb.shared_overhead_usd_per_hour,
        shared_split=cb.shared_split,
        fallback_gpu_hour_usd=settings.pricing.fallback_gpu_hour_usd,
    )


def savings_options(settings: Settings) -> SavingsOptions:
    s = settings.savings
    return SavingsOptions(
        s.low_utilization, s.min_run_hours, s.busy_activity, s.assumed_spot_discount, s.peak_hours_utc
    )


def rule_spec(settings: Settings) -> RuleSpec:
    r = settings.rules
    return RuleSpec(
        namespace=r.namespace,
        workload_label_style=settings.collect.workload_label_style,
        low_utilization_threshold=r.low_utilization_threshold,
        low_utilization_for=r.low_utilization_for,
        not_reporting_for=r.not_reporting_for,
    )
