"""OpenSLO v1 (and Sloth's v1alpha) SLOs through `rules import-sloth`: ratio SLIs inline or by reference, threshold
SLIs as time-slice breaches, `timeWindow` as the period, a `kind: Service` beside them; each mapping checked by hand
and the written rules by promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts import serialize
from analytics.serving.openslo import as_sloth_specs
from analytics.serving.sloth import slos_from_documents
from core import conventions as c
from tests.conftest import require_binary, run_cli

GOOD = 'sum(rate(http_requests_total{job="web",code!~"5.."}[{{.window}}]))'
TOTAL = 'sum(rate(http_requests_total{job="web"}[{{.window}}]))'
SERVICE = {"apiVersion": "openslo/v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"description": "Web"}}


def prometheus(query: str) -> dict[str, Any]:
    return {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}


def slo(name: str, indicator: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body = {"service": "web", "budgetingMethod": "Occurrences", "timeWindow": [{"duration": "28d", "isRolling": True}],
            "objectives": [{"displayName": "good", "target": 0.995}], **spec}  # fmt: skip
    if indicator is not None:
        body["indicator"] = {"metadata": {"name": f"{name}-sli"}, "spec": indicator}
    return {"apiVersion": "openslo/v1", "kind": "SLO", "metadata": {"name": name, "labels": {"team": ["web"]}},
            "spec": body}  # fmt: skip


RATIO_GOOD = slo(
    "availability", {"ratioMetric": {"counter": True, "good": prometheus(GOOD), "total": prometheus(TOTAL)}}
)


def test_a_good_over_total_ratio_becomes_one_minus_it_over_its_own_28_day_window() -> None:
    (defn,) = slos_from_documents([("f.yaml", SERVICE), ("f.yaml", RATIO_GOOD)], 30 * 86400)
    assert (defn.service, defn.name, defn.objective, defn.window_s) == ("web", "availability-0", 99.5, 28 * 86400)
    assert defn.labels == {"team": "web"} and defn.rules_only is None
    # 1 - good/total: bad = total - good, read in the warehouse
    assert [(t.sign, t.selector.promql()) for t in defn.sli.bad] == [
        (1, 'http_requests_total{job="web"}'), (-1, 'http_requests_total{job="web",code!~"5.."}')]  # fmt: skip


def test_an_indicator_ref_resolves_to_its_sli_document_and_bare_selectors_are_read_as_counters() -> None:
    sli = {"apiVersion": "openslo/v1", "kind": "SLI", "metadata": {"name": "web-errors"},
           "spec": {"ratioMetric": {"counter": True, "bad": prometheus('http_requests_total{job="web",code=~"5.."}'),
                                    "total": prometheus('http_requests_total{job="web"}')}}}  # fmt: skip
    doc = slo("errors", indicatorRef="web-errors")
    ((_, spec, period),) = as_sloth_specs([("f.yaml", sli), ("f.yaml", doc)])
    assert period == 28 * 86400
    assert spec["slos"][0]["sli"] == {"events": {
        "error_query": 'sum(rate(http_requests_total{job="web",code=~"5.."}[{{.window}}]))',
        "total_query": 'sum(rate(http_requests_total{job="web"}[{{.window}}]))'}}  # fmt: skip


def test_sloths_v1alpha_form_reads_as_sloth_reads_it() -> None:
    doc = {"apiVersion": "openslo/v1alpha", "kind": "SLO", "metadata": {"name": "slo1"},
           "spec": {"service": "svc01", "budgetingMethod": "Occurrences", "timeWindows": [{"count": 30, "unit": "Day"}],
                    "objectives": [{"target": 0.999, "ratioMetrics": {
                        "good": {"source": "prometheus", "queryType": "promql", "query": GOOD},
                        "total": {"source": "prometheus", "queryType": "promql", "query": TOTAL}}}]}}  # fmt: skip
    (defn,) = slos_from_documents([("f.yaml", doc)], 7 * 86400)
    assert (defn.service, defn.name, defn.objective, defn.window_s) == ("svc01", "slo1-0", 99.9, 30 * 86400)


def _import(tmp_path: Path, docs: list[dict[str, Any]], *args: str) -> tuple[Any, Path]:
    path, out = tmp_path / "openslo.yaml", tmp_path / "out"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return run_cli("rules", "import-sloth", str(path), "--out", str(out), *args), out


def test_a_threshold_slo_is_the_share_of_breaching_slices_written_as_rules_only_and_it_alerts(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    latency = "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"
    doc = slo("latency", {"thresholdMetric": prometheus(latency)}, budgetingMethod="Timeslices",
              objectives=[{"op": "lte", "value": 0.5, "target": 0.99, "timeSliceWindow": "5m"}])  # fmt: skip
    result, out = _import(tmp_path, [SERVICE, doc])
    assert result.exit_code == 0, result.output
    assert "web latency-0: rules only" in result.output
    rules_path = out / f"{c.RULE_GROUP_PREFIX}-slo.yaml"
    ok, output = serialize.promtool_check([rules_path], promtool)
    assert ok, output
    rules = [r for g in yaml.safe_load(rules_path.read_text())["spec"]["groups"] for r in g["rules"]]
    one_hour = next(r for r in rules if r.get("record") == "slo:gpuledger_sli_error:ratio_rate1h")
    assert one_hour["expr"] == f"(avg_over_time((({latency}) > bool 0.5)[1h:5m]))"
    (out / "plain.yaml").write_text(yaml.safe_dump(yaml.safe_load(rules_path.read_text())["spec"]))
    # every request takes 0.75 s (over the 0.5 s threshold): every slice breaches, so every pair burns
    buckets = [{"series": f'http_request_duration_seconds_bucket{{le="{le}"}}', "values": f"0+{n}x150"}
               for le, n in (("0.5", 0), ("1", 60), ("+Inf", 60))]  # fmt: skip
    expected = [{"exp_labels": {"team": "web", c.L_SLO_SERVICE: "web", c.L_SLO_NAME: "latency-0", **r["labels"]},
                 "exp_annotations": r["annotations"]} for r in rules if "alert" in r]  # fmt: skip
    test = {"rule_files": ["plain.yaml"], "evaluation_interval": "1m", "tests": [{"interval": "1m",
            "input_series": buckets, "alert_rule_test": [{"eval_time": "80m", "alertname": c.ALERT_SLO_BURN,
                                                          "exp_alerts": expected}]}]}  # fmt: skip
    (out / "t.test.yaml").write_text(yaml.safe_dump(test))
    proc = subprocess.run([promtool, "test", "rules", "t.test.yaml"], cwd=out, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        (slo("x1", indicatorRef="missing"), "indicatorRef 'missing' names no kind: SLI document"),
        (
            slo(
                "x2",
                {
                    "ratioMetric": {
                        "good": {"metricSource": {"type": "Datadog", "spec": {"query": "a"}}},
                        "total": prometheus(TOTAL),
                    }
                },
            ),
            "metric source 'datadog' is not Prometheus",
        ),  # fmt: skip
        (
            slo("x3", {"ratioMetric": {"good": prometheus("sum(rate(x[5m]))"), "total": prometheus(TOTAL)}}),
            "a query must be a selector or use {{.window}}",
        ),  # fmt: skip
        (
            slo("x4", {"thresholdMetric": prometheus("up")}, objectives=[{"target": 0.99}]),
            "needs op (lt, lte, gt, gte)",
        ),
    ],
    ids=["a dangling indicatorRef", "a Datadog source", "a fixed-window query", "a threshold without op"],
)
def test_an_openslo_document_gpuledger_cannot_map_is_refused_naming_the_file_and_slo(
    tmp_path: Path, doc: dict[str, Any], why: str
) -> None:
    result, out = _import(tmp_path, [SERVICE, doc])
    assert result.exit_code == 2, result.output
    assert str(tmp_path / "openslo.yaml") in result.output and doc["metadata"]["name"] in result.output
    assert why in result.output and not out.exists()
