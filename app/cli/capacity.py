"""`gpuledger report queues`: who waits for GPUs, how long, and why free GPUs stay unusable."""

from __future__ import annotations

import click

from analytics.capacity.fragmentation import HEATMAP_NODES
from analytics.capacity.queues import GROUPABLE, QueueOptions
from analytics.capacity.report import queue_report
from app.cli.base import Context, fail_cleanly, make_window, pass_ctx, window_option
from app.cli.report import report
from app.publish import render
from app.stage_options import queue_options
from core.errors import ConfigError
from core.store.warehouse import open_warehouse

ROW_COLUMNS = [
    "pending_gpu_hours", "pods", "wait_p50_seconds", "wait_p95_seconds", "wait_max_seconds", "never_started",
    "still_pending", "unschedulable",
]  # fmt: skip
QUEUE_COLUMNS = [
    "system", "queue", "cohort", "resource", "nominal", "used_mean", "borrowed_gpu_hours", "idle_quota_gpu_hours",
    "pending_mean", "idle_while_others_waited_gpu_hours",
]  # fmt: skip


@report.command("queues")
@window_option
@click.option("--by", default="team", show_default=True, help=f"Comma-separated grouping: {', '.join(GROUPABLE)}.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--pods", is_flag=True, help="JSON: list every pod's wait (a month at 10,000 GPUs: ~800,000 pods).")
@click.option(
    "--heatmap-nodes",
    type=click.IntRange(min=0),
    default=HEATMAP_NODES,
    show_default=True,
    help="JSON: the fragmentation heat map's nodes, the most fragmented first (0: every node).",
)
@pass_ctx
@fail_cleanly
def queues_cmd(ctx: Context, start: str, end: str, by: str, fmt: str, pods: bool, heatmap_nodes: int) -> None:
    """Pending GPU demand, the wait to schedule (p50/p95/max), pods never started, fragmentation and queue quotas."""
    keys = tuple(b.strip() for b in by.split(",") if b.strip())
    bad = [k for k in keys if k not in GROUPABLE]
    if bad:
        raise ConfigError(f"--by {','.join(bad)}: choose from {', '.join(GROUPABLE)}")
    opts: QueueOptions = queue_options(ctx.settings, keys, pods, heatmap_nodes)
    with open_warehouse(ctx.settings.warehouse.path, read_only=True) as con:
        result = queue_report(con, make_window(start, end), opts)
    if fmt == "json":
        click.echo(render.json_text(result.as_dict()), nl=False)
        return
    if fmt == "csv":
        click.echo(render.csv_text(result.rows, [*keys, *ROW_COLUMNS]), nl=False)
        return
    click.echo(render.table(result.rows, [*keys, *ROW_COLUMNS]) if result.rows else "(no GPU pod waited)")
    t = result.totals
    click.echo(
        f"\npending {t['pending_gpu_hours']:.2f} GPU-hours; {t['pods']} pods, wait p50 {t['wait_p50_seconds']} s, "
        f"p95 {t['wait_p95_seconds']} s, max {t['wait_max_seconds']} s; {t['never_started']} never started; "
        f"fragmented {t['fragmented_gpu_hours']:.2f} GPU-hours (${t['fragmented_cost_usd']}) free but fitting no "
        f"pending pod; largest placeable whole-GPU request {t['largest_placeable_gpus_min']}"
        f"..{t['largest_placeable_gpus_max']}"
    )
    if result.queues:
        click.echo("\n" + render.table(result.queues, QUEUE_COLUMNS))
