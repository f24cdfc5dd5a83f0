"""Typed settings, one section per stage, validated once at start-up and passed in.

Resolution order (later wins): defaults -> settings file (YAML; `--config`, else
$GPULEDGER_CONFIG, else ./gpuledger.yaml when present) -> environment ($GPULEDGER_WAREHOUSE) ->
command-line options. Analytics never read settings themselves: the CLI hands them the values.
Every field carries a description; tests/test_docs.py fails when one is missing from the README.
"""

from __future__ import annotations

import os
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from core import conventions as c
from core.errors import ConfigError
from core.timeutil import parse_duration

ENV_CONFIG = "GPULEDGER_CONFIG"
ENV_WAREHOUSE = "GPULEDGER_WAREHOUSE"
DEFAULT_CONFIG_FILE = "gpuledger.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------
# Collecting
# --------------------------------------------------------------------------------------------


# (lowest, highest) seconds of each collect duration: generous, but never a hang or a division by zero
COLLECT_DURATION_BOUNDS: dict[str, tuple[int, int]] = {
    "step": (1, 86_400),
    "lookback": (1, 7 * 86_400),
    "timeout": (1, 86_400),
    "commit_window": (60, 31 * 86_400),
    "safety_lag": (0, 86_400),
}


class WarehouseSettings(_Section):
    path: Path = Field(default=Path("data/gpuledger.duckdb"), description="DuckDB warehouse file.")


