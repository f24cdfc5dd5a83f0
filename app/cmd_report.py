"""`gpuledger report ...`: reports read the warehouse only."""

from __future__ import annotations

import click

from analytics.allocation import GROUPABLE
from analytics.chargeback import chargeback
from analytics.ledger import ChargebackReport
from app import render
from app.cli import Context, fail_cleanly, main, make_window, pass_ctx, window_option
from app.options import chargeback_options
from core.settings import Settings
from core.timeutil import Window
from core.warehouse import open_warehouse

ROW_COLUMNS = (
    "gpu_hours",
    "used_gpu_hours",
    "efficiency",
    "allocated_cost_usd",
    "idle_share_usd",
    "shared_share_usd",
    "adjustment_usd",
    "cost_usd",
    "unused_cost_usd",
)


@main.group("report")
def report() -> None:
    """Reports computed from the warehouse."""


def run_chargeback(settings: Settings, window: Window, by: tuple[str, ...]) -> ChargebackReport:
    options = chargeback_options(settings, by)
    with open_warehouse(settings.warehouse.path, read_only=True) as con:
        return chargeback(con, window, options)


@report.command("chargeback")
@window_option
@click.option("--by", default="team", show_default=True, help=f"Comma-separated grouping: {', '.join(GROUPABLE)}.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@pass_ctx
@fail_cleanly
def chargeback_cmd(ctx: Context, start: str, end: str, by: str, fmt: str) -> None:
    """GPU-hours and cost per team (or other grouping), with __idle__ and __unallocated__ rows."""
    result = run_chargeback(ctx.settings, make_window(start, end), tuple(b.strip() for b in by.split(",") if b.strip()))
    rows = [r.as_dict() for r in result.rows]
    keys = list(result.rows[0].keys) if result.rows else list(result.by)
    if fmt == "json":
        click.echo(render.json_text(result.as_dict()), nl=False)
    elif fmt == "csv":
        click.echo(render.csv_text(rows, [*keys, *ROW_COLUMNS, "price_sources"]), nl=False)
    else:
        click.echo(render.table(rows, [*keys, *ROW_COLUMNS]))
        totals = result.totals()
        click.echo(
            f"\nnode cost {totals['node_cost_usd']} = allocated {totals['allocated_cost_usd']} + "
            f"unallocated {totals['unallocated_cost_usd']} + idle {totals['idle_cost_usd']} (USD, "
            f"{result.window.as_dict()['start']} to {result.window.as_dict()['end']})"
        )
        if result.unpriced_gpu_hours:
            click.echo(f"warning: {result.unpriced_gpu_hours:.2f} GPU-hours matched no price row", err=True)
