"""`rules import-sloth --naming sloth` writes what `sloth generate` writes for the same spec: the expectations here
are written by hand in the layout of Sloth's current integration outputs (test/integration/prometheus/testdata
in Sloth's repository), for a spec of this project's own, and the numbers are worked out below as Go computes them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts import serialize
from alerts.sloth_rules import prom_duration
from core import conventions as c
from tests.conftest import require_binary, run_cli

ERRORS = 'sum(rate(vllm:request_failure_total{model_name="llama"}[{{ .window }}]))'
TOTAL = 'sum(rate(vllm:request_success_total{model_name="llama"}[{{.window}}]))'
SPEC = {
    "version": "prometheus/v1",
    "service": "llm-api",
    "labels": {"owner": "nlp"},
    "slos": [
        {
            "name": "requests",
            "objective": 99.5,
            "labels": {"tier": "gold"},
            "sli": {"events": {"error_query": ERRORS, "total_query": TOTAL}},
            "alerting": {
                "name": "LlmApiBurn",
                "labels": {"team": "nlp"},
                "annotations": {"runbook": "https://runbooks.example/llm"},
                "page_alert": {"labels": {"route": "pager"}},
                "ticket_alert": {"disable": True},
            },
        },
        {
            "name": "quiet",
            "objective": 99,
            "sli": {"raw": {"errorRatioQuery": f"({ERRORS})\n/\n({TOTAL})\n"}},  # Sloth also reads camelCase
            "alerting": {"page_alert": {"disable": True}, "ticket_alert": {"disable": True}},
        },
    ],
}
IDS = 'sloth_id="llm-api-requests", sloth_service="llm-api", sloth_slo="requests"'
LABELS = {"owner": "nlp", "tier": "gold", "sloth_id": "llm-api-requests", "sloth_service": "llm-api",
          "sloth_slo": "requests"}  # fmt: skip


def _generate(tmp_path: Path, window: str = "30d", spec: dict[str, Any] = SPEC) -> dict[str, Any]:
    path, out = tmp_path / "spec.yaml", tmp_path / "out"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run_cli("rules", "import-sloth", str(path), "--out", str(out), "--naming", "sloth", "--window", window,
                     "--format", "rulefile")  # fmt: skip
    assert result.exit_code == 0, result.output
    return yaml.safe_load((out / f"{c.RULE_GROUP_PREFIX}-slo.yaml").read_text())


def _group(doc: dict[str, Any], name: str) -> list[dict[str, Any]]:
    (group,) = [g["rules"] for g in doc["groups"] if g["name"] == name]
    return group


def test_groups_are_sloths_three_per_slo_less_a_fully_disabled_slos_alerts(tmp_path: Path) -> None:
    doc = _generate(tmp_path)
    assert [g["name"] for g in doc["groups"]] == [
        "sloth-slo-sli-recordings-llm-api-requests",
        "sloth-slo-meta-recordings-llm-api-requests",
        "sloth-slo-alerts-llm-api-requests",
        "sloth-slo-sli-recordings-llm-api-quiet",
        "sloth-slo-meta-recordings-llm-api-quiet",
    ]


def test_sli_recordings_fill_the_specs_own_promql_per_window_and_the_period_from_5_minute_ratios(
    tmp_path: Path,
) -> None:
    rules = _group(_generate(tmp_path), "sloth-slo-sli-recordings-llm-api-requests")
    windows = ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"]
    assert [r["record"] for r in rules] == [f"slo:sli_error:ratio_rate{w}" for w in windows]
    assert rules[2] == {
        "record": "slo:sli_error:ratio_rate1h",
        "expr": '(sum(rate(vllm:request_failure_total{model_name="llama"}[1h])))\n/\n'
        '(sum(rate(vllm:request_success_total{model_name="llama"}[1h])))\n',
        "labels": {**LABELS, "sloth_window": "1h"},
    }
    assert rules[-1]["expr"] == (
        f"sum_over_time(slo:sli_error:ratio_rate5m{{{IDS}}}[30d])\n/ ignoring (sloth_window)\n"
        f"count_over_time(slo:sli_error:ratio_rate5m{{{IDS}}}[30d])\n"
    )
    assert rules[-1]["labels"] == {**LABELS, "sloth_window": "30d"}
    raw = _group(_generate(tmp_path), "sloth-slo-sli-recordings-llm-api-quiet")[0]
    assert raw["expr"] == f"(({ERRORS})\n/\n({TOTAL})\n)".replace("{{.window}}", "5m").replace("{{ .window }}", "5m")


def test_metadata_recordings_are_sloths_with_go_numbers(tmp_path: Path) -> None:
    rules = _group(_generate(tmp_path), "sloth-slo-meta-recordings-llm-api-requests")
    burn = "slo:sli_error:ratio_rate{w}{{" + IDS + "}}\n/ on(sloth_id, sloth_slo, sloth_service) group_left\n"
    burn += "slo:error_budget:ratio{{" + IDS + "}}\n"
    assert [(r["record"], r["expr"]) for r in rules] == [
        ("slo:objective:ratio", "vector(0.995)"),  # 99.5 / 100 is the double 0.995
        ("slo:error_budget:ratio", "vector(1-0.995)"),
        ("slo:time_period:days", "vector(30)"),
        ("slo:current_burn_rate:ratio", burn.format(w="5m")),
        ("slo:period_burn_rate:ratio", burn.format(w="30d")),
        ("slo:period_error_budget_remaining:ratio", f"1 - slo:period_burn_rate:ratio{{{IDS}}}"),
        ("sloth_slo_info", "vector(1)"),
    ]
    assert all(r["labels"] == LABELS for r in rules[:-1])
    info = rules[-1]["labels"]
    assert {k: info[k] for k in ("sloth_mode", "sloth_spec", "sloth_objective")} == {
        "sloth_mode": "cli-gen-prom", "sloth_spec": "prometheus/v1", "sloth_objective": "99.5"}  # fmt: skip


def test_the_page_alert_ors_its_two_window_pairs_at_sloths_factors_and_the_disabled_ticket_is_not_written(
    tmp_path: Path,
) -> None:
    (page,) = _group(_generate(tmp_path), "sloth-slo-alerts-llm-api-requests")
    budget = "0.005"  # (100 - 99.5) / 100 in float64 prints as 0.005
    assert page == {
        "alert": "LlmApiBurn",
        "expr": (
            "(\n"
            f"    max(slo:sli_error:ratio_rate5m{{{IDS}}} > (14.4 * {budget})) without (sloth_window)\n    and\n"
            f"    max(slo:sli_error:ratio_rate1h{{{IDS}}} > (14.4 * {budget})) without (sloth_window)\n"
            ")\nor\n(\n"
            f"    max(slo:sli_error:ratio_rate30m{{{IDS}}} > (6 * {budget})) without (sloth_window)\n    and\n"
            f"    max(slo:sli_error:ratio_rate6h{{{IDS}}} > (6 * {budget})) without (sloth_window)\n"
            ")\n"
        ),
        "labels": {"sloth_severity": "page", "team": "nlp", "route": "pager"},
        "annotations": {
            "title": "(page) {{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget burn rate is too fast.",
            "summary": "{{$labels.sloth_service}} {{$labels.sloth_slo}} SLO error budget burn rate is over expected.",
            "runbook": "https://runbooks.example/llm",
        },
    }


@pytest.mark.parametrize(
    ("window", "written", "page", "ticket"),
    [
        # as Go computes them (percent x period hours / 100 / long-window hours): 2 x 672 / 100 / 1 is 13.44, but
        # 5 x 672 / 100 / 6 is the double 5.6000000000000005, and Sloth prints it so
        ("28d", "4w", ("13.44", "5.6000000000000005"), ("2.8000000000000003", "0.9333333333333333")),
        # Sloth's 7-day catalog: 8, 12.5, 20 and 42% of 168 hours
        ("7d", "1w", ("13.44", "3.5"), ("1.4000000000000001", "0.98")),
    ],
)
def test_other_periods_are_written_as_prometheus_writes_them_with_their_catalogs_factors(
    tmp_path: Path, window: str, written: str, page: tuple[str, str], ticket: tuple[str, str]
) -> None:
    spec = {**SPEC, "slos": [{**SPEC["slos"][0], "alerting": {"name": "LlmApiBurn"}}]}
    doc = _generate(tmp_path, window, spec)
    sli = _group(doc, "sloth-slo-sli-recordings-llm-api-requests")
    assert sli[-1]["record"] == f"slo:sli_error:ratio_rate{written}" and f"[{written}]" in sli[-1]["expr"]
    meta = {r["record"]: r["expr"] for r in _group(doc, "sloth-slo-meta-recordings-llm-api-requests")}
    assert meta["slo:time_period:days"] == f"vector({window[:-1]})"
    alerts = _group(doc, "sloth-slo-alerts-llm-api-requests")
    for alert, factors in zip(alerts, (page, ticket), strict=True):
        for factor in factors:
            assert f"> ({factor} * 0.005))" in alert["expr"], (factor, alert["expr"])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (300, "5m"),
        (86400, "1d"),
        (3 * 86400, "3d"),
        (7 * 86400, "1w"),
        (28 * 86400, "4w"),
        (30 * 86400, "30d"),
        (365 * 86400, "1y"),
        (90 * 86400, "90d"),
        (5400, "1h30m"),
    ],  # fmt: skip
)
def test_durations_are_written_as_prometheus_writes_them(seconds: int, text: str) -> None:
    assert prom_duration(seconds) == text


def test_promtool_accepts_the_file_and_the_page_alert_fires_when_errors_burn_the_budget(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    _generate(tmp_path)
    out = tmp_path / "out"
    ok, output = serialize.promtool_check([out / f"{c.RULE_GROUP_PREFIX}-slo.yaml"], promtool)
    assert ok, output
    # 10% of requests fail from the start: 20x the 0.5% budget, over 14.4 on both page pairs once 5m and 1h hold
    # data (Sloth's expression, evaluated by Prometheus' own engine)
    test = {
        "rule_files": [f"{c.RULE_GROUP_PREFIX}-slo.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'vllm:request_failure_total{model_name="llama"}', "values": "0+10x120"},
                    {"series": 'vllm:request_success_total{model_name="llama"}', "values": "0+100x120"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "90m",
                        "alertname": "LlmApiBurn",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "sloth_severity": "page",
                                    "team": "nlp",
                                    "route": "pager",
                                    **LABELS,  # `max ... without (sloth_window)` drops the window
                                },
                                "exp_annotations": {
                                    "title": "(page) llm-api requests SLO error budget burn rate is too fast.",
                                    "summary": "llm-api requests SLO error budget burn rate is over expected.",
                                    "runbook": "https://runbooks.example/llm",
                                },
                            }
                        ],
                    },  # fmt: skip
                ],
            }
        ],
    }
    (out / "t.test.yaml").write_text(yaml.safe_dump(test))
    plain = out / f"{c.RULE_GROUP_PREFIX}-slo.yaml"
    assert "groups:" in plain.read_text()
    proc = subprocess.run([promtool, "test", "rules", "t.test.yaml"], cwd=out, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
