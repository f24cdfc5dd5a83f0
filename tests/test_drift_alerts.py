"""The drift alerts, fed the gauges `gpuledger report drift --textfile` writes for each day of the
simulated week (reference: day 1), fire exactly for the features and models the simulator's truth
says drifted, and for nothing else."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts import serialize
from alerts.promtool_series import alerts_at
from collectors.simulator.serving_truth import SERVICES
from core import conventions as c
from core.timeutil import parse_ts
from tests.conftest import require_binary, run_cli

ROOT = Path(__file__).resolve().parents[1]
DAYS = ["2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06", "2026-11-07", "2026-11-08"]


def _textfile(warehouse: Path, model: str, day: str, out: Path) -> str:
    end = (parse_ts(day) + timedelta(days=1)).date().isoformat()
    args = ["--warehouse", str(warehouse), "report", "drift", "--model", model, "--reference-start", "2026-11-02",
            "--reference-end", "2026-11-03", "--start", day, "--end", end, "--textfile", str(out)]  # fmt: skip
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    return out.read_text()


def _series(text: str) -> list[dict[str, str]]:
    return [
        {"series": line.rsplit(" ", 1)[0], "values": f"{line.rsplit(' ', 1)[1]}x30"}
        for line in text.splitlines()
        if line and not line.startswith("#")
    ]


def _expected(truth: dict, day: str) -> tuple[list[str], list[str]]:
    distribution, accuracy = [], []
    for service, spec in SERVICES.items():
        verdicts, model = truth["drift"][service], spec["model"]
        for feature in ("prompt_tokens", "e2e_latency"):
            if verdicts[feature][day] == "major":
                distribution.append(f'feature="{feature}",model="{model}",severity="warning"')
        if verdicts["finish_reason"][day] == "drift":
            distribution.append(f'feature="finish_reason",model="{model}",severity="warning"')
        if verdicts["accuracy"][day] == "degraded":
            accuracy.append(f'model="{model}",severity="warning"')
    return distribution, accuracy


JUDGED = ("prompt_tokens", "e2e_latency", "finish_reason")  # the features the truth file gives verdicts for


def _judged(check: dict[str, Any]) -> dict[str, Any]:
    """Only the features the truth judges (TTFT and generation length follow from the same changes but
    have no verdict of their own)."""
    return {**check, "expr": check["expr"].replace("}", f',feature=~"{"|".join(JUDGED)}"}}')}


def _day_test(truth: dict, day: str, text: str) -> dict[str, Any]:
    distribution, accuracy = _expected(truth, day)
    return {
        "name": f"drift reported for {day}",
        "interval": "1m",
        "input_series": _series(text),
        "promql_expr_test": [
            _judged(alerts_at("10m", c.ALERT_DISTRIBUTION_DRIFT, distribution)),
            alerts_at("10m", c.ALERT_ACCURACY_DRIFT, accuracy),
        ],
    }


def test_drift_alerts_fire_for_what_drifted_each_day_and_nothing_else(
    week_serving_warehouse: Path, sim_week: Path, tmp_path: Path
) -> None:
    promtool = require_binary("promtool")
    truth = json.loads((sim_week / "truth.json").read_text())["serving"]
    tests = []
    for day in DAYS:
        text = "".join(_textfile(week_serving_warehouse, s["model"], day, tmp_path / f"{i}.prom") for i, s in
                       enumerate(SERVICES.values()))  # fmt: skip
        tests.append(_day_test(truth, day, text))
    assert any(t["promql_expr_test"][0]["exp_samples"] for t in tests), "the week has drift to alert on"
    rules = ROOT / "rules" / "tests" / f"{c.RULE_GROUP_PREFIX}-drift.rules.yaml"
    doc = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "drift.test.yaml").write_text(serialize.dump(doc))
    proc = subprocess.run([promtool, "test", "rules", str(tmp_path / "drift.test.yaml")], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_textfile_is_valid_exposition_and_replaced_whole(week_serving_warehouse: Path, tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    out = tmp_path / "drift.prom"
    out.write_text("stale\n")
    text = _textfile(week_serving_warehouse, SERVICES["llm-infer"]["model"], "2026-11-07", out)
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stale" not in text and not list(tmp_path.glob(".*.tmp"))
    assert f"{c.METRIC_DRIFT_PSI}{{" in text and f"{c.METRIC_ACCURACY_DEGRADED}{{" in text


@pytest.mark.parametrize("text", ["", "# HELP x\n"])
def test_series_parsing_ignores_comments_and_blank_lines(text: str) -> None:
    assert _series(text) == []
