"""Energy measured at the GPU, in the chargeback: each GPU's energy counter (its increase per step, reset-aware),
else its power held over the step, shared as used GPU-hours are (MIG instances by their slices, time-sliced pods by
their per-process utilisation, else evenly), with GPUs and slices no pod holds on the idle row. Each case's truth is
computed by hand here; the rows' kWh add up to the fleet's exactly, from rollups and from steps alike."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.cost.chargeback import ChargebackOptions, ChargebackReport, chargeback
from core import conventions as c
from core.store.rollups import hourly
from core.store.warehouse import open_warehouse, transaction
from core.timeutil import Window
from tests import counters
from tests.builders import T0, add_energy, add_gpu_usage, add_node, add_pod, add_price, fresh_db
from tests.conftest import run_cli

KWH = Decimal(3_600_000)  # J
HOUR = Window(T0, T0 + timedelta(hours=1))


def _kwh(joules: float) -> float:
    return float((Decimal(repr(joules)) / KWH).quantize(Decimal("0.000001")))


def _by(report: ChargebackReport, key: str) -> dict[str, dict[str, Any]]:
    return {r.keys[key]: r.as_dict() for r in report.rows}


def _one_gpu_node(con: Any, node: str = "n0", gpus: int = 1) -> None:
    add_node(con, node, gpus)
    add_price(con, "8", gpus=gpus)


def test_power_held_over_each_step_is_the_energy_where_a_gpu_has_no_counter() -> None:
    con = fresh_db()
    _one_gpu_node(con)
    add_pod(con, "train", "n0", team="vision", steps=60)
    add_gpu_usage(con, "n0", "GPU-0", 0.9, pod="train", steps=60, power_w=400.0)
    rows = _by(chargeback(con, HOUR, ChargebackOptions(by=("team",))), "team")
    # 400 W for 60 steps of 60 s: 1.44 MJ = 0.4 kWh, all of it integrated from power
    assert rows["vision"]["energy_kwh"] == rows["vision"]["energy_derived_kwh"] == 0.4


def test_the_counter_wins_over_power_and_a_step_without_a_previous_reading_falls_back_to_power() -> None:
    con = fresh_db()
    _one_gpu_node(con)
    add_pod(con, "train", "n0", team="vision", steps=60)
    add_gpu_usage(con, "n0", "GPU-0", 0.9, pod="train", steps=60, power_w=400.0)
    add_energy(con, "n0", "GPU-0", [None] + [30_000_000.0] * 59)  # 500 W measured; the first step has no increase
    rows = _by(chargeback(con, HOUR, ChargebackOptions(by=("team",))), "team")
    assert rows["vision"]["energy_kwh"] == _kwh(400 * 60 + 59 * 30_000)  # J
    assert rows["vision"]["energy_derived_kwh"] == _kwh(400 * 60)


def test_mig_instances_share_their_gpus_energy_by_slices_and_the_slices_no_instance_holds_are_idle() -> None:
    con = fresh_db()
    _one_gpu_node(con)
    add_pod(con, "infer", "n0", team="nlp", resource="nvidia_com_mig_3g_40gb", steps=60)
    add_pod(con, "nb", "n0", team="research", resource="nvidia_com_mig_2g_20gb", steps=60)
    for pod, instance, profile in (("infer", "1", "3g.40gb"), ("nb", "5", "2g.20gb")):
        add_gpu_usage(con, "n0", "GPU-0", 0.5, pod=pod, instance=instance, mig_profile=profile, steps=60, power_w=350.0)
    add_energy(con, "n0", "GPU-0", [42_000_000.0] * 60, instance="1")  # repeated per instance, as DCGM does
    add_energy(con, "n0", "GPU-0", [42_000_000.0] * 60, instance="5")
    rows = _by(chargeback(con, HOUR, ChargebackOptions(by=("team",))), "team")
    gpu_j = 42_000 * 60  # 700 W measured: the instances' repeated readings count once
    assert rows["nlp"]["energy_kwh"] == _kwh(gpu_j * 3 / 7)
    assert rows["research"]["energy_kwh"] == _kwh(gpu_j * 2 / 7)
    assert rows[c.IDLE]["energy_kwh"] == _kwh(gpu_j * 2 / 7)
    assert sum(Decimal(str(r["energy_kwh"])) for r in rows.values()) == Decimal(str(_kwh(gpu_j)))
    assert all(r["energy_derived_kwh"] == 0 for r in rows.values())


@pytest.mark.parametrize(
    ("utils", "shares"),
    [((30.0, 10.0), (0.75, 0.25)), ((None, None), (0.5, 0.5))],
    ids=["by per-process utilisation", "evenly without it"],
)
def test_time_sliced_pods_share_the_gpus_energy_as_they_share_its_use(utils: tuple, shares: tuple) -> None:
    con = fresh_db()
    add_node(con, "n0", 1, replicas=4)
    add_price(con, "8", gpus=1)
    for pod, team, util in zip(("a", "b"), ("vision", "nlp"), utils, strict=True):
        add_pod(con, pod, "n0", team=team, resource="nvidia_com_gpu_shared", steps=60)
        add_gpu_usage(con, "n0", "GPU-0", 0.8, pod=pod, steps=60, power_w=300.0, util=util, gauges=pod == "a")
    rows = _by(chargeback(con, HOUR, ChargebackOptions(by=("team",))), "team")
    gpu_j = 300 * 3600
    assert (rows["vision"]["energy_kwh"], rows["nlp"]["energy_kwh"]) == (
        _kwh(gpu_j * shares[0]),
        _kwh(gpu_j * shares[1]),
    )
    assert rows[c.IDLE]["energy_kwh"] == 0, "the GPU's energy is all the pods': no replica-count split"


def test_a_gpu_no_pod_holds_draws_its_energy_on_the_idle_row() -> None:
    con = fresh_db()
    _one_gpu_node(con, gpus=2)
    add_pod(con, "train", "n0", team="vision", steps=60)
    add_gpu_usage(con, "n0", "GPU-0", 0.9, pod="train", steps=60, power_w=650.0)
    add_gpu_usage(con, "n0", "GPU-1", 0.0, steps=60, power_w=70.0)
    rows = _by(chargeback(con, HOUR, ChargebackOptions(by=("team",), idle="weighted")), "team")
    # the idle GPU's cost is shared out to vision, its energy stays where it was drawn
    assert rows["vision"]["energy_kwh"] == 0.65 and rows[c.IDLE]["energy_kwh"] == 0.07


def test_a_driver_reload_resets_the_counter_and_the_day_holds_every_increase(direct_warehouse: Path) -> None:
    """tests/counters.py: two GPUs of a node kube-state-metrics never listed, ~400 W, reset at scrape 200."""
    values = counters._counter_values()[c.DCGM_ENERGY]
    increases = [v - p if v >= p else v for p, v in zip(values, values[1:], strict=False)]  # PromQL's reset rule
    assert values[200] < values[199], "the reset is in the data"
    with open_warehouse(direct_warehouse, read_only=True) as con:
        report = chargeback(con, Window(T0, T0 + timedelta(days=1)), ChargebackOptions(by=("node",)))
    lab = [r for r in report.rows if r.keys["node"] == counters.LAB_NODE]
    # the first scrape has no previous reading (and the node no power gauge): 287 increases per GPU, in mJ, exactly
    assert sum((r.energy_j for r in lab), Decimal(0)) == Decimal(2 * sum(increases)) / 1000
    assert sum(r.energy_j for r in lab) > 0 and all(r.derived_j == 0 for r in lab)


def _random_fleet(gpus: list[tuple[int, float | None, bool]], pods: list[tuple[int, int, int, str]]) -> Any:
    """Nodes of one GPU each (power, a counter or not); pods on them for a run of steps, time-sliced."""
    con = fresh_db()
    for i, (watts, counter_w, _) in enumerate(gpus):
        add_node(con, f"n{i}", 1, replicas=2, steps=180, instance_type=f"it{i}")
        add_price(con, "8", gpus=1, instance_type=f"it{i}")
        add_gpu_usage(con, f"n{i}", f"GPU-{i}", 0.5, steps=180, power_w=float(watts))
        if counter_w is not None:
            add_energy(con, f"n{i}", f"GPU-{i}", [None, *[counter_w * 60_000] * 179])
    for j, (node, offset, length, team) in enumerate(pods):
        if node < len(gpus):
            add_pod(con, f"p{j}", f"n{node}", team=team, namespace=f"ns{j % 2}", resource="nvidia_com_gpu_shared",
                    offset=offset, steps=length)  # fmt: skip
            add_gpu_usage(con, f"n{node}", f"GPU-{node}", 0.5, pod=f"p{j}", namespace=f"ns{j % 2}", offset=offset,
                          steps=length, gauges=False)  # fmt: skip
    return con


def _fleet_joules(gpus: list[tuple[int, float | None, bool]], start: int, end: int) -> Decimal:
    """By hand: each GPU-step's counter increase, else its power x 60 s (the first step has no increase)."""
    total = Decimal(0)
    for watts, counter_w, _ in gpus:
        for step in range(start, end):
            total += Decimal(repr(counter_w * 60)) if counter_w is not None and step > 0 else Decimal(watts * 60)
    return total


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gpus=st.lists(
        st.tuples(st.integers(50, 700), st.one_of(st.none(), st.sampled_from([120.5, 333.0, 700.25])), st.booleans()),
        min_size=1,
        max_size=3,
    ),  # fmt: skip
    pods=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 120), st.integers(1, 90), st.sampled_from(["vision", "nlp"])),
        max_size=6,
    ),  # fmt: skip
    window=st.tuples(st.integers(0, 60), st.integers(61, 180)),
    by=st.sampled_from([("team",), ("namespace",), ("team", "pod"), ("node",), ("team", "day")]),
    idle=st.sampled_from(["keep", "weighted", "even"]),
)
def test_the_rows_kwh_add_up_to_the_fleets_measured_energy_under_every_grouping(gpus, pods, window, by, idle) -> None:  # type: ignore[no-untyped-def]
    con = _random_fleet(gpus, pods)
    w = Window(T0 + timedelta(minutes=window[0]), T0 + timedelta(minutes=window[1]))
    expected = (_fleet_joules(gpus, *window) / KWH).quantize(Decimal("0.000001"))
    stepped = chargeback(con, w, ChargebackOptions(by=by, idle=idle), use_rollups=False)
    with transaction(con):
        hourly.refresh(con, None, full=True)
    rolled = chargeback(con, w, ChargebackOptions(by=by, idle=idle))
    for report in (stepped, rolled):
        rows = [Decimal(str(r.as_dict()["energy_kwh"])) for r in report.rows]
        total = Decimal(str(report.totals()["energy_kwh"]))
        assert sum(rows, Decimal(0)) == total  # the rows add up to the report's fleet kWh exactly
        # which is the hand-computed fleet energy to its last unit: DuckDB's float sums, kept to the millijoule,
        # can move a total lying exactly on a half milliwatt-hour to the next one
        assert abs(total - expected) <= Decimal("0.000001"), (total, expected)


