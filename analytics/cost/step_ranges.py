"""Reading the step tables for a few nodes and hours only: the ones a rollup says need the steps.

A query declares the `ranges` CTE (per node, [lo, hi)) from a parameter list and keeps a step table's
rows with `within(alias)`, so a healthy month costs a scan of the rollup, not of every sample.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from core.timeutil import HOUR

Range = tuple[str, str, datetime, datetime]  # cluster, node, [lo, hi)

CTE = "ranges AS (SELECT unnest($r_cluster) AS cluster, unnest($r_node) AS node, unnest($r_lo) AS lo, unnest($r_hi) AS hi)"


def within(t: str) -> str:
    """SQL condition: row `t` of a step table falls in one of the `ranges` of its node."""
    return f"""EXISTS (SELECT 1 FROM ranges r WHERE r.cluster = {t}.cluster AND r.node = {t}.node
        AND {t}.ts >= r.lo AND {t}.ts < r.hi)"""


def params(ranges: list[Range]) -> dict[str, list[object]]:
    names = ("r_cluster", "r_node", "r_lo", "r_hi")
    return {name: [r[i] for r in ranges] for i, name in enumerate(names)}


def from_hours(rows: Iterable[tuple[str, str, datetime]], lo: datetime, hi: datetime, after: timedelta) -> list[Range]:
    """(cluster, node, hour) rows, sorted, -> per node, the hours merged into ranges, each extended by
    `after` and clipped to [lo, hi)."""
    ranges: list[Range] = []
    for cluster, node, hour in rows:
        start, end = max(lo, hour), min(hi, hour + HOUR + after)
        last = ranges[-1] if ranges else None
        if last and last[:2] == (cluster, node) and start <= last[3]:
            ranges[-1] = (cluster, node, last[2], max(last[3], end))
        else:
            ranges.append((cluster, node, start, end))
    return ranges
