"""`gpuledger demo`: the whole pipeline on the simulated fleet (what `make run` calls)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import yaml

from analytics.cost.bill_reconcile import reconcile_billing
from app.cli.base import Context, fail_cleanly, main, pass_ctx
from app.cli.health import record_health
from app.cli.publish import run_dashboard
from app.cli.report import ROW_COLUMNS, run_chargeback
from app.jobs import weekly_inputs, write_rules
from app.publish import exports, render, slo_rules
from app.stage_options import rule_spec
from collectors.billing.importer import import_bills
from collectors.metrics import ingest
from collectors.pricing import price_table
from collectors.simulator import fleet, serving_truth
from collectors.simulator.generate import SimConfig, simulate
from core.settings import Settings, load_settings
from core.store.warehouse import open_warehouse
from core.timeutil import Window, iso_week_of, parse_ts


@main.command("demo")
@click.option("--start", default="2026-11-02T00:00:00Z", show_default=True, help="First day of the simulated week.")
@click.option("--days", default=7.0, show_default=True, type=float, help="Days to simulate.")
@click.option("--seed", default=7, show_default=True, type=int, help="Simulator seed.")
@click.option(
    "--dir",
    "workdir",
    default="data/demo",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where the simulated files, rules and exports go.",
)
@click.option("--no-dashboard", is_flag=True, help="Stop after the exports instead of serving the dashboard.")
@pass_ctx
@fail_cleanly
def demo(ctx: Context, start: str, days: float, seed: int, workdir: Path, no_dashboard: bool) -> None:
    """simulate -> collect -> price -> chargeback -> rules -> weekly export -> dashboard."""
    began = time.monotonic()
    cfg = SimConfig(parse_ts(start), days, seed)
    sim_dir = workdir / "fleet"
    summary = simulate(cfg, sim_dir, ctx.progress)
    click.echo(f"1/6 simulated {summary['pods']} pods over {days:g} days into {sim_dir}")
    settings, config_path = demo_settings(ctx.settings, workdir, cfg.interval_s)
    click.echo(f"    settings for the simulated fleet (SLOs, budgets): {config_path}")
    files = sorted(sim_dir.glob("*.om"))
    result = ingest.collect_files(settings.warehouse.path, files, settings.collect, progress=ctx.progress)
    click.echo(f"2/6 collected {result.samples} samples into {settings.warehouse.path} ({result.total_rows} rows)")
    with open_warehouse(settings.warehouse.path) as con:
        price_table.store(con, price_table.parse_csv(price_table.default_table_text(), "default"))
    window = Window(cfg.start, cfg.start + timedelta(days=days))
    click.echo(f"    invoice: {import_and_reconcile(settings, sim_dir, window)}")
    report = run_chargeback(settings, window, ("team",))
    click.echo("3/6 chargeback by team:\n" + render.table([r.as_dict() for r in report.rows], ["team", *ROW_COLUMNS]))
    click.echo(f"    fleet health: {record_health(settings, window)} (see `gpuledger report health`)")
    rules_dir = workdir / "rules"
    write_rules(rule_spec(settings, slos=slo_rules.declared(settings)), rules_dir)
    click.echo(f"4/6 wrote PrometheusRule files to {rules_dir}")
    week = iso_week_of(cfg.start)
    published = exports.write_weekly(weekly_inputs(settings, week), settings.export.directory)
    click.echo(f"5/6 exported {published.summary(week)}")
    click.echo(f"pipeline took {time.monotonic() - began:.1f}s")
    if not no_dashboard:
        click.echo("6/6 starting the dashboard")
        run_dashboard(settings, config=config_path)


# Monthly budgets for the simulated teams: chosen so the overview shows one team over, one near, one fine.
DEMO_BUDGETS = {"vision": "9000", "nlp": "16000", "research": "1400", "ads": "600"}


def demo_settings(base: Settings, workdir: Path, interval_s: int) -> tuple[Settings, Path]:
    """The user's settings plus what the simulated fleet needs; written to a file the dashboard also reads."""
    doc = base.model_dump(mode="json", exclude_defaults=True)
    # the demo's warehouse lives with the rest of the demo, unless --warehouse or the settings name one
    chosen = "path" in base.warehouse.model_fields_set
    doc.setdefault("warehouse", {})["path"] = str(base.warehouse.path if chosen else workdir / "gpuledger.duckdb")
    # the simulator's own 5-minute resolution: one warehouse row per scrape
    doc.setdefault("collect", {}).update(step=f"{interval_s}s", cluster=fleet.CLUSTER)
    doc.setdefault("rules", {})["scrape_interval"] = f"{interval_s}s"
    doc.setdefault("export", {}).setdefault("directory", str(workdir / "exports"))
    if not base.budgets.monthly_usd:
        doc.setdefault("budgets", {})["monthly_usd"] = DEMO_BUDGETS
    if not base.serving.services:
        services: dict[str, dict[str, Any]] = {
            name: {**spec, "slos": []} for name, spec in serving_truth.SERVICES.items()
        }
        for slo in serving_truth.SLOS:
            services[str(slo["service"])]["slos"].append({k: v for k, v in slo.items() if k != "service"})
        doc.setdefault("serving", {})["services"] = services
    path = workdir / "gpuledger.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Written by `gpuledger demo` for the simulated fleet.\n" + yaml.safe_dump(doc, sort_keys=True),
        encoding="utf-8",
    )
    return load_settings(path, env={}), path


def import_and_reconcile(settings: Settings, sim_dir: Path, window: Window) -> str:
    """Import the simulated bill, then its restatement (which replaces the period), and sum up the reconciliation."""
    for folder in ("bill", "bill-restated"):
        imported = import_bills(settings.warehouse.path, [sim_dir / folder], settings.billing)
    with open_warehouse(settings.warehouse.path, read_only=True) as con:
        result = reconcile_billing(con, window, settings.chargeback.mig_share, "instance_type").as_dict()
    totals = result["totals"]
    return (
        f"{imported.lines_kept} lines imported and restated; effective {totals['invoice_effective_usd']} vs "
        f"{totals['ledger_list_usd']} at list ({result['coverage_pct']}% of the GPU node-hours billed; "
        "`gpuledger report reconcile --source billing`)"
    )
