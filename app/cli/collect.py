"""`gpuledger simulate`, `gpuledger collect ...` (`gpuledger pricing ...` lives in cmd_pricing)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from app.cli.base import Context, fail_cleanly, main, make_window, pass_ctx
from collectors.metrics.commit import LoadResult
from core.errors import ConfigError
from core.settings import with_override
from core.timeutil import parse_duration, parse_ts


@main.command("simulate")
@click.option(
    "--start", default="2026-11-02T00:00:00Z", show_default=True, help="First instant (UTC, 5-minute boundary)."
)
@click.option("--days", default=7.0, show_default=True, type=float, help="Length of the simulation.")
@click.option("--seed", default=7, show_default=True, type=int, help="Random seed: same seed, same bytes.")
@click.option("--interval", default="5m", show_default=True, help="Scrape interval of the simulated exporters.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--incidents/--no-incidents", default=True, show_default=True, help="Inject the GPU health incidents.")
@pass_ctx
@fail_cleanly
def simulate_cmd(ctx: Context, start: str, days: float, seed: int, interval: str, out: Path, incidents: bool) -> None:
    """Write a simulated GPU fleet as OpenMetrics files plus truth.json."""
    from collectors.simulator.generate import SimConfig, simulate

    config = SimConfig(parse_ts(start), days, seed, parse_duration(interval), incidents)
    summary = simulate(config, out, ctx.progress)
    click.echo(f"simulated {summary['pods']} pods, {summary['samples_per_series']} scrapes per series into {out}")


@main.group("collect")
def collect() -> None:
    """Ingest metrics into the warehouse."""


def _echo_load(result: LoadResult) -> None:
    """One summary line on stdout; each warning once on stderr."""
    window = f" {result.window[0]:%Y-%m-%dT%H:%M}Z..{result.window[1]:%Y-%m-%dT%H:%M}Z" if result.window else ""
    rows = ", ".join(f"{k}={v}" for k, v in result.rows.items() if v)
    commits = f" in {result.windows} commits" if result.windows > 1 else ""
    via = f" via {', '.join(result.plans)}" if result.plans else ""
    skipped = f"; {result.skipped_series} malformed series skipped" if result.skipped_series else ""
    if result.invalid:
        skipped += f"; {result.invalid_values} invalid values dropped"
    click.echo(
        f"collected {result.samples} samples from {result.source}{window}{commits}{via}: {rows or 'no rows'}{skipped}"
    )
    if result.skipped_series:
        click.echo(f"gpuledger: warning: {result.skipped_series} malformed series were skipped", err=True)
    if result.invalid:
        families = ", ".join(f"{family} {n}" for family, n in sorted(result.invalid.items()))
        click.echo(
            f"gpuledger: warning: {result.invalid_values} values out of their family's range or not finite "
            f"were dropped ({families})",
            err=True,
        )
    for warning in result.warnings:
        click.echo(f"gpuledger: warning: {warning}", err=True)


@collect.command("openmetrics")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--start", default=None, help="Only keep rows from this instant (UTC).")
@click.option("--end", default=None, help="Only keep rows before this instant (UTC).")
@click.option("--step", default=None, help="Warehouse resolution (default: settings collect.step).")
@click.option("--cluster", default=None, help="Cluster name for series without a `cluster` label.")
@click.option("--at", default=None, help="Timestamp for files whose samples carry none (a saved /metrics scrape).")
@pass_ctx
@fail_cleanly
def collect_openmetrics(
    ctx: Context,
    files: tuple[Path, ...],
    start: str | None,
    end: str | None,
    step: str | None,
    cluster: str | None,
    at: str | None,
) -> None:
    """Ingest OpenMetrics files (sample timestamps required unless --at is given)."""
    from collectors.metrics import ingest

    settings = with_override(ctx.settings, "collect", step=step, cluster=cluster).collect
    window = None
    if start or end:
        if not (start and end):
            raise ConfigError("--start and --end go together")
        window = make_window(start, end)
    at_ts = parse_ts(at) if at else None
    _echo_load(ingest.collect_files(ctx.warehouse, list(files), settings, window, at_ts, progress=ctx.progress))


@collect.command("prometheus")
@click.option("--url", default=None, help="Prometheus-compatible base URL (default: settings prometheus.url).")
@click.option("--start", default=None, help="Window start (UTC, inclusive; default: the source's watermark).")
@click.option("--end", default=None, help="Window end (UTC, exclusive; default: now minus collect.safety_lag).")
@click.option("--step", default=None, help="Query resolution (default: settings collect.step).")
@click.option("--cluster", default=None, help="Cluster name for series without a `cluster` label.")
@click.option(
    "--flavor",
    default=None,
    type=click.Choice(["prometheus", "thanos", "mimir", "victoriametrics"]),
    help="Which store answers (default: settings prometheus.flavor).",
)
@pass_ctx
@fail_cleanly
def collect_prometheus(
    ctx: Context,
    url: str | None,
    start: str | None,
    end: str | None,
    step: str | None,
    cluster: str | None,
    flavor: str | None,
) -> None:
    """Read a window through the Prometheus HTTP API (chunked range queries, one commit per window)."""
    from collectors.metrics import ingest

    settings = with_override(ctx.settings, "collect", step=step, cluster=cluster)
    settings = with_override(settings, "prometheus", url=url, flavor=flavor)
    result = ingest.collect_prometheus(
        ctx.warehouse,
        settings.prometheus,
        settings.collect,
        parse_ts(start) if start else None,
        parse_ts(end) if end else None,
        progress=ctx.progress,
    )
    _echo_load(result)


@collect.command("scrape")
@click.argument("urls", nargs=-1, required=True)
@click.option("--at", default=None, help="Timestamp to record the scrape at (default: now).")
@click.option("--step", default=None, help="Warehouse resolution (default: settings collect.step).")
@click.option("--cluster", default=None, help="Cluster name for series without a `cluster` label.")
@pass_ctx
@fail_cleanly
def collect_scrape(ctx: Context, urls: tuple[str, ...], at: str | None, step: str | None, cluster: str | None) -> None:
    """Scrape exporters' /metrics (dcgm-exporter, kube-state-metrics, vLLM) directly, without Prometheus."""
    from collectors.metrics import scrape

    settings = with_override(ctx.settings, "collect", step=step, cluster=cluster).collect
    when = parse_ts(at) if at else datetime.now(UTC).replace(tzinfo=None)
    _echo_load(scrape.collect_scrapes(ctx.warehouse, list(urls), settings, when))