def test_the_simulated_days_energy_is_the_simulators_truth_gpu_by_gpu(sim_day: Path, tmp_path: Path) -> None:
    """The simulator's energy counters (a reset at the 12:00 driver reload, GPUs that fall silent, MIG, time-slicing)
    through the collector, at the scrape interval: each node's kWh is its GPUs' truth (mJ rounding aside)."""
    import json

    from core.timeutil import parse_ts
    from tests.conftest import SIM_START, run_cli

    truth = json.loads((sim_day / "truth.json").read_text())["energy"]
    wh = tmp_path / "wh.duckdb"
    files = [str(p) for p in sorted(sim_day.glob("*.om"))]
    assert run_cli("--warehouse", str(wh), "collect", "openmetrics", *files, "--step", "300s").exit_code == 0
    with open_warehouse(wh, read_only=True) as con:
        nodes = dict(con.execute(f"SELECT DISTINCT gpu_uuid, node FROM {c.T_GPUS}").fetchall())
        report = chargeback(con, Window(parse_ts(SIM_START), T0 + timedelta(days=1)), ChargebackOptions(by=("node",)))
    expected: dict[str, float] = {}
    for uuid, kwh in truth["gpu_kwh"].items():
        expected[nodes[uuid]] = expected.get(nodes[uuid], 0.0) + kwh
    got: dict[str, float] = {}
    for r in report.rows:
        got[r.keys["node"]] = got.get(r.keys["node"], 0.0) + float(r.energy_j) / 3_600_000
    assert {n: pytest.approx(v, abs=1e-3) for n, v in got.items() if v} == {
        n: pytest.approx(v, abs=1e-3) for n, v in expected.items()
    }
    assert float(report.totals()["energy_kwh"]) == pytest.approx(truth["fleet_kwh"], abs=1e-3)
    assert float(report.totals()["energy_derived_kwh"]) < 0.01 * truth["fleet_kwh"], "measured, but the first step"


