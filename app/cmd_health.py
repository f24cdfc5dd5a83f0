"""`gpuledger report health` (read-only) and `gpuledger health evaluate` (stores the history)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import click
import duckdb

from analytics import health_impact as impact
from analytics.health import HealthResult, Period, evaluate
from analytics.health_policy import RANK, HealthThresholds, normalise_states
from analytics.health_signals import GpuKey
from analytics.health_store import store
from analytics.health_views import event_dict, node_periods, period_dict
from analytics.xid_catalog import load_catalog
from app import render
from app.cli import Context, fail_cleanly, main, make_window, pass_ctx, window_option
from app.cmd_report import report
from core import conventions as c
from core.errors import ConfigError
from core.settings import Settings
from core.timeutil import Window, iso
from core.warehouse import open_warehouse

DEFAULT_STATES = "drain,offline,rma"
TABLE_COLUMNS = ("node", "gpu_uuid", "model", "state", "since", "until", "hours", "evidence", "action")
# Every key of a report row (`HealthReport.rows`), in order.
ROW_COLUMNS = (
    "cluster", "node", "gpu_uuid", "gpu_index", "model", "node_pool", "state", "from_state", "began", "ongoing",
    "hours", "action", "since", "until", "evidence", "evidence_detail", "lost_cost_usd",
)  # fmt: skip
CSV_COLUMNS = ("cluster", "node", "gpu_uuid", "gpu_index", "model", "node_pool", *TABLE_COLUMNS[3:], "lost_cost_usd")


@dataclass
class HealthReport:
    result: HealthResult
    states: tuple[str, ...]
    impacts: list[impact.Impact]
    lost: list[impact.LostGpu]
    _rows: list[dict[str, Any]] | None = field(default=None, init=False, repr=False)

    def rows(self) -> list[dict[str, Any]]:
        """GPUs needing action: one row per period in the selected states, worst first (computed once: a
        10,000-GPU week's rows take half a second; `as_dict` and the dashboard both read them)."""
        if self._rows is None:
            self._rows = self._compute_rows()
        return self._rows

    def _compute_rows(self) -> list[dict[str, Any]]:
        picked = [p for p in self.result.periods if p.state in self.states]
        worst: dict[GpuKey, int] = {}
        for p in picked:
            worst[p.key] = max(worst.get(p.key, -1), RANK[p.state])
        picked.sort(key=lambda p: (-worst[p.key], p.key, p.start))
        cost = {(r.key, start): usd for r in self.lost for start, usd in r.by_period.items()}
        return [_row(p, self.result, cost.get((p.key, p.start))) for p in picked]

    def as_dict(self, parts: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The report as JSON data; only `parts` (top-level keys) when given: the dashboard's health page
        skips what it does not show (the node list, node-pool reliability) at 10,000 GPUs."""
        builders: dict[str, Callable[[], Any]] = {
            "window": self.result.window.as_dict,
            "catalog_version": lambda: self.result.catalog_version,
            "states": lambda: list(self.states),
            "gpus": self.rows,
            "nodes": lambda: [n.as_dict() for n in node_periods(self.result) if n.state != c.STATE_HEALTHY],
            "xid_events": lambda: [event_dict(e) for e in self.result.events],
            "counter_increases": self._counter_increases,
            "impacted_pods": lambda: [i.as_dict() for i in self.impacts],
            "lost": lambda: [r.as_dict() for r in self.lost],
            "reliability": lambda: {by: self.reliability(by) for by in ("gpu_model", "node_pool")},
            "totals": self._totals,
        }
        return {key: build() for key, build in builders.items() if parts is None or key in parts}

    def reliability(self, by: str) -> list[dict[str, Any]]:
        return [r.as_dict() for r in impact.reliability(self.result, by)]

    def _counter_increases(self) -> list[dict[str, Any]]:
        return [
            {"cluster": k.cluster, "node": k.node, "gpu_uuid": k.gpu_uuid, **{m: v for m, v in inc.items() if v}}
            for k, inc in sorted(self.result.counters.items())
            if any(inc.values())
        ]

    def _totals(self) -> dict[str, Any]:
        return {
            "lost_gpu_hours": round(sum(r.hours for r in self.lost), 6),
            "lost_cost_usd": str(impact.total_cost(self.lost)),
            "unpriced_gpu_hours": round(sum(r.unpriced_hours for r in self.lost), 6),
            "gpus_evaluated": len(self.result.gpus),
        }


def _row(p: Period, result: HealthResult, cost: Decimal | None) -> dict[str, Any]:
    info = result.gpus[p.key]
    first = p.evidence[0].detail if p.evidence else ""
    more = f" (+{len(p.evidence) - 1} more)" if len(p.evidence) > 1 else ""
    return {
        **{k: v for k, v in period_dict(p, info, evidence=False).items() if k not in ("start", "end")},
        "since": iso(p.began),
        "until": "ongoing" if p.ongoing else iso(p.end),
        "evidence": first + more,
        "evidence_detail": [e.as_dict() for e in p.evidence],
        "lost_cost_usd": str(cost) if cost is not None else None,
    }


def compute(con: duckdb.DuckDBPyConnection, settings: Settings, window: Window) -> HealthResult:
    catalog = load_catalog(settings.health.xid_overrides)
    return evaluate(con, window, HealthThresholds.from_all(settings), catalog, tuple(settings.chargeback.team_labels))


def run_health(settings: Settings, window: Window, states: tuple[str, ...]) -> HealthReport:
    with open_warehouse(settings.warehouse.path, read_only=True) as con:
        result = compute(con, settings, window)
        impacts = impact.impacted_pods(con, result, tuple(settings.chargeback.team_labels))
        lost = impact.lost_capacity(con, result, settings.pricing.fallback_gpu_hour_usd)
    return HealthReport(result, states, impacts, lost)


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


def record_health(settings: Settings, window: Window) -> str:
    """Evaluate the window, store its history, and say what was found in one line."""
    with open_warehouse(settings.warehouse.path) as con:
        result = compute(con, settings, window)
        written = store(con, result, datetime.now(UTC).replace(tzinfo=None))
    unhealthy = sorted({p.key.gpu_uuid for p in result.periods if p.state in c.UNHEALTHY_STATES})
    return (
        f"stored {written[c.T_HEALTH_PERIODS]} health periods and {written[c.T_HEALTH_EVENTS]} Xid events for "
        f"{len(result.gpus)} GPUs ({len(unhealthy)} unhealthy at some point) in {iso(window.start)}..{iso(window.end)}"
    )


@health.command("evaluate")
@window_option
@pass_ctx
@fail_cleanly
def health_evaluate_cmd(ctx: Context, start: str, end: str) -> None:
    """Evaluate the window and store its health periods and Xid events (replacing earlier ones)."""
    click.echo(record_health(ctx.settings, make_window(start, end)))
