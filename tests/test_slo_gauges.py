"""Gauge SLIs (Sloth's raw and events queries over `*_over_time`, and subqueries) evaluated in the warehouse equal
what a real Prometheus computes from the same samples: gaps longer than the lookback, late starts, irregular
scrapes, comparisons with and without `bool`, the default subquery step, and a whole SLO report.

gpuledger follows Prometheus 3, whose ranges (subqueries too) are left-open, (T-W, T]. The Prometheus here is 2.42,
whose ranges are closed, [T-W, T]: a subquery's first point then lands exactly on T-W whenever W is a multiple of
the step. Asked for W less one millisecond, 2.42 selects exactly (T-W, T], so that is what it is asked."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import yaml

from analytics.serving.counters import Span
from analytics.serving.sli import SLI
from analytics.serving.sli_promql import parse_events
from analytics.serving.slo import bad_ratios, evaluate
from analytics.serving.sloth import slos_from_documents, slos_from_spec
from core import conventions as c
from core.errors import ConfigError
from core.store.warehouse import open_warehouse
from core.timeutil import iso, parse_duration, parse_ts, to_epoch
from tests.conftest import run_cli, serve_prometheus, warehouse_of

T0 = parse_ts("2026-11-02T00:00:00Z")
GAUGE = c.QUALITY_GAUGE
MODEL = f'{GAUGE}{{model_name="m"}}'
POD_A = f'{GAUGE}{{model_name="m",pod="a"}}'


def _series(rng: random.Random) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(model, pod) -> [(seconds since T0, accuracy)]: each pod one way a gauge is scraped."""
    out: dict[tuple[str, str], list[tuple[float, float]]] = {}
    out["m", "a"] = [(7 + 30 * k, round(rng.uniform(0.8, 1.0), 3)) for k in range(360)]  # every 30 s for 3 h
    # every minute, 20 minutes missing: longer than the 5-minute lookback
    out["m", "b"] = [(13 + 60 * k, round(rng.uniform(0.85, 0.95), 3)) for k in range(180) if not 60 <= k < 80]
    t, late = 3600 + 4.5, []
    while t < 3 * 3600:  # starts an hour in, scrapes 25 to 35 s apart
        late.append((t, round(rng.uniform(0.7, 1.0), 3)))
        t += rng.uniform(25, 35)
    out["m", "c"] = late
    out["other", "d"] = [(7 + 30 * k, 0.1) for k in range(360)]  # another model: never selected
    return out


def _openmetrics(series: dict[tuple[str, str], list[tuple[float, float]]]) -> str:
    lines = [f"# TYPE {GAUGE} gauge"]
    base = to_epoch(T0)
    for (model, pod), points in series.items():
        labels = f'model_name="{model}",namespace="ns",pod="{pod}"'
        lines += [f"{GAUGE}{{{labels}}} {v} {base + t:.3f}" for t, v in points]
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def gauge_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gauges") / "gauges.om"
    path.write_text(_openmetrics(_series(random.Random(5))))
    return path


