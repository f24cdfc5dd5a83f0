"""Exact money: Decimal everywhere, rounding to cents only at the edge, conserving totals."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import (
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DefaultContext,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    getcontext,
    localcontext,
)
from functools import wraps
from typing import Any, TypeVar

from core.errors import InputError

# 40 significant digits: a 10,000-GPU fleet over a year is ~1e8 GPU-hours x 1e2 $/h; the
# exact-unit arithmetic (core.conventions.GPU_UNITS) keeps ~20 more digits of fraction.
# A Decimal context is per thread: setting it in the importing thread left serve's jobs and the
# dashboard's workers at Python's 28 digits. So money is computed inside MONEY explicitly (`in_money_context`
# on every entry point that computes it), and threads that start later inherit 40 digits anyway.
MONEY = Context(prec=40, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])
DefaultContext.prec = 40
getcontext().prec = 40

F = TypeVar("F", bound=Callable[..., Any])


def in_money_context(func: F) -> F:
    """Run `func` with the MONEY context, whatever thread calls it (the caller's context is restored after)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with localcontext(MONEY):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


CENT = Decimal("0.01")


def parse_price(text: str, source: str, line: int | None = None) -> Decimal:
    """Parse a non-negative price string as Decimal (never via float)."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError) as exc:
        raise InputError(source, f"price {text!r} is not a number", line) from exc
    if not value.is_finite() or value < 0:
        raise InputError(source, f"price {text!r} must be a finite non-negative number", line)
    return value


HOURS_PER_MONTH = Decimal(730)  # 8,760 / 12: how a month of an hourly rate is stated


def per_month(amount: Decimal, hours: float) -> Decimal:
    """`amount` seen over `hours`, as a month of it, to the cent (savings and recommendations are stated monthly)."""
    return to_cents(amount * HOURS_PER_MONTH / Decimal(repr(hours)))


def to_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def allocate_cents(
    exact: Mapping[str, Decimal], total: Decimal | None = None, unit: Decimal = CENT
) -> dict[str, Decimal]:
    """Round each exact amount to cents (or `unit`) so the rounded parts sum to `total` (default: the rounded sum).

    Largest-remainder method: floor every part to the cent, then hand the leftover cents to the
    parts with the largest remainders (or take them from the smallest, when the pinned total is
    lower); ties are broken by key, so the result is deterministic. This is what makes "rows sum
    to the total, to the cent" true for any split.
    """
    if total is None:
        total = sum(exact.values(), Decimal(0)).quantize(unit, rounding=ROUND_HALF_EVEN)
    floored = {k: (v / unit).to_integral_value(rounding=ROUND_FLOOR) * unit for k, v in exact.items()}
    leftover = int(((total - sum(floored.values(), Decimal(0))) / unit).to_integral_value())
    result = dict(floored)
    if not exact or leftover == 0:
        return result
    by_remainder = sorted(exact, key=lambda k: (-(exact[k] - floored[k]), k))
    order = by_remainder if leftover > 0 else list(reversed(by_remainder))
    step = unit if leftover > 0 else -unit
    for i in range(abs(leftover)):
        result[order[i % len(order)]] += step
    return result
