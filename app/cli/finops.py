"""`gpuledger report efficiency|budget|anomalies|savings`: FinOps reports from the warehouse."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import click

from analytics.finops import budget, daily_spend
from app.cli.base import Context, fail_cleanly, make_window, pass_ctx, window_option
from app.cli.report import report, run_chargeback
from app.jobs import savings_rows
from app.publish import render
from app.stage_options import chargeback_options
from core.errors import ConfigError, TerminalError
from core.settings import Settings
from core.store.status import data_span
from core.store.warehouse import open_warehouse
from core.timeutil import Window, parse_ts

FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)


def emit(rows: list[dict[str, Any]], columns: list[str], fmt: str, extra: dict[str, Any] | None = None) -> None:
    if fmt == "json":
        click.echo(render.json_text({**(extra or {}), "rows": rows}), nl=False)
    elif fmt == "csv":
        click.echo(render.csv_text(rows, columns), nl=False)
    else:
        click.echo(render.table(rows, columns) if rows else "(nothing to report)")


@report.command("efficiency")
@window_option
@click.option("--by", default="team", show_default=True, help="Comma-separated grouping (as for chargeback).")
@FORMAT
@pass_ctx
@fail_cleanly
def efficiency_cmd(ctx: Context, start: str, end: str, by: str, fmt: str) -> None:
    """Allocated vs used GPU-hours, efficiency, and the cost allocated but unused."""
    result = run_chargeback(ctx.settings, make_window(start, end), tuple(b.strip() for b in by.split(",") if b.strip()))
    rows = [r.as_dict() for r in result.rows]
    keys = list(result.rows[0].keys) if result.rows else list(result.by)
    emit(rows, [*keys, "gpu_hours", "used_gpu_hours", "efficiency", "allocated_cost_usd", "unused_cost_usd"], fmt)


def _now(settings: Settings, now: str | None) -> datetime:
    if now:
        return parse_ts(now)
    with open_warehouse(settings.warehouse.path, read_only=True) as con:
        span = data_span(con)
    if span is None:
        raise TerminalError("the warehouse has no GPU data yet: collect some first")
    return span[1]


@report.command("budget")
@click.option("--month", default=None, help="Month, e.g. 2026-11 (default: the month of --now).")
@click.option("--now", default=None, help="As-of instant (default: the end of the collected data).")
@FORMAT
@pass_ctx
@fail_cleanly
def budget_cmd(ctx: Context, month: str | None, now: str | None, fmt: str) -> None:
    """Month-to-date spend, month-end forecast (with its held-out error) and budget status per team."""
    as_of = _now(ctx.settings, now).replace(hour=0, minute=0, second=0, microsecond=0)
    month = month or f"{as_of:%Y-%m}"
    try:
        budget.month_bounds(month)
    except ValueError as exc:
        raise ConfigError(f"--month {month!r}: use YYYY-MM") from exc
    history = Window(as_of - timedelta(days=budget.HISTORY_DAYS), as_of)
    b = ctx.settings.budgets
    with open_warehouse(ctx.settings.warehouse.path, read_only=True) as con:
        lines = daily_spend.budget_report(
            con, month, history, chargeback_options(ctx.settings), dict(b.monthly_usd), b.warn_at
        )
    rows = [line.as_dict() for line in lines]
    cols = [
        "team",
        "budget_usd",
        "month_to_date_usd",
        "forecast_usd",
        "forecast_vs_budget",
        "status",
        "holdout_mape",
        "method",
    ]
    emit(rows, cols, fmt, {"month": month, "as_of": f"{as_of:%Y-%m-%dT%H:%M:%SZ}"})
    for line in lines:
        if line.status in ("warning", "over") and fmt == "table":
            click.echo(
                f"warning: {line.team} is {line.status} budget: forecast {line.forecast_usd} of {line.budget_usd} USD",
                err=True,
            )


@report.command("anomalies")
@window_option
@FORMAT
@pass_ctx
@fail_cleanly
def anomalies_cmd(ctx: Context, start: str, end: str, fmt: str) -> None:
    """Days whose team spend departs from the previous days (robust z-score), with their drivers."""
    b = ctx.settings.budgets
    with open_warehouse(ctx.settings.warehouse.path, read_only=True) as con:
        found = daily_spend.anomaly_report(
            con, make_window(start, end), chargeback_options(ctx.settings), b.anomaly_threshold, b.anomaly_min_usd
        )
    rows = [a.as_dict() for a in found]
    emit(rows, ["team", "day", "expected_usd", "actual_usd", "difference_usd", "robust_z", "drivers"], fmt)


@report.command("savings")
@window_option
@FORMAT
@pass_ctx
@fail_cleanly
def savings_cmd(ctx: Context, start: str, end: str, fmt: str) -> None:
    """Savings recommendations ranked by monthly dollars, each with its evidence."""
    with open_warehouse(ctx.settings.warehouse.path, read_only=True) as con:
        rows = savings_rows(con, ctx.settings, make_window(start, end))
    emit(rows, ["monthly_savings_usd", "kind", "team", "target", "action", "evidence"], fmt)