class CollectSettings(_Section):
    cluster: str = Field(default="default", description="Cluster name for series that carry no `cluster` label.")
    step: str = Field(default="60s", description="Warehouse resolution: one row per series per step.")
    lookback: str = Field(
        default="5m",
        description="How long a sample stays current (Prometheus' lookback delta): files and VictoriaMetrics use it.",
    )
    scrape_interval: str = Field(
        default="auto",
        description="kube-state-metrics' scrape interval: a pod's or node's state ends one interval after its "
        "last sample (Prometheus' staleness rule). `auto` reads it off the samples' times (files) or counts "
        "samples per hour in the store (Prometheus-compatible APIs).",
    )
    workload_label_style: Literal["plain", "exported"] = Field(
        default="plain",
        description="DCGM workload labels: `plain` (pod/namespace) or `exported` (exported_pod/... "
        "when Prometheus scraped dcgm-exporter with honorLabels: false).",
    )
    max_points_per_query: int = Field(
        default=10_000,
        gt=0,
        le=11_000,
        description="Range-query chunk size in points per series (Prometheus caps 11,000).",
    )
    max_line_kb: int = Field(
        default=1024,
        ge=1,
        le=1_048_576,
        description="A file line longer than this is refused naming the line (an exporter's longest is a few KB); "
        "files are read a line at a time up to it, so memory stays bounded.",
    )
    timeout: str = Field(default="60s", description="HTTP timeout per Prometheus request.")
    retries: int = Field(default=4, ge=0, description="Retries (exponential backoff with jitter) on transient errors.")
    # how a Prometheus-compatible store is read
    concurrency: int = Field(default=4, ge=1, le=64, description="Range queries in flight at once.")
    commit_window: str = Field(
        default="6h",
        description="A long collection is fetched and committed in windows of this length; memory is bounded by it.",
    )
    safety_lag: str = Field(
        default="2m", description="Without --end, collection stops this long before now (late samples still arrive)."
    )

    @field_validator("scrape_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        if value == "auto":
            return value
        try:
            seconds = parse_duration(value)
        except ConfigError as exc:
            raise ValueError(f"{exc} (or `auto`)") from None
        if not 1 <= seconds <= 86_400:
            raise ValueError(f"{value} is outside 1 s to 86400 s")
        return value

    @field_validator("step", "lookback", "timeout", "commit_window", "safety_lag")
    @classmethod
    def _bounded_duration(cls, value: str, info: ValidationInfo) -> str:
        """A duration each of these can have (`step: 0s` once divided by zero; `lookback: 100000d` ran for minutes)."""
        lo, hi = COLLECT_DURATION_BOUNDS[info.field_name or ""]
        try:
            seconds = parse_duration(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if not lo <= seconds <= hi:
            raise ValueError(f"{value} is outside {lo} s to {hi} s")
        return value

    memory_limit: str = Field(
        default="1GB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB's memory cap while collecting (it spills to disk beyond it).",
    )
    pushdown: Literal["auto", "query", "raw"] = Field(
        default="auto",
        description="Aggregate in the store: `auto` reads gpuledger's recording rules where they cover the window, "
        "else aggregates in the query; `query` always aggregates in the query; `raw` reads raw series.",
    )


class PrometheusSettings(_Section):
    url: str | None = Field(default=None, description="Base URL of the Prometheus-compatible HTTP API.")
    # which store answers, and how to reach it
    flavor: Literal["prometheus", "thanos", "mimir", "victoriametrics"] = Field(
        default="prometheus", description="Which store answers at `url`; selects its query parameters."
    )
    tenant: str | None = Field(default=None, description="Tenant sent as X-Scope-OrgID (Mimir, Cortex).")
    bearer_token_file: Path | None = Field(default=None, description="File holding a bearer token.")
    basic_auth_username: str | None = Field(default=None, description="Basic-auth user name.")
    basic_auth_password_file: Path | None = Field(default=None, description="File holding the basic-auth password.")
    basic_auth_password_env: str | None = Field(
        default=None, description="Environment variable holding the basic-auth password."
    )
    ca_file: Path | None = Field(default=None, description="CA bundle (PEM) to verify the server's certificate.")
    insecure_skip_verify: bool = Field(default=False, description="Do not verify the server's TLS certificate.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers sent with every request.")
    gzip: bool = Field(
        default=False, description="Ask for gzip-compressed answers (slow links); off, the store skips compressing."
    )


# --------------------------------------------------------------------------------------------
# Pricing
# --------------------------------------------------------------------------------------------


class DiscountSettings(_Section):
    """A negotiated discount, savings plan or committed-use discount on matching price rows."""

    name: str = Field(pattern=r"^[A-Za-z0-9 _.-]+$", description="Name shown next to the prices it discounts.")
    percent: Decimal = Field(gt=0, lt=100, description="Discount in percent of the price (stacked multiplicatively).")
    provider: str = Field(default="", description="Only this provider's prices (empty: every provider).")
    region: str = Field(default="", description="Only this region (empty: every region).")
    instance_types: str = Field(default="*", description="Glob of instance types, e.g. `p5.*` (default: all).")
    capacity_type: Literal["", "on_demand", "spot", "reserved", "on_prem"] = Field(
        default="", description="Only this capacity type (empty: all)."
    )
    effective_from: date = Field(default=date(1970, 1, 1), description="First day the discount applies (UTC).")
    effective_to: date | None = Field(default=None, description="First day it no longer applies (unset: open).")


class OnPremSettings(_Section):
    """Owned or colocated GPU servers: a GPU-hour price from capex, depreciation, opex and power."""

    instance_type: str = Field(description="The nodes' `node.kubernetes.io/instance-type` label value.")
    region: str = Field(default="", description="The nodes' region label value (empty: nodes without one).")
    gpu_model: str = Field(default="", description="GPU model, for reports.")
    gpus_per_node: int = Field(gt=0, description="GPUs in one server.")
    effective_from: date = Field(description="First day this cost applies (UTC).")
    capex_usd: Decimal = Field(default=Decimal(0), ge=0, description="Purchase price of one server.")
    amortization_years: Decimal = Field(default=Decimal(4), gt=0, description="Straight-line depreciation period.")
    residual_fraction: Decimal = Field(default=Decimal(0), ge=0, lt=1, description="Resale value at the end, 0-1.")
    opex_fraction_per_year: Decimal = Field(
        default=Decimal(0), ge=0, description="Yearly support, space and staff, as a fraction of capex."
    )
    power_kw: Decimal = Field(default=Decimal(0), ge=0, description="Average power draw of one server (kW).")
    pue: Decimal = Field(default=Decimal(1), ge=1, description="Data-centre power usage effectiveness.")
    usd_per_kwh: Decimal = Field(default=Decimal(0), ge=0, description="Electricity price.")
    energy: Literal["measured", "nameplate"] = Field(
        default="measured",
        description="`measured`: where the servers' GPUs report energy (DCGM's counter, else power) in a report's "
        "window and cluster, the GPUs' share of the power cost is their measured kWh x PUE x usd_per_kwh instead "
        "of power_kw's; `nameplate`: power_kw always.",
    )
    gpu_hour_usd: Decimal | None = Field(
        default=None, ge=0, description="A per-GPU-hour rate to use instead of the capex model."
    )


class PricingSettings(_Section):
    max_file_mb: int = Field(
        default=2048,
        ge=1,
        le=65536,
        description="A price file larger than this (after gunzip) is refused before it is parsed (AWS's largest "
        "regional offer file is a few hundred MB).",
    )
    source: Literal["list", "billing", "auto"] = Field(
        default="list",
        description="What a node-hour costs in the chargeback and every report built on it: `list` (the price table, "
        "less discounts), `billing` (the imported bill's effective cost; hours it does not price are unpriced) or "
        "`auto` (the bill where it prices the hour, else the price table).",
    )
    fallback_gpu_hour_usd: Decimal | None = Field(
        default=None,
        description="Price per GPU-hour for GPU nodes that match no price row; unset = bill $0 and "
        "report the unpriced GPU-hours.",
    )
    # how a node price is split and which price sources count
    gpu_share: Decimal = Field(
        default=Decimal(1),
        gt=0,
        le=1,
        description="Share of a whole-node price billed to its GPUs when the provider does not price GPUs "
        "separately (applied at import).",
    )
    reserved_term: Literal["1yr", "3yr"] = Field(default="1yr", description="Reservation term imported as `reserved`.")
    reserved_purchase_option: Literal["No Upfront", "Partial Upfront", "All Upfront"] = Field(
        default="No Upfront", description="AWS reserved purchase option imported as `reserved` (standard class)."
    )
    discounts: tuple[DiscountSettings, ...] = Field(
        default=(), description="Discounts (`gpuledger pricing configure`)."
    )
    on_prem: tuple[OnPremSettings, ...] = Field(
        default=(), description="On-prem servers (`gpuledger pricing configure`)."
    )
    aws_offer_url: str = Field(
        default="https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current/{region}/index.json",
        description="AWS EC2 offer file URL; `{region}` is replaced.",
    )
    aws_regions: tuple[str, ...] = Field(default=("us-east-1",), description="Regions `pricing fetch aws` reads.")
    gcp_catalog_url: str = Field(
        default="https://cloudbilling.googleapis.com/v1/services/6F81-5844-456A/skus",
        description="Cloud Billing Catalog SKU list of Compute Engine.",
    )
    gcp_api_key_file: Path | None = Field(default=None, description="File holding a Google API key (Catalog API).")
    gcp_regions: tuple[str, ...] = Field(default=("us-central1",), description="Regions `pricing fetch gcp` keeps.")
    azure_prices_url: str = Field(
        default="https://prices.azure.com/api/retail/prices", description="Azure Retail Prices API (no auth)."
    )
    azure_regions: tuple[str, ...] = Field(default=("eastus",), description="Regions `pricing fetch azure` reads.")
    fetch_timeout: str = Field(default="120s", description="HTTP timeout per price request.")


# --------------------------------------------------------------------------------------------
# Cost and FinOps
# --------------------------------------------------------------------------------------------


class ChargebackSettings(_Section):
    team_labels: list[str] = Field(
        default=list(c.TEAM_LABELS),
        description="Pod label keys naming the owner, in order; the namespace's labels with the same keys are the fallback.",
    )
    namespace_teams: dict[str, str] = Field(
        default_factory=dict, description="Namespace -> team for pods and namespaces without an owner label."
    )
    mig_share: Literal["compute", "memory"] = Field(
        default="compute", description="A MIG slice's share of its card: compute slices (g/7) or memory (GB/card GB)."
    )
    idle: Literal["keep", "weighted", "even"] = Field(
        default="keep",
        description="Idle GPU cost: keep as the __idle__ row, or share it weighted by allocated cost, or evenly per team.",
    )
    idle_scope: Literal["cluster", "node"] = Field(
        default="cluster", description="Where shared idle stays: within its cluster, or within its node."
    )
    shared_namespaces: list[str] = Field(
        default_factory=list, description="Namespaces whose GPU cost is shared by everyone (e.g. platform monitoring)."
    )
    shared_labels: list[str] = Field(
        default_factory=list, description="Pod label selectors (`key=value` or `key`) whose GPU cost is shared."
    )
    shared_overhead_usd_per_hour: Decimal = Field(
        default=Decimal(0), ge=0, description="Fixed overhead in $/hour added to the shared pool (support, licences)."
    )
    shared_split: Literal["weighted", "even"] = Field(
        default="weighted", description="Shared costs split weighted by allocated cost, or evenly per team."
    )


class EmbodiedGpu(_Section):
    kgco2e: Decimal = Field(gt=0, description="The GPU's manufacturing footprint, kgCO2e per GPU.")
    lifetime_years: Decimal = Field(gt=0, description="The years it is amortised over.")
    source: str = Field(min_length=1, description="Where the footprint comes from (cited in the docs and exports).")

    def grams_per_gpu_hour(self) -> Decimal:
        return self.kgco2e * 1000 / (self.lifetime_years * 8760)


class CarbonSettings(_Section):
    intensity_file: Path | None = Field(
        default=None,
        description="A CSV of grid carbon intensity (provider,region,gco2e_per_kwh[,source,year]) whose regions replace "
        "the shipped annual averages (Cloud Carbon Footprint's).",
    )
    pue: dict[str, Decimal] = Field(
        default_factory=lambda: {"aws": Decimal("1.135"), "gcp": Decimal("1.1"), "azure": Decimal("1.185")},
        description="Power usage effectiveness by cluster name (an on-prem site) or provider (aws, gcp, azure, "
        "on_prem); a cluster's wins. Defaults: the providers' figures Cloud Carbon Footprint uses.",
    )
    pue_default: Decimal = Field(
        default=Decimal("1.5"), ge=1, description="PUE where neither the cluster nor the provider has one."
    )
    zones: dict[str, str] = Field(
        default_factory=dict,
        description="Grid zone per region (or cluster: an on-prem site) whose hourly intensity (`gpuledger carbon "
        "import`) prices its energy hour by hour, e.g. {us-east-1: US-MIDA-PJM}; other regions, and hours the "
        "import lacks, use the annual table.",
    )
    embodied: dict[str, EmbodiedGpu] = Field(
        default_factory=dict,
        description="Embodied emissions per GPU model (a part of its name, e.g. A100): the manufacturing "
        "footprint in kgCO2e amortised evenly over a lifetime in years, with its source (the SCI term M). Off "
        "when empty.",
    )

    @field_validator("pue")
    @classmethod
    def _pue_at_least_one(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        bad = [k for k, v in value.items() if not v >= 1]
        if bad:
            raise ValueError(
                f"a PUE is at least 1 (all the facility's power over the IT equipment's): {', '.join(bad)}"
            )
        return value


class BudgetSettings(_Section):
    monthly_usd: dict[str, Decimal] = Field(default_factory=dict, description="Monthly GPU budget per team in USD.")
    warn_at: float = Field(
        default=0.9, gt=0, description="Warn when the month-end forecast reaches this fraction of the budget."
    )
    anomaly_threshold: float = Field(
        default=3.5, gt=0, description="Robust z-score (median/MAD) above which a team's daily spend is an anomaly."
    )
    anomaly_min_usd: Decimal = Field(
        default=Decimal(10), ge=0, description="Ignore daily deviations smaller than this many dollars."
    )


class SavingsSettings(_Section):
    low_utilization: float = Field(
        default=0.3, gt=0, le=1, description="Activity below which a whole-GPU pod is a right-sizing candidate."
    )
    min_run_hours: float = Field(default=6.0, ge=0, description="Pods running at least this long are spot candidates.")
    busy_activity: float = Field(
        default=0.5, ge=0, le=1, description="Spot candidates must keep the GPU at least this busy (training-like)."
    )
    assumed_spot_discount: float = Field(
        default=0.6, ge=0, lt=1, description="Spot discount assumed when the price table has no spot price for a type."
    )
    peak_hours_utc: tuple[int, int] = Field(
        default=(13, 22), description="Peak hours [start, end) in UTC, for off-peak moves."
    )


# --------------------------------------------------------------------------------------------
# Fleet health
# --------------------------------------------------------------------------------------------


class XidOverride(_Section):
    """Replaces fields of one Xid catalog entry (unset fields keep the shipped value)."""

    mnemonic: str | None = Field(default=None, description="Short name of the Xid.")
    cause: Literal["hardware", "driver", "application", "thermal", "bus"] | None = Field(
        default=None, description="Likely cause class."
    )
    action: Literal["restart_app", "reset_gpu", "reboot_node", "drain_and_rma", "ignore"] | None = Field(
        default=None, description="Immediate action."
    )
    severity: Literal["none", "watch", "drain", "rma"] | None = Field(
        default=None, description="Effect on the GPU's health state (none = counts against the workload)."
    )
    why: str | None = Field(default=None, description="One line saying why (shown as evidence).")


class HealthSettings(_Section):
    """GPU health thresholds: the one place both the health analytics and the alert rules read."""

    watch_hold: str = Field(
        default="6h",
        description="How long a GPU stays in `watch` after a finding clears (and after a drain or offline "
        "period ends: probation).",
    )
    rate_window: str = Field(
        default="5m", description="Window over which counter rates are measured; at least the scrape interval."
    )
    pcie_replay_per_minute: float = Field(
        default=8.0, ge=0, description="PCIe replays per minute above which a GPU is watched (DCGM's limit)."
    )
    thermal_violation_ratio: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of time thermally throttled (violation counter) above which a GPU is watched.",
    )
    max_gpu_temp_c: float = Field(
        default=85.0, description="GPU temperature (C) above which a GPU is watched (A100 max operating temperature)."
    )
    max_gpu_temp_c_by_model: dict[str, float] = Field(
        default_factory=dict, description="Per-model temperature limits, keyed by DCGM modelName."
    )
    retired_pages_rma: int = Field(
        default=60, gt=0, description="Retired pages (SBE + DBE) at which RMA is recommended (DCGM's limit)."
    )
    retired_dbe_soft_limit: int = Field(
        default=15, ge=0, description="DBE-retired pages above which new DBE retirements recommend RMA."
    )
    retired_dbe_per_week: int = Field(
        default=1,
        ge=0,
        description="New DBE page retirements per 7 days above which (past the soft limit) RMA is recommended.",
    )
    rma_after_failures: int = Field(
        default=2,
        ge=0,
        description="Hardware failures (DBE, hardware or bus Xid drains) within `lookbehind` that recommend RMA; "
        "0 turns it off.",
    )
    lookbehind: str = Field(
        default="7d", description="History read before a window to know each GPU's state when the window opens."
    )
    xid_overrides: dict[int, XidOverride] = Field(
        default_factory=dict, description="Per-Xid overrides of the shipped catalog (keys are Xid codes)."
    )


# --------------------------------------------------------------------------------------------
# Model serving
# --------------------------------------------------------------------------------------------


def _slo_period(value: str) -> str:
    """An SLO period that outlasts every burn window (core/conventions.slo_period_problem)."""
    try:
        seconds = parse_duration(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    problem = c.slo_period_problem(seconds)
    if problem:
        raise ValueError(f"{value}: {problem}")
    return value


SLOPeriod = Annotated[str, AfterValidator(_slo_period)]


class SLOSettings(_Section):
    """One objective of a serving service."""

    name: str = Field(description="SLO name, unique within its service.")
    sli: Literal["latency", "ttft", "error_ratio", "availability"] = Field(
        description="latency / ttft: share of requests at or under `threshold_seconds` (end-to-end or time to "
        "first token histogram); error_ratio: server failures (failure counter, else HTTP 5xx); availability: "
        "HTTP non-5xx share."
    )
    objective: float = Field(gt=0, le=100, description="Target share of good events, in percent (99.5; 100 allowed).")
    threshold_seconds: float | None = Field(
        default=None, gt=0, description="latency / ttft only: the threshold; must be one of the histogram's edges."
    )
    window: SLOPeriod = Field(
        default="30d",
        description="SLO period (30d, 28d or 7d use Sloth's burn-rate windows; any duration longer than 3d works).",
    )


class ServiceSettings(_Section):
    """A model-serving service: which series are its own."""

    model: str = Field(description="Value of the model label (model_name, Triton's model, Knative's service_name).")
    namespace: str | None = Field(default=None, description="Only series from this namespace (optional).")
    pods: str | None = Field(
        default=None,
        description="Only pods whose name fully matches this regex; required for servers without a model label (TGI).",
    )
    slos: list[SLOSettings] = Field(default_factory=list, description="The service's objectives.")


class CanarySettings(_Section):
    """Rollback triggers: relative change of the canary vs the stable version (seed policy)."""

    accuracy_drop: float = Field(default=0.05, ge=0, description="Rollback when accuracy degrades by more than this.")
    latency_rise: float = Field(default=0.5, ge=0, description="Rollback when p95 latency rises by more than this.")
    error_rate_rise: float = Field(
        default=2.0, ge=0, description="Rollback when the error rate rises by more than this."
    )
    cost_rise: float = Field(
        default=1.0, ge=0, description="Rollback when the cost per request rises by more than this."
    )
    min_requests: int = Field(default=1000, ge=1, description="Fewer requests on either version: HOLD.")
    p_value: float = Field(default=0.05, gt=0, lt=1, description="Rate triggers need a one-sided z-test below this.")


class DriftColumn(_Section):
    method: Literal["ks", "chi_square", "wasserstein_normed", "jensen_shannon", "psi", "mmd"] | None = Field(
        default=None, description="The method that decides the column (default: by its kind and size)."
    )
    threshold: float | None = Field(
        default=None, gt=0, description="Its p-value (ks, chi_square), distance or PSI threshold."
    )


class ServingSettings(_Section):
    services: dict[str, ServiceSettings] = Field(
        default_factory=dict, description="Serving services by name, each with its model selector and SLOs."
    )
    sloth_specs: list[Path] = Field(
        default_factory=list, description="Sloth `prometheus/v1` SLO spec files, read next to `services`."
    )
    sloth_window: SLOPeriod = Field(
        default="30d", description="SLO period of Sloth specs (Sloth's --default-slo-period)."
    )
    cost_ceiling_per_1k_requests_usd: Decimal = Field(
        default=Decimal("5"), ge=0, description="Cost efficiency ceiling per 1,000 requests (seed policy: $5)."
    )
    psi_epsilon: float = Field(
        default=1e-4, gt=0, lt=0.01, description="Share given to an empty PSI bin so its log stays finite."
    )
    psi_bands: tuple[float, float] = Field(
        default=(0.1, 0.25), description="PSI below the first is stable, from it moderate, from the second major."
    )
    drift_p_value: float = Field(
        default=0.05, gt=0, lt=1, description="KS and chi-square flag drift below this p-value."
    )
    distance_threshold: float = Field(
        default=0.1, gt=0, description="Normed Wasserstein and Jensen-Shannon flag drift at or above this."
    )
    drift_missing_share: float = Field(
        default=0.1, gt=0, le=1, description="A column's missing share (NaN, None, ±inf) moving this much is drift."
    )
    drift_share: float = Field(
        default=0.5, gt=0, le=1, description="`drift check`: the dataset drifts when this share of its columns did."
    )
    drift_columns: dict[str, DriftColumn] = Field(
        default_factory=dict, description="`drift check`: a column's own method and threshold."
    )
    accuracy_degradation: float = Field(
        default=0.05, gt=0, lt=1, description="Relative accuracy drop vs the reference that counts as drift."
    )
    min_quality_samples: int = Field(
        default=200, ge=1, description="Scored predictions needed in each window before accuracy is judged."
    )
    canary: CanarySettings = Field(default_factory=CanarySettings, description="Canary rollback triggers.")


# --------------------------------------------------------------------------------------------
# Outputs: rules, exports, the dashboard and the service
# --------------------------------------------------------------------------------------------


class RulesSettings(_Section):
    namespace: str = Field(default="monitoring", description="Namespace of the generated PrometheusRule objects.")
    low_utilization_threshold: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="Graphics-engine activity (0-1) below which a GPU pod counts as underused.",
    )
    low_utilization_for: str = Field(default="2h", description="How long a pod must stay below the threshold to alert.")
    idle_power_watts: float = Field(
        default=100.0,
        gt=0,
        description="Board power (W per GPU) above which an idle allocated GPU burns energy for nothing (idle is 60-90 W).",
    )
    idle_power_activity: float = Field(
        default=0.10, ge=0, le=1, description="Graphics-engine activity (0-1) below which an allocated GPU is idle."
    )
    idle_power_for: str = Field(default="2h", description="How long GPUs must sit idle above the power to alert.")
    not_reporting_for: str = Field(
        default="10m", description="How long a GPU may be silent before it counts as offline."
    )
    pending_for: str = Field(default="30m", description="How long a GPU pod may stay Pending before it alerts.")
    queue_wait_p95_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A Kueue ClusterQueue's admission wait p95 (over the last hour) to alert above.",
    )
    fragmentation_for: str = Field(
        default="15m",
        description="How long enough whole GPUs may sit free for the largest Pending GPU pod, while it still pends.",
    )
    budget_pace_factor: float = Field(
        default=1.2,
        gt=0,
        description="Alert when a team's last-day spend rate exceeds this multiple of its budget pace.",
    )
    high_job_cost_usd_per_day: Decimal = Field(
        default=Decimal(1000), ge=0, description="Alert when one GPU pod costs more than this in 24 hours."
    )
    min_requests_per_gpu_hour: float = Field(
        default=1000.0, ge=0, description="Inference pods serving fewer requests per GPU-hour alert."
    )
    idle_capacity_ratio: float = Field(
        default=0.5, gt=0, le=1, description="Alert when this share of the fleet's GPUs stays unrequested for 6 hours."
    )
    time_slicing_replicas: int = Field(
        default=4,
        ge=1,
        description="Replicas per time-sliced GPU assumed by the rules (PromQL cannot read label values).",
    )
    slo_page_severity: str = Field(
        default="critical", min_length=1, description="`severity` label of SLO page alerts (fast burns)."
    )
    slo_ticket_severity: str = Field(
        default="warning", min_length=1, description="`severity` label of SLO ticket alerts (slow burns)."
    )

    @property
    def slo_severities(self) -> dict[str, str]:
        return {"page": self.slo_page_severity, "ticket": self.slo_ticket_severity}

    scrape_interval: str = Field(
        default="30s",
        description="Scrape interval of dcgm-exporter and the serving exporters where the rules run: rate() "
        "windows in the rules are at least four times it, so every window holds two samples even when a scrape is missed.",
    )
    # the service's own alerts
    collection_stale_after: str = Field(
        default="30m", description="`GpuledgerCollectionStale` fires when a source has not collected for this long."
    )
    export_missed_after: str = Field(
        default="6h", description="`GpuledgerWeeklyExportMissed` fires this long after a week ends without its export."
    )


class ExportSettings(_Section):
    directory: Path = Field(default=Path("exports"), description="Directory that receives `<YYYY>-W<ww>/` folders.")


class DashboardSettings(_Section):
    host: str = Field(default="127.0.0.1", description="Address the dashboard binds to.")
    port: int = Field(default=8501, gt=0, lt=65536, description="Port the dashboard listens on.")
    refresh_seconds: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description="The least time between two recomputations of a page's cached frames: a collection newer than "
        "a frame shows once the frame is this old (0: after every collection). With serve committing every 15 s, "
        "recomputing every frame after each commit took 30% of the dashboard's one core.",
    )
    memory_limit: str = Field(
        default="512MB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB's memory cap for the dashboard's queries (it spills to disk beyond it; unbounded, "
        "a week's savings pass at 10,000 GPUs took 9 GB). Streamlit, the libraries and the pages' frames take about "
        "450 MB more: at 512 MB every page of a 10,000-GPU fleet, savings included, peaked at 953 MB in one process "
        "(1,460 MB at 1 GB), the savings pass 0.6 s slower.",
    )
    # who may see what
    auth: Literal["none", "oidc"] = Field(
        default="none",
        description="`oidc`: users log in (Streamlit st.login) and see only their teams; `none`: no login, "
        "refused on any address but loopback unless `allow_unauthenticated`.",
    )
    allow_unauthenticated: bool = Field(
        default=False, description="Serve without login on a non-loopback address (behind an authenticating proxy)."
    )
    user_claim: str = Field(
        default="email",
        min_length=1,
        description="ID-token claim that names a user in `admin_users` and `user_teams` (`email`: counted only "
        "with `email_verified: true`; `sub`, `preferred_username`, `oid`, ...: compared exactly).",
    )
    admin_users: list[str] = Field(default_factory=list, description="Users (`user_claim` values) who see every team.")
    admin_groups: list[str] = Field(default_factory=list, description="Groups whose members see every team.")
    user_teams: dict[str, list[str]] = Field(
        default_factory=dict, description="User (`user_claim` value) -> the teams whose bills they may see."
    )
    group_teams: dict[str, list[str]] = Field(
        default_factory=dict, description="Group -> the teams whose bills its members may see."
    )
    groups_claim: str = Field(default="groups", description="ID-token claim holding the user's groups.")
    secrets_file: Path | None = Field(
        default=None,
        description="Streamlit secrets TOML with the `[auth]` OIDC client (id, secret, cookie secret); a mounted file.",
    )


