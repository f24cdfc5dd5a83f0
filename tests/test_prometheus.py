"""Collecting through a real Prometheus gives exactly what direct ingestion gives, and the truth."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from core import conventions as c
from core.store.warehouse import open_warehouse
from tests.conftest import free_port, run_cli
from tests.helpers import content_digest, rows, team_day_hours

DAY = "2026-11-02"
DAY_WINDOW = ("--start", "2026-11-02T00:00:00Z", "--end", "2026-11-03T00:00:00Z")


@pytest.fixture(scope="module")
def prometheus_warehouse(prometheus_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    wh = tmp_path_factory.mktemp("promwh") / "prom.duckdb"
    result = run_cli(
        "--warehouse",
        str(wh),
        "collect",
        "prometheus",
        "--url",
        prometheus_url,
        "--start",
        "2026-11-02T00:00:00Z",
        "--end",
        "2026-11-03T00:00:00Z",
        "--step",
        "60s",
        "--cluster",
        "sim-us-east-1",
    )
    assert result.exit_code == 0, result.output
    return wh


def test_prometheus_collection_equals_direct_ingestion_and_truth(
    prometheus_warehouse: Path, direct_warehouse: Path, truth: dict
) -> None:
    via_prometheus = team_day_hours(prometheus_warehouse, [DAY])
    direct = team_day_hours(direct_warehouse, [DAY])
    assert set(via_prometheus) == set(direct) == set(truth["allocated_gpu_hours"])
    for team in direct:
        assert via_prometheus[team][DAY] == pytest.approx(direct[team][DAY], abs=1e-9)
        assert via_prometheus[team][DAY] == pytest.approx(truth["allocated_gpu_hours"][team][DAY], abs=1e-9)


def test_prometheus_collection_stores_the_same_device_and_allocation_rows(
    prometheus_warehouse: Path, direct_warehouse: Path
) -> None:
    for table in (
        c.T_POD_ALLOCATIONS,
        c.T_GPU_SAMPLES,
        c.T_GPU_POD_SAMPLES,
        c.T_NODE_SAMPLES,
        c.T_INFERENCE_SAMPLES,
        c.T_HEALTH_SAMPLES,
    ):
        assert rows(prometheus_warehouse, table) == rows(direct_warehouse, table), table
    # half a million health rows: compared by count and an order-independent hash of every row
    health = [content_digest(wh)[c.T_HEALTH_SAMPLES] for wh in (prometheus_warehouse, direct_warehouse)]
    assert health[0] == health[1] and health[0][0] > 0


def test_prometheus_collection_yields_the_same_gpu_health_history(
    prometheus_warehouse: Path, direct_warehouse: Path
) -> None:
    from analytics.health.views import period_dict
    from app.jobs import evaluate_health
    from core.settings import Settings
    from core.timeutil import Window, parse_ts

    day = Window(parse_ts(DAY), parse_ts("2026-11-03"))
    histories = []
    for wh in (prometheus_warehouse, direct_warehouse):
        with open_warehouse(wh, read_only=True) as con:
            result = evaluate_health(con, Settings(), day)
        histories.append([period_dict(p, result.gpus[p.key]) for p in result.periods])
    assert histories[0] == histories[1]
    assert any(p["state"] == c.STATE_OFFLINE for p in histories[0])


def test_auto_pushdown_reads_recording_rules_only_for_windows_their_heartbeat_covers(
    prometheus_warehouse: Path,
) -> None:
    with open_warehouse(prometheus_warehouse, read_only=True) as con:
        runs = con.execute(
            f"SELECT strftime(window_start, '%H:%M'), message FROM {c.T_INGEST_RUNS} ORDER BY window_start"
        ).fetchall()
    # the rules "were deployed" at 06:00 (tests/conftest.py RULES_FROM); commit windows are 6 h
    assert runs == [
        ("00:00", "read via aggregating queries"),
        ("06:00", "read via recording rules"),
        ("12:00", "read via recording rules"),
        ("18:00", "read via recording rules"),
    ]


@pytest.mark.parametrize("pushdown", ["raw", "query"], ids=["raw series", "aggregating queries"])
def test_every_pushdown_mode_stores_exactly_the_rows_of_direct_ingestion(
    pushdown: str, prometheus_url: str, direct_warehouse: Path, tmp_path: Path
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(f"collect:\n  pushdown: {pushdown}\n  cluster: sim-us-east-1\n")
    wh = tmp_path / "wh.duckdb"
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(config),
            "--warehouse",
            str(wh),
            "collect",
            "prometheus",
            "--url",
            prometheus_url,
            *DAY_WINDOW,
        ],
    )
    assert result.exit_code == 0, result.output
    for table in (c.T_POD_ALLOCATIONS, c.T_GPU_SAMPLES, c.T_GPU_POD_SAMPLES, c.T_HEALTH_SAMPLES):
        assert rows(wh, table) == rows(direct_warehouse, table), table


def test_collection_records_a_watermark_for_the_source(prometheus_warehouse: Path, prometheus_url: str) -> None:
    with open_warehouse(prometheus_warehouse, read_only=True) as con:
        rows = con.execute(f"SELECT source, strftime(last_ts, '%Y-%m-%dT%H:%M') FROM {c.T_WATERMARKS}").fetchall()
    assert rows == [(f"prometheus:{prometheus_url}", "2026-11-03T00:00")]


def test_an_unreachable_prometheus_is_one_clear_error_and_changes_nothing(
    direct_warehouse: Path, tmp_path: Path
) -> None:
    wh = tmp_path / "wh.duckdb"
    shutil.copy(direct_warehouse, wh)
    before = content_digest(wh)
    url = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "settings.yaml"
    config.write_text("collect:\n  retries: 0\n  timeout: 5s\n")
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(config),
            "--warehouse",
            str(wh),
            "collect",
            "prometheus",
            "--url",
            url,
            "--start",
            "2026-11-02T00:00:00Z",
            "--end",
            "2026-11-02T01:00:00Z",
        ],
    )
    assert result.exit_code == 3
    assert url in result.output and "cannot connect" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert content_digest(wh) == before


def test_a_query_prometheus_rejects_is_terminal_and_names_the_query(prometheus_url: str) -> None:
    from collectors.metrics.http import HttpClient, HttpConfig
    from collectors.metrics.prometheus import answers
    from core.errors import QueryError
    from core.timeutil import parse_ts

    client = HttpClient(prometheus_url, HttpConfig(timeout_s=10, retries=0))
    with pytest.raises(QueryError, match="rate\\(\\("):
        answers.query_range(
            client, "prometheus", "rate((", parse_ts("2026-11-02T00:00:00Z"), parse_ts("2026-11-02T01:00:00Z"), 60
        )
