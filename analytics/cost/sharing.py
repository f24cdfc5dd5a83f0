"""Idle and shared-cost distribution: exact Decimal, pools stay visible as negative shares.

Idle (capacity no pod requested) is kept as its own `__idle__` row by default. Shared weighted, a
scope's idle goes to the rows that allocated GPUs in that scope (cluster or node, and always the day,
whatever the grouping) in proportion to their allocated cost; shared evenly, in equal parts per team.
A scope with no allocations keeps its idle (OpenCost once divided by zero there and dropped the cost: PR #883).

Shared costs (pods in shared namespaces or matching shared label selectors, plus a fixed hourly
overhead) go to every other non-idle row, weighted by allocated cost or evenly per team.

Weights are kept per (team, row): "even" gives each team an equal part, which its rows then share by
allocated cost, so a team receives the same amount however finely its rows are grouped (an equal part
per *row* would give a team with more rows more). Where no recipient has a cost, GPU-unit-seconds weigh.
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


Key = tuple[str, ...]
Weights = dict[tuple[str, Key], tuple[Decimal, int]]  # (team, row key) -> (allocated cost, GPU-unit-seconds)


def add_weight(weights: Weights, team: str, key: Key, cost: Decimal, units: int) -> None:
    old = weights.get((team, key), (ZERO, 0))
    weights[(team, key)] = (old[0] + cost, old[1] + units)


def _proportional(amount: Decimal, weights: dict[Any, tuple[Decimal, int]]) -> dict[Any, Decimal]:
    cost = sum((w[0] for w in weights.values()), ZERO)
    if cost > 0:
        return {k: amount * w[0] / cost for k, w in weights.items()}
    units = sum(w[1] for w in weights.values())
    if units > 0:
        return {k: amount * w[1] / units for k, w in weights.items()}
    return {k: amount / len(weights) for k in weights}


def _split(amount: Decimal, weights: Weights, mode: str) -> dict[Key, Decimal]:
    """`amount` over the rows of `weights`: by allocated cost, or in equal parts per team (then by cost)."""
    if mode != "even":
        parts = _proportional(amount, weights)
    else:
        teams: dict[str, Weights] = {}
        for (team, key), w in weights.items():
            teams.setdefault(team, {})[(team, key)] = w
        parts = {}
        for members in teams.values():
            parts.update(_proportional(amount / len(teams), members))
    out: dict[Key, Decimal] = {}
    for (_, key), part in parts.items():
        out[key] = out.get(key, ZERO) + part
    return out


def share_idle(
    rows: dict[tuple[str, ...], Row],
    pools: dict[tuple[Any, ...], tuple[tuple[str, ...], int, Decimal]],
    scope_weights: dict[tuple[Any, ...], Weights],
    mode: str,
    idle_scope: str,
) -> None:
    if mode == "keep":
        return
    for (scope, *_), (idle_key, _, cost) in pools.items():
        recipients = {tk: w for tk, w in scope_weights.get(scope, {}).items() if tk[1] in rows}
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
    weights: Weights,
) -> None:
    """`weights`: every pod row's allocated cost (list price) and GPU-unit-seconds, per (team, row)."""
    if overhead:
        make_row(overhead_key).allocated += overhead
        shared_keys = shared_keys | {overhead_key}
    recipients = {
        (team, k): w
        for (team, k), w in weights.items()
        if k in rows and k not in shared_keys and rows[k].kind not in (c.IDLE, c.UNHEALTHY, SHARED)
    }
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
