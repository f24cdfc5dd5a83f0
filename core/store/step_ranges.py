"""Reading the step tables for a few nodes and time ranges only: the one way gpuledger restricts them.

A query keeps a step table's rows with `within(alias)`: a row is kept when one of the ranges of its node
(cluster, node, [lo, hi)) holds its ts. The ranges come from the `ranges` CTE (`CTE`, filled from a
parameter list by `params`: the health coverage and the savings pass, thousands of ranges), or are written
into the condition itself (`within(alias, literal_ranges(...))`: the chargeback's few stale nodes, inside a
`where` template that takes no parameters of its own). A healthy month then costs a scan of the rollup,
not of every sample.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from core.store.sql import literal
from core.timeutil import HOUR

Range = tuple[str, str, datetime, datetime]  # cluster, node, [lo, hi)

CTE = "ranges AS (SELECT unnest($r_cluster) AS cluster, unnest($r_node) AS node, unnest($r_lo) AS lo, unnest($r_hi) AS hi)"


def within(t: str, ranges: str = "ranges", ts: str = "ts") -> str:
    """SQL condition: row `t` (its time in column `ts`) falls in one of the `ranges` of its node (the CTE, by
    default)."""
    # an alias no caller uses for its own table (`r` is the rollups' in analytics/cost/fact_plan.py)
    return f"""EXISTS (SELECT 1 FROM {ranges} step_range WHERE step_range.cluster = {t}.cluster
        AND step_range.node = {t}.node AND {t}.{ts} >= step_range.lo AND {t}.{ts} < step_range.hi)"""


def literal_ranges(ranges: list[Range]) -> str:
    """The ranges as an SQL relation (cluster, node, lo, hi) written out, for `within` where no parameter
    can carry them; no ranges: an empty relation."""
    if not ranges:
        return "(SELECT NULL::VARCHAR AS cluster, NULL::VARCHAR AS node, NULL::TIMESTAMP AS lo, NULL::TIMESTAMP AS hi WHERE FALSE)"
    rows = ", ".join(
        f"({literal(cl)}, {literal(n)}, TIMESTAMP {literal(str(lo))}, TIMESTAMP {literal(str(hi))})"
        for cl, n, lo, hi in ranges
    )
    return f"(SELECT * FROM (VALUES {rows}) v(cluster, node, lo, hi))"


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
