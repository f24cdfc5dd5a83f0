"""Budgets: month-to-date spend, a month-end forecast with its measured error, and warnings.

Forecast method (scikit-learn): daily team spend is modelled with a Ridge regression on a linear
trend plus day-of-week indicators, fitted on up to 28 days before `now`; with fewer than 14 days of
history the weekday terms are dropped (trend only); with fewer than 3, the mean daily spend is
carried forward. The method's error is measured honestly: the model is refitted without the last
`holdout` days and its mean absolute percentage error on those days is reported beside the forecast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from core.money import to_cents

HISTORY_DAYS = 28


@dataclass(frozen=True)
class Forecast:
    method: str
    predicted: list[float]  # per remaining day
    holdout_mape: float | None  # mean absolute percentage error on held-out days
    holdout_days: int


def _design(days: np.ndarray, weekdays: np.ndarray, with_weekday: bool) -> np.ndarray:
    cols = [days.reshape(-1, 1)]
    if with_weekday:
        cols.append(np.eye(7)[weekdays])
    return np.hstack(cols)


def _fit_predict(history: list[float], first_weekday: int, horizon: int) -> tuple[str, list[float]]:
    n = len(history)
    if n < 3:
        mean = float(np.mean(history)) if history else 0.0
        return "mean of the days so far", [mean] * horizon
    with_weekday = n >= 14
    x = np.arange(n + horizon, dtype=float)
    weekdays = (first_weekday + np.arange(n + horizon)) % 7
    design = _design(x, weekdays, with_weekday)
    from sklearn.linear_model import Ridge  # here, not at the top: importing scikit-learn takes ~2 s per command

    model = Ridge(alpha=1.0).fit(design[:n], np.asarray(history))
    predicted = np.maximum(model.predict(design[n:]), 0.0)
    name = "ridge regression on trend + day of week" if with_weekday else "ridge regression on trend"
    return f"{name} ({n} days)", [float(v) for v in predicted]


def forecast(history: list[float], first_weekday: int, horizon: int, holdout: int = 7) -> Forecast:
    """Forecast `horizon` more days of spend from daily `history` (oldest first)."""
    method, predicted = _fit_predict(history, first_weekday, horizon)
    held = min(holdout, len(history) // 3)
    mape = None
    if held >= 1 and len(history) - held >= 3:
        _, check = _fit_predict(history[:-held], first_weekday, held)
        actual = np.asarray(history[-held:])
        mask = actual > 0
        if mask.any():
            mape = float(np.mean(np.abs(np.asarray(check)[mask] - actual[mask]) / actual[mask]))
    return Forecast(method, predicted, mape, held)


@dataclass(frozen=True)
class BudgetLine:
    team: str
    budget_usd: Decimal | None
    month_to_date_usd: Decimal
    forecast_usd: Decimal
    forecast: Forecast
    status: str  # ok | warning | over | no budget

    def as_dict(self) -> dict[str, Any]:
        return {
            "team": self.team,
            "budget_usd": str(self.budget_usd) if self.budget_usd is not None else None,
            "month_to_date_usd": str(self.month_to_date_usd),
            "forecast_usd": str(self.forecast_usd),
            "forecast_vs_budget": float(self.forecast_usd / self.budget_usd) if self.budget_usd else None,
            "status": self.status,
            "method": self.forecast.method,
            "holdout_mape": round(self.forecast.holdout_mape, 4) if self.forecast.holdout_mape is not None else None,
            "holdout_days": self.forecast.holdout_days,
        }


def month_bounds(month: str) -> tuple[datetime, datetime]:
    start = datetime.strptime(month + "-01", "%Y-%m-%d")
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def budget_lines(
    daily: dict[str, dict[date, Decimal]],
    month: str,
    now: datetime,
    budgets: dict[str, Decimal],
    warn_at: float,
) -> list[BudgetLine]:
    """daily: team -> day -> spend (covering up to HISTORY_DAYS before `now`)."""
    start, end = month_bounds(month)
    today = min(max(now, start), end)
    remaining = (end - today).days if today < end else 0
    out = []
    for team in sorted(set(daily) | set(budgets)):
        by_day = daily.get(team, {})
        first = (today - timedelta(days=HISTORY_DAYS)).date()
        days = [first + timedelta(days=i) for i in range((today.date() - first).days)]
        history = [float(by_day.get(d, Decimal(0))) for d in days]
        mtd = sum((v for d, v in by_day.items() if start.date() <= d < today.date()), Decimal(0))
        fc = forecast(_trim_leading_zeros(history), _first_weekday(days, history), remaining)
        total = to_cents(mtd + Decimal(repr(sum(fc.predicted))))
        budget = budgets.get(team)
        out.append(BudgetLine(team, budget, to_cents(mtd), total, fc, _status(mtd, total, budget, warn_at)))
    return out


def _trim_leading_zeros(history: list[float]) -> list[float]:
    # days before the data starts are unknown, not zero spend
    for i, v in enumerate(history):
        if v:
            return history[i:]
    return []


def _first_weekday(days: list[date], history: list[float]) -> int:
    trimmed = len(history) - len(_trim_leading_zeros(history))
    return days[trimmed].weekday() if trimmed < len(days) else 0


def _status(mtd: Decimal, forecast_usd: Decimal, budget: Decimal | None, warn_at: float) -> str:
    if budget is None:
        return "no budget"
    if mtd >= budget:
        return "over"
    if forecast_usd >= budget * Decimal(repr(warn_at)):
        return "warning"
    return "ok"
