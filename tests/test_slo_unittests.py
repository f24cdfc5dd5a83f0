"""The promtool tests generated for SLO rules: every SLI form gets a burning and a healthy case that pass on
promtool, a changed threshold makes them fail, and the series they synthesise satisfy the SLO's selectors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.slo_unittests import _example
from core import conventions as c
from tests.conftest import require_binary, run_cli

API = 'http_requests_total{job="api"'
EVENTS = {"events": {"error_query": f'sum(rate({API},code=~"(5..|429)"}}[{{{{.window}}}}]))',
                     "total_query": f"sum(rate({API}}}[{{{{.window}}}}]))"}}  # fmt: skip
LATENCY = {"events": {
    "error_query": 'sum(rate(lat_count{m="a"}[{{.window}}])) - sum(rate(lat_bucket{m="a",le="0.5"}[{{.window}}]))',
    "total_query": 'sum(rate(lat_count{m="a"}[{{.window}}]))'}}  # fmt: skip
GOOD = {
    "raw": {
        "error_ratio_query": f'1 - (sum(rate({API},code!~"5.."}}[{{{{.window}}}}])) / sum(rate({API}}}[{{{{.window}}}}])))'
    }
}


def _spec(**slo: Any) -> dict[str, Any]:
    return {"version": "prometheus/v1", "service": "api", "labels": {"owner": "web"},
            "slos": [{"name": "availability", "objective": 99.9, "sli": EVENTS, **slo}]}  # fmt: skip


def _import_and_test(tmp_path: Path, doc: dict[str, Any], *args: str) -> tuple[Any, Any, Path]:
    path, out = tmp_path / "spec.yaml", tmp_path / "out"
    path.write_text(yaml.safe_dump(doc))
    imported = run_cli("rules", "import-sloth", str(path), "--out", str(out), *args)
    assert imported.exit_code == 0, imported.output
    return imported, run_cli("rules", "test", str(out)), out


@pytest.mark.parametrize(
    ("slo", "args"),
    [
        ({}, ()),
        ({"name": "latency", "objective": 97, "sli": LATENCY}, ()),
        ({"name": "good-ratio", "objective": 99, "sli": GOOD}, ()),
        ({"alerting": {"name": "ApiBurn", "ticket_alert": {"disable": True}}}, ()),
        ({"objective": 100}, ()),
        ({}, ("--window", "28d")),
        ({}, ("--window", "7d")),
    ],
    ids=[
        "errors over requests",
        "count less bucket (latency)",
        "1 - good/total",
        "named, ticket disabled",
        "a 100% objective",
        "28 days",
        "7 days (Sloth's 7d shares)",
    ],  # fmt: skip
)
def test_every_sli_form_gets_a_burning_and_a_healthy_case_that_pass_on_promtool(
    tmp_path: Path, slo: dict[str, Any], args: tuple[str, ...]
) -> None:
    require_binary("promtool")
    _, tested, out = _import_and_test(tmp_path, _spec(**slo), *args)
    assert tested.exit_code == 0, tested.output
    doc = yaml.safe_load((out / "tests" / f"{c.RULE_GROUP_PREFIX}-slo.test.yaml").read_text())
    names = [t["name"] for t in doc["tests"]]
    assert [n.split(": ")[1].split(" ")[0] for n in names] == ["burns", "healthy"]
    burning = doc["tests"][0]["promql_expr_test"]
    assert burning[0]["exp_samples"] == [] and burning[1]["exp_samples"]  # nothing at 0m, an alert from 1m


def test_the_burning_case_fires_only_the_pairs_below_its_ratio(tmp_path: Path) -> None:
    """99.9%: thresholds 0.0144, 0.006, 0.003, 0.001; the case burns at 1.5 x 0.001: only 3d/6h fires."""
    require_binary("promtool")
    _, tested, out = _import_and_test(tmp_path, _spec())
    assert tested.exit_code == 0, tested.output
    doc = yaml.safe_load((out / "tests" / f"{c.RULE_GROUP_PREFIX}-slo.test.yaml").read_text())
    fired = doc["tests"][0]["promql_expr_test"][1]["exp_samples"]
    assert len(fired) == 1 and 'long="3d"' in fired[0]["labels"] and doc["tests"][0]["name"].endswith("0.0015")


def test_a_changed_threshold_fails_the_generated_tests(tmp_path: Path) -> None:
    require_binary("promtool")
    _, _, out = _import_and_test(tmp_path, _spec())
    rules = out / "tests" / f"{c.RULE_GROUP_PREFIX}-slo.rules.yaml"
    rules.write_text(rules.read_text().replace("> 0.001\n", "> 0.002\n"))
    tested = run_cli("rules", "test", str(out))
    assert tested.exit_code == 2 and "promtool rule tests failed" in tested.output


UNREADABLE = {"events": {"error_query": "sum by (job) (rate(errors_total[{{.window}}]))",
                         "total_query": "sum by (job) (rate(requests_total[{{.window}}]))"}}  # fmt: skip
GAUGE = {"events": {"error_query": "sum(count_over_time((up == 0)[{{.window}}:5m]))",
                    "total_query": "sum(count_over_time(up[{{.window}}:5m]))"}}  # fmt: skip


@pytest.mark.parametrize(
    ("sli", "said"),
    [(UNREADABLE, "rules only"), (GAUGE, "a gauge SLI, evaluated in the warehouse")],
    ids=["PromQL the warehouse cannot read", "a gauge SLI"],
)
def test_an_slo_not_made_of_counters_has_no_generated_case_and_the_import_says_so(
    tmp_path: Path, sli: dict[str, Any], said: str
) -> None:
    imported, _, out = _import_and_test(tmp_path, _spec(sli=sli))
    assert said in imported.output and "no generated test" in imported.output
    assert not (out / "tests" / f"{c.RULE_GROUP_PREFIX}-slo.test.yaml").exists()


@pytest.mark.parametrize(
    "pattern", ["5..", "(5..|429)", "llm-infer-.*", "5|5\\.0", "[0-9]+", "2\\d\\d", "a?b", "x{2,3}"]
)
def test_a_regex_matchers_example_value_is_matched_by_it(pattern: str) -> None:
    example = _example(pattern)
    assert example is not None and re.fullmatch(pattern, example)
