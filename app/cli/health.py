"""`gpuledger report health` (read-only) and `gpuledger health evaluate` (stores the history)."""

from __future__ import annotations

import click

from analytics.health.policy import normalise_states
from app.cli.base import Context, fail_cleanly, main, make_window, pass_ctx, window_option
from app.cli.report import report
from app.jobs import record_health, run_health
from app.publish import render
from core.errors import ConfigError

DEFAULT_STATES = "drain,offline,rma"
TABLE_COLUMNS = ("node", "gpu_uuid", "model", "state", "since", "until", "hours", "evidence", "action")
CSV_COLUMNS = ("cluster", "node", "gpu_uuid", "gpu_index", "model", "node_pool", *TABLE_COLUMNS[3:], "lost_cost_usd")


def _states(text: str) -> tuple[str, ...]:
    try:
        return normalise_states(text)
    except ValueError as exc:
        raise ConfigError(f"--state {text}: {exc}") from exc


@report.command("health")
@window_option
@click.option("--state", "state", default=DEFAULT_STATES, show_default=True, help="States to list (comma-separated).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@pass_ctx
@fail_cleanly
def health_report_cmd(ctx: Context, start: str, end: str, state: str, fmt: str) -> None:
    """GPUs needing action: node, UUID, model, state, evidence and the recommended action."""
    result = run_health(ctx.settings, make_window(start, end), _states(state))
    if fmt == "json":
        click.echo(render.json_text(result.as_dict()), nl=False)
    elif fmt == "csv":
        click.echo(render.csv_text(result.rows(), CSV_COLUMNS), nl=False)
    else:
        click.echo(render.table(result.rows(), TABLE_COLUMNS))
        totals = result.as_dict()["totals"]
        teams = sorted({i.team for i in result.impacts})
        click.echo(
            f"\n{totals['lost_gpu_hours']:g} GPU-hours lost to unhealthy GPUs, {totals['lost_cost_usd']} USD; "
            f"{len(result.impacts)} pods of {len(teams)} teams ran on them ({', '.join(teams) or 'none'}); "
            f"{len(result.result.events)} Xid events; catalog {result.result.catalog_version}"
        )


@main.group("health")
def health() -> None:
    """GPU health history in the warehouse."""


@health.command("evaluate")
@window_option
@pass_ctx
@fail_cleanly
def health_evaluate_cmd(ctx: Context, start: str, end: str) -> None:
    """Evaluate the window and store its health periods and Xid events (replacing earlier ones)."""
    click.echo(record_health(ctx.settings, make_window(start, end)))
