"""`gpuledger report slo|drift|canary|unit-cost` and `gpuledger drift check` (model serving)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import duckdb

from analytics.serving import canary as canary_mod
from analytics.serving import slo as slo_mod
from analytics.serving.drift import METHODS, DriftPolicy, FeatureDrift, MethodError
from analytics.serving.drift_columns import ColumnTypes, column_drift, dataset_drift, share_drifted
from analytics.serving.traffic_drift import accuracy_drift, traffic_drift
from analytics.serving.unit_cost import unit_costs
from app.cli.base import Context, fail_cleanly, main, make_window, pass_ctx
from app.cli.report import report
from app.jobs import drift_policy
from app.publish import drift_textfile, render
from app.publish.slo_rules import serving_data_end
from app.stage_options import chargeback_options, sloth_specs
from core import conventions as c
from core.errors import ConfigError, InputError
from core.settings import Settings

if TYPE_CHECKING:  # pandas costs every `gpuledger` command half a second at import: read where drift needs it
    import pandas as pd
from core.store.warehouse import open_warehouse
from core.timeutil import Window, iso, parse_ts

FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)


def _emit(fmt: str, data: Any, rows: list[dict[str, Any]], columns: list[str], footer: str = "") -> None:
    if fmt == "json":
        click.echo(render.json_text(data), nl=False)
    elif fmt == "csv":
        click.echo(render.csv_text(rows, columns), nl=False)
    else:
        click.echo(render.table(rows, columns) if rows else "(no rows)")
        if footer:
            click.echo(footer)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None, digits: int = 3) -> str | None:
    return None if value is None else f"{value * 100:.{digits}f}%"


SLO_COLUMNS = ["service", "slo", "sli", "objective", "window", "sli_value", "error_budget_remaining"]
BURN_PAIRS = [f"burn_{long}_{short}" for long, short, _, _ in c.BURN_RATE_WINDOWS]
BURN_WINDOWS = [f"burn_{w}" for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")]


@report.command("slo")
@click.option("--at", "at", default=None, help="Evaluate at this instant (default: the end of the serving data).")
@click.option("--service", default=None, help="Only this service.")
@FORMAT
@pass_ctx
@fail_cleanly
def slo_cmd(ctx: Context, at: str | None, service: str | None, fmt: str) -> None:
    """SLI, error budget remaining, burn rates (1h/5m, 6h/30m, 1d/2h, 3d/6h) and daily attainment per SLO."""
    serving = ctx.settings.serving
    with open_warehouse(ctx.warehouse, read_only=True) as con:
        now = parse_ts(at) if at else serving_data_end(con)
        every = slo_mod.build_slos(con, serving, sloth_specs(serving), now, rules_only=True)
        defs = [d for d in every if service in (None, d.service)]
        for skipped in defs:
            if skipped.rules_only is not None:  # its rules are written, but its PromQL is beyond the warehouse
                click.echo(f"{skipped.service} {skipped.name}: left out, rules only ({skipped.rules_only})", err=True)
        reports = [slo_mod.evaluate(con, d, now) for d in defs if d.rules_only is None]
    if not reports:
        raise ConfigError("no SLO is declared: add serving.services.<name>.slos or serving.sloth_specs to the settings")
    data = [r.as_dict() for r in reports]
    rows = []
    for r, d in zip(reports, data, strict=True):
        row = {k: d[k] for k in ("service", "slo", "sli", "window")}
        raw = fmt != "table"
        row["objective"] = r.slo.objective if raw else f"{r.slo.objective:g}%"
        row["sli_value"] = r.sli if raw else _pct(r.sli) or "no traffic"
        row["error_budget_remaining"] = r.budget_remaining if raw else _pct(r.budget_remaining, 1) or "no traffic"
        for b in r.burn:
            row[f"burn_{b.long}_{b.short}"] = f"{_rate(b.long_rate)}/{_rate(b.short_rate)}" + (" !" if b.firing else "")
            row[f"burn_{b.long}"], row[f"burn_{b.short}"] = b.long_rate, b.short_rate
        row["days_met"] = f"{d['days_met']}/{d['days_with_traffic']}"
        rows.append(row)
    footer = (
        f"\nat {iso(now)}; burn = long/short window burn rates ('-': fewer than two scrapes or no traffic), "
        "'!' = both exceed the alert factor"
    )
    burn = BURN_PAIRS if fmt == "table" else BURN_WINDOWS
    _emit(fmt, {"at": iso(now), "slos": data}, rows, [*SLO_COLUMNS, *burn, "days_met"], footer)


def _window(con: duckdb.DuckDBPyConnection, start: str | None, end: str | None) -> Window:
    if start and end:
        return make_window(start, end)
    stop = parse_ts(end) if end else serving_data_end(con)
    return Window(parse_ts(start) if start else stop - timedelta(days=1), stop)


@report.command("drift")
@click.option("--model", required=True, help="Model label value (model_name / model / service_name).")
@click.option("--reference-start", required=True, help="Reference window start (ISO-8601 UTC).")
@click.option("--reference-end", required=True, help="Reference window end (exclusive).")
@click.option("--start", default=None, help="Current window start (default: 24 h before --end).")
@click.option("--end", default=None, help="Current window end (default: the end of the serving data).")
@click.option(
    "--textfile",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the figures as Prometheus gauges (node-exporter textfile collector) for the drift alerts.",
)
@FORMAT
@pass_ctx
@fail_cleanly
def drift_report_cmd(
    ctx: Context,
    model: str,
    reference_start: str,
    reference_end: str,
    start: str | None,
    end: str | None,
    textfile: Path | None,
    fmt: str,
) -> None:
    """Traffic drift (prompt/generation length, latency, finish reasons) and accuracy drift of one model."""
    serving = ctx.settings.serving
    reference = make_window(reference_start, reference_end)
    with open_warehouse(ctx.warehouse, read_only=True) as con:
        current = _window(con, start, end)
        features = traffic_drift(con, model, reference, current, drift_policy(serving))
        acc = accuracy_drift(
            con, model, reference, current, serving.accuracy_degradation, serving.min_quality_samples,
            serving.drift_p_value,
        )  # fmt: skip
    if not features and acc.verdict == "no data":
        raise ConfigError(f"model {model!r} has no serving histograms or quality gauge in the reference window")
    data = {
        "model": model, "reference": reference.as_dict(), "current": current.as_dict(),
        "features": {f.feature: f.as_dict() for f in features}, "accuracy": acc.as_dict(),
    }  # fmt: skip
    if textfile is not None:
        drift_textfile.write(textfile, drift_textfile.exposition(model, current.end, features, acc))
    rows = [_drift_row(f) for f in features]
    footer = (
        f"\naccuracy: {acc.verdict} (reference {_pct(acc.reference, 2)}, current {_pct(acc.current, 2)}, "
        f"degradation {_pct(acc.degradation, 2)}, scored {acc.n_reference:.0f} / {acc.n_current:.0f})"
    )
    _emit(fmt, data, rows, DRIFT_COLUMNS, footer)


DRIFT_COLUMNS = [
    "feature",
    "kind",
    "method",
    "value",
    "status",
    "psi",
    "psi_band",
    "p_value",
    "n_reference",
    "n_current",
    "reason",
]


def _drift_row(f: FeatureDrift) -> dict[str, Any]:
    p = f.statistics.get("ks_p_value", f.statistics.get("chi_square_p_value"))
    return {
        **{k: getattr(f, k) for k in ("feature", "kind", "method", "status", "psi_band", "n_reference", "n_current")},
        "value": f.statistics.get("ks_statistic" if f.method == "ks" else f.method),
        "psi": f.statistics.get("psi"),
        "p_value": p,
        "reason": f.reason or "",
    }


@report.command("canary")
@click.option("--model", required=True, help="Model label value; its two versions are compared.")
@click.option("--canary-model", default=None, help="Compare against this model name instead of a version label.")
@click.option("--start", default=None, help="Window start (default: 24 h before --end).")
@click.option("--end", default=None, help="Window end (default: the end of the serving data).")
@FORMAT
@pass_ctx
@fail_cleanly
def canary_cmd(
    ctx: Context, model: str, canary_model: str | None, start: str | None, end: str | None, fmt: str
) -> None:
    """PROMOTE / HOLD / ROLLBACK for a canary, with the accuracy, p95, error-rate and cost numbers behind it."""
    s: Settings = ctx.settings
    with open_warehouse(ctx.warehouse, read_only=True) as con:
        window = _window(con, start, end)
        result = canary_mod.canary_verdict(
            con, model, window, s.serving.canary, s.serving.min_quality_samples, canary_model,
            s.pricing.fallback_gpu_hour_usd,
        )  # fmt: skip
    rows = [{**ch.__dict__, "trigger": ch.threshold} for ch in result.checks]
    footer = f"\n{result.verdict}: {result.stable} (stable) vs {result.canary} (canary): " + "; ".join(result.reasons)
    _emit(
        fmt,
        result.as_dict(),
        rows,
        ["metric", "stable", "canary", "change", "trigger", "triggered", "p_value", "note"],
        footer,
    )


UNIT_COLUMNS = [
    "model", "version", "gpu_hours", "cost_usd", "requests", "prompt_tokens", "generation_tokens",
    "cost_per_1k_requests_usd", "cost_per_1m_input_tokens_usd", "cost_per_1m_output_tokens_usd", "split", "over_ceiling",
    "energy_kwh", "kwh_per_1k_requests", "kwh_per_1m_tokens", "co2e_kg", "gco2e_per_1k_requests",
    "gco2e_per_1m_tokens",
]  # fmt: skip


@report.command("unit-cost")
@click.option("--start", default=None, help="Window start (default: 24 h before --end).")
@click.option("--end", default=None, help="Window end (default: the end of the serving data).")
@click.option("--model", default=None, help="Only this model.")
@click.option("--by-version/--no-by-version", default=True, show_default=True, help="One row per model version.")
@FORMAT
@pass_ctx
@fail_cleanly
def unit_cost_cmd(
    ctx: Context, start: str | None, end: str | None, model: str | None, by_version: bool, fmt: str
) -> None:
    """Cost per 1,000 requests and per 1M input/output tokens per model, against the ceiling."""
    s: Settings = ctx.settings
    with open_warehouse(ctx.warehouse, read_only=True) as con:
        window = _window(con, start, end)
        rows = unit_costs(
            con, window, s.serving.cost_ceiling_per_1k_requests_usd, model, chargeback_options(s), by_version,
        )  # fmt: skip
    as_rows = [r.as_dict() for r in rows]
    over = [f"{r.model} {r.version}".strip() for r in rows if r.over_ceiling]
    footer = f"\nceiling ${s.serving.cost_ceiling_per_1k_requests_usd} per 1,000 requests; over it: {', '.join(over) or 'none'}"
    _emit(fmt, {"window": window.as_dict(), "rows": as_rows}, as_rows, UNIT_COLUMNS, footer)


@main.group("drift")
def drift_group() -> None:
    """Drift of batch files (features, scores) between a reference and a current sample."""


@drift_group.command("check")
@click.option("--reference", required=True, type=click.Path(path_type=Path), help="Reference Parquet file.")
@click.option("--current", required=True, type=click.Path(path_type=Path), help="Current Parquet file.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--method",
    "methods",
    multiple=True,
    metavar="COLUMN=METHOD",
    help="A column's own method: ks, chi_square, wasserstein_normed, jensen_shannon or psi (repeatable).",
)
@click.option("--threshold", "thresholds", multiple=True, metavar="COLUMN=VALUE",
              help="A column's own threshold: its p-value, distance or PSI (repeatable).")  # fmt: skip
@pass_ctx
@fail_cleanly
def drift_check_cmd(
    ctx: Context, reference: Path, current: Path, fmt: str, methods: tuple[str, ...], thresholds: tuple[str, ...]
) -> None:
    """Every column both files share: PSI, KS, normed Wasserstein, Jensen-Shannon or chi-square, and the missing
    share; a column that cannot be judged is `insufficient` with its reason (exit 2 when none can be)."""
    ref, cur = _read_parquet(reference), _read_parquet(current)
    common = [col for col in ref.columns if col in cur.columns]
    if not common:
        raise InputError(str(current), f"shares no column with {reference}")
    policy = _with_columns(drift_policy(ctx.settings.serving), methods, thresholds)
    try:
        results = [column_drift(col, ref[col], cur[col], policy) for col in common]
    except ColumnTypes as exc:
        raise InputError(str(current), str(exc)) from None
    except MethodError as exc:
        raise ConfigError(str(exc)) from None
    drifted = [r.feature for r in results if r.drift]
    unjudged = [r.feature for r in results if r.drift is None]
    data = {
        "reference": str(reference), "current": str(current),
        "features": {r.feature: r.as_dict() for r in results},
        "drifted": drifted, "insufficient": unjudged, "share_drifted": share_drifted(results),
        "dataset_drift": dataset_drift(results, policy), "drift_share": policy.drift_share,
    }  # fmt: skip
    judged = len(results) - len(unjudged)
    footer = f"\n{len(drifted)} of {judged} judged features drifted" + (f": {', '.join(drifted)}" if drifted else "")
    footer += f"; dataset drift: {data['dataset_drift']} (at a share of {policy.drift_share:g})"
    footer += f"; {len(unjudged)} could not be judged: {', '.join(unjudged)}" if unjudged else ""
    _emit(fmt, data, [_drift_row(r) for r in results], DRIFT_COLUMNS, footer)
    if not judged:
        raise InputError(str(current), "no column could be judged (see each one's reason)")


def _with_columns(policy: DriftPolicy, methods: tuple[str, ...], thresholds: tuple[str, ...]) -> DriftPolicy:
    """The policy with --method and --threshold COLUMN=VALUE pairs over the settings' serving.drift_columns."""
    chosen, limits = dict(policy.methods), dict(policy.thresholds)
    for option, pairs in (("--method", methods), ("--threshold", thresholds)):
        for pair in pairs:
            column, sep, value = pair.rpartition("=")
            if not sep or not column:
                raise ConfigError(f"{option} {pair!r}: write COLUMN=VALUE")
            if option == "--method":
                if value not in METHODS:
                    raise ConfigError(f"{option} {pair!r}: {value!r} is not one of {', '.join(METHODS)}")
                chosen[column] = value
            else:
                try:
                    limits[column] = float(value)
                except ValueError:
                    raise ConfigError(f"{option} {pair!r}: {value!r} is not a number") from None
    return dataclasses.replace(policy, methods=chosen, thresholds=limits)


def _read_parquet(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError(str(path), f"not a readable Parquet file ({type(exc).__name__})") from exc
