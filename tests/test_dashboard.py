"""Every dashboard page renders the warehouse's numbers (streamlit.testing AppTest)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from analytics.cost.chargeback import ChargebackOptions, chargeback
from core.store.warehouse import connect, open_warehouse
from core.timeutil import Window, parse_ts

APP = Path(__file__).resolve().parents[1] / "app" / "dashboard"
PAGES = ["overview", "teams", "health", "queues", "inference", "drift", "alerts", "exports", "status"]
DAY = Window(parse_ts("2026-11-02"), parse_ts("2026-11-03"))


def _app(monkeypatch: pytest.MonkeyPatch, warehouse: Path, page: str = "overview", **query: str) -> AppTest:
    monkeypatch.setenv("GPULEDGER_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("GPULEDGER_CONFIG", "/dev/null")
    at = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    if page != "overview":
        at.switch_page(str(APP / "pages" / f"{page}.py"))
        at.run()
    assert not at.exception, at.exception
    return at


def status_page(monkeypatch: pytest.MonkeyPatch, warehouse: Path) -> AppTest:
    """The data status page as first shown (its reconciliations worked out in the background) and once they are in."""
    from app.dashboard import freshness

    freshness.clear()
    at = _app(monkeypatch, warehouse, "status")
    assert any("Reconciling the last day" in i.value for i in at.info), "the page waited for its reconciliations"
    assert at.dataframe, "the rest of the page did not wait"
    freshness.settle(120)
    at.run()
    assert not at.exception and not any("Reconciling" in i.value for i in at.info)
    return at


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_an_exception(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path, page: str
) -> None:
    at = _app(monkeypatch, direct_warehouse, page)
    assert at.title and at.title[0].value


def test_overview_shows_spend_idle_and_unallocated_shares_matching_the_report(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path
) -> None:
    at = _app(monkeypatch, direct_warehouse)
    with open_warehouse(direct_warehouse, read_only=True) as con:
        report = chargeback(con, DAY)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["GPU spend in window"] == f"${report.node_cost_usd:,.2f}"
    assert metrics["Idle share"] == f"{report.total('__idle__') / report.node_cost_usd * 100:.1f}%"
    table = at.dataframe[0].value
    assert {r.keys["team"]: float(r.cost_usd) for r in report.rows} == pytest.approx(
        dict(zip(table["team"], table["cost_usd"], strict=True))
    )
    totals = report.totals()
    idle = sum(r.as_dict()["energy_kwh"] for r in report.rows if r.keys["team"] == "__idle__")
    assert metrics["GPU energy in window"] == f"{totals['energy_kwh']:,.1f} kWh"
    assert metrics["Drawn by idle GPUs"] == f"{idle:,.1f} kWh"
    assert metrics["Integrated from power"] == f"{totals['energy_derived_kwh'] / totals['energy_kwh'] * 100:.1f}%"
    from app.stage_options import chargeback_options
    from core.settings import Settings

    with open_warehouse(direct_warehouse, read_only=True) as con:  # the dashboard's options: carbon priced
        carbon = chargeback(con, DAY, chargeback_options(Settings())).totals()["co2e_kg"]
    assert metrics["Carbon"] == f"{carbon:,.1f} kgCO2e" and carbon > 0
    by_model = next(d.value for d in at.dataframe if "gpu_model" in d.value.columns)
    with open_warehouse(direct_warehouse, read_only=True) as con:  # `report chargeback --by gpu_model`
        cli = chargeback(con, DAY, chargeback_options(Settings(), ("gpu_model",)))
    kwh: dict[str, float] = {}
    for r in cli.rows:
        kwh[r.keys["gpu_model"]] = kwh.get(r.keys["gpu_model"], 0.0) + r.as_dict()["energy_kwh"]
    assert dict(zip(by_model["gpu_model"], by_model["energy_kwh"], strict=True)) == pytest.approx(kwh)
    held = by_model[by_model["gpu_hours"] > 0]
    assert dict(zip(held["gpu_model"], held["mean_draw_w"], strict=True)) == pytest.approx(
        {m: kwh[m] / h * 1000 for m, h in zip(held["gpu_model"], held["gpu_hours"], strict=True)}
    )


def test_filters_live_in_the_url_and_narrow_every_number(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path
) -> None:
    at = _app(monkeypatch, direct_warehouse, node_pool="od-a100")
    assert at.query_params["node_pool"] in ("od-a100", ["od-a100"])
    with open_warehouse(direct_warehouse, read_only=True) as con:
        report = chargeback(con, DAY, ChargebackOptions(by=("node_pool",)))
    pool = sum(r.cost_usd for r in report.rows if r.keys["node_pool"] == "od-a100")
    assert {m.label: m.value for m in at.metric}["GPU spend in window"] == f"${pool:,.2f}"


def test_the_overview_shows_its_page_at_once_and_the_cli_savings_report_when_ready(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path
) -> None:
    from app.dashboard import freshness
    from tests.conftest import run_cli

    freshness.clear()
    at = _app(monkeypatch, direct_warehouse)
    filters = at.session_state["filters"]
    pending = [i.value for i in at.info]
    assert any("Working out savings recommendations" in v for v in pending), pending
    assert at.metric, "the rest of the page did not wait for the savings"
    freshness.settle(120)
    at.run()
    assert not at.exception and not any("Working out" in i.value for i in at.info)
    result = run_cli(
        "--warehouse", str(direct_warehouse), "--config", "/dev/null", "report", "savings",
        "--start", filters.start.isoformat(), "--end", filters.end.isoformat(), "--format", "csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cli = list(csv.DictReader(io.StringIO(result.output)))
    assert cli, "the simulated fleet has savings to show"
    shown = at.dataframe[-1].value
    assert list(shown["target"]) == [r["target"] for r in cli[:5]]
    assert [str(v) for v in shown["monthly_savings_usd"]] == [r["monthly_savings_usd"] for r in cli[:5]]
    total = sum(Decimal(r["monthly_savings_usd"]) for r in cli)
    assert f"{len(cli)} recommendations worth ${total:,.2f}/month" in at.caption[-1].value


def test_a_teams_bill_matches_the_cli_report_and_downloads(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path
) -> None:
    at = _app(monkeypatch, direct_warehouse, "teams", bill="nlp")
    with open_warehouse(direct_warehouse, read_only=True) as con:
        report = chargeback(con, DAY, ChargebackOptions(by=("team",)))
    nlp = next(r for r in report.rows if r.keys["team"] == "nlp")
    assert {m.label: m.value for m in at.metric}["Total"] == f"${nlp.cost_usd:,.2f}"
    assert {m.label: m.value for m in at.metric}["GPU energy"] == f"{nlp.as_dict()['energy_kwh']:,.1f} kWh"
    bill = at.dataframe[0].value
    assert Decimal(str(round(bill["cost_usd"].sum(), 2))) == nlp.cost_usd
    assert {"llm-infer", "llama-sft", "embed-infer"} >= set(bill["workload"])


def test_data_status_lists_sources_and_counts(monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path) -> None:
    at = _app(monkeypatch, direct_warehouse, "status")
    assert any("files:" in str(v) for v in at.dataframe[0].value["source"])


def test_a_missing_warehouse_explains_what_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = _app(monkeypatch, tmp_path / "none.duckdb")
    assert "gpuledger demo" in at.info[0].value


def test_an_empty_warehouse_explains_what_to_collect(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    connect(tmp_path / "empty.duckdb").close()
    at = _app(monkeypatch, tmp_path / "empty.duckdb")
    assert "gpuledger collect" in at.info[0].value
    status = _app(monkeypatch, tmp_path / "empty.duckdb", "status")
    assert any("no prices" in w.value for w in status.warning)


def test_the_health_page_shows_the_simulated_incidents_with_their_evidence_and_cost(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path, truth: dict
) -> None:
    from tests.counters import LAB_NODE  # the collector tests' two extra GPUs, with a DBE of their own

    at = _app(monkeypatch, direct_warehouse, "health")
    unhealthy = {u for u, g in truth["health"]["gpus"].items() if g["lost_gpu_hours"] > 0}
    metrics = {m.label: m.value for m in at.metric}
    actions = at.dataframe[1].value
    lab = set(actions.loc[actions["node"] == LAB_NODE, "gpu_uuid"])
    assert int(metrics["GPUs needing action"]) == len(unhealthy) + len(lab)
    lost = sum(Decimal(str(g["lost_cost_usd"])) for g in truth["health"]["gpus"].values() if "lost_cost_usd" in g)
    if lost:
        assert metrics["Cost of unreliability"] == f"${lost:,.2f}"
    assert set(actions["gpu_uuid"]) - lab == unhealthy
    assert all(actions["evidence"].str.len() > 0) and all(actions["action"].str.len() > 0)


def test_the_inference_page_shows_every_declared_slo(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path, tmp_path: Path
) -> None:
    import yaml

    from collectors.simulator import serving_truth

    services: dict = {name: {**spec, "slos": []} for name, spec in serving_truth.SERVICES.items()}
    for slo in serving_truth.SLOS:
        services[slo["service"]]["slos"].append({k: v for k, v in slo.items() if k != "service"})
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump({"serving": {"services": services}}))
    monkeypatch.setenv("GPULEDGER_WAREHOUSE", str(direct_warehouse))
    monkeypatch.setenv("GPULEDGER_CONFIG", str(config))
    at = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page(str(APP / "pages" / "inference.py"))
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert len(table) == len(serving_truth.SLOS) and set(table["service"]) == set(serving_truth.SERVICES)


def test_a_pages_reports_are_read_together_over_one_connection_per_lane(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path
) -> None:
    """The teams page's bill, breakdown, budget and anomalies: two lanes of two reports, one connection each,
    so the rollup checks every report makes are answered once per lane (core/store/read_memo.py)."""
    import streamlit as st

    from app.dashboard import freshness, reader

    at = _app(monkeypatch, direct_warehouse)
    freshness.clear()
    st.cache_data.clear()
    opened: list[bool] = []
    real = reader.open_warehouse

    def counted(*args: object, **kwargs: object) -> object:
        opened.append(bool(kwargs.get("read_only")))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reader, "open_warehouse", counted)
    at.switch_page(str(APP / "pages" / "teams.py"))
    at.run()
    assert not at.exception, at.exception
    # AppTest runs a page it switches to on its own (the sidebar's filters stay in session state), so the
    # breakdown is the page's to compute too: all four reports over two read-only connections
    assert at.metric and opened == [True, True]


def test_altair_is_imported_before_the_background_import_of_scikit_learn_starts() -> None:
    """Both import narwhals; two threads importing it at once can deadlock (a page once died of it)."""
    code = """
