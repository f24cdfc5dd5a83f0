"""Money is computed at 40 significant digits in every thread, not only in the one that imported core.money."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from decimal import Decimal, getcontext, localcontext
from typing import Any

import pytest

from analytics.cost import cost_rows
from analytics.cost.chargeback import ChargebackOptions, chargeback
from core import money
from core.timeutil import Window
from tests.builders import add_node, add_pod, add_price, fresh_db

T0 = datetime(2026, 11, 2)


def _in_thread(func: Any) -> Any:
    """Run func in a new thread whose Decimal context is Python's default (28 digits), as a worker's may be."""
    out: dict[str, Any] = {}

    def run() -> None:
        getcontext().prec = 28
        out["value"] = func()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out["value"]


def test_a_chargeback_in_a_28_digit_thread_computes_at_40_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    allocate = money.allocate_cents

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(getcontext().prec)
        return allocate(*args, **kwargs)

    monkeypatch.setattr(cost_rows, "allocate_cents", spy)
    con = fresh_db()
    add_node(con, "n1", 8, steps=120)
    add_price(con, "98.32")
    add_pod(con, "train", "n1", team="vision", amount=3, steps=120)
    window = Window(T0, T0 + timedelta(hours=2))
    here = chargeback(con, window, ChargebackOptions())
    there = _in_thread(lambda: chargeback(con, window, ChargebackOptions()))
    assert seen and set(seen) == {40}
    assert [r.as_dict() for r in there.rows] == [r.as_dict() for r in here.rows]
    assert getcontext().prec == 40  # the caller's context is left as it was


def test_money_context_restores_the_callers_context_and_new_threads_start_at_40_digits() -> None:
    with localcontext() as ctx:
        ctx.prec = 12
        assert money.in_money_context(lambda: getcontext().prec)() == 40
        assert getcontext().prec == 12
    third = Decimal(1) / Decimal(3)
    assert _in_thread(lambda: money.in_money_context(lambda: Decimal(1) / Decimal(3))()) == third
    fresh: list[int] = []
    thread = threading.Thread(target=lambda: fresh.append(getcontext().prec))
    thread.start()
    thread.join()
    assert fresh == [40]
