"""Hostile label values and team names flow through ingestion, SQL, reports, CSV, exports, generated PromQL
and YAML, and file names, without changing meaning and without escaping their context."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from alerts import generator, serialize, unittests
from alerts.model import promql_string
from app.publish.render import safe_cell, safe_filename
from core import conventions as c
from core.store.warehouse import one, open_warehouse
from tests.conftest import require_binary, run_cli

HOSTILE = {
    "sql": "'; DROP TABLE pods; --",
    "quotes and backslashes": 'say "hi" \\ to C:\\temp\\',
    "newline": "two\nlines",
    "unicode": "チーム-ü-☃",
    "path": "../../etc/passwd",
    "formula": '=HYPERLINK("http://evil.example","x")',
    "at formula": "@SUM(A1:A9)",
    "minus formula": "-2+3+cmd|' /C calc'!A0",
    "promql": 'x"} or vector(1) # ',
    "yaml": "key: [v] # &a *a !!python/object:os.system",
}
FORMULA_START = ("=", "+", "-", "@")


def _om_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fleet(path: Path) -> None:
    """One 8-GPU node; one 1-GPU pod per hostile team, Running for an hour (12 scrapes, 5 minutes apart)."""
    start = 1793577600  # 2026-11-02T00:00:00Z
    node = '{node="n1",label_node_kubernetes_io_instance_type="p4d.24xlarge",label_topology_kubernetes_io_region="us-east-1"}'
    lines = []
    for i in range(12):
        t = start + 300 * i
        lines.append(f"kube_node_labels{node} 1 {t}")
        lines.append(f'kube_node_status_capacity{{node="n1",resource="nvidia_com_gpu",unit="integer"}} 8 {t}')
        for j, team in enumerate(HOSTILE.values()):
            pod = f'namespace="ml",pod="p{j}",uid="u{j}"'
            lines.append(f'kube_pod_info{{{pod},node="n1",created_by_kind="Job",created_by_name="p{j}"}} 1 {t}')
            lines.append(f'kube_pod_labels{{{pod},label_team="{_om_escape(team)}"}} 1 {t}')
            lines.append(f'kube_pod_status_phase{{{pod},phase="Running"}} 1 {t}')
            lines.append(
                f'kube_pod_container_resource_requests{{{pod},container="c",node="n1",resource="nvidia_com_gpu",unit="integer"}} 1 {t}'
            )
    path.write_text("\n".join(lines) + "\n# EOF\n")


@pytest.fixture(scope="module")
def hostile_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("hostile")
    _fleet(base / "ksm.om")
    wh = base / "wh.duckdb"
    assert (
        run_cli("--warehouse", str(wh), "collect", "openmetrics", str(base / "ksm.om"), "--step", "300s").exit_code == 0
    )
    assert run_cli("--warehouse", str(wh), "pricing", "import", "--default").exit_code == 0
    return wh


def _report(wh: Path, fmt: str) -> str:
    result = run_cli(
        "--warehouse", str(wh), "report", "chargeback", "--start", "2026-11-02", "--end", "2026-11-03", "--format", fmt
    )
    assert result.exit_code == 0, result.output
    return result.output


def _unneutralise(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_START) else cell


def test_hostile_team_names_survive_ingestion_and_sql_exactly(hostile_warehouse: Path) -> None:
    rows = json.loads(_report(hostile_warehouse, "json"))["rows"]
    hours = {r["team"]: r["gpu_hours"] for r in rows if r["team"] != c.IDLE}
    assert hours == {team: pytest.approx(1.0) for team in HOSTILE.values()}
    with open_warehouse(hostile_warehouse, read_only=True) as con:  # the SQL-looking one dropped nothing
        assert one(con, f"SELECT count(*) FROM {c.T_PODS}") == (len(HOSTILE),)


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised_and_nothing_else_changes(
    hostile_warehouse: Path, tmp_path: Path
) -> None:
    report = list(csv.DictReader(io.StringIO(_report(hostile_warehouse, "csv"))))
    assert run_cli("--warehouse", str(hostile_warehouse), "export", "weekly", "--week", "2026-W45", "--out", str(tmp_path)).exit_code == 0  # fmt: skip
    folder = tmp_path / "2026-W45"
    export = list(csv.DictReader((folder / "chargeback.csv").open(newline="", encoding="utf-8")))
    for rows in (report, export):
        teams = [r["team"] for r in rows if r["team"] != c.IDLE]
        assert sorted(_unneutralise(t) for t in teams) == sorted(HOSTILE.values())
        for team in teams:
            assert not team.startswith(FORMULA_START)  # a spreadsheet shows it as text
    parquet = pq.read_table(folder / "chargeback.parquet").column("team").to_pylist()
    assert set(HOSTILE.values()) <= set(parquet)  # typed columns keep the value as is
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-W45"]  # no team name became a path


@pytest.mark.parametrize("value", ["=1+1", "+1-1", "-1+x", "@x", "\t=x", "\r=x", "\n=x", "＝1+1", "＋x", "－x", "＠x"])
def test_formula_prefixes_are_neutralised_and_numbers_are_not(value: str) -> None:
    assert safe_cell(value) == "'" + value
    for number in ("-12.5", "+3", "-0", "1e5", "-inf"):
        assert safe_cell(number) == number
    assert safe_cell(-3) == -3


@pytest.mark.parametrize("team", list(HOSTILE.values()), ids=list(HOSTILE))
def test_file_names_made_from_team_names_stay_one_harmless_path_segment(team: str) -> None:
    name = safe_filename(f"gpuledger-{team}-20261102-20261103.csv")
    assert Path(name).name == name and "/" not in name and "\\" not in name and "\n" not in name
    assert not name.startswith(".") and name.endswith(".csv")
    for evil in ("..", ".", "", "../../x", ".hidden"):
        assert safe_filename(evil) not in ("", ".", "..") and "/" not in safe_filename(evil)


def test_a_week_that_is_a_path_is_refused(hostile_warehouse: Path, tmp_path: Path) -> None:
    result = run_cli("--warehouse", str(hostile_warehouse), "export", "weekly", "--week", "../../etc", "--out", str(tmp_path / "x"))  # fmt: skip
    assert result.exit_code == 2 and not (tmp_path / "x").exists()


def test_hostile_names_in_generated_promql_and_yaml_keep_their_meaning(tmp_path: Path) -> None:
    """Team names (budgets) and instance types (price files) written into rules, their promtool tests and
    YAML: promtool parses every file, the generated tests pass, and every value reads back unchanged."""
    promtool = require_binary("promtool")
    teams = sorted(HOSTILE.values())
    spec = generator.RuleSpec(
        budgets={team: Decimal("1000") for team in teams},
        prices={("p5.48xlarge", "on_demand"): Decimal("6.88"), **{(t, "on_demand"): Decimal("1.5") for t in teams}},
    )
    files = generator.generate(spec)
    serialize.write_all(files, tmp_path, "prometheusrule", unittests.all_tests(files, spec))
    ok, output = serialize.promtool_check(sorted(tmp_path.glob("*.yaml")), promtool)
    assert ok, output
    _matcher_round_trip(tmp_path / "tests", teams)
    ok, output = serialize.promtool_test(tmp_path, promtool)  # incl. the budget alert firing for teams[0]
    assert ok, output
    cost = yaml.safe_load((tmp_path / "gpuledger-cost.yaml").read_text())
    rules = [r for g in cost["spec"]["groups"] for r in g["rules"]]
    assert sorted(r["labels"]["label_team"] for r in rules if r.get("record") == c.REC_TEAM_BUDGET_PACE) == teams
    price = next(r["expr"] for r in rules if r.get("record") == c.REC_NODE_GPU_PRICE)
    assert all(promql_string(t) in price for t in teams)


def _matcher_round_trip(tests: Path, values: list[str]) -> None:
    """A promtool test of its own: a series per value, selected back by an escaped equality matcher."""
    series = [{"series": f"hostile{{label_team={promql_string(v)}}}", "values": f"{i}x5"} for i, v in enumerate(values)]
    checks = [
        {
            "expr": f"hostile{{label_team={promql_string(v)}}}",
            "eval_time": "2m",
            "exp_samples": [{"labels": f"hostile{{label_team={promql_string(v)}}}", "value": i}],
        }
        for i, v in enumerate(values)
    ]
    doc = {"rule_files": [], "evaluation_interval": "1m",
           "tests": [{"name": "hostile values", "interval": "1m", "input_series": series, "promql_expr_test": checks}]}  # fmt: skip
    (tests / "hostile.test.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
