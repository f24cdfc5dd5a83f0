"""`gpuledger pricing ...`: import, fetch, configure and show price tables.

Every command parses everything first and stores it in one transaction: a bad file, an unreachable
price API or a bad setting leaves the stored prices as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from analytics.cost import prices
from app.cli.base import Context, fail_cleanly, main, pass_ctx
from app.publish import render
from collectors.pricing import fetch as pricing_fetch
from collectors.pricing import from_settings as pricing_settings
from collectors.pricing import importer, price_table
from core import conventions as c
from core.errors import ConfigError
from core.store.warehouse import open_warehouse
from core.timeutil import parse_ts

SHOW_COLUMNS = (
    "provider",
    "region",
    "zone",
    "instance_type",
    "capacity_type",
    "term",
    "gpus",
    "price_per_hour_usd",
    "list_gpu_hour_usd",
    "discounts",
    "gpu_hour_usd",
    "effective_from",
    "effective_to",
    "sku",
    "fetched_at",
    "source",
)


@main.group("pricing")
def pricing_group() -> None:
    """Load and inspect price tables."""


def _store(ctx: Context, parsed: price_table.Parsed, origin: str, replace: bool = False, force: bool = False) -> None:
    with open_warehouse(ctx.warehouse) as con:
        stored = price_table.store(con, parsed.rows, replace=replace, force=force)
    click.echo(
        f"imported {len(parsed.rows)} price rows ({stored.changed} new or changed) from {origin}{parsed.summary()}"
    )
    for row in stored.restated:
        click.echo(f"replaced {row.describe()}: bills from then on move")


def _read_and_store(
    ctx: Context, read: Callable[[], price_table.Parsed], origin: Callable[[price_table.Parsed], str], **how: bool
) -> None:
    """Read prices, then store them, reporting both steps (an offer file or a live price list takes a while)."""
    progress = ctx.progress
    progress.begin("import prices", 2, "steps")
    try:
        parsed = read()
        progress.step(source=origin(parsed), rows=len(parsed.rows))
        _store(ctx, parsed, origin(parsed), **how)
        progress.step(stage="store")
    finally:
        progress.end()


@pricing_group.command("import")
@click.argument("file", required=False, type=click.Path(path_type=Path))
@click.option("--default", "use_default", is_flag=True, help="Load the price table shipped with gpuledger.")
@click.option(
    "--format", "fmt", type=click.Choice(c.PRICE_FORMATS), default=None, help="File format (default: from content)."
)
@click.option(
    "--replace", is_flag=True, help="Let the file change prices already stored (past bills move; each is listed)."
)
@click.option(
    "--force", is_flag=True, help="Store a price above $1,000 per GPU-hour (refused as implausible otherwise)."
)
@pass_ctx
@fail_cleanly
def pricing_import_cmd(
    ctx: Context, file: Path | None, use_default: bool, fmt: str | None, replace: bool, force: bool
) -> None:
    """Import a price file: AWS offer/GetProducts/spot, GCP catalog, Azure retail, or CSV (all rows or none)."""
    if (file is None) == (not use_default):
        raise ConfigError("give a FILE or --default (not both)")
    options = price_table.ImportOptions.from_settings(ctx.settings.pricing)
    if file is None:
        text = price_table.default_table_text()
        _read_and_store(ctx, lambda: price_table.Parsed(price_table.parse_csv(text, "default", options)),
                        lambda _: "the default table", replace=replace, force=force)  # fmt: skip
    else:
        _read_and_store(ctx, lambda: importer.import_file(file, fmt, options), lambda _: str(file),
                        replace=replace, force=force)  # fmt: skip


@pricing_group.command("fetch")
@click.argument("provider", type=click.Choice(["aws", "gcp", "azure"]))
@click.option("--region", "regions", multiple=True, help="Region to fetch (repeatable; default: from settings).")
@pass_ctx
@fail_cleanly
def pricing_fetch_cmd(ctx: Context, provider: str, regions: tuple[str, ...]) -> None:
    """Download a provider's live price list and store its GPU rows (needs network; exit 3 when offline)."""
    _read_and_store(ctx, lambda: pricing_fetch.fetch(provider, ctx.settings.pricing, regions),
                    lambda parsed: f"{provider} ({', '.join(sorted({r.region for r in parsed.rows}))})")  # fmt: skip


@pricing_group.command("configure")
@click.option(
    "--replace",
    is_flag=True,
    help="Let the settings change on-prem prices already stored (past bills move; each is listed).",
)
@pass_ctx
@fail_cleanly
def pricing_configure(ctx: Context, replace: bool) -> None:
    """Store the settings' on-prem servers (price_table.on_prem) as prices and its discounts (price_table.discounts)."""
    settings = ctx.settings.pricing
    if not settings.on_prem and not settings.discounts:
        raise ConfigError("nothing to configure: the settings have no price_table.on_prem and no price_table.discounts")
    options = price_table.ImportOptions.from_settings(settings, pricing_fetch.now())
    parsed = pricing_settings.on_prem_rows(settings, options) if settings.on_prem else price_table.Parsed([])
    with open_warehouse(ctx.warehouse) as con:
        stored = price_table.store(con, parsed.rows, replace=replace) if parsed.rows else None
        discounts = pricing_settings.store_discounts(con, settings)
    for moved in stored.restated if stored else []:
        click.echo(f"replaced {moved.describe()}: bills from then on move")
    changed = stored.changed if stored else 0
    for row in parsed.rows:
        gpu_hour = (row.gpu_price_per_hour_usd or row.price_per_hour_usd) / row.gpus
        click.echo(
            f"on-prem {row.instance_type}: {gpu_hour:.4f} $/GPU-h = ({row.source.split(': ', 1)[1]}) x GPU share / {row.gpus} GPUs"
        )
    click.echo(f"stored {len(parsed.rows)} on-prem price rows ({changed} new or changed) and {discounts} discounts")


@pricing_group.command("show")
@click.option("--instance-type", default=None, help="Only this instance type.")
@click.option("--at", default=None, help="Prices in force at this instant (UTC; default: now).")
@click.option("--all", "show_all", is_flag=True, help="Every stored row, with its end (the price history).")
@pass_ctx
@fail_cleanly
def pricing_show(ctx: Context, instance_type: str | None, at: str | None, show_all: bool) -> None:
    """Prices in force (or the whole history) with $/GPU-hour, discounts and provenance."""
    when = None if show_all else (parse_ts(at) if at else pricing_fetch.now())
    with open_warehouse(ctx.warehouse, read_only=True) as con:
        rows = prices.prices_in_force(con, when, instance_type)
    if not rows:
        what = f" for {instance_type}" if instance_type else ""
        click.echo(f"no price rows{what}" + (f" in force at {when:%Y-%m-%dT%H:%M:%SZ}" if when else ""))
        return
    click.echo(render.table(rows, SHOW_COLUMNS))
