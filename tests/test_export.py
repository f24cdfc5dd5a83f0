"""Weekly export: CSV + Parquet + manifest, identical bytes on re-run, totals equal the report."""

from __future__ import annotations

import csv
import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analytics.cost.chargeback import chargeback
from core import conventions as c
from core.store.warehouse import open_warehouse
from core.timeutil import iso_week_window
from tests.conftest import run_cli

WEEK = "2026-W45"


@pytest.fixture(scope="module")
def exported(direct_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exports")
    result = run_cli("--warehouse", str(direct_warehouse), "export", "weekly", "--week", WEEK, "--out", str(out))
    assert result.exit_code == 0, result.output
    return out / WEEK


def test_the_export_folder_holds_csv_parquet_and_a_manifest_with_true_hashes(exported: Path) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    names = ["chargeback.csv", "chargeback.parquet", "focus-1.2.csv", "manifest.json", "sustainability.csv",
             "workloads.csv"]  # fmt: skip
    assert sorted(p.name for p in exported.iterdir()) == names
    for name, entry in manifest["files"].items():
        data = (exported / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
    with open(exported / "chargeback.csv") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert (
        len(csv_rows)
        == manifest["files"]["chargeback.csv"]["rows"]
        == pq.read_table(exported / "chargeback.parquet").num_rows
    )


def test_re_exporting_a_week_writes_identical_bytes(exported: Path, direct_warehouse: Path) -> None:
    before = {p.name: p.read_bytes() for p in exported.iterdir()}
    assert (
        run_cli(
            "--warehouse", str(direct_warehouse), "export", "weekly", "--week", WEEK, "--out", str(exported.parent)
        ).exit_code
        == 0
    )
    assert {p.name: p.read_bytes() for p in exported.iterdir()} == before


def test_the_weeks_totals_equal_the_chargeback_report_for_the_same_window(
    exported: Path, direct_warehouse: Path
) -> None:
    with open_warehouse(direct_warehouse, read_only=True) as con:
        report = chargeback(con, iso_week_window(WEEK))
    table = pq.read_table(exported / "chargeback.parquet").to_pylist()
    assert sum(r["cost_usd"] for r in table) == report.node_cost_usd
    assert {r["team"]: r["cost_usd"] for r in table} == {r.keys["team"]: r.cost_usd for r in report.rows}
    manifest = json.loads((exported / "manifest.json").read_text())
    assert Decimal(manifest["totals"]["node_cost_usd"]) == report.node_cost_usd
    assert {"__idle__", "__unallocated__"} <= {r["team"] for r in table}
    with open(exported / "workloads.csv") as fh:
        workloads = list(csv.DictReader(fh))
    assert sum(Decimal(r["cost_usd"]) for r in workloads) == report.node_cost_usd
    assert {"resnet-train", "llm-infer", "jupyter"} <= {r["workload"] for r in workloads}


def test_the_sustainability_file_is_each_teams_energy_and_carbon_as_the_chargeback_states_them(
    exported: Path, direct_warehouse: Path
) -> None:
    with open(exported / "sustainability.csv") as fh:
        green = {r["team"]: r for r in csv.DictReader(fh)}
    with open(exported / "chargeback.csv") as fh:
        teams = {r["team"]: r for r in csv.DictReader(fh)}
    assert green.keys() == teams.keys()
    for team, row in green.items():
        for col in ("energy_kwh", "energy_derived_kwh", "co2e_kg", "embodied_co2e_kg"):
            assert Decimal(row[col]) == Decimal(teams[team][col]), (team, col)
        assert Decimal(row["total_co2e_kg"]) == Decimal(row["co2e_kg"]) + Decimal(row["embodied_co2e_kg"])
    manifest = json.loads((exported / "manifest.json").read_text())
    kwh = sum(Decimal(r["energy_kwh"]) for r in green.values())
    assert kwh == Decimal(str(manifest["totals"]["energy_kwh"])) > 0
    assert Decimal(green[c.IDLE]["energy_kwh"]) > 0, "the idle GPUs' energy is a line of its own"


def test_a_bad_week_is_one_clear_error(direct_warehouse: Path, tmp_path: Path) -> None:
    result = run_cli(
        "--warehouse", str(direct_warehouse), "export", "weekly", "--week", "2026-45", "--out", str(tmp_path)
    )
    assert result.exit_code == 2 and "not an ISO week" in result.output
