"""The health report's GPU spans and silences read from the hourly coverage rollup equal the same read
from the step tables, and both equal the gaps the builders put in."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.health import coverage as hc
from analytics.health.policy import HealthThresholds
from analytics.health.report import evaluate
from analytics.health.xid_catalog import load_catalog
from core import conventions as c
from core.settings import Settings
from core.store.rollups import coverage as rollup_coverage
from core.store.rollups import hourly as rollups
from core.store.warehouse import open_warehouse
from core.timeutil import Window
from tests.builders import T0, add_node, fresh_db

STEP = 60


def at(step: float) -> datetime:
    return T0 + timedelta(seconds=step * STEP)


def add_reporting_gpu(
    con: duckdb.DuckDBPyConnection, node: str, uuid: str, reports: list[int], first_seen: int = 0
) -> None:
    """A GPU known from step `first_seen` that sent a sample at each step in `reports`."""
    con.execute(
        f"INSERT INTO {c.T_GPUS} VALUES ('c1', ?, ?, '', 0, 'A100', '', ?, ?)",
        [node, uuid, at(first_seen), at(max(reports, default=first_seen) + 1)],
    )
    con.register("steps_frame", pd.DataFrame({"i": reports}, dtype="int64"))
    con.execute(
        f"""INSERT INTO {c.T_GPU_SAMPLES} SELECT ?::TIMESTAMP + to_seconds(i * {STEP}), {STEP}, 'c1', ?, ?, '',
            0.5, 50, 1000, 200, 40 FROM steps_frame""",
        [T0, node, uuid],
    )
    con.unregister("steps_frame")


def both_ways(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, min_s: int = 600) -> tuple[object, object]:
    """(from the steps, from the rollup) of the spans and silences in [lo, hi); the rollup built first."""
    steps = (hc.gpu_infos(con, lo, hi, use_rollups=False), hc.silences(con, lo, hi, min_s, use_rollups=False))
    rollups.refresh(con, None, full=True)
    assert rollup_coverage.in_sync(con)
    return steps, (hc.gpu_infos(con, lo, hi), hc.silences(con, lo, hi, min_s))


SILENCES = [
    ("a silence across an hour boundary", (50, 75), True),
    ("a silence ending exactly on the hour, when the GPU reports again", (90, 120), True),
    ("a silence from the first step", (0, 30), True),
    ("a silence until the data ends", (170, 240), False),
]


@pytest.mark.parametrize(("name", "gap", "again"), SILENCES, ids=[s[0] for s in SILENCES])
def test_a_silence_is_found_from_the_rollup_exactly_where_the_builder_left_the_gap(
    name: str, gap: tuple[int, int], again: bool
) -> None:
    con = fresh_db()
    add_node(con, "n1", 2, steps=240)
    add_reporting_gpu(con, "n1", "GPU-a", [i for i in range(240) if not gap[0] <= i < gap[1]])
    add_reporting_gpu(con, "n1", "GPU-b", list(range(240)))
    steps, rolled = both_ways(con, at(0), at(240))
    assert rolled == steps
    (silence,) = rolled[1]  # type: ignore[index]
    assert (silence.key.gpu_uuid, silence.start, silence.end, silence.reported_again) == (
        "GPU-a",
        at(gap[0]),
        at(gap[1]),
        again,
    )


def test_a_gap_across_hour_edges_gives_whole_spans_and_one_silence_from_the_rollup() -> None:
    con = fresh_db()
    add_node(con, "n1", 2, steps=300)
    add_reporting_gpu(con, "n1", "GPU-a", [i for i in range(300) if not 100 <= i < 170])  # 01:40 to 02:50
    add_reporting_gpu(con, "n1", "GPU-b", list(range(300)))
    steps, rolled = both_ways(con, at(0), at(300))  # on the hour: no edge steps to hide a lost hour
    assert rolled == steps
    infos, silences = rolled  # type: ignore[misc]
    assert {k.gpu_uuid: i.span for k, i in infos.items()} == {"GPU-a": (at(0), at(300)), "GPU-b": (at(0), at(300))}
    assert [(s.start, s.end) for s in silences] == [(at(100), at(170))]


def test_a_gpu_first_seen_mid_hour_is_expected_only_from_then() -> None:
    con = fresh_db()
    add_node(con, "n1", 1, steps=240)
    add_reporting_gpu(con, "n1", "GPU-late", [i for i in range(95, 240) if not 130 <= i < 150], first_seen=95)
    steps, rolled = both_ways(con, at(10), at(230))  # edges not on the hour either
    assert rolled == steps
    infos, silences = rolled  # type: ignore[misc]
    assert infos[hc.GpuKey("c1", "n1", "GPU-late")].span == (at(95), at(230))
    assert [(s.start, s.end) for s in silences] == [(at(130), at(150))]


def test_a_fleet_without_gaps_reads_no_step_at_all_for_its_silences() -> None:
    con = fresh_db()
    add_node(con, "n1", 1, steps=180)
    add_reporting_gpu(con, "n1", "GPU-a", list(range(180)))
    rollups.refresh(con, None, full=True)
    assert hc._suspect_ranges(con, at(0), at(180)) == []


gaps = st.lists(st.tuples(st.integers(0, 299), st.integers(1, 90)), max_size=3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gpus=st.lists(st.tuples(st.integers(0, 200), gaps), min_size=1, max_size=3),
    node_steps=st.integers(60, 300),
    window=st.tuples(st.integers(0, 150), st.integers(151, 320)),
    min_steps=st.sampled_from([1, 5, 10]),
)
def test_any_pattern_of_gaps_gives_the_same_spans_and_silences_from_the_rollup_as_from_the_steps(
    gpus: list[tuple[int, list[tuple[int, int]]]],
    node_steps: int,
    window: tuple[int, int],
    min_steps: int,
) -> None:
    con = fresh_db()
    add_node(con, "n1", len(gpus), steps=node_steps)
    for n, (first, holes) in enumerate(gpus):
        silent = {i for start, length in holes for i in range(start, start + length)}
        add_reporting_gpu(con, "n1", f"GPU-{n}", [i for i in range(first, 300) if i not in silent], first_seen=first)
    steps, rolled = both_ways(con, at(window[0]), at(window[1]), min_steps * STEP)
    assert rolled == steps


def test_the_simulated_fleets_health_report_is_the_same_from_the_rollup_as_from_the_steps(
    sim_warehouse: Path,
) -> None:
    s = Settings()
    with open_warehouse(sim_warehouse, read_only=True) as con:
        assert rollup_coverage.in_sync(con), "every collection commit keeps the coverage rollup current"
        end = con.execute(f"SELECT max(ts) FROM {c.T_GPU_SAMPLES}").fetchall()[0][0]
        for window in (Window(end - timedelta(days=1), end), Window(T0 + timedelta(minutes=7), end)):
            args = (con, window, HealthThresholds.from_all(s), load_catalog(s.health.xid_overrides))
            fast, slow = evaluate(*args), evaluate(*args, use_rollups=False)
            assert fast.gpus == slow.gpus and fast.periods == slow.periods
            assert any(p.state == c.STATE_OFFLINE for p in slow.periods), "the simulated day has a silent GPU"


def test_a_write_outside_a_commit_sends_the_report_to_the_steps_until_the_next_commit_rebuilds() -> None:
    con = fresh_db()
    add_node(con, "n1", 1, steps=120)
    add_reporting_gpu(con, "n1", "GPU-a", list(range(120)))
    rollups.refresh(con, None, full=True)
    con.execute(f"DELETE FROM {c.T_GPU_SAMPLES} WHERE ts >= ? AND ts < ?", [at(30), at(60)])
    assert not rollup_coverage.in_sync(con)
    assert [(s.start, s.end) for s in hc.silences(con, at(0), at(120), 600)] == [(at(30), at(60))]
    rollups.refresh(con, (at(0), at(1)), full=False, coverage_full=True)
    assert rollup_coverage.in_sync(con)
    assert [(s.start, s.end) for s in hc.silences(con, at(0), at(120), 600)] == [(at(30), at(60))]
