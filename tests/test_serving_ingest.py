"""Serving metrics land exactly as the servers export them: vLLM (current and older names), Triton,
TGI, KServe, Knative, and the HTTP layer; bucket edges come from the scrape, never from a table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core import conventions as c
from core.store.warehouse import open_warehouse
from tests.conftest import FIXTURES, run_cli

AT = "2026-11-02T00:00:00Z"


def _ingest(tmp_path: Path, text: str) -> list[tuple]:
    scrape = tmp_path / "metrics.txt"
    scrape.write_text(text)
    wh = tmp_path / "wh.duckdb"
    result = run_cli("--warehouse", str(wh), "collect", "openmetrics", str(scrape), "--at", AT)
    assert result.exit_code == 0, result.output
    with open_warehouse(wh, read_only=True) as con:
        return con.execute(
            f"SELECT metric, model, le, labels, value, strftime(sample_ts, '%Y-%m-%dT%H:%M:%SZ') "
            f"FROM {c.T_INFERENCE_SAMPLES} ORDER BY metric, labels, le"
        ).fetchall()


def _exposition_lines(path: Path) -> str:
    """The parseable sample lines of a reference excerpt (it also holds `$ curl` and `...` lines)."""
    sample = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? \S+$")
    return "".join(line + "\n" for line in path.read_text().splitlines() if sample.match(line))


def test_the_published_vllm_scrape_keeps_model_finish_reasons_edges_and_http_status(tmp_path: Path) -> None:
    rows = _ingest(tmp_path, _exposition_lines(FIXTURES / "vllm_metrics_samples.txt"))
    ttft = [r for r in rows if r[0] == "vllm:time_to_first_token_seconds_bucket"]
    assert [r[2] for r in ttft] == [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1]
    assert {r[1] for r in ttft} == {"meta-llama/Llama-3.1-8B-Instruct"}
    finished = {json.loads(r[3])["finished_reason"]: r[4] for r in rows if r[0] == "vllm:request_success_total"}
    assert finished == {"stop": 1.0, "length": 131.0, "abort": 0.0}
    http = [r for r in rows if r[0] == "http_requests_total"]
    assert [(r[1], json.loads(r[3])["status"], r[4]) for r in http] == [("", "2xx", 201.0)]
    assert {r[5] for r in rows} == {AT}, "a saved scrape's samples carry the --at time"
    assert not [r for r in rows if r[0].endswith("_created")], "prometheus_client's _created gauges are dropped"


def test_triton_counters_keep_model_and_version_and_the_documented_quirk_lines_stay_out(tmp_path: Path) -> None:
    rows = _ingest(tmp_path, _exposition_lines(FIXTURES / "triton_metrics_sample.txt"))
    by_metric = {r[0]: r for r in rows}
    assert by_metric["nv_inference_request_success"][1:5] == ("my_model", None, '{"version":"1"}', 161.0)
    assert by_metric["nv_inference_queue_duration_us"][4] == 11110.0
    # The doc prints bucket lines without `_bucket`: not real exposition, so not read as buckets.
    assert "nv_inference_first_response_histogram_ms_bucket" not in by_metric
    assert by_metric["nv_inference_first_response_histogram_ms_count"][4] == 37.0


SERVER_LINES = {
    "TGI end-to-end duration bucket": (
        'tgi_request_duration_bucket{le="0.00015"} 3',
        ("tgi_request_duration_bucket", "", 0.00015, {}),
    ),
    "TGI failures by error kind": (
        'tgi_request_failure{err="validation"} 2',
        ("tgi_request_failure", "", None, {"err": "validation"}),
    ),
    "KServe predict latency per model": (
        'request_predict_seconds_bucket{le="0.25",model_name="sklearn-iris"} 9',
        ("request_predict_seconds_bucket", "sklearn-iris", 0.25, {}),
    ),
    "Knative app latency in milliseconds": (
        'revision_app_request_latencies_bucket{le="500",revision_name="iris-00001",service_name="iris"} 4',
        ("revision_app_request_latencies_bucket", "iris", 500.0, {"revision_name": "iris-00001"}),
    ),
    "Knative 5xx request count": (
        'revision_request_count{response_code_class="5xx",service_name="iris"} 1',
        ("revision_request_count", "iris", None, {"response_code_class": "5xx"}),
    ),
    "vLLM inter-token latency (current name)": (
        'vllm:inter_token_latency_seconds_bucket{engine="0",le="0.05",model_name="m"} 8',
        ("vllm:inter_token_latency_seconds_bucket", "m", 0.05, {"engine": "0"}),
    ),
    "vLLM time per output token (name before 0.11)": (
        'vllm:time_per_output_token_seconds_bucket{le="0.075",model_name="m"} 5',
        ("vllm:time_per_output_token_seconds_bucket", "m", 0.075, {}),
    ),
    "a team's accuracy gauge": (
        'model_accuracy_ratio{model_name="m",model_version="v2"} 0.91',
        ("model_accuracy_ratio", "m", None, {"model_version": "v2"}),
    ),
}


@pytest.mark.parametrize(("line", "expected"), list(SERVER_LINES.values()), ids=list(SERVER_LINES))
def test_each_servers_series_maps_onto_model_edge_and_extra_labels(
    tmp_path: Path, line: str, expected: tuple[str, str, float | None, dict[str, str]]
) -> None:
    rows = _ingest(tmp_path, line + "\n")
    assert [(r[0], r[1], r[2], json.loads(r[3])) for r in rows] == [expected]


@pytest.mark.parametrize(
    ("handler", "kept"),
    [("/v1/chat/completions", True), ("/v2/models/iris/infer", True), ("/healthz", False), ("/api/users", False)],
    ids=["openai route", "kserve v2 route", "health checks", "another app"],
)
def test_only_inference_routes_of_the_http_layer_are_read(tmp_path: Path, handler: str, kept: bool) -> None:
    rows = _ingest(tmp_path, f'http_requests_total{{handler="{handler}",method="POST",status="5xx"}} 3\n')
    assert bool(rows) is kept
