"""Stale-while-revalidate caching for the dashboard's heavy frames (a chargeback over a week of a
large fleet takes seconds to tens of seconds).

st.cache_data keyed by the warehouse's modification time recomputed every frame in every session
right after each collection commit: with `gpuledger serve` committing every few minutes and many
viewers, pages waited on the same recomputation many times over, and their long read-only
connections kept the collector from ever getting DuckDB's write lock. Here:
  - a page gets the newest value computed for its arguments at once, even when the warehouse has
    changed since (it is then at most one recomputation behind);
  - recomputation happens on one background thread, once per key and version however many sessions
    ask (single flight), so readers hold the warehouse one query at a time and the writer gets in;
  - only a cold key (never computed in this process) makes its caller wait, and concurrent callers of
    the same cold key share that one computation;
  - or not even that: peek() answers None for a cold key and computes it on a second background thread,
    so a page shows its fast parts at once and polls for a slow panel (the overview's savings, which
    read per-step samples) without other pages' frames queueing behind it.
  - a value younger than the refresh age (`configure`, dashboard.refresh_seconds) is not recomputed for a newer
    collection: with `serve` committing every 15 s and 20 sessions, recomputing every page's frames after each
    commit was 30% of the server's one GIL-bound core (py-spy), and pages queued behind it.
Values are copied on the way out (as st.cache_data did), so pages cannot change what is cached.
"""

from __future__ import annotations

import functools
import logging
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import pandas as pd

from core.store import read_memo

F = TypeVar("F", bound=Callable[..., Any])
MAX_ENTRIES = 256
log = logging.getLogger("gpuledger.dashboard")

_lock = threading.Lock()
# key -> (stamp, value, time.monotonic() when stored)
_entries: OrderedDict[Hashable, tuple[Hashable, Any, float]] = OrderedDict()
_refresh_age = 0.0  # seconds a stored value is kept for newer collections before it is recomputed
_pending: dict[Hashable, Future[Any]] = {}
_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpuledger-refresh")
# peek()'s first computations run apart, so a page's own frames never queue behind a minute-long panel
_background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpuledger-panel")
# a prefetch's second lane: a page's reports in two lanes use both cores (DuckDB's plans do not keep two busy
# throughout, and Python's share of one report overlaps the other's queries)
_second_lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpuledger-prefetch")
_LANES = (_worker, _second_lane)  # prefetch's lanes 0 and 1
_POOLS = ("gpuledger-refresh", "gpuledger-panel", "gpuledger-prefetch")  # the threads' name prefixes above
_done: Future[Any] = Future()
_done.set_result(None)


def configure(refresh_age: float) -> None:
    """Keep each value for at least `refresh_age` seconds before a newer collection recomputes it (0: recompute
    after every collection)."""
    global _refresh_age
    _refresh_age = max(0.0, float(refresh_age))


def _fresh(entry: tuple[Hashable, Any, float] | None, stamp: Hashable) -> bool:
    """Is `entry` this collection's value, or recent enough to stand for it (no refresh yet)? Not when the
    settings file changed: a user who edits it sees the effect on the next page run."""
    if entry is None:
        return False
    if entry[0] == stamp:
        return True
    same_settings = entry[0][1] == stamp[1]  # type: ignore[index]
    return same_settings and time.monotonic() - entry[2] < _refresh_age


def cached(fn: F) -> F:
    """`fn(version, *args)` where version = (warehouse, mtime, settings file, mtime), as ui.mtime() gives."""

    @functools.wraps(fn)
    def wrapper(version: tuple[str, float, str, float], *args: Hashable) -> Any:
        if threading.current_thread().name.startswith(_POOLS):
            return _inline(fn, version, args)
        found, value, future = _lookup(fn, version, args)
        return value if found else _copy(future.result())

    return wrapper  # type: ignore[return-value]


def _inline(fn: Callable[..., Any], version: tuple[str, float, str, float], args: tuple[Hashable, ...]) -> Any:
    """A cached call made by another cached call, on one of the pools' threads: the cached value, else computed
    here. Waiting for the pool instead would wait for its one worker, the one running the caller: the status page's
    reconciliation asking for the data span hung there (found by `make bench`, 2026-12-06)."""
    key, stamp = _key(fn, version, args), _stamp(version)
    with _lock:
        entry = _entries.get(key)
    if entry is not None and _fresh(entry, stamp):
        return _copy(entry[1])
    return _copy(_compute(key, stamp, fn, version, args))


def peek(cached_fn: Callable[..., Any], version: tuple[str, float, str, float], *args: Hashable) -> Any | None:
    """`cached_fn`'s value (possibly one collection stale) without waiting: None while a cold key is first
    computed in the background, so a page can show its fast parts at once and this part when it is ready."""
    found, value, _ = _lookup(cached_fn.__wrapped__, version, args, _background)  # type: ignore[attr-defined]
    return value if found else None


