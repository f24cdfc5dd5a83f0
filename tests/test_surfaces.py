"""One number per quantity in every surface: the CLI, the dashboard and the weekly files read the chargeback's
rows, and any grouping's rows add up to a coarser grouping's in every additive column (issue 22, item 4)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from analytics.cost import allocation
from analytics.cost.chargeback import ChargebackOptions, chargeback
from analytics.cost.cost_rows import COMPONENTS, MONEY_COLUMNS, ChargebackReport, Row
from app.cli import main
from app.publish import focus
from core.timeutil import Window, parse_ts
from tests.builders import T0, add_gpu_usage, add_node, add_pod, add_price, fresh_db

WEEK = "2026-W45"
START, END = "2026-11-02T00:00:00Z", "2026-11-09T00:00:00Z"  # the ISO week the weekly files cover
HOURS = ("gpu_hours", "used_gpu_hours", "energy_kwh", "energy_derived_kwh", "co2e_kg")  # floats, to rounding
CONFIGS = {
    "default options": "",
    "idle and shared cost split evenly": (
        "chargeback:\n  idle: even\n  shared_split: even\n  shared_namespaces: [team-research]\n"
    ),
}
# FOCUS column -> the chargeback column it carries
FOCUS_COLUMNS = {
    "x_GpuHours": "gpu_hours",
    "x_GpuHoursUsed": "used_gpu_hours",
    "x_EnergyKwh": "energy_kwh",
    "x_EnergyDerivedKwh": "energy_derived_kwh",
    "x_Co2eKg": "co2e_kg",
    "x_EmbodiedCo2eKg": "embodied_co2e_kg",
    "x_AllocatedCost": "allocated_cost_usd",
    "x_IdleShareCost": "idle_share_usd",
    "x_SharedShareCost": "shared_share_usd",
    "x_AdjustmentCost": "adjustment_usd",
    "BilledCost": "cost_usd",
    "x_UnusedCost": "unused_cost_usd",
    "x_InvoicePricedCost": "from_bill_usd",
}


def _cli(config: Path, warehouse: Path, *args: str) -> str:
    result = CliRunner().invoke(
        main, ["--config", str(config), "--warehouse", str(warehouse), *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def _per_team(rows: Iterable[Mapping[str, Any]], team: str = "team", names: Mapping[str, str] | None = None) -> dict:
    """Rows summed per team: money as exact Decimal (a surface's rows add up to the cent or not at all), hours
    as floats (each row carries them to 6 or more decimals)."""
    names = names or {col: col for col in (*HOURS, *MONEY_COLUMNS)}
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        sums = out.setdefault(str(row[team]), {col: (0.0 if col in HOURS else Decimal(0)) for col in names.values()})
        for src, col in names.items():
            value = row[src]
            sums[col] += (
                float(value)
                if col in HOURS
                else Decimal(f"{float(value):.2f}" if isinstance(value, float) else str(value))
            )
    return out


def _same(surfaces: dict[str, dict[str, dict[str, Any]]], reference: str) -> None:
    want = surfaces[reference]
    for name, got in surfaces.items():
        assert sorted(got) == sorted(want), f"{name}: teams {sorted(got)} != {sorted(want)}"
        for team, cols in want.items():
            for col, value in cols.items():
                if col in HOURS:
                    assert got[team][col] == pytest.approx(value, abs=1e-4), f"{name}: {team} {col}"
                else:
                    assert got[team][col] == value, f"{name}: {team} {col} {got[team][col]} != {value}"


@pytest.fixture(scope="module", params=list(CONFIGS))
def config(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "gpuledger.yaml"
    path.write_text(CONFIGS[request.param])
    return path


def test_the_cli_the_dashboard_and_the_weekly_files_show_the_same_numbers_per_team_for_one_window(
    config: Path, direct_warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = ("--start", START, "--end", END)
    report = json.loads(_cli(config, direct_warehouse, "report", "chargeback", *window, "--format", "json"))
    cli_csv = list(
        csv.DictReader(io.StringIO(_cli(config, direct_warehouse, "report", "chargeback", *window, "--format", "csv")))
    )
    _cli(config, direct_warehouse, "export", "weekly", "--week", WEEK, "--out", str(tmp_path))
    folder = tmp_path / WEEK
    with open(folder / "chargeback.csv") as fh:
        weekly_csv = list(csv.DictReader(fh))
    with open(folder / "workloads.csv") as fh:
        workloads_csv = list(csv.DictReader(fh))
    with open(folder / f"focus-{focus.FOCUS_VERSION}.csv") as fh:
        focus_rows = list(csv.DictReader(fh))

    monkeypatch.setenv("GPULEDGER_WAREHOUSE", str(direct_warehouse))
    monkeypatch.setenv("GPULEDGER_CONFIG", str(config))
    from app.dashboard import ui

    start, end = parse_ts(START), parse_ts(END)
    overview = ui.grouped(ui.breakdown(ui.mtime(), start, end), ["team"])  # the overview's "Cost by team" table
    bills = ui.grouped(ui.workloads_frame(ui.mtime(), start, end), ["team"])  # each team's bill, its lines summed

    surfaces = {
        "CLI JSON": _per_team(report["rows"]),
        "CLI CSV": _per_team(cli_csv),
        "dashboard overview": _per_team(overview.to_dict("records")),
        "dashboard teams page": _per_team(bills.to_dict("records")),
        "weekly chargeback.csv": _per_team(weekly_csv),
        "weekly chargeback.parquet": _per_team(pq.read_table(folder / "chargeback.parquet").to_pylist()),
        "weekly workloads.csv": _per_team(workloads_csv),
        "weekly FOCUS": _per_team(focus_rows, "x_Team", FOCUS_COLUMNS),
    }
    _same(surfaces, "CLI JSON")
    assert {"__idle__", "nlp", "ads"} <= set(surfaces["CLI JSON"])
    assert any(cols["unused_cost_usd"] for cols in surfaces["CLI JSON"].values())
    # and every surface's rows add up to the same total: the capacity's cost
    node_cost = Decimal(report["totals"]["node_cost_usd"]) + Decimal(report["totals"]["overhead_usd"])
    for name, teams in surfaces.items():
        assert sum((cols["cost_usd"] for cols in teams.values()), Decimal(0)) == node_cost, name
    overview_efficiency = dict(zip(overview["team"], overview["efficiency"], strict=True))
    for row in report["rows"]:  # a ratio of the sums, never an average of the rows' ratios
        if row["efficiency"] is not None:
            assert overview_efficiency[row["team"]] == pytest.approx(row["efficiency"], abs=1e-6)


def test_the_rendered_overview_table_and_a_teams_bill_show_the_clis_numbers(
    monkeypatch: pytest.MonkeyPatch, direct_warehouse: Path
) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("GPULEDGER_WAREHOUSE", str(direct_warehouse))
    monkeypatch.setenv("GPULEDGER_CONFIG", "/dev/null")
    app = Path(__file__).resolve().parents[1] / "app" / "dashboard"
    at = AppTest.from_file(str(app / "streamlit_app.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    filters = at.session_state["filters"]
    window = ("--start", filters.start.isoformat(), "--end", filters.end.isoformat())
    cli = json.loads(_cli(Path("/dev/null"), direct_warehouse, "report", "chargeback", *window, "--format", "json"))
    by_team = {r["team"]: r for r in cli["rows"]}
    table = at.dataframe[0].value
    for col in MONEY_COLUMNS:
        shown = {t: Decimal(f"{v:.2f}") for t, v in zip(table["team"], table[col], strict=True)}
        assert shown == {t: Decimal(r[col]) for t, r in by_team.items()}, col

    at.query_params["bill"] = "ads"
    at.switch_page(str(app / "pages" / "teams.py"))
    at.run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    ads = by_team["ads"]
    assert metrics["Total"] == f"${Decimal(ads['cost_usd']):,.2f}"
    assert metrics["Allocated but unused"] == f"${Decimal(ads['unused_cost_usd']):,.2f}"
    assert metrics["Efficiency"] == f"{ads['efficiency'] * 100:.1f}%"


# --- additivity: any grouping's rows sum to a coarser grouping's, exactly, whatever the options -----------------
KEYS = ("team", "namespace", "node", "gpu_model", "node_pool", "instance_type", "day", "cluster")
POD_KEYS = set(allocation.POD_ATTRIBUTES)
STEP_S, STEPS = 1800, 96  # two days at 30-minute steps, so idle is shared per day and `day` splits rows
EXACT = ("allocated", "idle_share", "shared_share", "adjustment")


def _fleet(nodes: list[tuple[int, int, bool]], pods: list[tuple[int, int, str | None, int, int, int, float]]) -> Any:
    """Nodes (GPUs, instance type, priced?) and pods (node, GPUs, team, namespace, offset, length, activity)."""
    con, priced_types = fresh_db(), set()
    for i, (gpus, kind, priced) in enumerate(nodes):
        instance = f"it{kind}-{gpus}" if priced else f"unpriced{kind}-{gpus}"
        add_node(con, f"n{i}", gpus, instance_type=instance, pool=f"pool-{kind}", model=f"GPU-{kind}", steps=STEPS,
                 step_s=STEP_S)  # fmt: skip
        if priced and instance not in priced_types:
            priced_types.add(instance)
            add_price(con, str(Decimal(3 + 5 * kind) * gpus), gpus=gpus, instance_type=instance)
    for j, (node, gpus, team, ns, offset, length, activity) in enumerate(pods):
        if node >= len(nodes):
            continue
        length = min(length, STEPS - offset)
        add_pod(con, f"p{j}", f"n{node}", team=team, namespace=f"ns{ns}", amount=gpus, offset=offset, steps=length,
                step_s=STEP_S, labels={"app": f"app{j % 3}"})  # fmt: skip
        add_gpu_usage(con, f"n{node}", f"GPU-{j}", activity, pod=f"p{j}", namespace=f"ns{ns}", offset=offset,
                      steps=length, step_s=STEP_S)  # fmt: skip
    return con


def _owner(row: Row) -> str:
    return "allocated" if row.kind == "allocated" else row.kind


def _rolled_up(rows: list[Row], names: tuple[str, ...]) -> dict[tuple[str, ...], dict[str, Any]]:
    """`rows` summed onto the keys `names` (a coarser grouping's; `owner` where that grouping has no pod key)."""
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for r in rows:
        key = tuple(r.keys[n] if n in r.keys else _owner(r) for n in names)
        sums = out.setdefault(key, {"gpu_hours": 0.0, "used_gpu_hours": 0.0, "unused": Decimal(0)})
        sums["gpu_hours"] += r.gpu_hours
        sums["used_gpu_hours"] += r.used_gpu_hours
        sums["unused"] += r.unused
        for attr in EXACT:
            sums[attr] = sums.get(attr, Decimal(0)) + getattr(r, attr)
    return out


def _assert_sums(fine: ChargebackReport, coarse: ChargebackReport, names: tuple[str, ...] | None = None) -> None:
    """Per key of `coarse` (or of `names`; () for the grand total), `fine`'s rows sum to `coarse`'s in every column."""
    if names is None:
        names = tuple(coarse.rows[0].keys) if coarse.rows else ()
    got = _rolled_up(fine.rows, names)
    want = _rolled_up(coarse.rows, names)
    for key in set(got) | set(want):  # a key on one side only must hold nothing
        g, w = got.get(key, {}), want.get(key, {})
        for attr in (*EXACT, "unused"):
            # exact Decimal: only the 40th significant digit of a division may differ (and used GPU-seconds are
            # DuckDB doubles, summed in another order under another grouping)
            tolerance = Decimal("1e-9") if attr == "unused" else Decimal("1e-25")
            assert abs(g.get(attr, Decimal(0)) - w.get(attr, Decimal(0))) <= tolerance, (key, attr, g, w)
        for attr in HOURS:
            assert g.get(attr, 0.0) == pytest.approx(w.get(attr, 0.0), abs=1e-9), (key, attr)


def _cents_by_head(report: ChargebackReport) -> dict[str, dict[str, Decimal]]:
    out: dict[str, dict[str, Decimal]] = {}
    for r in report.rows:
        sums = out.setdefault(next(iter(r.keys.values())), {})
        for col in (*COMPONENTS, "cost_usd", "unused_cost_usd"):
            sums[col] = sums.get(col, Decimal(0)) + r.cents.get(col, Decimal(0))
    return out


nodes_strategy = st.lists(st.tuples(st.integers(1, 8), st.integers(0, 2), st.booleans()), min_size=1, max_size=3)
pods_strategy = st.lists(
    st.tuples(
        st.integers(0, 2),  # node
        st.integers(1, 4),  # GPUs
        st.sampled_from(["vision", "nlp", "ads", None]),  # None: __unallocated__
        st.integers(0, 3),  # namespace
        st.integers(0, STEPS - 1),  # offset in steps
        st.integers(1, STEPS),  # length in steps
        st.sampled_from([0.0, 0.25, 0.9, 1.0]),  # activity
    ),
    max_size=10,
)


@settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    nodes=nodes_strategy,
    pods=pods_strategy,
    fine=st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True),
    coarse_picks=st.lists(st.booleans(), min_size=4, max_size=4),
    idle=st.sampled_from(["keep", "weighted", "even"]),
    idle_scope=st.sampled_from(["cluster", "node"]),
    shared=st.sampled_from([(), ("ns1",), ("ns1", "ns2")]),
    split=st.sampled_from(["weighted", "even"]),
    overhead=st.sampled_from(["0", "1.37"]),
    window=st.tuples(st.integers(0, 40), st.integers(50, STEPS)),
)
@example(  # an exact half cent of overhead (1.37 $/h x 45.5 h): the rows still add up to the totals the report states
    nodes=[(1, 0, False), (3, 2, True), (3, 2, True)],
    pods=[(0, 1, "vision", 0, 0, 1, 0.0)] * 4 + [(1, 4, "vision", 0, 0, 74, 0.0)] * 2,
    fine=["team"],
    coarse_picks=[False] * 4,
    idle="keep",
    idle_scope="cluster",
    shared=(),
    split="weighted",
    overhead="1.37",
    window=(0, 91),
)
def test_any_groupings_rows_sum_to_a_coarser_groupings_and_to_the_total_under_any_options(  # type: ignore[no-untyped-def]
    nodes, pods, fine, coarse_picks, idle, idle_scope, shared, split, overhead, window
) -> None:
    con = _fleet(nodes, pods)
    fine_by = tuple(sorted(fine, key=lambda k: (k not in POD_KEYS, KEYS.index(k))))  # pod keys first: the head
    coarse_by = tuple(k for k, pick in zip(fine_by, coarse_picks, strict=False) if pick)
    if not POD_KEYS & set(coarse_by) and "namespace" in fine_by and "team" not in fine_by:
        fine_by = ("team", *fine_by)  # a coarser grouping without pod keys is per owner: the team tells it
    w = Window(T0 + timedelta(seconds=STEP_S * window[0]), T0 + timedelta(seconds=STEP_S * window[1]))

    def report(by: tuple[str, ...]) -> ChargebackReport:
        opts = ChargebackOptions(
            by=by, idle=idle, idle_scope=idle_scope, shared_namespaces=shared, shared_split=split,
            shared_overhead_usd_per_hour=Decimal(overhead),
        )  # fmt: skip
        return chargeback(con, w, opts)

    fine_report, coarse_report, total = report(fine_by), report(coarse_by), report(())
    _assert_sums(fine_report, coarse_report)
    _assert_sums(fine_report, total, ())
    grand = sum((r.exact_total for r in fine_report.rows), Decimal(0))
    assert abs(grand - sum((r.exact_total for r in total.rows), Decimal(0))) <= Decimal("1e-25")
    assert sum(r.cost_usd for r in fine_report.rows) == fine_report.node_cost_usd + fine_report.overhead_usd
    # to the cent: the rows of each head (the first key) add up, in every column, to a report by that key alone
    head = next(iter(fine_report.rows[0].keys)) if fine_report.rows else "owner"
    by_head = report((head,) if head in POD_KEYS else ())
    assert _cents_by_head(fine_report) == _cents_by_head(by_head)
