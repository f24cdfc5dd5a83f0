"""`gpuledger report slo|drift|canary|unit-cost` and `gpuledger drift check`, end to end, against the
simulator's truth, list prices, scipy and a real Prometheus."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml
from click.testing import CliRunner, Result
from scipy import stats

from app.cli import main
from collectors.pricing.data import __file__ as data_init
from collectors.simulator.serving_truth import SERVICES, SLOS
from core.timeutil import parse_ts, to_epoch

LLM = SERVICES["llm-infer"]["model"]
# increase() over a day sees the 287 scrape-to-scrape increments inside it and extrapolates them
# to the whole day: both edges are nearer than 1.1 scrape intervals (7 s and 293 s).
DAY_EXTRAPOLATION = 86400 / (86400 - 300)


def _config(tmp_path: Path, **serving: object) -> Path:
    services: dict[str, dict] = {name: {**spec, "slos": []} for name, spec in SERVICES.items()}
    for slo in SLOS:
        services[slo["service"]]["slos"].append({k: v for k, v in slo.items() if k != "service"} | {"window": "28d"})
    path = tmp_path / "gpuledger.yaml"
    path.write_text(yaml.safe_dump({"serving": {"services": services, **serving}}, sort_keys=False))
    return path


def _cli(config: Path, warehouse: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main, ["--config", str(config), "--warehouse", str(warehouse), *args], catch_exceptions=False
    )


def test_the_slo_report_renders_every_declared_slo_in_each_format(direct_warehouse: Path, tmp_path: Path) -> None:
    config = _config(tmp_path)
    as_json = json.loads(_cli(config, direct_warehouse, "report", "slo", "--format", "json").output)
    assert as_json["at"] == "2026-11-03T00:00:00Z", "defaults to the end of the serving data"
    assert [(s["service"], s["slo"]) for s in as_json["slos"]] == [(s["service"], s["name"]) for s in SLOS]
    table = _cli(config, direct_warehouse, "report", "slo").output
    assert "burn_1h" in table and "llm-infer" in table and "embed-infer" in table
    rows = list(csv.DictReader(io.StringIO(_cli(config, direct_warehouse, "report", "slo", "--format", "csv").output)))
    assert float(rows[0]["sli_value"]) == pytest.approx(as_json["slos"][0]["sli_value"], rel=1e-9)


def test_without_declared_slos_the_report_says_what_to_add(direct_warehouse: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    result = CliRunner().invoke(main, ["--config", str(empty), "--warehouse", str(direct_warehouse), "report", "slo"])
    assert result.exit_code == 2 and "serving.services" in result.output


def _price_per_gpu_hour(instance_type: str) -> Decimal:
    with open(Path(data_init).parent / "prices-default.csv") as fh:
        row = next(
            r for r in csv.DictReader(fh) if r["instance_type"] == instance_type and r["capacity_type"] == "on_demand"
        )
    return Decimal(row["price_per_hour_usd"]) / int(row["gpus"])


def test_unit_cost_is_list_price_times_gpu_hours_over_the_counted_requests_and_tokens(
    direct_warehouse: Path, tmp_path: Path, truth: dict
) -> None:
    config = _config(tmp_path)
    out = json.loads(_cli(config, direct_warehouse, "report", "unit-cost", "--format", "json").output)
    llm = {r["version"]: r for r in out["rows"] if r["model"] == LLM}
    for version, counted in truth["serving"]["traffic_by_day"][LLM].items():
        row, day = llm[version], counted["2026-11-02"]
        # Each llm-infer pod holds one A100 of a p4d.24xlarge for the whole day.
        cost = (_price_per_gpu_hour("p4d.24xlarge") * 24).quantize(Decimal("0.01"))
        assert Decimal(row["cost_usd"]) == cost
        requests_seen = day["requests"] * DAY_EXTRAPOLATION
        assert float(row["cost_per_1k_requests_usd"]) == pytest.approx(float(cost) * 1000 / requests_seen, abs=5e-5)
        tokens = (day["prompt_tokens"] + day["generation_tokens"]) * DAY_EXTRAPOLATION
        assert float(row["cost_per_1m_input_tokens_usd"]) == pytest.approx(float(cost) * 1e6 / tokens, abs=5e-5)
        assert row["split"] == "tokens"
    # Well under the seed's $5 per 1,000 requests; a 40-cent ceiling flags both versions.
    assert [(r["ceiling_per_1k_requests_usd"], r["over_ceiling"]) for r in out["rows"]] == [("5", False)] * 3
    tight = _config(tmp_path, cost_ceiling_per_1k_requests_usd="0.40")
    flagged = json.loads(_cli(tight, direct_warehouse, "report", "unit-cost", "--format", "json").output)["rows"]
    assert {(r["model"], r["version"]) for r in flagged if r["over_ceiling"]} == {(LLM, "v1"), (LLM, "v2")}


def test_the_canary_is_rolled_back_for_its_error_rate_with_the_simulators_numbers(
    direct_warehouse: Path, tmp_path: Path, truth: dict, prometheus_url: str
) -> None:
    out = json.loads(
        _cli(_config(tmp_path), direct_warehouse, "report", "canary", "--model", LLM, "--format", "json").output
    )
    expected = truth["serving"]["canary"]["llm-infer"]
    assert (out["stable"], out["canary"], out["verdict"]) == ("v1", "v2", expected["verdict"])
    checks = {ch["metric"]: ch for ch in out["checks"]}
    assert [m for m, ch in checks.items() if ch["triggered"]] == expected["triggers"]
    for side in ("stable", "canary"):
        version = out[side]
        assert checks["error_rate"][side] == pytest.approx(
            expected["error_ratio_by_day"]["2026-11-02"][version], rel=1e-3
        )
        query = (
            f"histogram_quantile(0.95, sum by (le) (increase(vllm:e2e_request_latency_seconds_bucket"
            f'{{model_name="{LLM}",model_version="{version}"}}[1d])))'
        )
        answer = requests.get(
            f"{prometheus_url}/api/v1/query",
            params={"query": query, "time": to_epoch(parse_ts("2026-11-03"))},
            timeout=10,
        ).json()["data"]["result"]
        assert checks["p95_latency_seconds"][side] == pytest.approx(float(answer[0]["value"][1]), rel=1e-12)


@pytest.mark.parametrize(
    ("canary", "window", "verdict"),
    [
        ({}, ("2026-11-02T03:00:00Z", "2026-11-02T03:30:00Z"), "ROLLBACK"),
        ({"error_rate_rise": 20.0}, ("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"), "PROMOTE"),
        (
            {"error_rate_rise": 20.0, "min_requests": 10_000_000},
            ("2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"),
            "HOLD",
        ),
    ],
    ids=["half an hour is enough to see a 9x error rate", "a tolerant trigger promotes", "too little traffic holds"],
)
def test_the_canary_verdict_follows_the_triggers_and_the_minimum_traffic(
    direct_warehouse: Path, tmp_path: Path, canary: dict, window: tuple[str, str], verdict: str
) -> None:
    config = _config(tmp_path, canary=canary)
    args = ["report", "canary", "--model", LLM, "--start", window[0], "--end", window[1], "--format", "json"]
    assert json.loads(_cli(config, direct_warehouse, *args).output)["verdict"] == verdict


DAYS = ["2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06", "2026-11-07", "2026-11-08"]


@pytest.mark.parametrize("day", DAYS)
def test_drift_verdicts_of_each_day_against_day_1_match_the_truth(
    week_serving_warehouse: Path, sim_week: Path, tmp_path: Path, day: str
) -> None:
    truth = json.loads((sim_week / "truth.json").read_text())["serving"]
    config = _config(tmp_path)
    for service, spec in SERVICES.items():
        args = ["report", "drift", "--model", spec["model"], "--reference-start", "2026-11-02", "--reference-end",
                "2026-11-03", "--start", day, "--end", str(parse_ts(day).date().fromordinal(parse_ts(day).toordinal() + 1)),
                "--format", "json"]  # fmt: skip
        out = json.loads(_cli(config, week_serving_warehouse, *args).output)
        expected = truth["drift"][service]
        assert out["features"]["prompt_tokens"]["psi_band"] == expected["prompt_tokens"][day], service
        assert out["features"]["e2e_latency"]["psi_band"] == expected["e2e_latency"][day], service
        assert out["features"]["finish_reason"]["drift"] == (expected["finish_reason"][day] == "drift"), service
        assert out["accuracy"]["verdict"] == expected["accuracy"][day], service


def test_accuracy_is_not_judged_on_too_few_scored_predictions(week_serving_warehouse: Path, tmp_path: Path) -> None:
    args = ["report", "drift", "--model", LLM, "--reference-start", "2026-11-02T00:00:00Z", "--reference-end",
            "2026-11-02T01:00:00Z", "--start", "2026-11-07T00:00:00Z", "--end", "2026-11-07T01:00:00Z", "--format", "json"]  # fmt: skip
    out = json.loads(_cli(_config(tmp_path), week_serving_warehouse, *args).output)
    assert out["accuracy"]["verdict"] == "insufficient" and out["accuracy"]["n_current"] < 200


def test_drift_check_on_batch_files_gives_each_features_statistics_by_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame(
        {
            "score": rng.normal(0.7, 0.1, 800),
            "tokens": rng.poisson(500, 800),
            "lang": ["en"] * 560 + ["de"] * 160 + ["fr"] * 80,
        }
    )
    cur = pd.DataFrame(
        {
            "score": rng.normal(0.6, 0.1, 700),
            "tokens": rng.poisson(500, 700),
            "lang": ["en"] * 490 + ["de"] * 140 + ["fr"] * 70,
        }
    )
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_parquet(tmp_path / "cur.parquet")
    result = CliRunner().invoke(
        main, ["--config", "/dev/null", "drift", "check", "--reference", str(tmp_path / "ref.parquet"),
               "--current", str(tmp_path / "cur.parquet"), "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["drifted"] == ["score"]
    score = out["features"]["score"]
    ks = stats.ks_2samp(ref["score"], cur["score"])
    assert (score["method"], score["ks_statistic"], score["ks_p_value"]) == (
        "ks",
        pytest.approx(ks.statistic, abs=1e-9),
        pytest.approx(ks.pvalue, abs=1e-9),
    )
    assert out["features"]["lang"]["method"] == "chi_square"
    table = CliRunner().invoke(
        main,
        [
            "--config",
            "/dev/null",
            "drift",
            "check",
            "--reference",
            str(tmp_path / "ref.parquet"),
            "--current",
            str(tmp_path / "cur.parquet"),
        ],
    )
    assert "1 of 3 judged features drifted: score" in table.output


def test_drift_check_names_a_file_that_is_not_parquet(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_text("not parquet")
    result = CliRunner().invoke(
        main,
        [
            "--config",
            "/dev/null",
            "drift",
            "check",
            "--reference",
            str(tmp_path / "bad.parquet"),
            "--current",
            str(tmp_path / "bad.parquet"),
        ],
    )
    assert result.exit_code == 2 and "bad.parquet: not a readable Parquet file" in result.output


def test_the_readmes_slo_example_is_valid_settings_for_the_simulated_services() -> None:
    readme = (Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text()
    block = readme.split("### SLOs", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    from core.settings import Settings

    serving = Settings.model_validate(yaml.safe_load(block)).serving
    declared = [
        (name, s.name, s.sli, s.threshold_seconds, s.objective)
        for name, svc in serving.services.items()
        for s in svc.slos
    ]
    assert declared == [(s["service"], s["name"], s["sli"], s.get("threshold_seconds"), s["objective"]) for s in SLOS]


def test_sloth_spec_files_from_the_settings_are_reported_next_to_the_declared_slos(
    direct_warehouse: Path, tmp_path: Path
) -> None:
    from tests.test_slo import SLOTH_SPEC

    spec = tmp_path / "llm-slos.yaml"
    spec.write_text(yaml.safe_dump(SLOTH_SPEC, sort_keys=False))
    config = _config(tmp_path, sloth_specs=[str(spec)], sloth_window="28d")
    out = json.loads(_cli(config, direct_warehouse, "report", "slo", "--format", "json").output)["slos"]
    from_spec = {s["slo"]: s for s in out if s["source"] == f"sloth:{spec}"}
    declared = {s["slo"]: s for s in out if s["source"] == "settings" and s["service"] == "llm-infer"}
    assert set(from_spec) == {"e2e-latency", "errors"}
    for name, row in from_spec.items():
        assert row["sli_value"] == pytest.approx(declared[name]["sli_value"], rel=1e-12)


def test_serving_drift_over_a_window_without_the_models_series_is_insufficient_never_stable(
    week_serving_warehouse: Path, tmp_path: Path
) -> None:
    """The current window lies after the simulated week: every signal the reference has is absent from it."""
    args = ["report", "drift", "--model", LLM, "--reference-start", "2026-11-02", "--reference-end", "2026-11-03",
            "--start", "2026-11-20", "--end", "2026-11-21", "--format", "json"]  # fmt: skip
    out = json.loads(_cli(_config(tmp_path), week_serving_warehouse, *args).output)
    features = out["features"]
    assert {"prompt_tokens", "e2e_latency", "finish_reason"} <= set(features)
    for name, feature in features.items():
        assert (feature["status"], feature["drift"]) == ("insufficient", None), name
        assert feature["reason"].startswith("the current window has no "), name
    assert out["accuracy"]["verdict"] != "stable"
