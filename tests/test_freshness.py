"""The dashboard's stale-while-revalidate cache (app/dashboard/freshness.py), with real threads."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pandas as pd
import pytest

from app.dashboard import freshness
from core.errors import TransientError


@pytest.fixture(autouse=True)
def _empty() -> Iterator[None]:
    freshness.clear()
    freshness.configure(0)  # a page run sets dashboard.refresh_seconds; these tests recompute after each collection
    yield
    freshness.clear()
    freshness.configure(0)


def _version(mtime: float) -> tuple[str, float, str, float]:
    return ("/w.duckdb", mtime, "/dev/null", 0.0)


class Gated:
    """A cached function whose computations wait for `gate` and are counted."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[float] = []
        self.fail = False

        @freshness.cached
        def value(version: tuple[str, float, str, float], n: int) -> dict[str, float]:
            self.calls.append(version[1])
            assert self.gate.wait(10)
            if self.fail:
                raise RuntimeError("warehouse unreadable")
            return {"mtime": version[1], "n": n}

        self.value = value


def test_after_a_new_collection_a_page_gets_the_previous_numbers_at_once_then_the_new_ones() -> None:
    g = Gated()
    assert g.value(_version(1.0), 7) == {"mtime": 1.0, "n": 7}
    g.gate.clear()  # the recomputation for the new version is slow
    began = time.monotonic()
    assert g.value(_version(2.0), 7) == {"mtime": 1.0, "n": 7}
    assert time.monotonic() - began < 1
    g.gate.set()
    deadline = time.monotonic() + 10
    while g.value(_version(2.0), 7)["mtime"] != 2.0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert g.calls == [1.0, 2.0]


