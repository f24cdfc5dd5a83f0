"""Health history in the warehouse: periods (one state each, with evidence) and Xid events.

Storing a window replaces what an earlier evaluation stored for it, in one transaction, and keeps
the stored periods tiling time: a period that straddles the window's start is cut there, one that
straddles its end is cut there, so re-evaluating a window (say, after a late collection) never
duplicates time. "Which GPUs were unhealthy last month, and for how long" is then one query:

    SELECT node, gpu_uuid, state, sum(period_end - period_start) FROM gpu_health_periods
    WHERE state IN ('drain_recommended', 'offline', 'rma_recommended')
      AND period_start < '2026-12-01' AND period_end > '2026-11-01' GROUP BY ALL
"""

from __future__ import annotations

import json
from datetime import datetime

import duckdb

from analytics.health.report import HealthResult
from core import conventions as c
from core.store.warehouse import transaction
from core.timeutil import Window


def store(con: duckdb.DuckDBPyConnection, result: HealthResult, evaluated_at: datetime) -> dict[str, int]:
    """Replace the window's stored health history with `result`; return rows written per table."""
    w = result.window
    with transaction(con):
        _cut(con, w)
        for p in result.periods:
            info = result.gpus[p.key]
            first = p.evidence[0] if p.evidence else None
            con.execute(
                f"INSERT INTO {c.T_HEALTH_PERIODS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    *(p.key.cluster, p.key.node, p.key.gpu_uuid, info.model, info.node_pool, p.state),
                    *(p.start, p.end, p.ongoing, p.from_state if p.start == p.began else None),
                    *(first.signal if first else None, first.metric if first else None, first.xid if first else None),
                    first.value if first else None,
                    p.action,
                    json.dumps([e.as_dict() for e in p.evidence], sort_keys=True),
                    result.catalog_version,
                    evaluated_at,
                ],
            )
        con.execute(f"DELETE FROM {c.T_HEALTH_EVENTS} WHERE ts >= ? AND ts < ?", [w.start, w.end])
        for e in result.events:
            con.execute(
                f"INSERT INTO {c.T_HEALTH_EVENTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    *(e.key.cluster, e.key.node, e.key.gpu_uuid, e.ts, e.xid, e.previous, e.mnemonic, e.cause),
                    *(e.severity, e.action, e.device_plugin_ignores),
                    ",".join(p.split("/", 1)[0] for p in e.pods) or None,
                    ",".join(p.split("/", 1)[1] for p in e.pods) or None,
                    ",".join(e.teams) or None,
                    result.catalog_version,
                    evaluated_at,
                ],
            )
    return {c.T_HEALTH_PERIODS: len(result.periods), c.T_HEALTH_EVENTS: len(result.events)}


def _cut(con: duckdb.DuckDBPyConnection, w: Window) -> None:
    """Make room for [start, end): drop stored periods inside it, trim those that straddle its edges."""
    t = c.T_HEALTH_PERIODS
    con.execute(f"DELETE FROM {t} WHERE period_start >= ? AND period_end <= ?", [w.start, w.end])
    # a stored period spanning the whole window keeps its tail after the window as its own row
    con.execute(
        f"""INSERT INTO {t} SELECT * REPLACE (?::TIMESTAMP AS period_start, NULL AS from_state)
        FROM {t} WHERE period_start < ? AND period_end > ?""",
        [w.end, w.start, w.end],
    )
    con.execute(
        f"""UPDATE {t} SET period_start = ?, from_state = NULL
        WHERE period_start >= ? AND period_start < ? AND period_end > ?""",
        [w.end, w.start, w.end, w.end],
    )
    con.execute(
        f"UPDATE {t} SET period_end = ?, ongoing = false WHERE period_start < ? AND period_end > ?",
        [w.start, w.start, w.start],
    )


def unhealthy_hours(con: duckdb.DuckDBPyConnection, window: Window) -> dict[tuple[str, str, str], float]:
    """Stored hours per (node, GPU, state) in drain, offline or RMA, within `window`."""
    states = ", ".join(f"'{s}'" for s in c.UNHEALTHY_STATES)
    rows = con.execute(
        f"""SELECT node, gpu_uuid, state,
            sum(epoch(least(period_end, $hi)) - epoch(greatest(period_start, $lo))) / 3600.0
        FROM {c.T_HEALTH_PERIODS}
        WHERE state IN ({states}) AND period_start < $hi AND period_end > $lo GROUP BY ALL""",
        {"lo": window.start, "hi": window.end},
    ).fetchall()
    return {(n, u, s): float(h) for n, u, s, h in rows}
