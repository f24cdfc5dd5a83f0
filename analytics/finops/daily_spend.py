"""Daily spend series per team (and per team and workload): the input of budgets and anomalies."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import duckdb

from analytics.cost.chargeback import ChargebackOptions, chargeback
from analytics.cost.cost_rows import SHARED
from analytics.finops import anomalies, budget
from core import conventions as c
from core.money import in_money_context
from core.timeutil import Window

Series = dict[str, dict[date, Decimal]]


@in_money_context
def daily_spend(
    con: duckdb.DuckDBPyConnection, window: Window, options: ChargebackOptions, by_workload: bool = True
) -> tuple[Series, dict[tuple[str, str], dict[date, Decimal]], list[date]]:
    """team -> day -> cost, (team, workload) -> day -> cost (empty unless `by_workload`), and the days of the window.
    A team's days add up to the same total either way (cost_rows.round_rows pins each team's cents); one day may differ
    by a cent, each grouping rounding its own cells."""
    by = ("team", "workload", "day") if by_workload else ("team", "day")
    report = chargeback(con, window, replace(options, by=by))
    teams: Series = {}
    workloads: dict[tuple[str, str], dict[date, Decimal]] = {}
    for row in report.rows:
        team = row.keys["team"]
        if team in (c.IDLE, c.UNHEALTHY, SHARED):
            continue
        day = date.fromisoformat(row.keys["day"])
        teams.setdefault(team, {})[day] = teams.get(team, {}).get(day, Decimal(0)) + row.cost_usd
        if by_workload:
            key = (team, row.keys["workload"])
            workloads.setdefault(key, {})[day] = workloads.get(key, {}).get(day, Decimal(0)) + row.cost_usd
    days = [window.start.date() + timedelta(days=i) for i in range((window.end - window.start).days)]
    return teams, workloads, days


@in_money_context
def budget_report(
    con: duckdb.DuckDBPyConnection,
    month: str,
    now_window: Window,
    options: ChargebackOptions,
    budgets: dict[str, Decimal],
    warn_at: float,
) -> list[budget.BudgetLine]:
    """now_window: [now - history, now); the month-to-date part is read from the same series."""
    # by team and day only: a budget has no use for the workloads, and a month of them is most of the teams page's
    # first view (the slowest of its four reports, 1,000 GPUs)
    teams, _, _ = daily_spend(con, now_window, options, by_workload=False)
    return budget.budget_lines(teams, month, now_window.end, budgets, warn_at)


@in_money_context
def anomaly_report(
    con: duckdb.DuckDBPyConnection, window: Window, options: ChargebackOptions, threshold: float, min_usd: Decimal
) -> list[anomalies.Anomaly]:
    teams, workloads, days = daily_spend(con, window, options)
    return anomalies.detect(teams, workloads, days, threshold, min_usd)
