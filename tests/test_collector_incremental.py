"""Incremental, idempotent collection: watermarks, safety lag, commit windows, chunking, concurrency."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from app.cli import main
from collectors.metrics import ingest
from collectors.metrics.prometheus import reader
from core import conventions as c
from core.settings import CollectSettings, PrometheusSettings
from core.store.warehouse import open_warehouse
from core.timeutil import Window, parse_ts
from tests.fake_store import FakeStore, serving
from tests.helpers import rows, team_day_hours

DAY = "2026-11-02"


def _cli(url: str, wh: Path, tmp_path: Path, settings: str, *args: str) -> Result:
    config = tmp_path / "settings.yaml"
    config.write_text(f"collect:\n  cluster: sim-us-east-1\n{settings}")
    return CliRunner().invoke(
        main, ["--config", str(config), "--warehouse", str(wh), "collect", "prometheus", "--url", url, *args]
    )


def test_without_start_and_end_collection_resumes_at_the_watermark_and_stops_a_safety_lag_before_now(
    prometheus_url: str, truth: dict, tmp_path: Path
) -> None:
    wh = tmp_path / "wh.duckdb"
    first = _cli(prometheus_url, wh, tmp_path, "", "--start", f"{DAY}T00:00:00Z", "--end", f"{DAY}T10:00:00Z")
    assert first.exit_code == 0, first.output
    prom, settings = PrometheusSettings(url=prometheus_url), CollectSettings(cluster="sim-us-east-1", safety_lag="2m")
    now = datetime(2026, 11, 2, 12, 3, 30)
    second = ingest.collect_prometheus(wh, prom, settings, now=now)
    assert second.window == (datetime(2026, 11, 2, 10, 0), datetime(2026, 11, 2, 12, 1))  # 12:03:30 - 2m, on the grid
    again = ingest.collect_prometheus(wh, prom, settings, now=now)
    assert again.windows == 0 and again.warnings == [f"nothing new to collect from prometheus:{prometheus_url} yet"]
    last = ingest.collect_prometheus(wh, prom, settings, now=datetime(2026, 11, 3, 0, 2))
    assert last.window == (datetime(2026, 11, 2, 12, 1), datetime(2026, 11, 3, 0, 0))
    got = team_day_hours(wh, [DAY])
    for team, per_day in truth["allocated_gpu_hours"].items():
        assert got[team][DAY] == pytest.approx(per_day[DAY], abs=1e-9)


def test_the_first_collection_of_a_source_needs_a_start(prometheus_url: str, tmp_path: Path) -> None:
    result = _cli(prometheus_url, tmp_path / "wh.duckdb", tmp_path, "")
    assert result.exit_code == 2 and "no watermark for prometheus:" in result.output and "--start" in result.output


def test_re_collecting_overlapping_windows_never_duplicates_or_double_counts(
    prometheus_url: str, direct_warehouse: Path, truth: dict, tmp_path: Path
) -> None:
    wh = tmp_path / "wh.duckdb"
    for start, end in (("00:00", "14:00"), ("10:00", "24:00"), ("03:30", "04:30")):
        end_ts = f"{DAY}T{end}:00Z" if end != "24:00" else "2026-11-03T00:00:00Z"
        result = _cli(prometheus_url, wh, tmp_path, "", "--start", f"{DAY}T{start}:00Z", "--end", end_ts)
        assert result.exit_code == 0, result.output
    for table in (c.T_POD_ALLOCATIONS, c.T_GPU_SAMPLES, c.T_GPU_POD_SAMPLES, c.T_HEALTH_SAMPLES):
        assert rows(wh, table) == rows(direct_warehouse, table), table
    got = team_day_hours(wh, [DAY])
    for team, per_day in truth["allocated_gpu_hours"].items():
        assert got[team][DAY] == pytest.approx(per_day[DAY], abs=1e-9)
    with open_warehouse(wh, read_only=True) as con:
        assert con.execute(f"SELECT strftime(last_ts, '%H:%M') FROM {c.T_WATERMARKS}").fetchall() == [("00:00",)]


CHUNKS = {
    "one chunk": ("00:00", "01:00", 60, 100, [("00:00", "01:00")]),
    "an exact multiple": ("00:00", "00:09", 60, 5, [("00:00", "00:04"), ("00:05", "00:09")]),
    "a remainder": ("00:00", "00:10", 60, 5, [("00:00", "00:04"), ("00:05", "00:09"), ("00:10", "00:10")]),
    "a single point": ("00:00", "00:00", 300, 5, [("00:00", "00:00")]),
}


@pytest.mark.parametrize("case", list(CHUNKS), ids=list(CHUNKS))
def test_chunks_cover_every_grid_point_once_with_at_most_max_points(case: str) -> None:
    first, last, step, max_points, expected = CHUNKS[case]
    day = parse_ts(DAY)
    at = lambda hhmm: day + timedelta(hours=int(hhmm[:2]), minutes=int(hhmm[3:]))  # noqa: E731
    got = [(f"{a:%H:%M}", f"{b:%H:%M}") for a, b in reader.chunks(at(first), at(last), step, max_points)]
    assert got == expected


def test_long_windows_are_split_below_the_points_limit_and_run_with_bounded_concurrency(
    prometheus_url: str, direct_warehouse: Path, tmp_path: Path
) -> None:
    store = FakeStore(prometheus_url)
    wh = tmp_path / "wh.duckdb"
    settings = "  max_points_per_query: 50\n  concurrency: 3\n  commit_window: 2h\n  pushdown: query\n"
    with serving(store) as url:
        result = _cli(url, wh, tmp_path, settings, "--start", f"{DAY}T08:00:00Z", "--end", f"{DAY}T12:00:00Z")
    assert result.exit_code == 0, result.output
    spans = [
        (float(s.params["end"]) - float(s.params["start"])) / 60 + 1 for s in store.seen if s.path.endswith("range")
    ]
    assert max(spans) == 50 and 1 <= store.max_in_flight <= 3
    # every query stays inside one commit window (plus its previous-value point); the metric-names
    # request of each commit window reaches one lookback (5 min) further back
    span: dict[str, float] = {}
    for s in store.seen:
        path = s.path.rsplit("/", 1)[-1]
        if path == "query":  # the instant query reading kube-state-metrics' scrape interval
            continue
        span[path] = max(span.get(path, 0.0), float(s.params["end"]) - float(s.params["start"]))
    assert span == {"query_range": 49 * 60, "values": 2 * 3600 + 300}
    lo, hi = parse_ts(f"{DAY}T08:00:00Z"), parse_ts(f"{DAY}T12:00:00Z")
    for table in (c.T_POD_ALLOCATIONS, c.T_GPU_SAMPLES, c.T_INFERENCE_SAMPLES):
        assert rows(wh, table) == [r for r in rows(direct_warehouse, table) if lo <= r[0] < hi], table


def test_commit_windows_tile_the_window_on_the_step_grid() -> None:
    window = Window(parse_ts(f"{DAY}T00:00:00Z"), parse_ts(f"{DAY}T13:00:00Z"))
    parts = ingest.commit_windows(window, 6 * 3600, 60)
    assert [(p.start.hour, p.end.hour) for p in parts] == [(0, 6), (6, 12), (12, 13)]
    assert ingest.floor_step(parse_ts(f"{DAY}T10:07:59Z"), 300) == parse_ts(f"{DAY}T10:05:00Z")


def test_a_window_reaching_past_now_never_moves_the_watermark_beyond_now_minus_the_lag(
    prometheus_url: str, tmp_path: Path
) -> None:
    wh = tmp_path / "wh.duckdb"
    prom, settings = PrometheusSettings(url=prometheus_url), CollectSettings(cluster="sim-us-east-1", safety_lag="2m")
    now = datetime(2026, 11, 2, 12, 3, 30)  # "now" is mid-day: the second half of the day is the future
    ingest.collect_prometheus(wh, prom, settings, parse_ts(f"{DAY}T06:00:00Z"), parse_ts("2026-11-03"), now=now)
    with open_warehouse(wh, read_only=True) as con:
        assert con.execute(f"SELECT last_ts FROM {c.T_WATERMARKS}").fetchall() == [(datetime(2026, 11, 2, 12, 1),)]