def test_many_sessions_asking_for_a_cold_key_share_one_computation() -> None:
    g = Gated()
    g.gate.clear()
    results: list[dict[str, float]] = []
    threads = [threading.Thread(target=lambda: results.append(g.value(_version(1.0), 3))) for _ in range(12)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    g.gate.set()
    for t in threads:
        t.join(10)
    assert results == [{"mtime": 1.0, "n": 3}] * 12
    assert g.calls == [1.0]


def test_each_version_is_computed_once_however_often_it_is_asked_for() -> None:
    g = Gated()
    for _ in range(5):
        g.value(_version(1.0), 1)
    g.value(_version(1.0), 2)  # other arguments are another key
    assert g.calls == [1.0, 1.0]


def test_a_failed_refresh_keeps_the_previous_value_and_a_failed_cold_call_raises() -> None:
    g = Gated()
    g.value(_version(1.0), 1)
    g.fail = True
    for _ in range(3):
        assert g.value(_version(2.0), 1) == {"mtime": 1.0, "n": 1}
        time.sleep(0.05)
    with pytest.raises(RuntimeError, match="warehouse unreadable"):
        g.value(_version(1.0), 99)
    g.fail = False
    assert g.value(_version(1.0), 99) == {"mtime": 1.0, "n": 99}  # a failure is not cached


def test_pages_cannot_change_what_is_cached() -> None:
    @freshness.cached
    def frame(version: tuple[str, float, str, float]) -> pd.DataFrame:
        return pd.DataFrame({"team": ["a"], "cost_usd": [1.0]})

    @freshness.cached
    def nested(version: tuple[str, float, str, float]) -> dict[str, list[int]]:
        return {"rows": [1, 2]}

    page = frame(_version(1.0))
    page["cost_usd"] = 99.0
    nested(_version(1.0))["rows"].append(3)
    assert frame(_version(1.0))["cost_usd"].tolist() == [1.0]
    assert nested(_version(1.0)) == {"rows": [1, 2]}


def test_current_says_whether_the_cached_value_is_this_collections_or_a_stale_one_being_refreshed() -> None:
    g = Gated()
    assert not freshness.current(g.value, _version(1.0), 7), "nothing computed yet"
    g.value(_version(1.0), 7)
    assert freshness.current(g.value, _version(1.0), 7) and not freshness.current(g.value, _version(1.0), 8)
    g.gate.clear()
    g.value(_version(2.0), 7)  # the previous value at once, the refresh under way
    assert not freshness.current(g.value, _version(2.0), 7)
    g.gate.set()
    deadline = time.monotonic() + 10
    while not freshness.current(g.value, _version(2.0), 7):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_peek_answers_none_for_a_cold_key_at_once_and_the_value_once_computed() -> None:
    g = Gated()
    g.gate.clear()
    began = time.monotonic()
    assert freshness.peek(g.value, _version(1.0), 5) is None
    assert freshness.peek(g.value, _version(1.0), 5) is None  # asked again while computing: no second run
    assert time.monotonic() - began < 1
    g.gate.set()
    freshness.settle(10)
    assert freshness.peek(g.value, _version(1.0), 5) == {"mtime": 1.0, "n": 5}
    assert g.calls == [1.0]
    g.gate.clear()
    assert freshness.peek(g.value, _version(2.0), 5) == {"mtime": 1.0, "n": 5}, "stale beats nothing"
    g.gate.set()
    freshness.settle(10)
    assert freshness.peek(g.value, _version(2.0), 5) == {"mtime": 2.0, "n": 5}


def test_a_pages_frame_does_not_queue_behind_a_slow_panel_being_peeked() -> None:
    slow, fast = Gated(), Gated()
    slow.gate.clear()
    assert freshness.peek(slow.value, _version(1.0), 1) is None  # a minute-long panel, under way
    began = time.monotonic()
    assert fast.value(_version(1.0), 2) == {"mtime": 1.0, "n": 2}
    assert time.monotonic() - began < 5, "the page's own frame waited for the panel"
    slow.gate.set()
    freshness.settle(10)


class Around:
    """A stand-in for ui.shared_connection: counts its openings and whether a computation ran inside one."""

    def __init__(self, fail: Exception | None = None, gate: threading.Event | None = None) -> None:
        self.opened = 0
        self.inside = False
        self.fail = fail
        self.gate = gate  # opening waits for it (a page can then be waiting before the failure)

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
        self.opened += 1
        self.inside = True
        try:
            yield
        finally:
            self.inside = False


def test_prefetched_reports_are_computed_in_order_inside_one_shared_connection_and_then_served_from_cache() -> None:
    g, around = Gated(), Around()
    seen: list[tuple[int, bool]] = []

    @freshness.cached
    def report(version: tuple[str, float, str, float], n: int) -> int:
        seen.append((n, around.inside))
        return n * 10

    freshness.prefetch([(report, (1,)), (report, (2,)), (g.value, (3,))], _version(1.0), around)
    freshness.settle(10)
    assert seen == [(1, True), (2, True)] and around.opened == 1
    assert report(_version(1.0), 2) == 20 and g.value(_version(1.0), 3) == {"mtime": 1.0, "n": 3}
    assert seen == [(1, True), (2, True)] and g.calls == [1.0], "served from the cache, not computed again"


def test_a_prefetch_in_two_lanes_starts_the_first_two_reports_at_once_each_on_its_own_connection() -> None:
    around = Around()
    together = threading.Barrier(2, timeout=5)  # broken (and the report failed) unless both wait at once

    @freshness.cached
    def report(version: tuple[str, float, str, float], n: int) -> int:
        if n < 2:
            together.wait()
        return n * 10

    freshness.prefetch([(report, (0,)), (report, (1,)), (report, (2,))], _version(1.0), around, lanes=(0, 1))
    freshness.settle(10)
    assert [report(_version(1.0), n) for n in range(3)] == [0, 10, 20] and around.opened == 2


def test_prefetch_leaves_out_current_and_pending_keys_and_a_page_asking_meanwhile_waits_for_it() -> None:
    g, around = Gated(), Around()
    g.value(_version(1.0), 1)
    g.gate.clear()
    freshness.prefetch([(g.value, (1,)), (g.value, (2,))], _version(1.0), around)
    freshness.prefetch([(g.value, (2,))], _version(1.0), around)  # under way: not a second time
    answer: list[dict[str, float]] = []
    page = threading.Thread(target=lambda: answer.append(g.value(_version(1.0), 2)))
    page.start()
    time.sleep(0.2)
    assert not answer, "the page waits for the prefetch"
    g.gate.set()
    page.join(10)
    assert answer == [{"mtime": 1.0, "n": 2}]
    assert g.calls == [1.0, 1.0] and around.opened == 1


def test_a_prefetch_that_cannot_open_the_warehouse_tells_its_waiters_why_and_caches_nothing() -> None:
    g, opening = Gated(), threading.Event()
    freshness.prefetch([(g.value, (1,))], _version(1.0), Around(TransientError("warehouse locked"), opening))
    # the failure comes once the page below waits for the prefetch (a page asking after it would compute anew)
    threading.Timer(0.2, opening.set).start()
    with pytest.raises(TransientError, match="warehouse locked"):
        g.value(_version(1.0), 1)
    assert g.calls == []
    assert g.value(_version(1.0), 1) == {"mtime": 1.0, "n": 1}, "the key was released: a later call computes it"


def test_a_cached_function_that_calls_another_cold_one_returns_instead_of_waiting_for_its_own_thread() -> None:
    # the status page's reconciliation asks for the data span: with one refresh worker, waiting for it hung forever
    @freshness.cached
    def inner(version: tuple[str, float, str, float]) -> dict[str, float]:
        return {"span": version[1]}

    @freshness.cached
    def outer(version: tuple[str, float, str, float]) -> dict[str, float]:
        return {"outer": inner(version)["span"] + 1}

    done: list[dict[str, float]] = []
    caller = threading.Thread(target=lambda: done.append(outer(_version(5.0))), daemon=True)
    caller.start()
    caller.join(10)
    assert done == [{"outer": 6.0}]
    assert freshness.current(inner, _version(5.0)), "the inner value is cached for the next caller"


def test_a_value_younger_than_the_refresh_age_stands_for_newer_collections_and_is_recomputed_once_older() -> None:
    """serve commits every 15 s; with a 60 s refresh age, pages keep the frames they have until they are 60 s old."""
    g = Gated()
    freshness.configure(0.5)
    assert g.value(_version(1.0), 7) == {"mtime": 1.0, "n": 7}
    for mtime in (2.0, 3.0):  # two collections within the age: no recomputation, and the value counts as current
        assert g.value(_version(mtime), 7) == {"mtime": 1.0, "n": 7}
        assert freshness.current(g.value, _version(mtime), 7)
    freshness.settle(10)
    assert g.calls == [1.0]
    time.sleep(0.6)
    assert g.value(_version(3.0), 7) == {"mtime": 1.0, "n": 7}, "older than the age: the stale value, refreshed"
    freshness.settle(10)
    assert g.value(_version(3.0), 7) == {"mtime": 3.0, "n": 7} and g.calls == [1.0, 3.0]


def test_a_changed_settings_file_is_recomputed_at_once_whatever_the_refresh_age() -> None:
    g = Gated()
    freshness.configure(3600)
    g.value(_version(1.0), 7)
    edited = ("/w.duckdb", 1.0, "/dev/null", 5.0)
    assert not freshness.current(g.value, edited, 7)
    g.value(edited, 7)
    freshness.settle(10)
    assert g.calls == [1.0, 1.0] and freshness.current(g.value, edited, 7)
