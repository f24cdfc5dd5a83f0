"""The overview page renders the warehouse's numbers (streamlit.testing AppTest)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analytics.chargeback import chargeback
from core.timeutil import Window, parse_ts
from core.warehouse import open_warehouse

APP = str(Path(__file__).resolve().parents[1] / "app" / "dashboard.py")


def _run(monkeypatch: pytest.MonkeyPatch, warehouse: Path) -> AppTest:
    monkeypatch.setenv("GPULEDGER_WAREHOUSE", str(warehouse))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_overview_shows_spend_idle_and_unallocated_shares_matching_the_report(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path
) -> None:
    at = _run(monkeypatch, direct_warehouse)
    with open_warehouse(direct_warehouse, read_only=True) as con:
        report = chargeback(con, Window(parse_ts("2026-11-02"), parse_ts("2026-11-03")))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["GPU spend in window"] == f"${report.node_cost_usd:,.2f}"
    idle = report.total("__idle__") / report.node_cost_usd * 100
    assert metrics["Idle share"] == f"{idle:.1f}%"
    table = at.dataframe[0].value
    assert set(table["team"]) == {r.keys["team"] for r in report.rows}
    assert Decimal(str(round(table["cost (USD)"].sum(), 2))) == report.node_cost_usd


def test_a_missing_warehouse_explains_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = _run(monkeypatch, tmp_path / "none.duckdb")
    assert "gpuledger demo" in at.info[0].value


def test_an_empty_warehouse_explains_what_to_collect(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from core.warehouse import connect

    connect(tmp_path / "empty.duckdb").close()
    at = _run(monkeypatch, tmp_path / "empty.duckdb")
    assert "gpuledger collect" in at.info[0].value
