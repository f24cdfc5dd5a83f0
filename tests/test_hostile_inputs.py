"""Hostile inputs, one sample at a time: absurd timestamps and values neither hang a collection nor
reach a bill. Inputs are the format-exact fixtures replayed once a minute; each case adds one line."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result

from core import rollups
from core.timeutil import to_epoch
from tests.conftest import FIXTURES, run_cli
from tests.helpers import snapshot

KSM = FIXTURES / "kube-state-metrics_v2.x_gpu_excerpt.prom"
DCGM = FIXTURES / "dcgm-exporter_4.8.2_k8s_h100.prom"
START = datetime(2026, 11, 2, 10)
MINUTES = 10
WINDOW = ("--start", "2026-11-02T10:00:00Z", "--end", "2026-11-02T10:10:00Z")


def _samples(scrape: Path) -> list[str]:
    return [line for line in scrape.read_text().splitlines() if line and not line.startswith("#")]


def _replayed(scrape: Path, out: Path, extra: list[str] = ()) -> Path:  # type: ignore[assignment]
    """The scrape once a minute for MINUTES minutes from START, then `extra` lines, as OpenMetrics."""
    lines = [f"{s} {to_epoch(START) + 60 * k:.0f}" for k in range(MINUTES) for s in _samples(scrape)]
    out.write_text("\n".join([*lines, *extra]) + "\n# EOF\n")
    return out


def _node_labels_at(stamp: str) -> str:
    """A kube_node_labels sample of the fixture's first node, at `stamp`."""
    series = next(s for s in _samples(KSM) if s.startswith("kube_node_labels{"))
    return f"{series.rsplit(' ', 1)[0]} 1 {stamp}"


def _collect(wh: Path, *args: str) -> Result:
    return run_cli("--warehouse", str(wh), "collect", "openmetrics", *args)


@pytest.fixture()
def clean(tmp_path: Path) -> tuple[Path, Path]:
    """A warehouse holding the clean replay, and the dcgm file."""
    dcgm = _replayed(DCGM, tmp_path / "dcgm.om")
    wh = tmp_path / "wh.duckdb"
    result = _collect(wh, str(dcgm), str(_replayed(KSM, tmp_path / "ksm.om")))
    assert result.exit_code == 0, result.output
    return wh, dcgm


YEAR_AHEAD = f"{to_epoch(datetime.now() + timedelta(days=365)):.0f}"


@pytest.mark.parametrize(
    ("stamp", "shown"),
    [
        ("0", "1970-01-01T00:00:00Z"),
        ("9999999999", "2286-11-20T17:46:39Z"),
        ("NaN", "not a time"),
        ("-1", "not a time"),
        (YEAR_AHEAD, ""),
        ("1e30", "not a time"),
    ],
    ids=["epoch 0", "year 2286", "NaN", "negative", "a year ahead", "beyond any calendar"],
)
def test_an_implausible_timestamp_without_a_window_is_refused_naming_its_line_and_nothing_changes(
    clean: tuple[Path, Path], tmp_path: Path, stamp: str, shown: str
) -> None:
    wh, dcgm = clean
    before = snapshot(wh)
    bad = _replayed(KSM, tmp_path / "bad.om", [_node_labels_at(stamp)])
    line = len(bad.read_text().splitlines()) - 1  # the line before `# EOF`
    result = _collect(wh, str(dcgm), str(bad))
    assert result.exit_code == 2, result.output
    assert f"bad.om:{line}: sample timestamp {stamp} ({shown}" in result.output
    assert "is outside 2000-01-01T00:00:00Z.." in result.output
    assert snapshot(wh) == before
    if shown == "not a time":  # no window makes it one
        windowed = _collect(wh, str(dcgm), str(bad), *WINDOW)
        assert windowed.exit_code == 2 and f"bad.om:{line}: sample timestamp {stamp} (not a time)" in windowed.output
        assert snapshot(wh) == before


@pytest.mark.parametrize("stamp", ["0", "9999999999", YEAR_AHEAD])
def test_with_a_window_a_sample_outside_it_is_dropped_counted_and_changes_no_row(
    clean: tuple[Path, Path], tmp_path: Path, stamp: str
) -> None:
    _, dcgm = clean
    windowed = tmp_path / "windowed.duckdb"
    assert _collect(windowed, str(dcgm), str(_replayed(KSM, tmp_path / "ksm.om")), *WINDOW).exit_code == 0
    other = tmp_path / "other.duckdb"
    bad = _replayed(KSM, tmp_path / "bad.om", [_node_labels_at(stamp)])
    result = _collect(other, str(dcgm), str(bad), *WINDOW)
    assert result.exit_code == 0, result.output
    assert result.output.count("samples outside the window") + result.output.count("sample outside the window") == 1
    assert "gpuledger: warning: 1 sample outside the window (and its lookback) was dropped" in result.output
    assert snapshot(other) == snapshot(windowed)


def test_rollup_work_visits_the_days_holding_data_not_the_days_between_them(
    clean: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node-labels sample a year before the rest is plausible and kept; the rollups then visit its day
    and the replay's, not the 365 days between (a day at a time over the span took minutes)."""
    wh, dcgm = clean
    visited: list[datetime] = []
    refresh_day = rollups._refresh_day
    monkeypatch.setattr(rollups, "_refresh_day", lambda con, day: (visited.append(day), refresh_day(con, day)))
    early = START - timedelta(days=365)
    old = _replayed(KSM, tmp_path / "old.om", [_node_labels_at(f"{to_epoch(early):.0f}")])
    result = _collect(tmp_path / "year.duckdb", str(dcgm), str(old))
    assert result.exit_code == 0, result.output
    assert sorted(set(visited)) == [datetime(2025, 11, 2), datetime(2026, 11, 2)]