def _carbon(**pue: str) -> ChargebackOptions:
    from analytics.cost.carbon import CarbonTable
    from collectors.carbon.intensity import default_table

    return ChargebackOptions(
        by=("team",), carbon=CarbonTable(default_table(), {k: Decimal(v) for k, v in pue.items()}, Decimal("1.5"))
    )


@pytest.mark.parametrize(
    ("pue", "factor"),
    [({"aws": "1.135"}, "1.135"), ({"aws": "1.135", "c1": "1.2"}, "1.2"), ({}, "1.5")],
    ids=["the provider's PUE", "the cluster's PUE wins", "the default PUE"],
)
def test_carbon_is_kwh_times_pue_times_the_regions_grid_intensity(pue: dict[str, str], factor: str) -> None:
    con = fresh_db()
    _one_gpu_node(con)  # us-east-1, priced by an aws row
    add_pod(con, "train", "n0", team="vision", steps=60)
    add_gpu_usage(con, "n0", "GPU-0", 0.9, pod="train", steps=60, power_w=400.0)
    report = chargeback(con, HOUR, _carbon(**pue))
    rows = _by(report, "team")
    # 0.4 kWh x PUE x 379.069 g/kWh (us-east-1: EPA eGRID SERC, as Cloud Carbon Footprint lists it)
    expected = (Decimal("0.4") * Decimal(factor) * Decimal("379.069") / 1000).quantize(Decimal("0.000001"))
    assert rows["vision"]["co2e_kg"] == float(expected)
    assert report.totals()["carbon_unpriced_kwh"] == 0 and report.totals()["carbon_unpriced_regions"] == []