@pytest.fixture(scope="module")
def gauge_prometheus(gauge_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_prometheus([gauge_file], tmp_path_factory.mktemp("prom-gauges")) as url:
        yield url


@pytest.fixture(scope="module")
def gauge_warehouse(gauge_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return warehouse_of([gauge_file], tmp_path_factory.mktemp("wh-gauges"), "15s")


def _left_open(query: str, window_s: int) -> str:
    """The query over (T-W, T] on Prometheus 2.x: the window less a millisecond."""
    return query.replace("{{.window}}", f"{window_s * 1000 - 1}ms")


def _prom(url: str, query: str, at: float) -> float | None:
    answer = requests.get(f"{url}/api/v1/query", params={"query": query, "time": at}, timeout=10).json()
    assert answer["status"] == "success", (query, answer)
    result = answer["data"]["result"]
    assert len(result) <= 1, (query, result)
    return float(result[0]["value"][1]) if result else None


QUERIES = {
    "the mean of every series' raw samples": f"sum(avg_over_time({MODEL}[{{{{.window}}}}]))",
    "the average of the series' means": f"avg(avg_over_time({MODEL}[{{{{.window}}}}]))",
    "raw samples counted": f"sum(count_over_time({MODEL}[{{{{.window}}}}]))",
    "raw samples summed": f"sum(sum_over_time({MODEL}[{{{{.window}}}}]))",
    "subquery points kept by a filter": f"sum(count_over_time(({MODEL} < 0.9)[{{{{.window}}}}:5m]))",
    "a filter's kept values averaged": f"sum(avg_over_time(({MODEL} >= 0.9)[{{{{.window}}}}:2m]))",
    "a bool comparison's breach share": f"avg(avg_over_time(({MODEL} < bool 0.9)[{{{{.window}}}}:1m]))",
    "one bare series at the default step": f"count_over_time({POD_A}[{{{{.window}}}}:])",
    "the OpenSLO threshold shape": f"avg_over_time((({POD_A}) > bool 0.95)[{{{{.window}}}}:30s])",
    "a difference of two readings": f"sum(count_over_time({MODEL}[{{{{.window}}}}:1m])) - "
    f"sum(count_over_time(({MODEL} < 0.9)[{{{{.window}}}}:1m]))",
}
WINDOWS = {"5m": 300, "30m": 1800, "1h": 3600, "2h": 7200, "6h": 21600}
EVAL_OFFSETS = ["30m", "1h2m30s", "1h17m", "1h45m", "2h", "3h", "3h4m", "3h20m"]


@pytest.mark.parametrize("query", list(QUERIES.values()), ids=list(QUERIES))
def test_every_gauge_reading_equals_prometheus_at_every_window_and_time(
    gauge_prometheus: str, gauge_warehouse: Path, query: str
) -> None:
    sli = SLI(parse_events(query, "q"), ())
    ends = [T0 + timedelta(seconds=parse_duration(at)) for at in EVAL_OFFSETS]
    spans = [Span(end, seconds) for end in ends for seconds in WINDOWS.values()]
    with open_warehouse(gauge_warehouse, read_only=True) as con:
        ours = [value for _, _, value in bad_ratios(con, sli, spans)]
    theirs = [_prom(gauge_prometheus, _left_open(query, w), to_epoch(end)) for end in ends for w in WINDOWS.values()]
    assert None in theirs and len({str(v) for v in theirs}) > 10, "windows with and without data, all different"
    assert ours == [None if v is None else pytest.approx(v, rel=1e-12, abs=1e-12) for v in theirs]


def test_an_unaggregated_reading_of_several_series_is_refused_naming_it(gauge_warehouse: Path) -> None:
    sli = SLI(parse_events(f"avg_over_time({MODEL}[{{{{.window}}}}])", "q"), ())
    with open_warehouse(gauge_warehouse, read_only=True) as con, pytest.raises(ConfigError, match="matches 2 series"):
        bad_ratios(con, sli, [Span(T0 + timedelta(minutes=30), 1800)])


def test_a_sloth_accuracy_slo_reports_the_budget_and_burn_rates_prometheus_computes(
    gauge_prometheus: str, gauge_warehouse: Path
) -> None:
    """`1 - avg(avg_over_time(accuracy))` against 90%: the error ratio has no denominator."""
    ratio = f"1 - avg(avg_over_time({MODEL}[{{{{.window}}}}]))"
    spec = {"version": "prometheus/v1", "service": "model-m",
            "slos": [{"name": "accuracy", "objective": 90, "sli": {"raw": {"error_ratio_query": ratio}}}]}  # fmt: skip
    (slo,) = slos_from_spec(spec, "spec.yaml", 7 * 86400)
    assert slo.rules_only is None and not slo.sli.counts_events and slo.sli.offset == 1.0
    now = T0 + timedelta(hours=3, minutes=4)
    with open_warehouse(gauge_warehouse, read_only=True) as con:
        report = evaluate(con, slo, now)
    at = to_epoch(now)
    assert report.sli == pytest.approx(1 - _prom(gauge_prometheus, _left_open(ratio, 7 * 86400), at), rel=1e-12)
    checked = 0
    for burn in report.burn:
        for window, ours in ((burn.long, burn.long_rate), (burn.short, burn.short_rate)):
            theirs = _prom(gauge_prometheus, _left_open(ratio, parse_duration(window)), at)
            assert ours == pytest.approx(theirs / 0.1, rel=1e-12), window
            checked += 1
    assert checked == 8


def test_report_slo_on_the_command_line_gives_the_accuracy_slo_without_a_rules_only_note(
    gauge_prometheus: str, gauge_warehouse: Path, tmp_path: Path
) -> None:
    ratio = f"1 - avg(avg_over_time({MODEL}[{{{{.window}}}}]))"
    spec = tmp_path / "accuracy.yaml"
    spec.write_text(yaml.safe_dump({"version": "prometheus/v1", "service": "model-m", "slos": [
        {"name": "accuracy", "objective": 90, "sli": {"raw": {"error_ratio_query": ratio}}}]}))  # fmt: skip
    config = tmp_path / "gpuledger.yaml"
    config.write_text(yaml.safe_dump({"serving": {"sloth_specs": [str(spec)], "sloth_window": "7d"}}))
    now = T0 + timedelta(hours=2)
    args = ["--config", str(config), "--warehouse", str(gauge_warehouse), "report", "slo", "--format", "json"]
    result = run_cli(*args, "--at", iso(now))
    assert result.exit_code == 0 and "rules only" not in result.output, result.output
    (row,) = json.loads(result.output)["slos"]
    theirs = _prom(gauge_prometheus, _left_open(ratio, 7 * 86400), to_epoch(now))
    assert row["sli_value"] == pytest.approx(1 - theirs, rel=1e-12) and 0.85 < row["sli_value"] < 0.95
    assert row["promql"] == {"bad": f"1 - avg(avg_over_time({MODEL}[7d]))", "total": "vector(1)"}


def test_an_openslo_threshold_slo_over_a_collected_gauge_is_evaluated_in_the_warehouse(
    gauge_prometheus: str, gauge_warehouse: Path
) -> None:
    """Accuracy of pod a at least 0.85 in 95% of 5-minute slices: the breach share, as Prometheus counts it."""
    doc = {"apiVersion": "openslo/v1", "kind": "SLO", "metadata": {"name": "accuracy"},
           "spec": {"service": "model-m", "budgetingMethod": "Timeslices",
                    "timeWindow": [{"duration": "7d", "isRolling": True}],
                    "indicator": {"metadata": {"name": "acc"}, "spec": {"thresholdMetric": {
                        "metricSource": {"type": "Prometheus", "spec": {"query": POD_A}}}}},
                    "objectives": [{"op": "gte", "value": 0.85, "target": 0.95, "timeSliceWindow": "5m"}]}}  # fmt: skip
    (slo,) = slos_from_documents([("o.yaml", doc)], 30 * 86400)
    assert slo.rules_only is None, slo.rules_only
    now = T0 + timedelta(hours=2, minutes=33)
    with open_warehouse(gauge_warehouse, read_only=True) as con:
        report = evaluate(con, slo, now)
    query = _left_open(f"avg_over_time((({POD_A}) < bool 0.85)[{{{{.window}}}}:5m])", 3600)
    burn_1h = next(b.long_rate for b in report.burn if b.long == "1h")
    assert burn_1h == pytest.approx(_prom(gauge_prometheus, query, to_epoch(now)) / 0.05, rel=1e-12)
    assert burn_1h > 0, "pod a's accuracy dips below 0.85 in some slices"
