"""A partial benchmark run (BENCH_ONLY): its figures replace the same figures of the previous results, every other
figure is kept and says which run measured it, and results.md says the run was partial."""

from __future__ import annotations

import pytest

from bench import report, run


def _fig(fid: str, gpus: int, median: float, **extra: object) -> dict[str, object]:
    return {"id": fid, "what": fid, "gpus": gpus, "window": "30 d", "resolution": "60 s", "unit": "s",
            "median": median, "min": median, "max": median, "runs": 1, **extra}  # fmt: skip


PREVIOUS = {
    "header": {"started": "2026-11-29T07:16:14+00:00"},
    "figures": [
        _fig("chargeback.gpuledger", 10_000, 0.29),
        _fig("chargeback.gpuledger", 1_000, 0.19),
        _fig("dashboard.cold", 10_000, 3.3, page="teams"),
        _fig("dashboard.cold", 10_000, 1.8, page="health"),
        _fig("queues", 10_000, 0.9, measured="2026-11-20T01:00:00+00:00"),  # kept by an earlier partial run
    ],
}


def test_a_partial_runs_figures_replace_the_same_figures_and_the_rest_keep_their_runs_date() -> None:
    new = [_fig("chargeback.gpuledger", 10_000, 0.31), _fig("dashboard.cold", 10_000, 1.2, page="teams")]
    merged = report.merge_figures(PREVIOUS, new, "2026-12-07T10:00:00+00:00")
    by_key = {(f["id"], f["gpus"], f.get("page")): (f["median"], f["measured"]) for f in merged}
    assert by_key == {
        ("chargeback.gpuledger", 10_000, None): (0.31, "2026-12-07T10:00:00+00:00"),
        ("dashboard.cold", 10_000, "teams"): (1.2, "2026-12-07T10:00:00+00:00"),
        ("chargeback.gpuledger", 1_000, None): (0.19, "2026-11-29T07:16:14+00:00"),
        ("dashboard.cold", 10_000, "health"): (1.8, "2026-11-29T07:16:14+00:00"),
        ("queues", 10_000, None): (0.9, "2026-11-20T01:00:00+00:00"),
    }


def test_results_md_says_the_run_was_partial_and_dates_every_kept_figure() -> None:
    figures = report.merge_figures(PREVIOUS, [_fig("chargeback.gpuledger", 10_000, 0.31)], "2026-12-07T10:00:00+00:00")
    header = {"cpus": 2, "started": "2026-12-07T10:00:00+00:00", "seconds": 60, "loadavg_at_start": (1.0, 1.0, 1.0),
              "loadavg_at_end": (1.0, 1.0, 1.0), "runs": 5, "python": "3.11", "duckdb": "2.0",
              "partial": ["chargeback"], "previous_started": "2026-11-29T07:16:14+00:00"}  # fmt: skip
    text = report.markdown({"header": header, "figures": figures, "notes": [], "before": {}})
    assert "Partial run (`BENCH_ONLY=chargeback`)" in text and "run of 2026-11-29T07:16:14+00:00" in text
    rows = [line for line in text.splitlines() if line.startswith("| health") or "| dashboard.cold |" in line]
    assert rows and all("measured 2026-11-29T07:16:14+00:00" in line for line in rows)


def test_an_unknown_section_is_refused_naming_it_and_the_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_ONLY", "chargeback,dashbord")
    with pytest.raises(SystemExit, match="no section dashbord; choose from chargeback, queues"):
        run.main()
