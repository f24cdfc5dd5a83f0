"""Typed settings, one section per stage, validated once at start-up and passed in.

Resolution order (later wins): defaults -> settings file (YAML; `--config`, else
$GPULEDGER_CONFIG, else ./gpuledger.yaml when present) -> environment ($GPULEDGER_WAREHOUSE) ->
command-line options. Analytics never read settings themselves: the CLI hands them the values.
Every field carries a description; tests/test_docs.py fails when one is missing from the README.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ConfigError

ENV_CONFIG = "GPULEDGER_CONFIG"
ENV_WAREHOUSE = "GPULEDGER_WAREHOUSE"
DEFAULT_CONFIG_FILE = "gpuledger.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WarehouseSettings(_Section):
    path: Path = Field(default=Path("data/gpuledger.duckdb"), description="DuckDB warehouse file.")


class CollectSettings(_Section):
    cluster: str = Field(default="default", description="Cluster name for series that carry no `cluster` label.")
    step: str = Field(default="60s", description="Warehouse resolution: one row per series per step.")
    lookback: str = Field(
        default="5m", description="How long a sample stays current (Prometheus' lookback delta); used for files."
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
    timeout: str = Field(default="60s", description="HTTP timeout per Prometheus request.")
    retries: int = Field(default=4, ge=0, description="Retries (exponential backoff with jitter) on transient errors.")


class PrometheusSettings(_Section):
    url: str | None = Field(default=None, description="Base URL of the Prometheus-compatible HTTP API.")


class PricingSettings(_Section):
    fallback_gpu_hour_usd: Decimal | None = Field(
        default=None,
        description="Price per GPU-hour for GPU nodes that match no price row; unset = bill $0 and "
        "report the unpriced GPU-hours.",
    )


class ChargebackSettings(_Section):
    team_label: str = Field(default="team", description="Pod label naming the owning team.")


class RulesSettings(_Section):
    namespace: str = Field(default="monitoring", description="Namespace of the generated PrometheusRule objects.")
    low_utilization_threshold: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="Graphics-engine activity (0-1) below which a GPU pod counts as underused.",
    )
    low_utilization_for: str = Field(default="2h", description="How long a pod must stay below the threshold to alert.")
    not_reporting_for: str = Field(
        default="10m", description="How long a GPU may be silent before it counts as offline."
    )


class ExportSettings(_Section):
    directory: Path = Field(default=Path("exports"), description="Directory that receives `<YYYY>-W<ww>/` folders.")


class DashboardSettings(_Section):
    host: str = Field(default="127.0.0.1", description="Address the dashboard binds to.")
    port: int = Field(default=8501, gt=0, lt=65536, description="Port the dashboard listens on.")


class SLOSettings(_Section):
    """One objective of a serving service (issue 7: serving)."""

    name: str = Field(description="SLO name, unique within its service.")
    sli: Literal["latency", "ttft", "error_ratio", "availability"] = Field(
        description="latency / ttft: share of requests at or under `threshold_seconds` (end-to-end or time to "
        "first token histogram); error_ratio: server failures (failure counter, else HTTP 5xx); availability: "
        "HTTP non-5xx share."
    )
    objective: float = Field(gt=0, lt=100, description="Target share of good events, in percent (99.5).")
    threshold_seconds: float | None = Field(
        default=None, gt=0, description="latency / ttft only: the threshold; must be one of the histogram's edges."
    )
    window: str = Field(default="30d", description="SLO period (28d or 30d; any duration is accepted).")


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


class ServingSettings(_Section):
    services: dict[str, ServiceSettings] = Field(
        default_factory=dict, description="Serving services by name, each with its model selector and SLOs."
    )
    sloth_specs: list[Path] = Field(
        default_factory=list, description="Sloth `prometheus/v1` SLO spec files, read next to `services`."
    )
    sloth_window: str = Field(default="30d", description="SLO period of Sloth specs (Sloth's --default-slo-period).")
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
    accuracy_degradation: float = Field(
        default=0.05, gt=0, lt=1, description="Relative accuracy drop vs the reference that counts as drift."
    )
    min_quality_samples: int = Field(
        default=200, ge=1, description="Scored predictions needed in each window before accuracy is judged."
    )
    canary: CanarySettings = Field(default_factory=CanarySettings, description="Canary rollback triggers.")


class Settings(_Section):
    warehouse: WarehouseSettings = WarehouseSettings()
    collect: CollectSettings = CollectSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    pricing: PricingSettings = PricingSettings()
    chargeback: ChargebackSettings = ChargebackSettings()
    rules: RulesSettings = RulesSettings()
    export: ExportSettings = ExportSettings()
    dashboard: DashboardSettings = DashboardSettings()
    serving: ServingSettings = ServingSettings()


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
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{chosen or 'settings'}: {where}: {first['msg']}") from exc


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read settings file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
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