def test_a_region_without_intensity_data_is_unpriced_carbon_named_not_zero() -> None:
    con = fresh_db()
    add_node(con, "n0", 1, region="onprem-lab")
    add_price(con, "8", gpus=1, region="onprem-lab")
    add_pod(con, "train", "n0", team="vision", steps=60)
    add_gpu_usage(con, "n0", "GPU-0", 0.9, pod="train", steps=60, power_w=400.0)
    report = chargeback(con, HOUR, _carbon(aws="1.135"))
    assert _by(report, "team")["vision"]["co2e_kg"] == 0
    totals = report.totals()
    assert totals["carbon_unpriced_kwh"] == totals["energy_kwh"] == 0.4
    assert totals["carbon_unpriced_regions"] == ["onprem-lab"]


def test_the_shipped_intensity_table_states_its_sources_and_parses_as_decimal() -> None:
    from collectors.carbon.intensity import DEFAULT_TABLE, default_table

    table = default_table()
    assert table["us-east-1"] == Decimal("379.069") and table["europe-north1"] == Decimal("133")
    assert table["eastus"] == Decimal("379.069") and len(table) > 90
    text = (Path(__file__).resolve().parents[1] / "collectors" / "carbon" / "data" / DEFAULT_TABLE).read_text()
    assert "Cloud Carbon Footprint" in text and "eGRID" in text and "2021" in text


