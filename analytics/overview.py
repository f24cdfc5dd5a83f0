"""Small warehouse facts the dashboard and CLI need (data span, per-source status)."""

from __future__ import annotations

from datetime import datetime

import duckdb

from core import conventions as c
from core.warehouse import one


def data_span(con: duckdb.DuckDBPyConnection) -> tuple[datetime, datetime] | None:
    """First and last covered instant of GPU data (allocations or device samples), or None."""
    row = one(
        con,
        f"""SELECT min(lo), max(hi) FROM (
            SELECT min(ts) lo, max(ts + to_seconds(step_s)) hi FROM {c.T_POD_ALLOCATIONS}
            UNION ALL SELECT min(ts), max(ts + to_seconds(step_s)) FROM {c.T_GPU_SAMPLES})""",
    )
    if not row or row[0] is None:
        return None
    return row[0], row[1]
