"""Hourly grid carbon intensity (issue 25, Deliver 2): imports of Electricity Maps, WattTime and plain CSV files, and
each hour's energy priced at its zone's intensity in that hour, by hand and against the report's own hourly totals."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from analytics.cost.carbon import CarbonTable
from analytics.cost.chargeback import ChargebackOptions, ChargebackReport, chargeback
from app.stage_options import chargeback_options
from collectors.carbon import hourly
from core import conventions as c
from core.settings import Settings
from core.store.warehouse import open_warehouse
from core.timeutil import Window
from tests.builders import T0, add_gpu_usage, add_node, add_pod, add_price, fresh_db
from tests.conftest import run_cli

ZONE = "US-MIDA-PJM"
KG = Decimal("0.000001")


def _intensity(con, values: dict[int, str], zone: str = ZONE) -> None:  # type: ignore[no-untyped-def]
    con.executemany(
        f"INSERT INTO {c.T_CARBON_HOURLY} VALUES (?, ?, ?, 'test', ?)",
        [(zone, T0 + timedelta(hours=h), Decimal(v), T0) for h, v in values.items()],
    )


def _by_team(report: ChargebackReport) -> dict[str, float]:
    """co2e_kg per team (GPU-1's idle hours drew nothing: no counter, no power)."""
    out = {r.keys["team"]: r.as_dict()["co2e_kg"] for r in report.rows}
    assert out.pop(c.IDLE, 0.0) == 0.0
    return out


def _options(annual: dict[str, Decimal] | None = None, zones: dict[str, str] | None = None) -> ChargebackOptions:
    # PUE 1 (no provider entry, default 1): the grams are kWh x intensity
    return ChargebackOptions(by=("team",), carbon=CarbonTable(annual or {}, {}, Decimal(1), {}, zones or {}))


def _fleet() -> object:
    """Two A100s at 400 W: `vision` holds GPU-0 for three hours, `nlp` GPU-1 in the second hour only."""
    con = fresh_db()
    add_node(con, "n0", 2, steps=180)
    add_price(con, "16", gpus=2)
    add_pod(con, "train", "n0", team="vision", steps=180)
    add_pod(con, "serve", "n0", team="nlp", offset=60, steps=60)
    add_gpu_usage(con, "n0", "GPU-0", 0.9, pod="train", steps=180, power_w=400.0)
    add_gpu_usage(con, "n0", "GPU-1", 0.9, pod="serve", offset=60, steps=60, power_w=400.0)
    return con


THREE_HOURS = Window(T0, T0 + timedelta(hours=3))


def test_each_hours_energy_is_priced_at_its_zones_intensity_in_that_hour() -> None:
    con = _fleet()
    _intensity(con, {0: "100", 1: "500", 2: "200"})
    report = chargeback(con, THREE_HOURS, _options(zones={"us-east-1": ZONE}))  # type: ignore[arg-type]
    # vision: 0.4 kWh in each hour at 100, 500 and 200 g/kWh = 320 g; nlp: 0.4 kWh in hour 1 at 500 = 200 g
    assert _by_team(report) == {"vision": 0.32, "nlp": 0.2}
    assert report.totals()["carbon_hourly_kwh"] == 1.6 and report.totals()["carbon_unpriced_kwh"] == 0
    annual = chargeback(con, THREE_HOURS, _options({"us-east-1": Decimal(300)}))  # type: ignore[arg-type]
    assert _by_team(annual) == {"vision": 0.36, "nlp": 0.12}, "one annual figure prices every hour alike"


def test_hours_the_import_lacks_fall_back_to_the_annual_table_and_unmapped_regions_stay_annual() -> None:
    con = _fleet()
    _intensity(con, {0: "100", 1: "500"})  # hour 2 missing
    report = chargeback(con, THREE_HOURS, _options({"us-east-1": Decimal(300)}, {"us-east-1": ZONE}))  # type: ignore[arg-type]
    # vision: 0.04 + 0.2 + 0.4 kWh x 300 g/kWh (annual) = 0.36 kg
    assert _by_team(report) == {"vision": 0.36, "nlp": 0.2}
    assert report.totals()["carbon_hourly_kwh"] == 1.2
    other = chargeback(con, THREE_HOURS, _options({"us-east-1": Decimal(300)}, {"eu-west-1": "IE"}))  # type: ignore[arg-type]
    assert _by_team(other) == {"vision": 0.36, "nlp": 0.12} and other.totals()["carbon_hourly_kwh"] == 0


def test_a_cluster_maps_to_a_zone_where_its_nodes_have_no_region() -> None:
    con = _fleet()
    con.execute(f"UPDATE {c.T_NODES} SET region = NULL")
    _intensity(con, {0: "100", 1: "500", 2: "200"}, zone="onprem-grid")
    report = chargeback(con, THREE_HOURS, _options(zones={"c1": "onprem-grid"}))  # type: ignore[arg-type]
    assert _by_team(report) == {"vision": 0.32, "nlp": 0.2}


# ------------------------------------------------------------------------------------ the simulated day, from rollups

SIM_DAY = Window(datetime(2026, 11, 2), datetime(2026, 11, 3))


@pytest.fixture(scope="module")
def zoned(sim_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[datetime, Decimal]]:
    """The simulated day with an hourly intensity for us-east-1's zone in all but its last two hours."""
    base = tmp_path_factory.mktemp("zoned")
    wh = base / "wh.duckdb"
    shutil.copy(sim_warehouse, wh)
    values = {SIM_DAY.start + timedelta(hours=h): Decimal(250 + 37 * (h % 7)) for h in range(22)}
    path = base / "pjm.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["zone", "hour", "gco2e_per_kwh"])
        writer.writerows([ZONE, f"{t:%Y-%m-%dT%H:%M:%SZ}", v] for t, v in values.items())
    result = run_cli("--warehouse", str(wh), "carbon", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 22 zone-hours" in result.output and "no region maps to it" in result.output
    return wh, values


def _zoned_options(by: tuple[str, ...] = ("team",)) -> ChargebackOptions:
    settings = Settings.model_validate({"carbon": {"zones": {"us-east-1": ZONE}}})
    return chargeback_options(settings, by)


@pytest.mark.parametrize("by", [("team",), ("team", "workload"), ("node", "day")], ids=str)
@pytest.mark.parametrize(
    "window", [SIM_DAY, Window(datetime(2026, 11, 2, 3, 20), datetime(2026, 11, 2, 21, 40))], ids=["day", "edges"]
)
def test_the_hourly_carbon_from_the_rollups_is_the_one_from_the_steps(
    zoned: tuple[Path, dict[datetime, Decimal]], by: tuple[str, ...], window: Window
) -> None:
    with open_warehouse(zoned[0], read_only=True) as con:
        fast = chargeback(con, window, _zoned_options(by))
        slow = chargeback(con, window, _zoned_options(by), use_rollups=False)
    assert fast.as_dict() == slow.as_dict()
    assert fast.totals()["carbon_hourly_kwh"] > 0


def test_the_days_carbon_is_each_hours_fleet_energy_at_that_hours_intensity(
    zoned: tuple[Path, dict[datetime, Decimal]],
) -> None:
    wh, values = zoned
    annual, pue = Decimal("379.069"), Decimal("1.135")  # us-east-1's annual figure and AWS's PUE, for the last hours
    expected = Decimal(0)
    with open_warehouse(wh, read_only=True) as con:
        day = chargeback(con, SIM_DAY, _zoned_options())
        for h in range(24):  # the oracle: the report's own energy, hour by hour, times the hour's intensity
            start = SIM_DAY.start + timedelta(hours=h)
            kwh = Decimal(str(chargeback(con, Window(start, start + timedelta(hours=1))).totals()["energy_kwh"]))
            expected += kwh * values.get(start, annual) * pue / 1000
    assert Decimal(str(day.totals()["co2e_kg"])) == pytest.approx(expected, abs=Decimal("0.0005"))
    assert day.totals()["carbon_hourly_kwh"] < day.totals()["energy_kwh"], "the last two hours are annual"


# -------------------------------------------------------------------------------------------------------- imports


def _em_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    header = ["Datetime (UTC)", "Country", "Zone Name", "Zone Id", "Carbon Intensity gCO₂eq/kWh (direct)",
              "Carbon Intensity gCO₂eq/kWh (LCA)", "Low Carbon Percentage", "Renewable Percentage", "Data Source",
              "Data Estimated", "Data Estimation Method"]  # fmt: skip
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for when, direct, lca in rows:
            writer.writerow([when, "USA", "PJM", ZONE, direct, lca, "40.1", "7.2", "eia.gov", "false", ""])
    return path


def _stored(wh: Path) -> dict[tuple[str, datetime], Decimal]:
    with open_warehouse(wh, read_only=True) as con:
        rows = con.execute(f"SELECT zone, hour, gco2e_per_kwh FROM {c.T_CARBON_HOURLY}").fetchall()
    return {(z, h): v for z, h, v in rows}


def test_an_electricity_maps_export_is_read_at_the_chosen_factor_and_a_reimport_replaces_its_hours(
    tmp_path: Path,
) -> None:
    wh = tmp_path / "wh.duckdb"
    path = _em_csv(tmp_path / "US-MIDA-PJM_2026_hourly.csv",
                   [("2026-11-02 00:00:00", "380.5", "420.25"), ("2026-11-02 01:00:00", "390", "431")])  # fmt: skip
    assert run_cli("--warehouse", str(wh), "carbon", "import", str(path)).exit_code == 0
    h0 = datetime(2026, 11, 2)
    assert _stored(wh) == {(ZONE, h0): Decimal("380.5"), (ZONE, h0 + timedelta(hours=1)): Decimal("390")}
    again = _em_csv(tmp_path / "again.csv", [("2026-11-02 01:00:00", "395", "440")])
    assert run_cli("--warehouse", str(wh), "carbon", "import", str(again), "--factor", "lifecycle").exit_code == 0
    assert _stored(wh) == {(ZONE, h0): Decimal("380.5"), (ZONE, h0 + timedelta(hours=1)): Decimal("440")}


def test_a_watttime_answer_is_averaged_per_hour_and_converted_from_pounds_per_mwh(tmp_path: Path) -> None:
    points = [{"point_time": f"2026-11-02T00:{m:02d}:00+00:00", "value": 800 + m} for m in range(0, 60, 5)]
    answer = {"data": points, "meta": {"region": "PJM_DC", "signal_type": "co2_moer", "units": "lbs_co2_per_mwh"}}
    path = tmp_path / "pjm.json"
    path.write_text(json.dumps(answer))
    wh = tmp_path / "wh.duckdb"
    result = run_cli("--warehouse", str(wh), "carbon", "import", str(path))
    assert result.exit_code == 0 and "zone PJM_DC: watttime (co2_moer)" in result.output
    # the hour's mean, 827.5 lbs/MWh, x 0.45359237 g/kWh per lbs/MWh
    assert _stored(wh) == {
        ("PJM_DC", datetime(2026, 11, 2)): (Decimal("827.5") * hourly.LB_PER_MWH_AS_G_PER_KWH).quantize(KG)
    }


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("zone,hour,gco2e_per_kwh\nZ,2026-11-02T00:00:00Z,300\nZ,2026-11-02T01:00:00Z,lots\n", ":3", "not a number"),
        ("zone,hour,gco2e_per_kwh\nZ,yesterday,300\n", ":2", "not a time"),
        ("zone,hour,gco2e_per_kwh\nZ,2026-11-02T00:00:00Z,-5\n", ":2", "not an intensity"),
        ("region,when,value\nZ,2026-11-02T00:00:00Z,300\n", ":1", "lacks zone, hour, gco2e_per_kwh"),
        ('{"data": [{"point_time": "2026-11-02T00:00:00Z"}], "meta": {"region": "X"}}', ":1", "needs point_time"),
    ],
    ids=["a bad number", "a bad time", "a negative intensity", "no header", "a point without a value"],
)
def test_a_bad_file_is_refused_naming_its_line_and_the_warehouse_keeps_what_it_had(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    wh = tmp_path / "wh.duckdb"
    good = tmp_path / "good.csv"
    good.write_text("zone,hour,gco2e_per_kwh\nZ,2026-11-01T00:00:00Z,300\n")
    assert run_cli("--warehouse", str(wh), "carbon", "import", str(good)).exit_code == 0
    bad = tmp_path / ("bad.json" if text.startswith("{") else "bad.csv")
    bad.write_text(text)
    result = run_cli("--warehouse", str(wh), "carbon", "import", str(good), str(bad))
    assert result.exit_code == 2 and f"{bad}{where}" in result.output and message in result.output
    assert _stored(wh) == {("Z", datetime(2026, 11, 1)): Decimal(300)}
