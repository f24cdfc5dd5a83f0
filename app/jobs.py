"""What the command line, the service and the dashboard all run: one definition of each job.

The CLI's commands (app/cli/), `gpuledger serve` (app/service/) and the dashboard (app/dashboard/) import
these; nothing here imports from them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from alerts import generator, serialize, unittests
from analytics.cost.chargeback import chargeback
from analytics.cost.prices import load_prices
from analytics.health import impact
from analytics.health.history import store
from analytics.health.policy import RANK, HealthThresholds
from analytics.health.report import HealthResult, Period, evaluate
from analytics.health.signals import GpuKey
from analytics.health.views import event_dict, node_periods, period_dict
from analytics.health.xid_catalog import load_catalog
from analytics.serving.drift import DriftPolicy
from app.publish import exports, focus
from app.stage_options import chargeback_options
from core import conventions as c
from core.settings import ServingSettings, Settings
from core.store.status import bill_files
from core.store.warehouse import open_warehouse
from core.timeutil import Window, iso, iso_week_of, iso_week_window

# Every key of a report row (`HealthReport.rows`), in order.
ROW_COLUMNS = (
    "cluster", "node", "gpu_uuid", "gpu_index", "model", "node_pool", "state", "from_state", "began", "ongoing",
    "hours", "action", "since", "until", "evidence", "evidence_detail", "lost_cost_usd",
)  # fmt: skip


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


def evaluate_health(con: duckdb.DuckDBPyConnection, settings: Settings, window: Window) -> HealthResult:
    catalog = load_catalog(settings.health.xid_overrides)
    # the chargeback's own attribution (team labels and namespace_teams): Xid teams are the billed teams
    attribution = chargeback_options(settings).attribution
    return evaluate(con, window, HealthThresholds.from_all(settings), catalog, attribution)


def run_health(settings: Settings, window: Window, states: tuple[str, ...]) -> HealthReport:
    with open_warehouse(settings.warehouse.path, read_only=True) as con:
        result = evaluate_health(con, settings, window)
        impacts = impact.impacted_pods(con, result, chargeback_options(settings).attribution)
        lost = impact.lost_capacity(con, result, settings.pricing.fallback_gpu_hour_usd)
    return HealthReport(result, states, impacts, lost)


def record_health(settings: Settings, window: Window) -> str:
    """Evaluate the window, store its history, and say what was found in one line."""
    with open_warehouse(settings.warehouse.path) as con:
        result = evaluate_health(con, settings, window)
        written = store(con, result, datetime.now(UTC).replace(tzinfo=None))
    unhealthy = sorted({p.key.gpu_uuid for p in result.periods if p.state in c.UNHEALTHY_STATES})
    return (
        f"stored {written[c.T_HEALTH_PERIODS]} health periods and {written[c.T_HEALTH_EVENTS]} Xid events for "
        f"{len(result.gpus)} GPUs ({len(unhealthy)} unhealthy at some point) in {iso(window.start)}..{iso(window.end)}"
    )


def write_rules(spec: generator.RuleSpec, out: Path, fmt: str = "prometheusrule") -> list[Path]:
    files = generator.generate(spec)
    return serialize.write_all(files, out, fmt, unittests.all_tests(files, spec))


def weekly_inputs(settings: Settings, week: str) -> exports.WeeklyInputs:
    """The three chargeback views a weekly export needs, from one read-only connection."""
    window = iso_week_window(week)
    week = iso_week_of(window.start)  # canonical: it names the export folder
    with open_warehouse(settings.warehouse.path, read_only=True) as con:
        return exports.WeeklyInputs(
            week=week,
            by_team=chargeback(con, window, chargeback_options(settings, ("team",))),
            by_workload=chargeback(con, window, chargeback_options(settings, ("team", "namespace", "workload"))),
            for_focus=chargeback(con, window, chargeback_options(settings, focus.FOCUS_BY)),
            prices=load_prices(con),
            budgets=dict(settings.budgets.monthly_usd),
            account=settings.collect.cluster,
            bills=tuple(bill_files(con, window)) if settings.pricing.source != "list" else (),
        )


def reissue_weeks(settings: Settings, span: tuple[datetime, datetime] | None, published: list[str]) -> list[str]:
    """Export again each `published` week a bill import changed (at billed cost only: list prices read no bill);
    each comes back unchanged or as a new revision (app/publish/revisions.py). A line per week."""
    root = settings.export.directory
    if settings.pricing.source == "list" or span is None:
        return []
    out = []
    for week in published:
        window = iso_week_window(week)
        if window.start < span[1] and span[0] < window.end:
            out.append(exports.write_weekly(weekly_inputs(settings, week), root).summary(week))
    return out


def drift_policy(serving: ServingSettings) -> DriftPolicy:
    """The drift report's thresholds from the settings."""
    return DriftPolicy(
        serving.psi_epsilon, serving.psi_bands, serving.drift_p_value, serving.distance_threshold,
        serving.drift_missing_share, serving.drift_share,
        methods={k: v.method for k, v in serving.drift_columns.items() if v.method},
        thresholds={k: v.threshold for k, v in serving.drift_columns.items() if v.threshold is not None},
    )  # fmt: skip


def savings_rows(con: duckdb.DuckDBPyConnection, settings: Settings, window: Window) -> list[dict[str, Any]]:
    """`report savings` and the overview's savings panel: the FinOps recommendations joined with those from who
    waits for GPUs (analytics/capacity/recommend.py), ranked by monthly dollars (the same list on both)."""
    from analytics.capacity.report import waiting_recommendations
    from analytics.finops.recommend import recommendations
    from app.stage_options import savings_options

    recs = recommendations(con, window, chargeback_options(settings), savings_options(settings))
    waiting = waiting_recommendations(con, window)
    return sorted([r.as_dict() for r in recs] + waiting, key=lambda r: -Decimal(r["monthly_savings_usd"]))
