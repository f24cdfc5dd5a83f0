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
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from analytics.cost.cost_rows import SHARED, ZERO, Row
from core import conventions as c


def scope_of(idle_scope: str, cluster: str, node: str, day: datetime | None) -> tuple[str, str, datetime | None]:
    return (cluster, node if idle_scope == "node" else "", day)


Key = tuple[str, ...]


@dataclass(frozen=True)
class Pool:
    """A scope's idle at one price: its row, its cost, and the parts of that cost traced along when it is shared
    (Row.from_bill, Row.billed_delta)."""

    key: Key
    cost: Decimal
    from_bill: Decimal = ZERO
    billed_delta: Decimal = ZERO


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


def _carry(source: Row, target: Row, part: Decimal, pool: Decimal, from_bill: Decimal, billed_delta: Decimal) -> None:
    """`part` of a `pool` moves from `source` to `target`: so do the same fractions of its traced amounts."""
    if from_bill or billed_delta:
        moved_bill, moved_delta = from_bill * part / pool, billed_delta * part / pool
        target.from_bill += moved_bill
        target.billed_delta += moved_delta
        source.from_bill -= moved_bill
        source.billed_delta -= moved_delta


def share_idle(
    rows: dict[tuple[str, ...], Row],
    pools: dict[tuple[Any, ...], Pool],
    scope_weights: dict[tuple[Any, ...], Weights],
    mode: str,
    idle_scope: str,
) -> None:
    if mode == "keep":
        return
    for (scope, *_), pool in pools.items():
        recipients = {tk: w for tk, w in scope_weights.get(scope, {}).items() if tk[1] in rows}
        if not recipients or pool.cost == 0:
            continue
        idle = rows[pool.key]
        for key, part in _split(pool.cost, recipients, mode).items():
            rows[key].idle_share += part
            _carry(idle, rows[key], part, pool.cost, pool.from_bill, pool.billed_delta)
        idle.idle_share -= pool.cost


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
        from_bill, billed_delta = row.from_bill, row.billed_delta
        for target, part in _split(pool, recipients, mode).items():
            rows[target].shared_share += part
            _carry(row, rows[target], part, pool, from_bill, billed_delta)
        row.shared_share -= pool
