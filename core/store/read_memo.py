"""Answers that hold for as long as a read-only connection is open, computed once per connection.

Every report first checks that the rollups it wants to read are current (row counts, fingerprints of
800,000 pods, stale nodes): 0.2-0.3 s per report at 10,000 GPUs, paid again by each of a dashboard
page's four reports. A read-only connection sees a fixed warehouse (DuckDB lets no process write the
file while a reader has it open), so those answers cannot change while it lives: `remember` keeps them
with the connection and forgets them with it. A writing connection changes what it reads, so there
`remember` always computes.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import duckdb

T = TypeVar("T")
_lock = threading.Lock()
# connection -> its answers, or None for a connection that can write (nothing is kept for it)
_answers: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, dict[Hashable, Any] | None] = weakref.WeakKeyDictionary()


def remember(con: duckdb.DuckDBPyConnection, key: Hashable, compute: Callable[[], T]) -> T:
    """compute()'s answer for `key`, computed once per read-only connection (always, on a writer)."""
    answers = _answers_of(con)
    if answers is None:
        return compute()
    with _lock:
        if key in answers:
            return answers[key]  # type: ignore[no-any-return]
    value = compute()
    with _lock:
        answers[key] = value
    return value


def _answers_of(con: duckdb.DuckDBPyConnection) -> dict[Hashable, Any] | None:
    with _lock:
        if con in _answers:
            return _answers[con]
    rows = con.execute("SELECT current_setting('access_mode')").fetchall()
    answers: dict[Hashable, Any] | None = {} if rows and rows[0][0] == "read_only" else None
    with _lock:
        return _answers.setdefault(con, answers)