def prefetch(
    calls: list[tuple[Callable[..., Any], tuple[Hashable, ...]]],
    version: tuple[str, float, str, float],
    around: Callable[[], AbstractContextManager[Any]],
    lanes: tuple[int, ...] = (0,),
) -> None:
    """Start computing, in order, every `cached` call whose value is missing or stale and not already under
    way: in background tasks on `lanes` (0, the first, where a page's own cold calls also wait; 1, the second),
    the calls dealt out among them in turn, each task run inside its own `around()` (one warehouse connection
    for its calls). Callers of those keys meanwhile wait for (or, stale, skip) it as for any computation."""
    stamp, todo = _stamp(version), []
    with _lock:
        for cached_fn, args in calls:
            fn = cached_fn.__wrapped__  # type: ignore[attr-defined]
            key = _key(fn, version, args)
            entry = _entries.get(key)
            if key in _pending or _fresh(entry, stamp):
                continue
            future = _pending[key] = Future()
            todo.append((key, fn, args, future))
    for i, lane in enumerate(lanes):
        if todo[i :: len(lanes)]:
            _LANES[lane].submit(_compute_all, todo[i :: len(lanes)], stamp, version, around)


def _compute_all(
    todo: list[tuple[Hashable, Callable[..., Any], tuple[Any, ...], Future[Any]]],
    stamp: Hashable,
    version: tuple[Any, ...],
    around: Callable[[], AbstractContextManager[Any]],
) -> None:
    left = list(todo)
    try:
        with around():
            while left:
                key, fn, args, future = left.pop(0)
                try:
                    future.set_result(_compute(key, stamp, fn, version, args))
                except BaseException as exc:  # _compute logged it and released the key
                    future.set_exception(exc)
    except BaseException as exc:  # `around` failed (the warehouse stayed locked): every waiter hears why
        log.exception("dashboard prefetch failed")
        with _lock:
            for key, _, _, _ in left:
                _pending.pop(key, None)
        for _, _, _, future in left:
            future.set_exception(exc)


def settle(timeout: float | None = None) -> None:
    """Wait for every background computation under way (tests and benchmarks)."""
    with _lock:
        futures = list(_pending.values())
    wait(futures, timeout)  # a failure is logged by _compute; the caller wants quiet, not the value


def _lookup(
    fn: Callable[..., Any],
    version: tuple[str, float, str, float],
    args: tuple[Hashable, ...],
    executor: ThreadPoolExecutor = _worker,
) -> tuple[bool, Any, Future[Any]]:
    """(found, a copy of the value, the computation under way): a stale value counts as found and starts
    its refresh; a cold key starts (or joins) its first computation."""
    key, stamp = _key(fn, version, args), _stamp(version)
    with _lock:
        entry = _entries.get(key)
        if entry is not None and _fresh(entry, stamp):
            _entries.move_to_end(key)
            return True, _copy(entry[1]), _done
        future = _pending.get(key)
        if future is None:
            future = _pending[key] = executor.submit(_compute, key, stamp, fn, version, args)
    if entry is not None:
        return True, _copy(entry[1]), future  # stale by one collection at most; the refresh is under way
    return False, None, future


def current(fn: Callable[..., Any], version: tuple[str, float, str, float], *args: Hashable) -> bool:
    """Does the cache hold `fn`'s value for this version, or one recent enough to stand for it (not a stale one
    being refreshed)?"""
    with _lock:
        entry = _entries.get(_key(fn, version, args))
    return _fresh(entry, _stamp(version))


def _key(fn: Callable[..., Any], version: tuple[str, float, str, float], args: tuple[Hashable, ...]) -> Hashable:
    """What a value is for: the function, the warehouse and settings files, the arguments (not their mtimes)."""
    return (fn.__qualname__, version[0], version[2], args)


def _stamp(version: tuple[str, float, str, float]) -> Hashable:
    """Which collection it is from: the two files' modification times."""
    return (version[1], version[3])


def _compute(
    key: Hashable, stamp: Hashable, fn: Callable[..., Any], version: tuple[Any, ...], args: tuple[Any, ...]
) -> Any:
    try:
        value = fn(version, *args)
    except BaseException:
        with _lock:
            _pending.pop(key, None)
        log.exception("dashboard refresh of %s failed; the previous value stays", key[0])  # type: ignore[index]
        raise
    with _lock:  # stored and released together: no caller can start a second computation in between
        _entries[key] = (stamp, value, time.monotonic())
        _entries.move_to_end(key)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
        _pending.pop(key, None)
    return value


def _copy(value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        return value.copy()
    # a pickle round trip, as st.cache_data did: several times faster than copy.deepcopy on large reports
    return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))


def clear() -> None:
    """Forget everything (tests, the bench's cold views), after what is under way has finished (else it would store
    itself after), the rollup checks of the dashboard's connections too (core/store/read_memo.py)."""
    settle()
    with _lock:
        _entries.clear()
    read_memo.forget()