class SourceSettings(_Section):
    """One metrics source `gpuledger serve` collects on its own schedule."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Name in logs and metrics (letters, digits, _.-).")
    type: Literal["prometheus", "openmetrics"] = Field(
        description="`prometheus`: a Prometheus-compatible API from its watermark; `openmetrics`: files matching `paths`."
    )
    url: str | None = Field(default=None, description="prometheus: base URL (user:password@ is redacted everywhere).")
    paths: list[str] = Field(default_factory=list, description="openmetrics: file globs, ingested whole each run.")
    interval: str = Field(default="5m", description="How often to collect.")
    cluster: str | None = Field(
        default=None, description="Cluster for series without a label (default collect.cluster)."
    )
    backfill: str = Field(
        default="1d", description="prometheus: how far back the first collection (no watermark) starts."
    )


class ServeSettings(_Section):
    """`gpuledger serve`: what runs when, and where its own metrics are served."""

    sources: list[SourceSettings] = Field(default_factory=list, description="Sources collected on a schedule.")
    metrics_host: str = Field(default="127.0.0.1", description="Address of /metrics and /healthz.")
    metrics_port: int = Field(default=9464, gt=0, lt=65536, description="Port of /metrics and /healthz.")
    commit_window: str = Field(
        default="1h",
        description="Collections commit in windows this long (instead of collect.commit_window); SIGTERM stops "
        "between two windows.",
    )
    health_interval: str = Field(default="1h", description="How often `health evaluate` runs (`0s`: never).")
    health_window: str = Field(default="1d", description="The window each health evaluation covers, ending now.")
    weekly_export: bool = Field(default=True, description="Write the previous ISO week's export on Monday 01:00 UTC.")
    rules_dir: Path | None = Field(
        default=None, description="Regenerate rule files here at start and whenever the settings file changes."
    )
    config_check_interval: str = Field(default="1m", description="How often the settings file is checked for changes.")
    price_refresh: list[Literal["aws", "gcp", "azure"]] = Field(
        default_factory=list, description="Providers whose live prices are fetched daily (empty: none)."
    )
    price_refresh_at: str = Field(
        default="03:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="UTC time of the daily price refresh."
    )
    stop_timeout: str = Field(
        default="60s",
        description="On SIGTERM, how long the running job may take to finish before the process exits with 3; a "
        "second SIGTERM or Ctrl-C exits at once.",
    )
    lock_wait: str = Field(
        default="60s",
        description="How long a job waits for dashboard readers to let go of the warehouse before failing.",
    )


class BillingSettings(_Section):
    currency: str = Field(
        default="USD",
        pattern=r"^[A-Z]{3}$",
        description="The ledger's currency (ISO 4217): a bill in another currency is refused unless `rates` converts it.",
    )
    memory_limit: str = Field(
        default="512MB",
        pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB's memory cap while importing a bill (it spills to disk beyond it): a month of 10,000 GPU "
        "instances imports within 1 GB of RAM in all.",
    )
    rates: dict[str, Decimal] = Field(
        default_factory=dict,
        description="Stated conversion rates into `currency` by bill currency (`EUR: 1.0823`): each imported line "
        "keeps its original currency and the rate used.",
    )

    @field_validator("rates")
    @classmethod
    def _rates(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for currency, rate in value.items():
            if not re.fullmatch(r"[A-Z]{3}", currency) or not rate > 0:
                raise ValueError(f"{currency}: {rate}: a rate is a positive number for an ISO 4217 currency code")
        return value


class Settings(_Section):
    warehouse: WarehouseSettings = WarehouseSettings()
    collect: CollectSettings = CollectSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    pricing: PricingSettings = PricingSettings()
    billing: BillingSettings = BillingSettings()
    chargeback: ChargebackSettings = ChargebackSettings()
    carbon: CarbonSettings = CarbonSettings()
    budgets: BudgetSettings = BudgetSettings()
    savings: SavingsSettings = SavingsSettings()
    rules: RulesSettings = RulesSettings()
    health: HealthSettings = HealthSettings()
    export: ExportSettings = ExportSettings()
    dashboard: DashboardSettings = DashboardSettings()
    serving: ServingSettings = ServingSettings()
    service: ServeSettings = ServeSettings()


def load_settings(path: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Build Settings from a YAML file (optional) and the environment; raise ConfigError once."""
    env = dict(os.environ) if env is None else env
    data: dict[str, Any] = {}
    chosen = path or (Path(env[ENV_CONFIG]) if env.get(ENV_CONFIG) else None)
    if chosen is None and Path(DEFAULT_CONFIG_FILE).is_file():
        chosen = Path(DEFAULT_CONFIG_FILE)
    if chosen is not None:
        data = _read_yaml(chosen)
    if env.get(ENV_WAREHOUSE):
        data.setdefault("warehouse", {})["path"] = env[ENV_WAREHOUSE]
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        # a key may hold anything YAML allows, a newline too: the message stays one line
        where = ".".join(repr(p) if isinstance(p, str) and not p.isprintable() else str(p) for p in first["loc"])
        raise ConfigError(f"{chosen or 'settings'}: {where}: {first['msg'].removeprefix('Value error, ')}") from exc


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read settings file: {exc.strerror}") from exc
    loaded = load_yaml(raw, str(path))
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the settings file must be a mapping of sections")
    return loaded


def with_override(settings: Settings, section: str, **values: Any) -> Settings:
    """Return a copy with some fields of one section replaced (command-line options)."""
    present = {k: v for k, v in values.items() if v is not None}
    if not present:
        return settings
    current = getattr(settings, section)
    try:
        updated = type(current).model_validate({**current.model_dump(), **present})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"--{first['loc'][0]}: {first['msg']}") from exc
    return settings.model_copy(update={section: updated})


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last silently)."""


def _no_duplicate_keys(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice (first on line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)  # type: ignore[arg-type]


def load_yaml(raw: bytes, source: str, documents: bool = False) -> Any:
    """Every YAML file gpuledger reads (settings, Sloth specs): UTF-8, no key given twice, and any error as
    one line naming the file, line and column. `documents`: a list of every document of a multi-document file."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(f"{source}:{line}:{column}: not UTF-8 text (byte {exc.start})") from None
    try:
        if documents:
            return list(yaml.load_all(text, Loader=_StrictLoader))  # noqa: S506 (a SafeLoader subclass)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = " ".join(str(exc.problem or exc.context or "syntax error").split())
        raise ConfigError(f"{where}: not valid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
