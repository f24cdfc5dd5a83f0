"""Idle and shared-cost distribution: exact Decimal, pools stay visible as negative shares.

Idle (capacity no pod requested) is kept as its own `__idle__` row by default. Shared weighted, a
scope's idle goes to the rows that allocated GPUs in that scope (cluster or node, and day when
grouping by day) in proportion to their allocated cost; shared evenly, in equal parts. A scope with
no allocations keeps its idle (OpenCost once divided by zero there and dropped the cost: PR #883).

Shared costs (pods in shared namespaces or matching shared label selectors, plus a fixed hourly
overhead) go to every other non-idle row, weighted by allocated cost or evenly.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from analytics.cost.cost_rows import SHARED, ZERO, Row
from core import conventions as c


def scope_of(idle_scope: str, cluster: str, node: str, day: datetime | None) -> tuple[str, str, datetime | None]:
    return (cluster, node if idle_scope == "node" else "", day)


def _split(amount: Decimal, weights: dict[tuple[str, ...], Decimal], mode: str) -> dict[tuple[str, ...], Decimal]:
    total = sum(weights.values(), ZERO)
    if mode == "even" or total <= 0:
        return {k: amount / len(weights) for k in weights}
    return {k: amount * w / total for k, w in weights.items()}


def share_idle(
    rows: dict[tuple[str, ...], Row],
    pools: dict[tuple[Any, ...], tuple[tuple[str, ...], int, Decimal]],
    scope_weights: dict[tuple[Any, ...], dict[tuple[str, ...], Decimal]],
    mode: str,
    idle_scope: str,
) -> None:
    if mode == "keep":
        return
    for (scope, *_), (idle_key, _, cost) in pools.items():
        recipients = {k: w for k, w in scope_weights.get(scope, {}).items() if k in rows}
        if not recipients or cost == 0:
            continue
        for key, part in _split(cost, recipients, mode).items():
            rows[key].idle_share += part
        rows[idle_key].idle_share -= cost


def share_costs(
    rows: dict[tuple[str, ...], Row],
    shared_keys: set[tuple[str, ...]],
    overhead: Decimal,
    mode: str,
    overhead_key: tuple[str, ...],
    make_row: Callable[[tuple[str, ...]], Row],
) -> None:
    if overhead:
        make_row(overhead_key).allocated += overhead
        shared_keys = shared_keys | {overhead_key}
    recipients = {k: r.allocated for k, r in rows.items() if k not in shared_keys and r.kind not in (c.IDLE, SHARED)}
    if not recipients:
        return
    for key in sorted(shared_keys):
        row = rows[key]
        pool = row.allocated + row.adjustment + row.idle_share
        if pool == 0:
            continue
        for target, part in _split(pool, recipients, mode).items():
            rows[target].shared_share += part
        row.shared_share -= pool
