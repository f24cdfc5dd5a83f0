"""`gpuledger report ...`: reports read the warehouse only."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from analytics.cost import node_facts
from analytics.cost.allocation import GROUPABLE
from analytics.cost.bill_reconcile import BILL_BY, reconcile_billing
from analytics.cost.chargeback import chargeback
from analytics.cost.cost_rows import ROW_COLUMNS, ChargebackReport
from analytics.cost.reconcile import COLUMNS as RECONCILE_COLUMNS
from analytics.cost.reconcile import RECONCILE_BY, reconcile
from app.cli.base import Context, fail_cleanly, main, make_window, pass_ctx, window_option
from app.publish import render
from app.stage_options import chargeback_options
from core.settings import Settings
from core.store.warehouse import open_warehouse
from core.timeutil import Window


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
    unpriced = _unpriced(ctx.settings, result)
    if fmt == "json":
        click.echo(render.json_text({**result.as_dict(), "unpriced_nodes": [u.__dict__ for u in unpriced]}), nl=False)
    elif fmt == "csv":
        click.echo(render.csv_text(rows, [*keys, *ROW_COLUMNS, "price_sources"]), nl=False)
    else:
        click.echo(render.table(rows, [*keys, *ROW_COLUMNS]))
        totals = result.totals()
        click.echo(
            f"\ncapacity cost {totals['node_cost_usd']} + overhead {totals['overhead_usd']} = allocated "
            f"{totals['allocated_cost_usd']} + unallocated {totals['unallocated_cost_usd']} + shared "
            f"{totals['shared_cost_usd']} + idle {totals['idle_cost_usd']} + unhealthy {totals['unhealthy_cost_usd']} (USD, "
            f"{result.window.as_dict()['start']} to {result.window.as_dict()['end']})"
        )
    if unpriced:
        fallback = ctx.settings.pricing.fallback_gpu_hour_usd
        click.echo(
            f"warning: {result.unpriced_gpu_hours:.2f} GPU-hours on {len(unpriced)} node(s) matched no price row "
            f"and were billed at {f'the fallback {fallback} $/GPU-h' if fallback is not None else '$0'} "
            f"(set pricing.fallback_gpu_hour_usd or import prices): "
            + ", ".join(
                f"{u.cluster}/{u.node} ({u.instance_type or 'no instance type'}, {u.capacity_type}, "
                f"{u.region or 'no region'}: {u.gpu_hours:.2f} GPU-h)"
                for u in unpriced
            ),
            err=True,
        )


def _unpriced(settings: Settings, result: ChargebackReport) -> list[node_facts.UnpricedNode]:
    """GPU nodes that matched no price, by name (only looked up when there are unpriced GPU-hours)."""
    if not result.unpriced_gpu_hours:
        return []
    with open_warehouse(settings.warehouse.path, read_only=True) as con:
        return node_facts.unpriced_nodes(con, result.window, settings.chargeback.mig_share)


@report.command("reconcile")
@window_option
@click.option(
    "--by",
    type=click.Choice(sorted({*RECONCILE_BY, *BILL_BY})),
    default=None,
    help="One line per this (prices: node, instance_type, cluster, region; billing: account, instance_type, node, "
    "day). Default: node for prices, instance_type for billing.",
)
@click.option(
    "--source",
    type=click.Choice(["prices", "billing"]),
    default="prices",
    show_default=True,
    help="prices: node-hours x the configured prices vs the ledger; billing: the imported bill vs the list-priced ledger.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@pass_ctx
@fail_cleanly
def reconcile_cmd(ctx: Context, start: str, end: str, by: str | None, source: str, fmt: str) -> None:
    """What the provider bills for the node-hours against the ledger: at the configured prices, or as invoiced."""
    if source == "billing":
        _reconcile_billing(ctx, make_window(start, end), by or "instance_type", fmt)
        return
    by = by or "node"
    if by not in RECONCILE_BY:
        raise click.UsageError(f"--by {by} needs --source billing")
    options = chargeback_options(ctx.settings)
    with open_warehouse(ctx.settings.warehouse.path, read_only=True) as con:
        result = reconcile(con, make_window(start, end), options, by)  # type: ignore[arg-type]
    report = result.as_dict()
    totals = report["totals"]
    summary = (
        f"provider {totals['provider_usd']} vs ledger {totals['ledger_usd']}: difference {totals['difference_usd']} USD"
    )
    sections = {
        "unpriced nodes": [dataclasses.asdict(u) for u in result.unpriced_nodes],
        "GPU-hours DCGM reported on nodes kube-state-metrics never listed": result.dcgm_without_node,
        "GPU requests on nodes no source gives GPUs": result.requests_without_gpus,
    }
    _print_reconciliation(report, [by, *RECONCILE_COLUMNS], fmt, summary, sections)


def _print_reconciliation(
    report: dict[str, Any], columns: list[str], fmt: str, summary: str, sections: dict[str, list[dict[str, Any]]]
) -> None:
    """A reconciliation as JSON, CSV, or a table with its summary line and the lists beside it."""
    if fmt == "json":
        click.echo(render.json_text(report), nl=False)
        return
    if fmt == "csv":
        click.echo(render.csv_text(report["rows"], columns), nl=False)
        return
    rows = report["rows"]
    click.echo(render.table(rows, columns) if rows else "(no GPU node-hours in the window)")
    click.echo(f"\n{summary}")
    for title, found in sections.items():
        if found:
            click.echo(f"\n{title}:\n" + render.table(found, list(found[0])))


BILL_COLUMNS = (
    "node_hours", "ledger_list_usd", "invoice_effective_usd", "difference_usd", "effective_discount_pct",
    "ledger_billed_usd", "unexplained_usd",
)  # fmt: skip


def _reconcile_billing(ctx: Context, window: Window, by: str, fmt: str) -> None:
    if by not in BILL_BY:
        raise click.UsageError(f"--by {by} is not a billing grouping: choose from {', '.join(BILL_BY)}")
    with open_warehouse(ctx.settings.warehouse.path, read_only=True) as con:
        result = reconcile_billing(con, window, ctx.settings.chargeback.mig_share, by)  # type: ignore[arg-type]
    report = result.as_dict()
    totals = report["totals"]
    summary = (
        f"ledger at list {totals['ledger_list_usd']} vs invoice {totals['invoice_effective_usd']} (effective): "
        f"difference {totals['difference_usd']}; the bill prices {result.coverage_pct}% of the GPU node-hours; "
        f"unexplained by the ledger at billed cost: {totals['unexplained_usd']}"
    )
    sections = {
        "invoice lines no node of the ledger ran": result.outside_kubernetes,
        "nodes no invoice line names": result.nodes_without_invoice,
    }
    _print_reconciliation(report, [by, *BILL_COLUMNS], fmt, summary, sections)
