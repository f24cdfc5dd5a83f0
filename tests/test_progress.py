"""Progress of long work: one JSON line per commit window (or file, or stage) off a terminal, a rich bar with the
rate and the time left on one, nothing with --quiet; `serve` logs JSON lines with the job, window and outcome.
The figures in the lines are the command's own: their samples add up to what the summary says it collected."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import yaml
from click.testing import CliRunner, Result
from rich.console import Console

from app.cli.base import main
from app.cli.progress import Bar, JsonLines, progress_for
from app.cli.serve import JsonFormatter
from core.progress import SILENT
from tests.conftest import FIXTURES, SIM_START


def _cli(tmp_path: Path, *args: str, settings: dict | None = None) -> Result:
    config = tmp_path / "gpuledger.yaml"
    config.write_text(yaml.safe_dump(settings or {}))
    return CliRunner().invoke(main, ["--config", str(config), "--warehouse", str(tmp_path / "wh.duckdb"), *args])


def _lines(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith('{"progress"')]


def test_a_backfill_writes_one_line_per_commit_window_whose_samples_add_up_to_the_summary(
    prometheus_url: str, tmp_path: Path
) -> None:
    settings = {"collect": {"commit_window": "1h", "step": "60s"}}
    window = ["--url", prometheus_url, "--start", SIM_START, "--end", "2026-11-02T03:00:00Z"]
    result = _cli(tmp_path, "collect", "prometheus", *window, settings=settings)
    assert result.exit_code == 0, result.output
    lines = _lines(result.stderr)
    assert [(line["windows"], line["of"]) for line in lines] == [(1, 3), (2, 3), (3, 3)]
    assert [line["window"] for line in lines] == [
        "2026-11-02T00:00:00Z..2026-11-02T01:00:00Z", "2026-11-02T01:00:00Z..2026-11-02T02:00:00Z",
        "2026-11-02T02:00:00Z..2026-11-02T03:00:00Z"]  # fmt: skip
    collected = int(re.search(r"collected (\d+) samples", result.stdout).group(1))
    assert sum(line["samples"] for line in lines) == collected > 0
    assert all(line["rows"] > 0 and line["seconds"] >= 0 and line["eta_seconds"] >= 0 for line in lines)
    assert lines[-1]["eta_seconds"] == 0
    assert result.stdout.count("\n") == 1, "stdout keeps the one summary line"


def test_quiet_silences_the_progress_and_keeps_the_summary(prometheus_url: str, tmp_path: Path) -> None:
    window = ["--url", prometheus_url, "--start", SIM_START, "--end", "2026-11-02T01:00:00Z"]
    result = _cli(tmp_path, "--quiet", "collect", "prometheus", *window)
    assert result.exit_code == 0, result.output
    assert _lines(result.stderr) == [] and result.stdout.startswith("collected ")


def test_a_file_collection_reports_each_file_then_the_commit(tmp_path: Path) -> None:
    files = [FIXTURES / "dcgm-exporter_4.8.2_k8s_h100.prom", FIXTURES / "kube-state-metrics_v2.x_gpu_excerpt.prom"]
    result = _cli(tmp_path, "collect", "openmetrics", *map(str, files), "--at", "2026-11-02T00:00:00Z")
    assert result.exit_code == 0, result.output
    lines = _lines(result.stderr)
    assert [(line.get("file"), line.get("stage"), line["steps"], line["of"]) for line in lines] == [
        (str(files[0]), None, 1, 3), (str(files[1]), None, 2, 3), (None, "commit", 3, 3)]  # fmt: skip
    collected = int(re.search(r"collected (\d+) samples", result.stdout).group(1))
    assert lines[0]["samples"] + lines[1]["samples"] >= collected > 0, "samples parsed, of which some are kept"


def test_simulate_and_a_price_import_report_their_steps(tmp_path: Path) -> None:
    simulated = _cli(tmp_path, "simulate", "--days", "0.05", "--out", str(tmp_path / "sim"))
    assert simulated.exit_code == 0, simulated.output
    assert [line["file"] for line in _lines(simulated.stderr)] == [
        "dcgm-exporter.om", "kube-state-metrics.om", "vllm.om", "truth.json"]  # fmt: skip
    imported = _cli(tmp_path, "pricing", "import", "--default")
    assert imported.exit_code == 0, imported.output
    read, stored = _lines(imported.stderr)
    assert read["source"] == "the default table" and f"imported {read['rows']} price rows" in imported.stdout
    assert stored["stage"] == "store" and stored["eta_seconds"] == 0


def test_on_a_terminal_a_bar_shows_the_windows_the_rate_and_the_time_left() -> None:
    out = io.StringIO()
    bar = Bar(Console(file=out, force_terminal=True, width=160, color_system=None))
    bar.begin("collect prometheus:http://x", 4, "windows")
    for _ in range(4):
        bar.step(window="w", samples=250_000, rows=10)
    bar.end()
    text = out.getvalue()
    assert "collect prometheus:http://x" in text and "4/4" in text and "windows" in text
    assert re.search(r"[\d,]+ samples/s", text) and "ETA" in text and "0:00:00" in text


def test_off_a_terminal_lines_are_json_and_quiet_is_silent() -> None:
    assert progress_for(quiet=True) is SILENT
    assert isinstance(progress_for(quiet=False), JsonLines), "pytest's stderr is not a terminal"
    out = io.StringIO()
    lines = JsonLines(out)
    lines.begin("import bills", 2, "steps")
    lines.step(file="a.csv", lines=10)
    lines.step(stage="commit", lines=8)
    first, second = map(json.loads, out.getvalue().splitlines())
    assert first == {"progress": "import bills", "steps": 1, "of": 2, "file": "a.csv", "lines": 10,
                     "seconds": first["seconds"], "eta_seconds": first["eta_seconds"]}  # fmt: skip
    assert second["stage"] == "commit" and second["eta_seconds"] == 0


def test_serve_logs_one_json_object_per_event_with_the_job_window_and_outcome_and_no_secret() -> None:
    record = logging.LogRecord("gpuledger.serve", logging.INFO, __file__, 1, "%s: collected from %s", ("prod", "https://u:s3cret@x"), None)  # fmt: skip
    record.__dict__.update(job="collect", source="prod", window="a..b", outcome="committed", samples=5, rows=2)
    line = json.loads(JsonFormatter(["s3cret"]).format(record))
    assert line["message"] == "prod: collected from https://u:***@x" and line["level"] == "info"
    assert {k: line[k] for k in ("job", "source", "window", "outcome", "samples", "rows")} == {
        "job": "collect", "source": "prod", "window": "a..b", "outcome": "committed", "samples": 5, "rows": 2}  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", line["time"])
