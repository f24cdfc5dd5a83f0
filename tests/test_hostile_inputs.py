"""Hostile inputs, one sample at a time: absurd timestamps and values neither hang a collection nor
reach a bill. Inputs are the format-exact fixtures replayed once a minute; each case adds one line."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result

from core import conventions as c
from core.store.rollups import hourly
from core.store.status import data_status
from core.store.warehouse import open_warehouse
from core.timeutil import to_epoch
from tests.conftest import FIXTURES, run_cli
from tests.helpers import content_digest

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


# a day boundary: the same value in every xdist worker that collects the tests
YEAR_AHEAD = f"{to_epoch(datetime.combine(datetime.now().date(), datetime.min.time()) + timedelta(days=365)):.0f}"


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
    before = content_digest(wh)
    bad = _replayed(KSM, tmp_path / "bad.om", [_node_labels_at(stamp)])
    line = len(bad.read_text().splitlines()) - 1  # the line before `# EOF`
    result = _collect(wh, str(dcgm), str(bad))
    assert result.exit_code == 2, result.output
    assert f"bad.om:{line}: sample timestamp {stamp} ({shown}" in result.output
    assert "is outside 2000-01-01T00:00:00Z.." in result.output
    assert content_digest(wh) == before
    if shown == "not a time":  # no window makes it one
        windowed = _collect(wh, str(dcgm), str(bad), *WINDOW)
        assert windowed.exit_code == 2 and f"bad.om:{line}: sample timestamp {stamp} (not a time)" in windowed.output
        assert content_digest(wh) == before


@pytest.mark.parametrize("stamp", ["0", "9999999999", YEAR_AHEAD], ids=["epoch 0", "year 2286", "a year ahead"])
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
    assert content_digest(other) == content_digest(windowed)


def test_rollup_work_visits_the_days_holding_data_not_the_days_between_them(
    clean: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node-labels sample a year before the rest is plausible and kept; the rollups then visit its day
    and the replay's, not the 365 days between (a day at a time over the span took minutes)."""
    wh, dcgm = clean
    visited: list[datetime] = []
    refresh_day = hourly._refresh_day
    monkeypatch.setattr(hourly, "_refresh_day", lambda con, day: (visited.append(day), refresh_day(con, day)))
    early = START - timedelta(days=365)
    old = _replayed(KSM, tmp_path / "old.om", [_node_labels_at(f"{to_epoch(early):.0f}")])
    result = _collect(tmp_path / "year.duckdb", str(dcgm), str(old))
    assert result.exit_code == 0, result.output
    assert sorted(set(visited)) == [datetime(2025, 11, 2), datetime(2026, 11, 2)]


GPU0_UTIL = 'DCGM_FI_DEV_GPU_UTIL{gpu="0",'
GPU_REQUEST = 'kube_pod_container_resource_requests{namespace="team-vision",pod="resnet-train-7d9f8-abcde"'


def _corrupted(scrape: Path, out: Path, prefix: str, value: str | None, minute: int = 3) -> Path:
    """The replay with the `minute`th sample of the series starting with `prefix` (and `nvidia_com_gpu`, for
    requests) set to `value`, or left out when `value` is None."""
    lines = _replayed(scrape, out).read_text().splitlines()
    stamp = f"{to_epoch(START) + 60 * minute:.0f}"
    hits = [
        i
        for i, s in enumerate(lines)
        if s.startswith(prefix) and s.endswith(" " + stamp) and "cpu" not in s and "memory" not in s
    ]
    assert len(hits) == 1, hits
    series = lines[hits[0]].rsplit(" ", 2)[0]
    if value is None:
        del lines[hits[0]]
    else:
        lines[hits[0]] = f"{series} {value} {stamp}"
    out.write_text("\n".join(lines) + "\n")
    return out


@pytest.mark.parametrize(
    ("scrape", "prefix", "value", "family"),
    [
        (DCGM, GPU0_UTIL, "-Inf", "DCGM_FI_DEV_GPU_UTIL"),
        (DCGM, GPU0_UTIL, "NaN", "DCGM_FI_DEV_GPU_UTIL"),
        (DCGM, GPU0_UTIL, "-3", "DCGM_FI_DEV_GPU_UTIL"),
        (DCGM, GPU0_UTIL, "1e12", "DCGM_FI_DEV_GPU_UTIL"),
        (DCGM, GPU0_UTIL, "250", "DCGM_FI_DEV_GPU_UTIL"),
        (KSM, GPU_REQUEST, "-1", "kube_pod_container_resource_requests"),
        (KSM, GPU_REQUEST, "+Inf", "kube_pod_container_resource_requests"),
        (KSM, GPU_REQUEST, "1e9", "kube_pod_container_resource_requests"),
    ],
    ids=["util -Inf", "util NaN", "util -3", "util 1e12", "util 250", "request -1", "request +Inf", "request 1e9"],
)
def test_a_value_its_family_cannot_have_is_dropped_counted_and_shown(
    tmp_path: Path, scrape: Path, prefix: str, value: str, family: str
) -> None:
    """The warehouse is exactly the one collected without that sample; the run and Data status say so."""
    other = DCGM if scrape is KSM else KSM
    files = [str(_replayed(other, tmp_path / "other.om"))]
    bad, without = tmp_path / "bad.duckdb", tmp_path / "without.duckdb"
    result = _collect(bad, *files, str(_corrupted(scrape, tmp_path / "bad.om", prefix, value)))
    assert result.exit_code == 0, result.output
    assert "; 1 invalid values dropped" in result.output
    assert f"1 values out of their family's range or not finite were dropped ({family} 1)" in result.output
    assert _collect(without, *files, str(_corrupted(scrape, tmp_path / "without.om", prefix, None))).exit_code == 0
    assert content_digest(bad) == content_digest(without)
    with open_warehouse(bad, read_only=True) as con:
        status = data_status(con)
    assert [r["invalid_values"] for r in status["runs"]] == [1]
    assert any("1 sample values were out of their metric's range" in w for w in status["warnings"])


@pytest.mark.parametrize("stored", [float("-inf"), float("nan"), -3.0, 1e12])
def test_reports_never_fail_on_impossible_stored_activity_and_count_it_as_not_reported(
    clean: tuple[Path, Path], tmp_path: Path, stored: float
) -> None:
    """An older warehouse may hold what ingestion now drops: reports read it as no activity reported."""
    wh, _ = clean
    copies = {}
    for name, value in (("bad", stored), ("none", None)):
        copies[name] = tmp_path / f"{name}.duckdb"
        shutil.copy(wh, copies[name])
        with open_warehouse(copies[name]) as con:
            changed = con.execute(
                f"UPDATE {c.T_GPU_SAMPLES} SET gr_engine_active = ? WHERE ts = ?", [value, START + timedelta(minutes=3)]
            ).fetchall()
            assert changed[0][0] > 0
            con.execute(f"DELETE FROM {c.T_ROLLUP_STATE}")  # as after a write outside a commit: reports read the steps
    window = ("--start", "2026-11-02T10:00:00Z", "--end", "2026-11-02T11:00:00Z")
    for report in ("chargeback", "efficiency"):
        got = {
            n: run_cli("--warehouse", str(p), "report", report, *window, "--format", "json") for n, p in copies.items()
        }
        assert got["bad"].exit_code == 0, got["bad"].output
        assert got["bad"].output == got["none"].output  # the JSON, and the same unpriced-node warning
    exported = run_cli(
        "--warehouse", str(copies["bad"]), "export", "weekly", "--week", "2026-W45", "--out", str(tmp_path / "x")
    )
    assert exported.exit_code == 0, exported.output
