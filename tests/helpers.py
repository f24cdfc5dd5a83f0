"""Small helpers shared by tests: warehouse content digests and per-team-day GPU-hours."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from analytics.cost.chargeback import chargeback
from core import conventions as c
from core.store.warehouse import open_warehouse
from core.timeutil import Window, parse_ts

DATA_TABLES = (
    c.T_NODES,
    c.T_GPUS,
    c.T_PODS,
    c.T_NAMESPACES,
    c.T_NODE_SAMPLES,
    c.T_GPU_SAMPLES,
    c.T_GPU_POD_SAMPLES,
    c.T_POD_ALLOCATIONS,
    c.T_HEALTH_SAMPLES,
    c.T_INFERENCE_SAMPLES,
    c.T_PRICES,
)


def content_digest(path: Path) -> dict[str, tuple]:
    """Every data table's row count and order-independent content hash (run log excluded)."""
    if not path.exists():
        return {}
    with open_warehouse(path, read_only=True) as con:
        return {t: con.execute(f"SELECT count(*), sum(hash(x)::HUGEINT) FROM {t} x").fetchall()[0] for t in DATA_TABLES}


def rows(path: Path, table: str) -> list[tuple]:
    with open_warehouse(path, read_only=True) as con:
        return sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)


def team_day_hours(path: Path, days: list[str]) -> dict[str, dict[str, float]]:
    """Allocated GPU-hours per team and day, as the chargeback computes them."""
    out: dict[str, dict[str, float]] = {}
    with open_warehouse(path, read_only=True) as con:
        for day in days:
            start = parse_ts(day)
            report = chargeback(con, Window(start, start + timedelta(days=1)))
            for row in report.rows:
                team = row.keys["team"]
                if team not in (c.IDLE, c.UNHEALTHY):
                    out.setdefault(team, {})[day] = row.gpu_hours
    return out
