"""Budgets, forecasts and daily-spend anomalies: checked against series whose answer is known."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from analytics.finops import anomalies, budget
from tests.builders import T0, add_node, add_pod, add_price, fresh_db
from tests.conftest import run_cli


def test_a_linear_spend_series_is_forecast_exactly_and_its_holdout_error_is_near_zero() -> None:
    history = [100.0 + 5 * i for i in range(21)]
    fc = budget.forecast(history, first_weekday=0, horizon=3)
    assert fc.predicted == pytest.approx([205.0, 210.0, 215.0], rel=0.02)
    assert fc.holdout_mape is not None and fc.holdout_mape < 0.02 and fc.holdout_days == 7
    assert "day of week" in fc.method


def test_a_weekly_pattern_is_learned_with_weekday_terms() -> None:
    week = [100.0, 100, 100, 100, 100, 20, 20]
    fc = budget.forecast(week * 3, first_weekday=0, horizon=7)
    assert fc.predicted[5] < 50 < fc.predicted[0]


def test_too_little_history_falls_back_to_the_mean() -> None:
    assert budget.forecast([10.0, 20.0], 0, 2).predicted == [15.0, 15.0]


@pytest.mark.parametrize(
    ("mtd", "forecast", "budget_usd", "status"),
    [
        ("50", "80", "100", "ok"),
        ("50", "95", "100", "warning"),
        ("101", "150", "100", "over"),
        ("5", "9", None, "no budget"),
    ],
    ids=["under budget", "forecast near the budget", "already over", "no budget set"],
)
def test_budget_status(mtd: str, forecast: str, budget_usd: str | None, status: str) -> None:
    b = Decimal(budget_usd) if budget_usd else None
    assert budget._status(Decimal(mtd), Decimal(forecast), b, 0.9) == status


def test_the_budget_report_adds_month_to_date_and_forecast(direct_warehouse: Path, tmp_path: Path) -> None:
    config = tmp_path / "s.yaml"
    config.write_text('budgets:\n  monthly_usd:\n    vision: "100"\n    nlp: "1000000"\n')
    from click.testing import CliRunner

    from app.cli import main

    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(config),
            "--warehouse",
            str(direct_warehouse),
            "report",
            "budget",
            "--now",
            "2026-11-03T00:00:00Z",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    lines = {r["team"]: r for r in data["rows"]}
    assert data["month"] == "2026-11" and lines["vision"]["status"] == "over"
    assert lines["nlp"]["status"] == "ok" and lines["ads"]["status"] == "no budget"
    chargeback = json.loads(
        run_cli(
            "--warehouse",
            str(direct_warehouse),
            "report",
            "chargeback",
            "--start",
            "2026-11-01",
            "--end",
            "2026-11-03",
            "--format",
            "json",
        ).output
    )
    by_team = {r["team"]: Decimal(r["cost_usd"]) for r in chargeback["rows"]}
    for team, line in lines.items():
        assert abs(Decimal(line["month_to_date_usd"]) - by_team[team]) <= Decimal("0.01")
        assert Decimal(line["forecast_usd"]) >= Decimal(line["month_to_date_usd"])


def _days(n: int) -> list[date]:
    return [date(2026, 11, 1) + timedelta(days=i) for i in range(n)]


def test_a_spike_is_an_anomaly_and_names_the_workload_that_drove_it() -> None:
    days = _days(12)
    steady = {d: Decimal("100") + Decimal(i % 3) for i, d in enumerate(days)}
    spiky = dict(steady)
    spiky[days[10]] = Decimal("400")
    workloads = {("vision", "train"): steady, ("vision", "sweep"): {days[10]: Decimal("298")}}
    daily = {"vision": {d: steady[d] + workloads[("vision", "sweep")].get(d, Decimal(0)) for d in days}, "nlp": steady}
    found = anomalies.detect(daily, workloads, days, threshold=3.5, min_usd=Decimal(10))
    assert [(a.team, a.day) for a in found] == [("vision", days[10])]
    assert found[0].drivers[0].workload == "sweep" and found[0].actual_usd == Decimal("399.00")


def test_a_steady_fleet_and_small_wobbles_raise_nothing() -> None:
    days = _days(14)
    daily = {"vision": {d: Decimal("100") + Decimal(i % 2) * 5 for i, d in enumerate(days)}}
    assert anomalies.detect(daily, {}, days, threshold=3.5, min_usd=Decimal(10)) == []


def test_anomalies_are_found_end_to_end_from_the_warehouse() -> None:
    from analytics.cost.chargeback import ChargebackOptions
    from analytics.finops.daily_spend import anomaly_report
    from core.timeutil import Window

    con = fresh_db()
    add_node(con, "n1", 8, steps=10 * 24 * 60)
    add_price(con, "64")
    for day in range(10):
        add_pod(con, f"train-{day}", "n1", team="vision", amount=1, offset=day * 1440, steps=600)
    add_pod(con, "burst", "n1", team="vision", amount=6, offset=8 * 1440, steps=720)
    found = anomaly_report(con, Window(T0, T0 + timedelta(days=10)), ChargebackOptions(), 3.5, Decimal(10))
    assert [(a.team, a.day) for a in found] == [("vision", (T0 + timedelta(days=8)).date())]
    assert found[0].drivers[0].workload == "burst" and found[0].actual_usd == Decimal("656.00")
    assert isinstance(found[0].as_dict()["drivers"], str) and "burst" in found[0].as_dict()["drivers"]
