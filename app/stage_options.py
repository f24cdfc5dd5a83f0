"""Settings -> the typed options each stage takes: the one place they are translated.

Imported by the CLI and the dashboard alike, so it depends on nothing in the CLI.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from alerts.generator import RuleSpec
from alerts.slo import SLORule
from analytics.capacity.queues import QueueOptions
from analytics.cost.allocation import GROUPABLE, is_groupable
from analytics.cost.attribution import Attribution
from analytics.cost.carbon import CarbonTable
from analytics.cost.chargeback import ChargebackOptions
from analytics.finops.savings import SavingsOptions
from analytics.health.policy import HealthThresholds
from analytics.health.xid_catalog import load_catalog
from collectors.carbon import intensity
from collectors.pricing.price_table import PriceRow, default_table_text, parse_csv
from core.errors import ConfigError
from core.settings import ServingSettings, Settings, load_yaml
from core.timeutil import parse_duration


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
        price_source=settings.pricing.source,
        carbon=carbon_table(settings),
    )


def queue_options(
    settings: Settings, by: tuple[str, ...] = ("team",), pods: bool = False, heatmap_nodes: int | None = None
) -> QueueOptions:
    cb = settings.chargeback
    attribution = Attribution(tuple(cb.team_labels), dict(cb.namespace_teams))
    if heatmap_nodes is None:
        return QueueOptions(by=by, attribution=attribution, pods=pods)
    return QueueOptions(by=by, attribution=attribution, pods=pods, heatmap_nodes=heatmap_nodes)


def carbon_table(settings: Settings) -> CarbonTable:
    """The shipped grid intensities (with `carbon.intensity_file` over them) and the PUE settings."""
    s = settings.carbon
    embodied = {model: gpu.grams_per_gpu_hour() for model, gpu in s.embodied.items()}
    return CarbonTable(intensity.load(s.intensity_file), dict(s.pue), s.pue_default, embodied, dict(s.zones))


def savings_options(settings: Settings) -> SavingsOptions:
    s = settings.savings
    return SavingsOptions(
        s.low_utilization, s.min_run_hours, s.busy_activity, s.assumed_spot_discount, s.peak_hours_utc
    )


def gpu_hour_prices(rows: list[PriceRow]) -> dict[tuple[str, str], Decimal]:
    """(instance type, capacity type) -> $/GPU-hour of the latest region-wide row (rules carry no region)."""
    latest: dict[tuple[str, str], PriceRow] = {}
    for row in sorted(rows, key=lambda r: (r.effective_from, r.provider, r.region)):
        if not row.zone:
            latest[(row.instance_type, row.capacity_type)] = row
    return {
        key: (row.gpu_price_per_hour_usd if row.gpu_price_per_hour_usd is not None else row.price_per_hour_usd)
        / row.gpus
        for key, row in latest.items()
    }


def sloth_specs(serving: ServingSettings) -> list[tuple[str, dict[str, Any]]]:
    """(file, document) for every document of the settings' Sloth spec files."""
    return [doc for path in serving.sloth_specs for doc in read_sloth(Path(path))]


def read_sloth(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read Sloth spec: {exc.strerror}") from exc
    docs = load_yaml(raw, str(path), documents=True)
    return [(str(path), doc) for doc in docs if doc is not None]


def rule_spec(
    settings: Settings, prices: dict[tuple[str, str], Decimal] | None = None, slos: tuple[SLORule, ...] = ()
) -> RuleSpec:
    """The rules for these settings; prices default to the price table shipped with gpuledger; slos
    come resolved against the warehouse (app.publish.slo_rules)."""
    r = settings.rules
    if prices is None:
        prices = gpu_hour_prices(parse_csv(default_table_text(), "default"))
    return RuleSpec(
        namespace=r.namespace,
        workload_label_style=settings.collect.workload_label_style,
        low_utilization_threshold=r.low_utilization_threshold,
        low_utilization_for=r.low_utilization_for,
        idle_power_watts=r.idle_power_watts,
        idle_power_activity=r.idle_power_activity,
        idle_power_for=r.idle_power_for,
        pending_for=r.pending_for,
        queue_wait_p95_seconds=r.queue_wait_p95_seconds,
        fragmentation_for=r.fragmentation_for,
        not_reporting_for=r.not_reporting_for,
        prices=prices,
        budgets=dict(settings.budgets.monthly_usd),
        budget_pace_factor=r.budget_pace_factor,
        high_job_cost_usd_per_day=r.high_job_cost_usd_per_day,
        min_requests_per_gpu_hour=r.min_requests_per_gpu_hour,
        idle_capacity_ratio=r.idle_capacity_ratio,
        time_slicing_replicas=r.time_slicing_replicas,
        slo_severities=r.slo_severities,
        scrape_interval_s=parse_duration(r.scrape_interval),
        health=HealthThresholds.from_all(settings),
        xid_catalog=load_catalog(settings.health.xid_overrides),
        latency_rise=settings.serving.canary.latency_rise,
        error_rate_rise=settings.serving.canary.error_rate_rise,
        psi_major=settings.serving.psi_bands[1],
        slos=slos,
        collection_stale_after_s=parse_duration(r.collection_stale_after),
        export_missed_after_s=parse_duration(r.export_missed_after),
    )
