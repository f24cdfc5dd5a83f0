"""`gpuledger carbon ...`: hourly grid carbon intensity (Electricity Maps, WattTime or a plain CSV) into the warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click

from app.cli.base import Context, fail_cleanly, main, pass_ctx
from collectors.carbon import hourly


@main.group("carbon")
def carbon_group() -> None:
    """Grid carbon intensity: hourly history for the zones `carbon.zones` maps regions to."""


@carbon_group.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(hourly.FORMATS), default=None, help="Default: from the file.")
@click.option("--zone", default=None, help="The grid zone of a WattTime file (default: its meta.region).")
@click.option(
    "--factor",
    type=click.Choice(["direct", "lifecycle"]),
    default="direct",
    show_default=True,
    help="Electricity Maps' emission factor: direct (operational, as the shipped annual table) or lifecycle.",
)
@pass_ctx
@fail_cleanly
def carbon_import_cmd(ctx: Context, paths: tuple[Path, ...], fmt: str | None, zone: str | None, factor: str) -> None:
    """Import hourly grid intensity (gCO2e/kWh per zone and hour); the hours a file brings replace those stored."""
    result = hourly.import_hourly(
        ctx.settings.warehouse.path,
        list(paths),
        cast(hourly.Format | None, fmt),
        zone,
        cast(hourly.Factor, factor),
        progress=ctx.progress,
    )
    click.echo(f"imported {result.hours} zone-hours from {result.points} points in {result.files} file(s)")
    mapped = set(ctx.settings.carbon.zones.values())
    for name, label in sorted(result.zones.items()):
        note = "" if name in mapped else " (no region maps to it: set carbon.zones)"
        click.echo(f"  zone {name}: {label}{note}")
