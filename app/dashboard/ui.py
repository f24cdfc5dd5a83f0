"""Shared dashboard plumbing: the warehouse, cached analytics calls, and the filters every page uses.

Pages never run SQL: they call analytics functions through the cached wrappers here. Caches are
versioned by the warehouse file's modification time and refreshed in the background after a new
collection (app/dashboard/freshness.py: stale-while-revalidate, one computation per version). Filters
(window, cluster, team, GPU model, node pool) live in the URL query string, so a view is a link.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import altair  # noqa: F401  (before the import thread below: see _import_heavy_modules)
import duckdb
import pandas as pd
import streamlit as st

from analytics.cost.chargeback import ChargebackOptions, chargeback
from analytics.cost.cost_rows import ADDITIVE_COLUMNS, MONEY_COLUMNS
from app.dashboard import access, freshness, reader
from app.stage_options import chargeback_options
from core.errors import GpuledgerError
from core.settings import ENV_CONFIG, ENV_WAREHOUSE, DashboardSettings, Settings, load_settings
from core.store.status import data_span
from core.timeutil import Window

T = TypeVar("T")


def _import_heavy_modules() -> None:
    """The forecast's scikit-learn and the drift tests' scipy.stats take ~2 s to import. The CLI imports them
    where they run (a command that does not forecast should not pay for it); the dashboard process imports
    them once, here, off any page's path, so the first view of a page with a forecast does not wait for it
    (a page that needs them meanwhile blocks on the same import, not a second one).

    scikit-learn imports narwhals, as altair (Streamlit's charts) does. Two threads importing narwhals at once
    can deadlock on its circular package imports (Python then raises _DeadlockError in one: a page crashed with
    it), so altair, and narwhals with it, is imported at this module's top, before this thread starts."""
    import scipy.stats  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    # What is alive now (modules, Streamlit, these imports: about 150,000 objects) lives as long as the process.
    # Frozen, the cyclic collector stops walking it on every full collection, which at 10,000 GPUs took
    # 0.2 s each time one fell inside a page's reports (gc.freeze: the standard library's answer to exactly this)
    gc.freeze()


threading.Thread(target=_import_heavy_modules, name="gpuledger-imports", daemon=True).start()
FILTER_KEYS = ("cluster", "team", "gpu_model", "node_pool")
BREAKDOWN = ("team", "day", "cluster", "node_pool", "gpu_model")


def settings() -> Settings:
    config = os.environ.get(ENV_CONFIG)
    return load_settings(Path(config) if config else Path("/dev/null"))


def warehouse() -> Path:
    return Path(os.environ.get(ENV_WAREHOUSE) or settings().warehouse.path)


def mtime() -> tuple[str, float, str, float]:
    """The cache key of what pages show: the warehouse and the settings file, each path and modification time."""
    path = warehouse()
    config = Path(os.environ.get(ENV_CONFIG) or "/dev/null")
    return (
        str(path),
        path.stat().st_mtime if path.exists() else 0.0,
        str(config),
        config.stat().st_mtime if config.is_file() else 0.0,
    )


def read(fn: Callable[[duckdb.DuckDBPyConnection], T], attempts: int = 20) -> T:
    """Run fn on a read-only connection (app/dashboard/reader.py); while a collector holds the write lock, wait and retry."""
    return reader.read(fn, warehouse(), settings().dashboard.memory_limit, attempts)


def shared_connection() -> contextlib.AbstractContextManager[None]:
    """Every read() on this thread inside the block uses one connection (app/dashboard/reader.py)."""
    return reader.shared(warehouse(), settings().dashboard.memory_limit)


@freshness.cached
def span(version: tuple[str, float, str, float]) -> tuple[datetime, datetime] | None:
    return read(data_span)


@freshness.cached
def breakdown(version: tuple[str, float, str, float], start: datetime, end: datetime) -> pd.DataFrame:
    """Chargeback rows by team x day x cluster x node pool x GPU model: every page filters this."""
    opts = _options(BREAKDOWN)
    report = read(lambda con: chargeback(con, Window(start, end), opts))
    rows = [{**r.as_dict(), "kind": r.kind} for r in report.rows]
    frame = pd.DataFrame(rows)
    for col in MONEY_COLUMNS:
        if col in frame:
            frame[col] = frame[col].astype(float)
    return frame


def grouped(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The chargeback rows of `frame` summed by `keys`: each additive column summed (money to the cent: the
    rows' cents add up to the coarser row's, analytics/cost/cost_rows.py), efficiency recomputed from the
    sums (never an average of the rows' efficiencies). Sorted by cost, highest first."""
    sums = frame.groupby(keys, as_index=False)[list(ADDITIVE_COLUMNS)].sum()
    sums[list(MONEY_COLUMNS)] = sums[list(MONEY_COLUMNS)].round(2)
    sums.insert(len(keys) + 2, "efficiency", (sums["used_gpu_hours"] / sums["gpu_hours"]).where(sums["gpu_hours"] > 0))
    return sums.sort_values("cost_usd", ascending=False, ignore_index=True)


def _options(by: tuple[str, ...]) -> ChargebackOptions:
    return chargeback_options(settings(), by)


@dataclass(frozen=True)
class Filters:
    start: datetime
    end: datetime
    picks: dict[str, list[str]]
    scope: access.Scope = access.EVERYTHING  # the teams this user may see (app/dashboard/access.py)

    @property
    def window(self) -> Window:
        return Window(self.start, self.end)

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        for key, values in self.picks.items():
            if values and key in frame:
                frame = frame[frame[key].isin(values)]
        return self.restrict(frame)

    def restrict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Only the rows of teams this user may see: every frame a page shows or offers passes here."""
        return self.scope.restrict(frame)


def _login() -> None:
    st.title("gpuledger")
    st.write("Log in to see your teams' GPU bills.")
    st.button("Log in", on_click=st.login, type="primary")


def authenticate(policy: DashboardSettings) -> access.Scope:
    """With `dashboard.auth: oidc`, log the user in (st.login) and return what they may see."""
    if policy.auth == "none":
        return access.EVERYTHING
    identity = access.identity_from(st.user.to_dict(), policy.groups_claim, policy.user_claim)
    if not identity.logged_in:
        # the login is the only page there is: stopping before st.navigation let Streamlit list the pages/ folder
        st.navigation([st.Page(_login, title="Log in", default=True)], position="hidden").run()
        st.stop()
    scope = access.scope_for(identity, policy)
    teams = "all teams" if scope.admin else (", ".join(sorted(scope.teams)) or "no team yet: ask an admin")
    st.sidebar.caption(f"Signed in as {identity.label} ({teams})")
    st.sidebar.button("Log out", on_click=st.logout)
    return scope


def current_scope() -> access.Scope:
    return st.session_state.get("scope", access.NOTHING)


def require_admin() -> None:
    """Fleet-wide pages: a second guard behind the navigation, which already hides them."""
    if not current_scope().admin:
        st.error("This page shows every team's data: ask a gpuledger admin.")
        stop()


class PageDone(Exception):
    """A page ended early (stop) inside the entrypoint's page_run."""


_in_page_run: contextvars.ContextVar[bool] = contextvars.ContextVar("gpuledger_page_run", default=False)


@contextlib.contextmanager
def page_run() -> Iterator[None]:
    """Run the chosen page (nav.run()) so that a page ending early (stop) ends the page, not the script run: the
    sidebar's filter lists are rendered after the page, and st.stop() would leave them out."""
    token = _in_page_run.set(True)
    try:
        with contextlib.suppress(PageDone):
            yield
    finally:
        _in_page_run.reset(token)


def stop() -> NoReturn:
    """End the page here: inside page_run, the entrypoint goes on to the sidebar's filter lists; a page run alone (as
    AppTest's switch_page runs it) stops as st.stop() does."""
    if _in_page_run.get():
        raise PageDone
    st.stop()


def prefetch_reports(page: str, start: datetime, end: datetime, sidebar: bool = False) -> None:
    """Start computing the cached reports `page` reads, in the order it reads them, in two lanes of one connection
    each (shared_connection): the page then waits for each in turn while the rest are computed (at 10,000 GPUs the
    teams page's four reports: 2.0-2.5 s in one lane, see the README for two). From the `sidebar`, whose filter
    lists read the breakdown: for a page that shows it, the breakdown goes first and the page's other reports start
    beside it; for one that does not, it takes the second lane alone, and the first lane is the page's (the page's
    own call is then a no-op)."""
    reports: dict[str, list[tuple[Callable[..., Any], tuple[Any, ...]]]] = {
        "overview": [(breakdown, (start, end)), (budget_frame, (end,))],
        "teams": [
            (workloads_frame, (start, end)),
            (breakdown, (start, end)),
            (budget_frame, (end,)),
            (anomalies_frame, (start, end)),
        ],
        "health": [(health_report, (start, end))],
    }
    calls, version = reports.get(page, []), mtime()
    if sidebar and not any(fn is breakdown for fn, _ in calls):
        # only the filter lists (rendered after the page) want it: it takes the second lane, and the first stays
        # free for the page's reports (a page's own first call of a report waits in the first lane)
        freshness.prefetch(calls, version, shared_connection)
        freshness.prefetch([(breakdown, (start, end))], version, shared_connection, lanes=(1,))
        return
    if sidebar:
        calls = [(breakdown, (start, end))] + [call for call in calls if call[0] is not breakdown]
    freshness.prefetch(calls, version, shared_connection, lanes=(0, 1))


def no_data() -> None:
    path = warehouse()
    if not path.exists():
        st.info(
            f"No warehouse at `{path}` yet. Run `gpuledger demo` for a simulated fleet, or `gpuledger collect` for yours."
        )
    else:
        st.info(
            "The warehouse has no GPU data yet. Run `gpuledger collect openmetrics FILE...` or `gpuledger collect prometheus`."
        )


def money(value: Any) -> str:
    return f"${float(value):,.2f}"


@freshness.cached
def budget_frame(version: tuple[str, float, str, float], as_of: datetime) -> pd.DataFrame | None:
    from analytics.finops import budget, daily_spend

    s = settings()
    today = as_of.replace(hour=0, minute=0, second=0, microsecond=0)
    history = Window(today - timedelta(days=budget.HISTORY_DAYS), today)
    lines = read(
        lambda con: daily_spend.budget_report(
            con, f"{today:%Y-%m}", history, _options(("team",)), dict(s.budgets.monthly_usd), s.budgets.warn_at
        )
    )
    return pd.DataFrame([line.as_dict() for line in lines])


@freshness.cached
def savings_frame(version: tuple[str, float, str, float], start: datetime, end: datetime) -> pd.DataFrame:
    from app.jobs import savings_rows

    rows = read(lambda con: savings_rows(con, settings(), Window(start, end)))
    cols = ["monthly_savings_usd", "kind", "team", "target", "action", "evidence"]
    return pd.DataFrame(rows, columns=cols)


def savings_ready(version: tuple[str, float, str, float], start: datetime, end: datetime) -> pd.DataFrame | None:
    """savings_frame if it has been computed (or is one collection stale), else None while it is computed."""
    value = freshness.peek(savings_frame, version, start, end)
    return None if value is None else pd.DataFrame(value)


@freshness.cached
def anomalies_frame(version: tuple[str, float, str, float], start: datetime, end: datetime) -> pd.DataFrame:
    from analytics.finops.daily_spend import anomaly_report

    b = settings().budgets
    found = read(
        lambda con: anomaly_report(con, Window(start, end), _options(("team",)), b.anomaly_threshold, b.anomaly_min_usd)
    )
    cols = ["team", "day", "expected_usd", "actual_usd", "difference_usd", "robust_z", "drivers"]
    return pd.DataFrame([a.as_dict() for a in found], columns=cols)


@freshness.cached
def workloads_frame(version: tuple[str, float, str, float], start: datetime, end: datetime) -> pd.DataFrame:
    opts = _options(("team", "namespace", "workload", "cluster", "node_pool", "gpu_model"))
    report = read(lambda con: chargeback(con, Window(start, end), opts))
    frame = pd.DataFrame([{**r.as_dict(), "kind": r.kind} for r in report.rows])
    for col in MONEY_COLUMNS:
        frame[col] = frame[col].astype(float)
    frame["price_sources"] = frame["price_sources"].map(lambda v: "; ".join(v))
    return frame


@freshness.cached
def status(version: tuple[str, float, str, float]) -> dict[str, Any]:
    from core.store.status import data_status

    return read(data_status)


@freshness.cached
def health_report(version: tuple[str, float, str, float], start: datetime, end: datetime) -> dict[str, Any]:
    """The health page's data: `cells` (node, gpu_index, state) of every period for the grid, `periods`
    rows of the periods not healthy only (at 10,000 GPUs formatting every healthy GPU's row took half a
    second of a page that shows none of them), and the report's totals, Xid events, impacted pods and
    reliability by GPU model."""
    from app.dashboard.health_grid import cells
    from app.jobs import ROW_COLUMNS, run_health
    from core import conventions as cv

    report = run_health(settings(), Window(start, end), tuple(s for s in cv.HEALTH_STATES if s != cv.STATE_HEALTHY))
    data = report.as_dict(("totals", "xid_events", "impacted_pods"))
    data["periods"] = pd.DataFrame(report.rows(), columns=list(ROW_COLUMNS))
    data["cells"] = cells(report.result)
    data["reliability"] = {"gpu_model": report.reliability("gpu_model")}
    return data


@freshness.cached
def queues(version: tuple[str, float, str, float], start: datetime, end: datetime) -> dict[str, Any]:
    """`report queues` by team for the window (the CLI's numbers), with its lists as frames."""
    from analytics.capacity.report import queue_report
    from app.stage_options import queue_options

    options = queue_options(settings(), ("team",))
    data = read(lambda con: queue_report(con, Window(start, end), options)).as_dict()
    for key in ("rows", "queues", "mig", "heatmap", "timeline", "wait_histogram"):
        data[key] = pd.DataFrame(data[key])
    return data


@freshness.cached
def serving(version: tuple[str, float, str, float], start: datetime, end: datetime) -> dict[str, Any]:
    """SLO reports at the window's end (or the serving data's end), unit costs and canary verdicts."""
    from analytics.serving import canary as canary_mod
    from analytics.serving import slo as slo_mod
    from analytics.serving.unit_cost import unit_costs
    from app.publish.slo_rules import serving_data_end
    from app.stage_options import sloth_specs

    s = settings()

    def run(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        try:
            data_end = serving_data_end(con)
        except GpuledgerError:
            return {"slos": [], "unit_costs": [], "canaries": [], "has_data": False}
        now = min(end, data_end)
        defs = slo_mod.build_slos(con, s.serving, sloth_specs(s.serving), now)
        slos = [slo_mod.evaluate(con, d, now).as_dict() for d in defs]
        window = Window(start, now) if now > start else Window(now - timedelta(days=1), now)
        costs = [
            r.as_dict()
            for r in unit_costs(con, window, s.serving.cost_ceiling_per_1k_requests_usd, None, _options(("team",)))
        ]
        canaries = []
        for model in sorted({r["model"] for r in costs if r.get("version")}):
            try:
                verdict = canary_mod.canary_verdict(
                    con,
                    model,
                    window,
                    s.serving.canary,
                    s.serving.min_quality_samples,
                    None,
                    s.pricing.fallback_gpu_hour_usd,
                )
                canaries.append(verdict.as_dict())
            except GpuledgerError:
                continue
        return {"slos": slos, "unit_costs": costs, "canaries": canaries, "has_data": True, "at": now.isoformat()}

    return read(run)


@freshness.cached
def drift_days(version: tuple[str, float, str, float], start: datetime, end: datetime, model: str) -> dict[str, Any]:
    """Each day's traffic drift against the window's first day, per feature (the heatmap's cells)."""
    from analytics.serving.traffic_drift import traffic_drift
    from app.jobs import drift_policy

    s = settings()
    days = [start + timedelta(days=i) for i in range(max(1, (end - start).days))]
    reference = Window(days[0], days[0] + timedelta(days=1))

    def run(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        cells, details = [], {}
        for day in days[1:]:
            current = Window(day, day + timedelta(days=1))
            for f in traffic_drift(con, model, reference, current, drift_policy(s.serving)):
                cells.append(
                    {
                        "day": f"{day:%Y-%m-%d}",
                        "feature": f.feature,
                        "value": f.statistics.get(f.method),
                        "method": f.method,
                        "drift": f.drift,
                        "psi": f.statistics.get("psi"),
                    }
                )
                details[(f"{day:%Y-%m-%d}", f.feature)] = f.as_dict()
        return {
            "reference": reference.as_dict(),
            "cells": cells,
            "details": {f"{k[0]}|{k[1]}": v for k, v in details.items()},
        }

    return read(run)


@freshness.cached
def serving_models(version: tuple[str, float, str, float]) -> list[str]:
    from core.store.status import serving_models as models

    return read(models)


@freshness.cached
def reconciliation(version: tuple[str, float, str, float]) -> dict[str, Any] | None:
    """Bill vs ledger (analytics/cost/reconcile.py) over the last whole day of data, per node; None without data."""
    from analytics.cost.reconcile import reconcile
    from core.timeutil import DAY, HOUR, floor_to

    found = span(version)
    if found is None:
        return None
    end = floor_to(found[1], HOUR)
    window = Window(max(found[0], end - DAY), end)
    if window.end <= window.start:
        return None
    return read(lambda con: reconcile(con, window, _options(("team",))).as_dict())


@freshness.cached
def reconciliations(version: tuple[str, float, str, float]) -> dict[str, dict[str, Any] | None]:
    """The data status page's two reconciliations (bill and invoice against the ledger), computed together."""
    return {"bill": reconciliation(version), "invoice": bill_reconciliation(version)}


def reconciliations_ready(version: tuple[str, float, str, float]) -> dict[str, dict[str, Any] | None] | None:
    """reconciliations if computed (or one collection stale), else None while they are worked out in the background:
    a day of node-hours and a chargeback by node, seconds on a large fleet, so the rest of the page does not wait."""
    value = freshness.peek(reconciliations, version)
    return None if value is None else dict(value)


@freshness.cached
def bill_reconciliation(version: tuple[str, float, str, float]) -> dict[str, Any] | None:
    """Invoice vs ledger (analytics/cost/bill_reconcile.py) over the last whole day both the imported bill and the
    data cover (as the ledger's reconciliation beside it), per instance type; None without an imported bill. The
    whole overlap read a month of node-steps: at 10,000 GPUs past the page's 1 GB memory limit (`make bench`,
    2026-12-06); `report reconcile --source billing` takes any window."""
    from analytics.cost.bill_reconcile import reconcile_billing
    from core.store.status import billed_span
    from core.timeutil import DAY, HOUR, ceil_to, floor_to

    found, billed = span(version), read(billed_span)
    if found is None or billed is None:
        return None
    end = floor_to(min(found[1], billed[1]), HOUR)
    start = max(ceil_to(max(found[0], billed[0]), HOUR), end - DAY)
    if end <= start:  # not one whole hour in common
        return None
    window = Window(start, end)
    mig_share = _options(("team",)).mig_share
    return read(lambda con: reconcile_billing(con, window, mig_share, "instance_type").as_dict())