def test_a_bad_intensity_file_stops_the_report_naming_its_line(direct_warehouse: Path, tmp_path: Path) -> None:
    from tests.conftest import SIM_START

    bad = tmp_path / "grid.csv"
    bad.write_text("provider,region,gco2e_per_kwh\naws,us-east-1,380\naws,us-west-2,lots\n")
    config = tmp_path / "gpuledger.yaml"
    config.write_text(f"carbon:\n  intensity_file: {bad}\n")
    from click.testing import CliRunner

    from app.cli.base import main

    args = ["--config", str(config), "--warehouse", str(direct_warehouse), "report", "chargeback",
            "--start", SIM_START, "--end", "2026-11-03T00:00:00Z"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == f"gpuledger: error: {bad}:3: gco2e_per_kwh 'lots' is not a number"


A100_G_PER_HOUR = Decimal(318_000) / (4 * 8760)  # 318 kgCO2e over 4 years: 9.0753... g per A100-hour


def _embodied(**per_model: Decimal) -> ChargebackOptions:
    from analytics.cost.carbon import CarbonTable

    return ChargebackOptions(by=("team",), carbon=CarbonTable({}, {}, Decimal("1.5"), per_model))


def test_embodied_carbon_is_each_gpu_hours_part_of_its_models_footprint_idle_included() -> None:
    con = fresh_db()
    add_node(con, "n0", 3)  # three A100s (NVIDIA A100-SXM4-40GB): the pod holds two for the hour, one idles
    add_price(con, "24", gpus=3)
    add_pod(con, "train", "n0", team="vision", amount=2, steps=60)
    report = chargeback(con, HOUR, _embodied(A100=A100_G_PER_HOUR, H100=Decimal(99)))
    rows = _by(report, "team")
    assert rows["vision"]["embodied_co2e_kg"] == float((2 * A100_G_PER_HOUR / 1000).quantize(Decimal("0.000001")))
    assert rows[c.IDLE]["embodied_co2e_kg"] == float((A100_G_PER_HOUR / 1000).quantize(Decimal("0.000001")))
    assert report.totals()["embodied_co2e_kg"] == 0.027226  # 3 x 9.0753 g
    assert report.totals()["embodied_unmatched_models"] == []


def test_a_gpu_model_without_an_embodied_figure_is_named_not_counted_as_zero() -> None:
    con = fresh_db()
    add_node(con, "n0", 1, model="NVIDIA L4")
    add_price(con, "1", gpus=1)
    add_pod(con, "serve", "n0", team="ads", steps=60)
    report = chargeback(con, HOUR, _embodied(A100=A100_G_PER_HOUR))
    assert report.totals()["embodied_co2e_kg"] == 0
    assert report.totals()["embodied_unmatched_models"] == ["NVIDIA L4"]
    off = chargeback(con, HOUR, ChargebackOptions(by=("team",)))  # off by default: nothing named either
    assert off.totals()["embodied_unmatched_models"] == [] and off.totals()["embodied_co2e_kg"] == 0


def test_the_embodied_setting_needs_its_source_and_amortises_over_the_lifetime() -> None:
    from pydantic import ValidationError

    from core.settings import EmbodiedGpu

    gpu = EmbodiedGpu(kgco2e=Decimal(318), lifetime_years=Decimal(4), source="Chien et al., HotCarbon '23")
    assert gpu.grams_per_gpu_hour() == A100_G_PER_HOUR
    with pytest.raises(ValidationError, match="source"):
        EmbodiedGpu(kgco2e=Decimal(318), lifetime_years=Decimal(4))  # type: ignore[call-arg]


def test_what_a_silent_gpu_drew_is_its_counters_increase_across_the_silence_on_the_unhealthy_line() -> None:
    """500 W (30 kJ a minute): sending for 10 minutes, silent for 10, sending for 10; on return the counter has risen
    330 kJ over the 660 s since its last reading. The return step keeps its 60 s part (30 kJ); 300 kJ were drawn while
    the GPU sent nothing, and no pod is known to have used them."""
    con = fresh_db()
    _one_gpu_node(con)
    add_pod(con, "train", "n0", team="vision", steps=30)
    for offset in (0, 20):
        add_gpu_usage(con, "n0", "GPU-0", 0.9, pod="train", offset=offset, steps=10, power_w=500.0)
    add_energy(con, "n0", "GPU-0", [None] + [30_000_000.0] * 9)
    add_energy(con, "n0", "GPU-0", [330_000_000.0] + [30_000_000.0] * 9, offset=20, spans={0: 660})
    report = chargeback(con, Window(T0, T0 + timedelta(minutes=30)), ChargebackOptions(by=("team",)))
    rows = _by(report, "team")
    # vision: the first step from power (30 kJ), 9 + 1 + 9 measured steps (570 kJ): 600 kJ
    assert rows["vision"]["energy_kwh"] == _kwh(600_000) and rows["vision"]["energy_derived_kwh"] == _kwh(30_000)
    assert rows[c.UNHEALTHY]["energy_kwh"] == _kwh(300_000)
    assert report.totals()["energy_kwh"] == _kwh(900_000), "every joule the counter counted is on a row"


def test_the_collector_keeps_an_energy_counters_increase_across_a_silence_with_the_seconds_it_spans(
    tmp_path: Path,
) -> None:
    """Scrapes every minute, none from minute 10 to 19: the grid holds the minute-9 reading for the 5-minute
    lookback (minutes 10-14, no increase), then sees the minute-20 reading 6 minutes after its last point."""
    labels = 'gpu="0",UUID="GPU-5170",device="nvidia0",modelName="NVIDIA A100-SXM4-40GB",Hostname="n0"'
    t0 = int((T0 - datetime(1970, 1, 1)).total_seconds())
    minutes = [m for m in range(30) if not 10 <= m < 20]
    lines = [f"# TYPE {c.DCGM_ENERGY} gauge"]
    lines += [f"{c.DCGM_ENERGY}{{{labels}}} {1_000_000_000 + 30_000_000 * m} {t0 + 60 * m}" for m in minutes]
    lines += [f"# TYPE {c.DCGM_POWER} gauge"]
    lines += [f"{c.DCGM_POWER}{{{labels}}} 500 {t0 + 60 * m}" for m in minutes]
    om = tmp_path / "dcgm.om"
    om.write_text("\n".join(lines) + "\n# EOF\n")
    wh = tmp_path / "wh.duckdb"
    assert run_cli("--warehouse", str(wh), "collect", "openmetrics", str(om), "--step", "60s").exit_code == 0
    with open_warehouse(wh, read_only=True) as con:
        rows = con.execute(
            f"""SELECT ts, {c.COL_HEALTH_DELTA}, {c.COL_HEALTH_SPAN} FROM {c.T_HEALTH_SAMPLES}
            WHERE metric = '{c.DCGM_ENERGY}' AND ({c.COL_HEALTH_DELTA} > 0 OR {c.COL_HEALTH_SPAN} IS NOT NULL)
            ORDER BY ts"""
        ).fetchall()
    across = [(ts, delta, span) for ts, delta, span in rows if span is not None]
    # the minute-20 reading ends the step [19:00, 20:00); its previous grid point is the held 14:00 one
    assert across == [(T0 + timedelta(minutes=19), 330_000_000.0, 360)]
    assert sum(delta for _, delta, _ in rows) == 30_000_000 * 29, "the counter's whole rise, once"
