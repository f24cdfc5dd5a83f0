"""SLOs in the warehouse equal what a real Prometheus computes with the equivalent PromQL, and
reproduce the simulator's truth: daily SLIs, the day-5 latency regression, a healthy service."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
import requests

from analytics.serving import slo as slo_mod
from analytics.serving.sli import SLODef
from collectors.simulator.serving_truth import SERVICES, SLOS
from core.errors import ConfigError
from core.settings import ServingSettings
from core.store.warehouse import open_warehouse
from core.timeutil import parse_duration, parse_ts, to_epoch
from tests.conftest import run_cli


def serving_settings(window: str = "28d", **overrides: object) -> ServingSettings:
    """The simulated services with the SLOs they are declared with (serving_truth.SLOS)."""
    services: dict[str, dict] = {name: {**spec, "slos": []} for name, spec in SERVICES.items()}
    for slo in SLOS:
        services[slo["service"]]["slos"].append({**{k: v for k, v in slo.items() if k != "service"}, "window": window})
    return ServingSettings.model_validate({"services": services, **overrides})


def _slos(path: Path, now: datetime, serving: ServingSettings | None = None, specs: list | None = None) -> list:
    with open_warehouse(path, read_only=True) as con:
        defs = slo_mod.build_slos(con, serving or serving_settings(), specs or [], now)
        return [slo_mod.evaluate(con, d, now) for d in defs]


def _prom(url: str, query: str, at: datetime) -> float | None:
    answer = requests.get(f"{url}/api/v1/query", params={"query": query, "time": to_epoch(at)}, timeout=10).json()
    assert answer["status"] == "success", (query, answer)
    result = answer["data"]["result"]
    assert len(result) <= 1, query
    return float(result[0]["value"][1]) if result else None


def _ratio_query(slo: SLODef, window: str) -> str:
    bad, total = slo.sli.promql(window)
    return f"({bad}) / ({total})"


EVAL_TIMES = ["2026-11-02T06:00:00Z", "2026-11-02T13:37:00Z", "2026-11-03T00:00:00Z", "2026-11-03T00:40:00Z"]


@pytest.mark.parametrize("at", EVAL_TIMES)
def test_sli_budget_and_every_burn_rate_equal_prometheus_on_the_same_data(
    direct_warehouse: Path, prometheus_url: str, at: str
) -> None:
    now = parse_ts(at)
    for report in _slos(direct_warehouse, now):
        slo = report.slo
        ratio = _ratio_query(slo, report.window)
        budget = f"(1 - {slo.objective} / 100)"
        expected_sli = _prom(prometheus_url, f"1 - {ratio}", now)
        expected_budget = _prom(prometheus_url, f"1 - ({ratio}) / {budget}", now)
        assert report.sli == _approx(expected_sli), (slo.service, slo.name)
        assert report.budget_remaining == _approx(expected_budget), (slo.service, slo.name)
        for burn in report.burn:
            for window, ours in ((burn.long, burn.long_rate), (burn.short, burn.short_rate)):
                theirs = _prom(prometheus_url, f"({_ratio_query(slo, window)}) / {budget}", now)
                assert ours == _approx(theirs), (slo.service, slo.name, window)


def _approx(value: float | None) -> object:
    # None: Prometheus returned no sample (fewer than two scrapes in the window, or no data at all).
    return None if value is None else pytest.approx(value, rel=1e-12, abs=1e-12)


def test_a_hand_written_promql_latency_sli_gives_the_same_number(direct_warehouse: Path, prometheus_url: str) -> None:
    now = parse_ts("2026-11-02T18:00:00Z")
    sel = 'namespace="team-nlp",model_name="meta-llama/Llama-3.1-8B-Instruct"'
    query = (
        f"1 - (sum(increase(vllm:e2e_request_latency_seconds_count{{{sel}}}[6h]))"
        f' - sum(increase(vllm:e2e_request_latency_seconds_bucket{{{sel},le="5.0"}}[6h])))'
        f" / sum(increase(vllm:e2e_request_latency_seconds_count{{{sel}}}[6h]))"
    )
    report = next(
        r for r in _slos(direct_warehouse, now) if (r.slo.service, r.slo.name) == ("llm-infer", "e2e-latency")
    )
    burn_6h = next(b.long_rate for b in report.burn if b.long == "6h")
    assert 1 - burn_6h * (1 - 0.97) == pytest.approx(_prom(prometheus_url, query, now), rel=1e-12)


# The truth counts requests; increase() extrapolates each series to the window edges, and series
# whose counter starts at 0 (a 5xx counter at night) stop at the zero point, so bad and total of the
# error SLIs are scaled by factors that differ by at most the 7 s scrape offset in a day: 1e-4.
TRUTH_REL = 1e-4


def test_the_daily_sli_of_every_slo_equals_the_simulators_count(direct_warehouse: Path, truth: dict) -> None:
    by_key = {(t["service"], t["name"]): t for t in truth["serving"]["slos"]}
    for report in _slos(direct_warehouse, parse_ts("2026-11-03T00:00:00Z")):
        expected = by_key[(report.slo.service, report.slo.name)]["sli_by_day"]
        days = {d.day: d.sli for d in report.history if d.total is not None}
        assert days == {day: pytest.approx(v, rel=TRUTH_REL) for day, v in expected.items()}


def test_a_week_reproduces_every_day_met_or_missed_and_the_day_5_regression(
    week_serving_warehouse: Path, sim_week: Path
) -> None:
    truth = json.loads((sim_week / "truth.json").read_text())["serving"]
    by_key = {(t["service"], t["name"]): t for t in truth["slos"]}
    for report in _slos(week_serving_warehouse, parse_ts("2026-11-09T00:00:00Z")):
        expected = by_key[(report.slo.service, report.slo.name)]
        history = [d for d in report.history if d.total is not None]
        assert {d.day: d.met for d in history} == expected["met_by_day"], report.slo.name
        assert {d.day: d.sli for d in history} == {
            k: pytest.approx(v, rel=TRUTH_REL) for k, v in expected["sli_by_day"].items()
        }
    missed = {(t["service"], t["name"]) for t in truth["slos"] if not all(t["met_by_day"].values())}
    assert missed == {("llm-infer", "e2e-latency"), ("llm-infer", "ttft")}, "only the regression misses a day"


@pytest.mark.parametrize(
    ("at", "firing"),
    [
        ("2026-11-05T12:00:00Z", set()),
        ("2026-11-06T12:00:00Z", {("llm-infer", "e2e-latency"), ("llm-infer", "ttft")}),
        ("2026-11-07T12:00:00Z", set()),
    ],
    ids=["day 4 is quiet", "day 5 pages on the latency and TTFT SLOs", "day 6 is quiet again"],
)
def test_the_6h_30m_page_fires_on_the_regression_day_only(week_serving_warehouse: Path, at: str, firing: set) -> None:
    reports = _slos(week_serving_warehouse, parse_ts(at), serving_settings("30d"))
    paging = {(r.slo.service, r.slo.name) for r in reports for b in r.burn if b.long == "6h" and b.firing}
    assert paging == firing


@pytest.mark.parametrize(
    ("sli", "threshold", "message"),
    [
        ("latency", 0.2, r"0.2 s is not a bucket edge of vllm:e2e_request_latency_seconds \(nearest edges: 0.3 s\)"),
        (
            "ttft",
            0.2,
            r"0.2 s is not a bucket edge of vllm:time_to_first_token_seconds \(nearest edges: 0.1 s and 0.25 s\)",
        ),
        ("latency", 70.0, r"70 s is not a bucket edge .*\(nearest edges: 60 s\)"),
    ],
    ids=["the seed's 200 ms e2e", "the seed's 200 ms TTFT", "beyond the last edge"],
)
def test_a_threshold_that_is_not_a_bucket_edge_is_refused_naming_the_nearest_edges(
    direct_warehouse: Path, sli: str, threshold: float, message: str
) -> None:
    spec = {
        "model": SERVICES["llm-infer"]["model"],
        "slos": [{"name": "x", "sli": sli, "threshold_seconds": threshold, "objective": 99}],
    }
    with pytest.raises(ConfigError, match=message):
        _slos(
            direct_warehouse,
            parse_ts("2026-11-03T00:00:00Z"),
            ServingSettings.model_validate({"services": {"llm-infer": spec}}),
        )


def _flat_day_file(path: Path) -> Path:
    """Day 1: 100 requests per 5 minutes, 3 of them slow; day 2: no traffic at all (counters flat)."""
    base = to_epoch(parse_ts("2026-11-02T00:00:00Z"))
    lines = ["# TYPE vllm:e2e_request_latency_seconds histogram"]
    labels = 'model_name="m",namespace="ns",pod="p"'
    for k in range(576):
        n = 100 * min(k, 288)
        for le, v in (("1.0", n * 97 // 100), ("+Inf", n)):
            lines.append(f'vllm:e2e_request_latency_seconds_bucket{{{labels},le="{le}"}} {v} {base + 7 + 300 * k}')
        lines.append(f"vllm:e2e_request_latency_seconds_count{{{labels}}} {n} {base + 7 + 300 * k}")
    path.write_text("\n".join(lines) + "\n# EOF\n")
    return path


def test_a_day_without_traffic_has_no_sli_and_does_not_touch_the_budget(tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    assert (
        run_cli("--warehouse", str(wh), "collect", "openmetrics", str(_flat_day_file(tmp_path / "f.om"))).exit_code == 0
    )
    serving = ServingSettings.model_validate(
        {
            "services": {
                "s": {"model": "m", "slos": [{"name": "l", "sli": "latency", "threshold_seconds": 1, "objective": 95}]}
            }
        }
    )
    (report,) = _slos(wh, parse_ts("2026-11-04T00:00:00Z"), serving)
    days = {d.day: d for d in report.history if d.day >= "2026-11-02"}
    assert days["2026-11-02"].sli == pytest.approx(0.97) and days["2026-11-02"].met is True
    assert days["2026-11-03"].sli is None and days["2026-11-03"].met is None and days["2026-11-03"].total == 0
    assert report.sli == pytest.approx(0.97), "the idle day neither spends nor earns budget"
    assert report.budget_remaining == pytest.approx(1 - 0.03 / 0.05)
    assert all(b.long_rate is None for b in report.burn if parse_duration(b.long) <= 86400)


SLOTH_SPEC = {
    "version": "prometheus/v1",
    "service": "llm-infer",
    "labels": {"owner": "nlp"},
    "slos": [
        {
            "name": "e2e-latency",
            "objective": 97,
            "sli": {
                "events": {
                    "error_query": 'sum(rate(vllm:e2e_request_latency_seconds_count{model_name="meta-llama/Llama-3.1-8B-Instruct"}[{{.window}}])) - sum(rate(vllm:e2e_request_latency_seconds_bucket{model_name="meta-llama/Llama-3.1-8B-Instruct",le="5.0"}[{{.window}}]))',
                    "total_query": 'sum(rate(vllm:e2e_request_latency_seconds_count{model_name="meta-llama/Llama-3.1-8B-Instruct"}[{{.window}}]))',
                }
            },
        },
        {
            "name": "errors",
            "objective": 98,
            "sli": {
                "raw": {
                    "error_ratio_query": 'sum(increase(http_requests_total{namespace="team-nlp",pod=~"llm-infer-.*",status=~"5.."}[{{.window}}])) / sum(increase(http_requests_total{namespace="team-nlp",pod=~"llm-infer-.*"}[{{.window}}]))'
                }
            },
        },
    ],
}


def test_a_sloth_spec_gives_the_numbers_of_the_declared_slo_and_of_sloths_own_query(
    direct_warehouse: Path, prometheus_url: str
) -> None:
    now = parse_ts("2026-11-02T20:00:00Z")
    reports = _slos(direct_warehouse, now, ServingSettings(sloth_window="28d"), [("spec.yaml", SLOTH_SPEC)])
    declared = {(r.slo.service, r.slo.name): r for r in _slos(direct_warehouse, now)}
    for report in reports:
        twin = declared[(report.slo.service, report.slo.name)]
        assert report.sli == pytest.approx(twin.sli, rel=1e-12) and report.slo.source == "sloth:spec.yaml"
        events = SLOTH_SPEC["slos"][[s["name"] for s in SLOTH_SPEC["slos"]].index(report.slo.name)]["sli"]
        for burn in report.burn:
            if "events" in events:  # Sloth's SLI rule: (error_query) / (total_query)
                sloth = f"({events['events']['error_query']}) / ({events['events']['total_query']})"
            else:
                sloth = events["raw"]["error_ratio_query"]
            theirs = _prom(prometheus_url, sloth.replace("{{.window}}", burn.long), now)
            assert burn.long_rate == _approx(None if theirs is None else theirs / (1 - report.slo.objective / 100))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("histogram_quantile(0.9, sum(rate(x_bucket[{{.window}}])))", "'histogram_quantile' is not sum"),
        ("sum(rate(x[{{.window}}])) * 2", "unexpected '\\*'|cannot read"),
        ("sum by (pod) (rate(x[{{.window}}]))", "one SLI per group"),
        ("sum(rate(x[{{.window}}:1m]))", "a subquery of a counter"),
        ("sum(avg_over_time(g[{{.window}}]))", "counters mixed with gauges"),
        ("sum(avg_over_time((g > 1)[{{.window}}]))", "a comparison needs a subquery"),
        ("sum(max_over_time(g[{{.window}}]))", "'max_over_time' is not sum"),
        ("avg(rate(x[{{.window}}]))", "avg\\(\\) of counters"),
    ],
    ids=[
        "a quantile",
        "arithmetic on the result",
        "a per-pod SLI",
        "a counter subquery",
        "a counter over a gauge",
        "a comparison over raw samples",
        "a gauge's maximum",
        "an average of rates",
    ],
)
def test_a_sloth_query_the_warehouse_cannot_evaluate_is_kept_as_rules_only_with_the_reason(
    query: str, message: str
) -> None:
    from analytics.serving.sloth import slos_from_spec

    total = "sum(rate(t_total[{{.window}}]))"
    spec = {"version": "prometheus/v1", "service": "svc",
            "slos": [{"name": "n1", "objective": 99, "sli": {"events": {"error_query": query, "total_query": total}}}]}  # fmt: skip
    (slo,) = slos_from_spec(spec, "spec.yaml", 86400)
    assert slo.rules_only is not None and re.search(message, slo.rules_only), slo.rules_only
    assert slo.promql == (query, total)


def test_a_sloth_query_without_the_window_variable_is_refused_as_sloth_refuses_it() -> None:
    from analytics.serving.sloth import slos_from_spec

    sli = {"events": {"error_query": "sum(rate(x[5m]))", "total_query": "sum(rate(t_total[{{.window}}]))"}}
    spec = {"version": "prometheus/v1", "service": "svc", "slos": [{"name": "n1", "objective": 99, "sli": sli}]}
    with pytest.raises(ConfigError, match="must contain the {{.window}} variable"):
        slos_from_spec(spec, "spec.yaml", 86400)


def _server_file(path: Path, series: dict[str, tuple[int, int]]) -> Path:
    """One hour of 60 s scrapes; each series starts at `start` and grows by `step` per scrape."""
    base = to_epoch(parse_ts("2026-11-02T00:00:00Z"))
    lines = [f"{name} {start + step * k} {base + 60 * k}" for name, (start, step) in series.items() for k in range(61)]
    path.write_text("\n".join(lines) + "\n# EOF\n")
    return path


SERVERS = {
    "Triton failures over successes plus failures": (
        {
            'nv_inference_request_success{model="resnet",pod="triton-0",version="1"}': (1000, 97),
            'nv_inference_request_failure{model="resnet",pod="triton-0",reason="BACKEND",version="1"}': (10, 3),
        },
        {"model": "resnet", "slos": [{"name": "errors", "sli": "error_ratio", "objective": 99}]},
        1 - 3 / 100,
    ),
    "TGI latency, pods chosen by name (no model label)": (
        {
            'tgi_request_duration_bucket{le="0.5",pod="tgi-0"}': (900, 45),
            'tgi_request_duration_bucket{le="+Inf",pod="tgi-0"}': (1000, 50),
            'tgi_request_duration_count{pod="tgi-0"}': (1000, 50),
            'tgi_request_duration_count{pod="other-app-0"}': (1000, 50),
        },
        {
            "model": "bigscience/bloom",
            "pods": "tgi-.*",
            "slos": [{"name": "l", "sli": "latency", "threshold_seconds": 0.5, "objective": 90}],
        },
        45 / 50,
    ),
    "Knative latency in milliseconds, edge spelled 500": (
        {
            'revision_app_request_latencies_bucket{le="500",pod="iris-0",service_name="iris"}': (700, 19),
            'revision_app_request_latencies_bucket{le="+Inf",pod="iris-0",service_name="iris"}': (800, 20),
            'revision_app_request_latencies_count{pod="iris-0",service_name="iris"}': (800, 20),
        },
        {"model": "iris", "slos": [{"name": "l", "sli": "latency", "threshold_seconds": 0.5, "objective": 90}]},
        19 / 20,
    ),
}


@pytest.mark.parametrize(("series", "service", "sli"), list(SERVERS.values()), ids=list(SERVERS))
def test_each_servers_own_counters_give_its_sli(tmp_path: Path, series: dict, service: dict, sli: float) -> None:
    wh = tmp_path / "wh.duckdb"
    scrape = _server_file(tmp_path / "s.om", series)
    assert run_cli("--warehouse", str(wh), "collect", "openmetrics", str(scrape)).exit_code == 0
    (report,) = _slos(
        wh, parse_ts("2026-11-02T01:00:00Z"), ServingSettings.model_validate({"services": {"svc": service}})
    )
    assert report.sli == pytest.approx(sli, rel=1e-12)
    bad, total = report.slo.sli.promql("1h")
    assert "other-app" not in bad + total
