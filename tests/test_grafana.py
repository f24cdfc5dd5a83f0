"""`gpuledger dashboards generate`: three Grafana dashboards that read back through the Grafana Foundation SDK's
types, ship as sidecar ConfigMaps in deploy/, and whose every panel query returns series on a real Prometheus
holding the demo's data (no Grafana server here: the rules' recordings are inlined as subqueries, as the alert
proofs do, and the template variables set to All)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import prometheus as prom_model
from grafana_foundation_sdk.models.dashboard import Dashboard

from alerts.slo import recordings
from app.publish.slo_rules import declared
from core.settings import Settings
from core.timeutil import parse_ts, to_epoch
from tests.alert_eval import inline
from tests.conftest import run_cli, serve_prometheus
from tests.test_slo import serving_settings

ROOT = Path(__file__).resolve().parents[1]
DAY = parse_ts("2026-11-02T00:00:00Z")
WEEK = parse_ts("2026-11-02T00:00:00Z")
UIDS = ["gpuledger-cost", "gpuledger-health", "gpuledger-slo"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dashboards")
    result = run_cli("dashboards", "generate", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def _model(out: Path, uid: str) -> dict[str, Any]:
    return json.loads((out / f"{uid}.json").read_text())


def _targets(model: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query, rows' panels included."""
    out = []
    for panel in model["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            out += [(inner["title"], t["expr"]) for t in inner.get("targets", [])]
    return out


def test_each_dashboard_reads_back_through_the_sdks_types_unchanged(generated: Path) -> None:
    for uid in UIDS:
        model = _model(generated, uid)
        assert json.loads(json.dumps(Dashboard.from_json(model), cls=JSONEncoder)) == model
        for panel in model["panels"]:
            for target in panel.get("targets", []):
                back = json.loads(json.dumps(prom_model.Dataquery.from_json(target), cls=JSONEncoder))
                assert back == target
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids)) and 0 not in ids


def test_the_dashboards_carry_cluster_team_and_namespace_variables_and_a_row_per_slo(generated: Path) -> None:
    names = {uid: [v["name"] for v in _model(generated, uid)["templating"]["list"]] for uid in UIDS}
    assert names["gpuledger-cost"] == ["datasource", "cluster", "team", "namespace"]
    assert names["gpuledger-health"] == ["datasource", "cluster"]
    assert names["gpuledger-slo"] == ["datasource", "service", "slo"]
    rows = [p for p in _model(generated, "gpuledger-slo")["panels"] if p["type"] == "row"]
    assert [r.get("repeat") for r in rows] == ["slo"]


def test_deploy_ships_the_dashboards_as_sidecar_configmaps_of_the_current_generation(generated: Path) -> None:
    shipped = (ROOT / "deploy" / "grafana-dashboards.yaml").read_text()
    assert shipped == (generated / "grafana-dashboards.yaml").read_text(), "stale: run `make golden`"
    maps = [d for d in yaml.safe_load_all(shipped) if d]
    assert [m["metadata"]["labels"]["grafana_dashboard"] for m in maps] == ["1"] * 3
    for m in maps:
        ((name, text),) = m["data"].items()
        assert json.loads(text) == _model(generated, name.removesuffix(".json"))
    assert (
        "grafana-dashboards.yaml" in yaml.safe_load((ROOT / "deploy" / "kustomization.yaml").read_text())["resources"]
    )


def _records(rules_dir: Path) -> dict[str, str]:
    records: dict[str, str] = {}
    for path in sorted((rules_dir / "tests").glob("*.rules.yaml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            records.update({r["record"]: r["expr"] for r in group["rules"] if "record" in r})
    return records


def _as_all(expr: str) -> str:
    """The query as Grafana sends it with every variable at All and the range at an hour. A matcher `=~".*"`
    matches every series, so it is left out: a recorded series can then be inlined as its expression."""
    expr = re.sub(r',?\w+=~"\$(cluster|team|namespace|service|slo)"', "", expr).replace("{,", "{")
    # Grafana's $__rate_interval: four scrapes at least (the simulator scrapes every 5 minutes)
    return expr.replace("{}", "").replace("$__range", "1h").replace("$__rate_interval", "20m")


def _series_over(url: str, expr: str, start: Any, hours: int) -> int:
    params = {"query": expr, "start": to_epoch(start), "end": to_epoch(start + timedelta(hours=hours)), "step": 900}
    answer = requests.get(f"{url}/api/v1/query_range", params=params, timeout=300).json()
    assert answer["status"] == "success", (expr, answer)
    return len(answer["data"]["result"])


@pytest.mark.parametrize("uid", ["gpuledger-cost", "gpuledger-health"])
def test_every_cost_and_health_panel_returns_series_on_prometheus_over_the_simulated_day(
    generated: Path, prometheus_url: str, tmp_path: Path, uid: str
) -> None:
    rules = tmp_path / "rules"
    assert run_cli("rules", "generate", "--out", str(rules)).exit_code == 0
    records = _records(rules)
    for title, expr in _targets(_model(generated, uid)):
        query = inline(_as_all(expr), records)
        assert _series_over(prometheus_url, query, DAY + timedelta(hours=1), 22) > 0, (title, query)


def test_every_slo_panel_returns_series_on_prometheus_over_the_simulated_week(
    generated: Path, sim_week: Path, week_serving_warehouse: Path, tmp_path: Path
) -> None:
    """Each SLO's recordings share their names with every other SLO's (labels tell them apart), so each query is
    inlined with one SLO's recordings at a time; a panel passes when it shows some SLO."""
    settings = Settings.model_validate(
        {"warehouse": {"path": str(week_serving_warehouse)}, "serving": serving_settings("30d").model_dump()}
    )
    per_slo = []
    for s in declared(settings):
        ids = re.escape(s.selector("")[len("") :])
        per_slo.append({r.record: re.sub(ids, "", r.expr) for g in (recordings(s),) for r in g.rules if r.record})
    with serve_prometheus([sim_week / "vllm.om"], tmp_path) as url:
        for title, expr in _targets(_model(generated, "gpuledger-slo")):
            shown = [_series_over(url, inline(_as_all(expr), records, "5m"), WEEK + timedelta(days=3), 12)
                     for records in per_slo]  # fmt: skip
            assert any(shown), (title, expr)
