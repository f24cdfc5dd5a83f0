"""The fleet health page's nodes x GPUs grid: each GPU's worst state in the window.

On a large fleet the whole grid is thousands of green rows that hide the few that matter (and pandas
takes about a second to style 18,000 cells at 10,000 GPUs), so beyond `max_nodes` it keeps the nodes
with at least one GPU not healthy and says how many it left out.
"""

from __future__ import annotations

import pandas as pd

from analytics.health.policy import RANK
from analytics.health.report import HealthResult
from core import conventions as c

MAX_NODES = 200


def cells(result: HealthResult) -> pd.DataFrame:
    """(node, gpu_index, state) of every period of the report: all the grid needs, built column-wise."""
    periods = result.periods
    return pd.DataFrame(
        {
            "node": [p.key.node for p in periods],
            "gpu_index": [result.gpus[p.key].gpu_index for p in periods],
            "state": [p.state for p in periods],
        }
    )


def worst_states(periods: pd.DataFrame, max_nodes: int = MAX_NODES) -> tuple[pd.DataFrame, int]:
    """(node x GPU index grid of worst states, '' where a node has no such GPU; nodes left out as all healthy)."""
    worst = periods.assign(rank=periods["state"].map(RANK)).sort_values("rank").groupby(["node", "gpu_index"]).tail(1)
    grid = worst.pivot_table(index="node", columns="gpu_index", values="state", aggfunc="first").fillna("")
    if len(grid) <= max_nodes:
        return grid, 0
    flagged = ((grid != c.STATE_HEALTHY) & (grid != "")).any(axis=1)
    return grid[flagged], int((~flagged).sum())
