"""The health page's nodes x GPUs grid (app/dashboard/health_grid.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from app.dashboard.health_grid import worst_states
from core import conventions as c

H, W, D = c.STATE_HEALTHY, c.STATE_WATCH, c.STATE_DRAIN


def _periods(*rows: tuple[str, int, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["node", "gpu_index", "state"])


@pytest.mark.parametrize(
    ("rows", "max_nodes", "nodes", "hidden"),
    [
        pytest.param([("a", 0, H), ("b", 0, H)], 2, ["a", "b"], 0, id="a small fleet shows every node"),
        pytest.param([("a", 0, H), ("b", 0, W), ("c", 1, H)], 2, ["b"], 2, id="a large fleet keeps the troubled"),
        pytest.param([("a", 0, H), ("b", 0, H), ("c", 0, H)], 2, [], 3, id="all healthy leaves nothing to show"),
        pytest.param([("a", 0, H), ("a", 1, D), ("b", 0, H)], 1, ["a"], 1, id="one bad GPU keeps its node"),
    ],
)
def test_beyond_max_nodes_only_nodes_with_a_gpu_not_healthy_are_shown_and_the_rest_counted(
    rows: list[tuple[str, int, str]], max_nodes: int, nodes: list[str], hidden: int
) -> None:
    grid, left_out = worst_states(_periods(*rows), max_nodes)
    assert list(grid.index) == nodes and left_out == hidden


def test_each_cell_is_the_gpus_worst_state_in_the_window_and_empty_where_the_node_has_no_such_gpu() -> None:
    grid, hidden = worst_states(_periods(("a", 0, H), ("a", 0, D), ("a", 0, W), ("a", 1, H), ("b", 0, W)))
    assert hidden == 0
    assert grid.loc["a"].tolist() == [D, H] and grid.loc["b"].tolist() == [W, ""]