import sys, threading
real, seen = threading.Thread.start, []
def start(self):
    if self.name == "gpuledger-imports":
        seen.append({m for m in ("altair", "narwhals.stable.v1", "narwhals.stable.v2") if m in sys.modules})
    real(self)
threading.Thread.start = start
import app.dashboard.ui
assert seen == [{"altair", "narwhals.stable.v1", "narwhals.stable.v2"}], seen
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=APP.parent)
    assert done.returncode == 0, done.stderr


def test_once_the_background_imports_are_in_the_process_objects_are_frozen_out_of_full_collections() -> None:
    """A full collection walks every live object: frozen, the modules and Streamlit are no longer walked each time
    one falls inside a page's reports."""
    code = """
import gc, threading
before = gc.get_freeze_count()
import app.dashboard.ui
[t.join(120) for t in threading.enumerate() if t.name == "gpuledger-imports"]
assert before == 0 and gc.get_freeze_count() > 50_000, (before, gc.get_freeze_count())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=APP.parent)
    assert done.returncode == 0, done.stderr


def test_the_data_status_pages_bill_vs_ledger_shows_what_report_reconcile_prints_for_its_window(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path
) -> None:
    import json

    from tests.conftest import run_cli

    at = status_page(monkeypatch, direct_warehouse)
    shown = {m.label: m.value for m in at.metric}
    caption = next(x.value for x in at.caption if "node-hours x the price in force" in x.value)
    start, end = caption.split(": node-hours")[0].split(" to ")
    args = ["--warehouse", str(direct_warehouse), "report", "reconcile", "--start", start, "--end", end]
    result = run_cli(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    expected = json.loads(result.output)
    assert shown["Difference (ledger − provider)"] == f"${expected['totals']['difference_usd']}"
    table = next(d.value for d in at.dataframe if "difference_usd" in d.value.columns)
    assert table.to_dict("records") == expected["rows"]


def test_the_overview_names_the_spend_on_gpus_that_stopped_reporting_as_the_cli_bills_it(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path
) -> None:
    import json

    from tests.conftest import run_cli

    at = _app(monkeypatch, direct_warehouse)
    [warning] = [w.value for w in at.warning if "__unhealthy__" in w.value]  # the simulated Xid 79 GPU
    args = ["--start", "2026-11-02T00:00:00Z", "--end", "2026-11-03T00:00:00Z", "--format", "json"]
    result = run_cli("--warehouse", str(direct_warehouse), "report", "chargeback", *args)
    unhealthy = json.loads(result.output)["totals"]["unhealthy_cost_usd"]
    assert float(unhealthy) > 0 and warning.startswith(f"${float(unhealthy):,.2f} of the window's spend")


@pytest.mark.parametrize(
    ("wide", "expected"),
    [
        (
            pd.DataFrame({"nlp": [1.0, 2.0], "vision": [3.0, 0.0]}, index=pd.to_datetime(["2026-11-02", "2026-11-03"])),
            [
                ("2026-11-02", "nlp", 1.0),
                ("2026-11-03", "nlp", 2.0),
                ("2026-11-02", "vision", 3.0),
                ("2026-11-03", "vision", 0.0),
            ],
        ),
        (
            pd.Series([0.5, 1.5], index=pd.to_datetime(["2026-11-02 05:00", "2026-11-02 06:00"])),
            [("2026-11-02 05:00", 0.5), ("2026-11-02 06:00", 1.5)],
        ),
        (
            pd.DataFrame({"reference": [0.2], "current": [0.4]}, index=pd.Index(["0.1"])),
            [("0.1", "reference", 0.2), ("0.1", "current", 0.4)],
        ),
    ],
    ids=["teams by day", "one series by hour", "bins"],
)
def test_a_wide_frame_becomes_one_bar_part_per_cell_under_a_schema_valid_spec(wide: Any, expected: list[tuple]) -> None:
    import altair as alt

    from app.dashboard import charts

    long = charts.long_frame(wide, "x", "y", "part")
    assert [tuple(r) for r in long.itertuples(index=False)] == expected
    color = "part" if "part" in long.columns else None
    for stack in (True, False):
        alt.Chart.from_dict({**charts.spec("x", "y", color, stack), "data": {"values": long.to_dict("records")}})


def test_the_overviews_charts_are_valid_vega_lite_and_the_daily_cost_bars_add_up_to_the_window_spend(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path
) -> None:
    import json

    import altair as alt
    import pyarrow as pa

    at = _app(monkeypatch, direct_warehouse)
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 2
    for chart in charts:
        alt.Chart.from_dict({**json.loads(chart.proto.spec), "data": {"values": []}})
    cost = pa.ipc.open_stream(charts[0].proto.data.data).read_all().to_pandas()
    spend = next(m.value for m in at.metric if m.label.startswith("GPU spend"))
    assert f"${cost['cost (USD)'].sum():,.2f}" == spend


def test_the_sidebar_starts_the_pages_reports_beside_the_breakdown_its_filter_lists_read(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path
) -> None:
    """A served page's entrypoint starts the page's reports and the breakdown its filter lists read together, in two
    lanes: the breakdown first when the page shows it (teams); else the breakdown alone in the second lane, so the
    page's reports, started there or asked for by the page itself, never wait behind it (health, alerts). Each
    computation is recorded with the lane (thread) it ran in."""
    import threading

    from app.dashboard import freshness

    ran: list[tuple[str, str]] = []
    real = freshness._compute

    def recorded(key, stamp, fn, version, args):  # type: ignore[no-untyped-def]
        ran.append((fn.__name__, threading.current_thread().name.rsplit("_", 1)[0]))
        return real(key, stamp, fn, version, args)

    monkeypatch.setattr(freshness, "_compute", recorded)
    first, second = "gpuledger-refresh", "gpuledger-prefetch"
    expected = {
        "teams": {
            ("breakdown", first),
            ("budget_frame", first),
            ("workloads_frame", second),
            ("anomalies_frame", second),
        },
        "health": {("health_report", first), ("breakdown", second)},
        "alerts": {("workloads_frame", first), ("breakdown", second)},
    }
    for page, lanes in expected.items():
        ran.clear()
        at = _served_app(monkeypatch, direct_warehouse, page)
        freshness.settle(120)
        assert not at.exception, at.exception
        assert {r for r in ran if r[0] in {name for name, _ in lanes}} == lanes, page


def _served(page: str) -> None:
    """What the entrypoint runs for `page` (sidebar.serve), the page run by path: AppTest's switch_page runs a page
    without the entrypoint."""
    import runpy
    from pathlib import Path

    import streamlit as st

    from app.dashboard import access, sidebar, ui

    st.session_state["scope"] = access.EVERYTHING
    sidebar.serve(
        access.EVERYTHING, page, lambda: runpy.run_path(str(Path(ui.__file__).parent / "pages" / f"{page}.py"))
    )


def _served_app(monkeypatch: pytest.MonkeyPatch, warehouse: Path, page: str, **query: str) -> AppTest:
    from app.dashboard import freshness

    monkeypatch.setenv("GPULEDGER_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("GPULEDGER_CONFIG", "/dev/null")
    freshness.clear()
    at = AppTest.from_function(_served, args=(page,), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_a_page_without_the_breakdown_is_shown_whole_when_the_breakdown_fails_and_the_sidebar_says_why(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path
) -> None:
    """The filter lists read the breakdown after the page: the health page does not wait for it, nor fail with it."""
    from app.dashboard import freshness, ui
    from core.errors import TransientError

    def failing(version: object, start: object, end: object) -> None:
        raise TransientError("warehouse busy: the breakdown")

    monkeypatch.setattr(ui, "breakdown", freshness.cached(failing))
    at = _served_app(monkeypatch, direct_warehouse, "health")
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Fleet health"] and at.dataframe
    assert [e.value for e in at.sidebar.error] == ["No filter lists: warehouse busy: the breakdown"]
    assert not at.sidebar.multiselect


def test_a_page_that_ends_early_still_gets_the_filter_lists(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path
) -> None:
    at = _served_app(monkeypatch, direct_warehouse, "drift", start="2026-11-02", end="2026-11-02")
    assert not at.exception, at.exception
    assert [i.value for i in at.info] == [
        "Pick a window of at least two days: each day is compared with the first one."
    ]
    assert [m.label for m in at.sidebar.multiselect] == ["Cluster", "Team", "Gpu Model", "Node Pool"]


@pytest.mark.parametrize("page", ["overview", "health"])
def test_a_linked_value_the_window_does_not_hold_is_dropped_and_the_page_runs_without_it(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path, page: str
) -> None:
    at = _served_app(monkeypatch, direct_warehouse, page, team="no-such-team", node_pool="od-a100")
    assert not at.exception, at.exception
    lists = {m.label: m.value for m in at.sidebar.multiselect}
    assert lists["Team"] == [] and lists["Node Pool"] == ["od-a100"]
    assert at.query_params.get("team", []) in ([], "") and at.query_params["node_pool"] in ("od-a100", ["od-a100"])
    assert at.session_state["filters"].picks == {"cluster": [], "team": [], "gpu_model": [], "node_pool": ["od-a100"]}


def test_picking_a_team_in_the_sidebar_narrows_the_page_and_the_url_and_survives_the_next_run(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path
) -> None:
    """The lists render after the page: what the user picks reaches the page through session state on the run their
    pick starts, before its list is drawn again. (Run as sidebar.serve: AppTest re-runs a multipage app's page alone.)"""
    at = _served_app(monkeypatch, direct_warehouse, "overview", start="2026-11-02", end="2026-11-02")
    with open_warehouse(direct_warehouse, read_only=True) as con:
        report = chargeback(con, DAY)
    team = sorted(r.keys["team"] for r in report.rows if not r.keys["team"].startswith("__"))[0]
    at.sidebar.multiselect[1].select(team).run()
    assert not at.exception, at.exception
    spend = {m.label: m.value for m in at.metric}["GPU spend in window"]
    assert spend == f"${sum(r.cost_usd for r in report.rows if r.keys['team'] == team):,.2f}"
    assert at.query_params["team"] in (team, [team])
    at.run()  # a rerun with nothing changed keeps the pick
    assert (
        at.sidebar.multiselect[1].value == [team]
        and {m.label: m.value for m in at.metric}["GPU spend in window"] == spend
    )
