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
        default="5m",
        description="How long a sample stays current (Prometheus' lookback delta): files and VictoriaMetrics use it.",
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
    # --- issue 3: collectors ---
    concurrency: int = Field(default=4, ge=1, le=64, description="Range queries in flight at once.")
    commit_window: str = Field(
        default="6h",
        description="A long collection is fetched and committed in windows of this length; memory is bounded by it.",
    )
    safety_lag: str = Field(
        default="2m", description="Without --end, collection stops this long before now (late samples still arrive)."
    )
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
    # --- issue 3: collectors ---
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


class Settings(_Section):
    warehouse: WarehouseSettings = WarehouseSettings()
    collect: CollectSettings = CollectSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    pricing: PricingSettings = PricingSettings()
    chargeback: ChargebackSettings = ChargebackSettings()
    rules: RulesSettings = RulesSettings()
    export: ExportSettings = ExportSettings()
    dashboard: DashboardSettings = DashboardSettings()


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
