"""The dashboard's and CLI's data span: exact, without a pass over every row (analytics/overview.data_span)."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pytest

from core import conventions as c
from core.store.status import data_span
from tests.builders import add_gpu_usage, add_node, add_pod, fresh_db

Build = Callable[[duckdb.DuckDBPyConnection], None]


def _every_row(con: duckdb.DuckDBPyConnection):  # type: ignore[no-untyped-def]
    """The definition, by brute force: first start and last end over every row of both tables."""
    return con.execute(
        f"""SELECT min(lo), max(hi) FROM (
            SELECT min(ts) lo, max(ts + to_seconds(step_s)) hi FROM {c.T_POD_ALLOCATIONS}
            UNION ALL SELECT min(ts), max(ts + to_seconds(step_s)) FROM {c.T_GPU_SAMPLES})"""
    ).fetchall()[0]


CASES: dict[str, Build] = {
    "device samples only": lambda con: add_gpu_usage(con, "n1", "GPU-a", 0.5, steps=30),
    "allocations only": lambda con: (add_node(con, "n1", 8), add_pod(con, "p", "n1", offset=5, steps=7)),
    "a coarser table's last step ends after the finer one's": lambda con: (
        add_gpu_usage(con, "n1", "GPU-a", 0.5, steps=12, step_s=300),  # last row 55 min, ends at 60
        add_pod(con, "p", "n1", steps=58),  # last row 57 min, ends at 58
    ),
    "an early long step outlasts every later short one": lambda con: (
        add_gpu_usage(con, "n1", "GPU-long", 0.5, steps=1, step_s=3600),  # 0 min, ends at 60
        add_gpu_usage(con, "n1", "GPU-short", 0.5, steps=30),  # last row 29 min, ends at 30
    ),
    "the last instant holds a short and the longest step": lambda con: (
        add_gpu_usage(con, "n1", "GPU-long", 0.5, steps=12, step_s=300),  # last row 55 min, ends at 60
        add_gpu_usage(con, "n1", "GPU-short", 0.5, steps=56),  # last row 55 min, ends at 56
    ),
    "a late start in one table, an early one in the other": lambda con: (
        add_gpu_usage(con, "n1", "GPU-a", 0.5, offset=40, steps=5),
        add_pod(con, "p", "n1", offset=2, steps=3, step_s=15),
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_data_span_is_the_first_start_and_the_last_end_over_every_row(case: str) -> None:
    con = fresh_db()
    CASES[case](con)
    assert data_span(con) == _every_row(con)


def test_a_warehouse_without_gpu_data_has_no_span() -> None:
    con = fresh_db()
    add_node(con, "n1", 8)  # node samples only: no allocation or device sample yet
    assert data_span(con) is None
