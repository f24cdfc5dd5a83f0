"""`gpuledger rules ...`, `gpuledger export ...`, `gpuledger dashboard`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from alerts import generator, serialize, sloth_rules, unittests
from alerts.slo import from_def, slo_file
from analytics.health.xid_catalog import load_catalog
from app.cli.base import Context, fail_cleanly, main, pass_ctx
from app.dashboard import access
from app.jobs import weekly_inputs, write_rules
from app.publish import exports, grafana, slo_rules
from app.stage_options import rule_spec
from core.errors import ConfigError, TerminalError
from core.settings import ENV_CONFIG, ENV_WAREHOUSE, Settings


@main.group("rules")
def rules() -> None:
    """Generate and check PrometheusRule files."""


@rules.command("generate")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for the YAML files.")
@click.option(
    "--format", "fmt", type=click.Choice(["prometheusrule", "rulefile"]), default="prometheusrule", show_default=True
)
@pass_ctx
@fail_cleanly
def rules_generate(ctx: Context, out: Path, fmt: str) -> None:
    """Write one PrometheusRule (or plain rule file) per domain; SLO rules when SLOs are declared."""
    paths = write_rules(rule_spec(ctx.settings, slos=slo_rules.declared(ctx.settings)), out, fmt)
    click.echo(f"wrote {len(paths)} rule files (and their promtool tests under tests/) to {out}")


@rules.command("import-sloth")
@click.argument("spec", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for the YAML file.")
@click.option(
    "--format", "fmt", type=click.Choice(["prometheusrule", "rulefile"]), default="prometheusrule", show_default=True
)
@click.option("--window", default=None, help="SLO period (default: settings serving.sloth_window, 30d).")
@click.option(
    "--naming",
    type=click.Choice(["gpuledger", "sloth"]),
    default="gpuledger",
    show_default=True,
    help="sloth: Sloth's series, labels and groups, rule for rule (its Grafana dashboards work unchanged).",
)
@pass_ctx
@fail_cleanly
def rules_import_sloth(ctx: Context, spec: Path, out: Path, fmt: str, window: str | None, naming: str) -> None:
    """Turn a Sloth `prometheus/v1` spec into SLO rules (SLI recordings and burn-rate alerts)."""
    defs = slo_rules.sloth_defs(spec, window or ctx.settings.serving.sloth_window)
    if not defs:
        raise ConfigError(f"{spec}: the spec declares no SLOs")
    r = ctx.settings.rules
    slos = tuple(from_def(d) for d in defs)
    rule_spec = generator.RuleSpec(namespace=r.namespace, slos=slos, slo_severities=r.slo_severities)
    if naming == "sloth":
        files, tests = [sloth_rules.sloth_file(defs, r.namespace)], None
    else:
        files = [slo_file(list(slos), r.namespace, r.slo_severities)]
        tests = unittests.all_tests(files, rule_spec)
    promtool = shutil.which("promtool")
    if promtool is not None:  # Sloth refuses PromQL Prometheus cannot parse: so does the import, before writing
        with tempfile.TemporaryDirectory() as tmp:
            slo_rules.check_promql(spec, serialize.write_all(files, Path(tmp), fmt)[0], defs, promtool)
    else:
        click.echo("promtool not found: the specs' PromQL was not parsed (`gpuledger rules check` will)", err=True)
    paths = serialize.write_all(files, out, fmt, tests)
    for d in defs:
        if d.rules_only is not None:
            click.echo(
                f"{d.service} {d.name}: rules only, the warehouse reports cannot evaluate it and it has no generated "
                f"test ({d.rules_only})"
            )
        elif not d.sli.counts_events:
            click.echo(f"{d.service} {d.name}: a gauge SLI, evaluated in the warehouse; it has no generated test")
    click.echo(f"wrote {len(defs)} SLOs as {paths[0]}")


@rules.command("test")
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@fail_cleanly
def rules_test(directory: Path) -> None:
    """Run `promtool test rules` on DIRECTORY/tests/*.test.yaml (the tests generated with the rules)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise TerminalError("promtool not found: install it with `apt-get install -y prometheus` (Debian)")
    ok, output = serialize.promtool_test(directory, promtool)
    click.echo(output)
    if not ok:
        raise TerminalError(f"{directory}: promtool rule tests failed (see above)")


@rules.command("check")
@click.argument("directory", type=click.Path(path_type=Path, exists=True, file_okay=False))
@fail_cleanly
def rules_check(directory: Path) -> None:
    """Run `promtool check rules` on every YAML file in DIRECTORY."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise TerminalError("promtool not found: install it with `apt-get install -y prometheus` (Debian)")
    paths = sorted(directory.glob("*.yaml"))
    if not paths:
        raise ConfigError(f"{directory}: no .yaml rule files")
    ok, output = serialize.promtool_check(paths, promtool)
    click.echo(output)
    if not ok:
        raise TerminalError(f"{directory}: promtool rejected the rules (see above)")


@main.group("dashboards")
def dashboards() -> None:
    """Grafana dashboards for the Prometheus the rules feed."""


@dashboards.command("generate")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory for the JSON and ConfigMaps.")
@pass_ctx
@fail_cleanly
def dashboards_generate(ctx: Context, out: Path) -> None:
    """Write the cost, fleet health and SLO dashboards (Grafana JSON, and ConfigMaps for the Grafana sidecar)."""
    models = grafana.dashboards(load_catalog(ctx.settings.health.xid_overrides))
    out.mkdir(parents=True, exist_ok=True)
    for uid, model in models.items():
        (out / f"{uid}.json").write_text(json.dumps(model, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "grafana-dashboards.yaml").write_text(grafana.configmaps(models, ctx.settings.rules.namespace))
    click.echo(f"wrote {len(models)} dashboards ({', '.join(sorted(models))}) and their ConfigMaps to {out}")


@main.group("export")
def export() -> None:
    """Write chargeback exports."""


@export.command("weekly")
@click.option("--week", required=True, help="ISO week, e.g. 2026-W45 (Monday 00:00 UTC to next Monday).")
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Export root (default: settings export.directory)."
)
@pass_ctx
@fail_cleanly
def export_weekly(ctx: Context, week: str, out: Path | None) -> None:
    """Chargeback for one ISO week as CSV + Parquet + manifest.json."""
    inputs = weekly_inputs(ctx.settings, week)
    published = exports.write_weekly(inputs, out or ctx.settings.export.directory)
    click.echo(f"exported {len(inputs.by_team.rows)} team rows: {published.summary(inputs.week)}")


def dashboard_command(settings: Settings, host: str, port: int) -> list[str]:
    script = Path(__file__).parents[1] / "dashboard" / "streamlit_app.py"
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        # Streamlit's welcome message looks up the machine's external IP (an outbound HTTPS request) when it
        # binds 0.0.0.0; gpuledger prints the address itself and the dashboard makes no outbound call
        "--logger.hideWelcomeMessage",
        "true",
        "--global.developmentMode",
        "false",
        # no run-on-save or source watching: a served dashboard never reloads code from its disk
        "--server.fileWatcherType",
        "none",
        # Streamlit runs a full gc.collect(2) after every page run: with the cached frames on the heap that
        # was a fifth of the server's CPU under 20 sessions (py-spy); Python's generational GC still runs
        "--runner.postScriptGC",
        "false",
    ] + (["--secrets.files", str(settings.dashboard.secrets_file)] if settings.dashboard.secrets_file else [])


def run_dashboard(
    settings: Settings, host: str | None = None, port: int | None = None, config: Path | None = None
) -> None:
    host = host or settings.dashboard.host
    port = port or settings.dashboard.port
    access.check_exposure(settings.dashboard, host)
    env = dict(os.environ, **{ENV_WAREHOUSE: str(settings.warehouse.path.resolve())})
    if config is not None:
        env[ENV_CONFIG] = str(config.resolve())
    click.echo(f"dashboard on http://{host}:{port}  (Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):
        subprocess.run(dashboard_command(settings, host, port), env=env, check=False)


@main.command("dashboard")
@click.option("--host", default=None, help="Bind address (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8501).")
@pass_ctx
@fail_cleanly
def dashboard(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve the Streamlit dashboard on the warehouse."""
    run_dashboard(ctx.settings, host, port, ctx.config if ctx.config and ctx.config.is_file() else None)
