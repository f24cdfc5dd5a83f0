"""`gpuledger billing ...`: the provider's bill (FOCUS 1.0-1.3 or AWS CUR 2.0) into the warehouse."""

from __future__ import annotations

from pathlib import Path

import click

from app.cli.base import Context, fail_cleanly, main, pass_ctx
from app.jobs import reissue_weeks
from app.service.schedule import exported_weeks
from collectors.billing import formats
from collectors.billing.importer import import_bills


@main.group("billing")
def billing_group() -> None:
    """The provider's bill: import it, then `report reconcile --source billing`."""


@billing_group.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(list(formats.FORMATS)), default=None, help="Default: from the columns."
)
@click.option(
    "--provider",
    type=click.Choice(["aws", "azure", "gcp", "oci"]),
    default=None,
    help="Default: the bill's ProviderName.",
)
@pass_ctx
@fail_cleanly
def billing_import_cmd(ctx: Context, paths: tuple[Path, ...], fmt: str | None, provider: str | None) -> None:
    """Import bill files or export folders (CSV, gzip CSV, Parquet); a billing period imported again is replaced.

    At billed cost (pricing.source billing or auto), each published weekly export the import changes is exported
    again: unchanged, or a new revision that keeps the old one and says what changed."""
    result = import_bills(
        ctx.settings.warehouse.path, list(paths), ctx.settings.billing, fmt, provider, progress=ctx.progress
    )
    converted = "".join(f"; {cur} converted at {rate}" for cur, rate in result.converted.items())
    click.echo(
        f"imported {result.lines_kept} of {result.lines_read} lines from {result.files} file(s) (GPU instances and "
        f"the cluster's nodes): effective cost {result.effective_usd:.2f} {ctx.settings.billing.currency}{converted}"
    )
    for period in result.periods:
        click.echo(f"  billing period {period}: replaced")
    for line in reissue_weeks(ctx.settings, result.span, exported_weeks(ctx.settings.export.directory)):
        click.echo(f"  export {line}")
