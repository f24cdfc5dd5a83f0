"""Answers that hold for as long as a read-only connection is open, computed once per connection.

Every report first checks that the rollups it wants to read are current (row counts, fingerprints of
800,000 pods, stale nodes): 0.2-0.3 s per report at 10,000 GPUs, paid again by each of a dashboard
page's four reports. A read-only connection sees a fixed warehouse (DuckDB lets no process write the
file while a reader has it open), so those answers cannot change while it lives: `remember` keeps them
with the connection and forgets them with it. A writing connection changes what it reads, so there
`remember` always computes. The dashboard's connections (app/dashboard/reader.py) `share` their answers while they
are open at the same time on a file that did not change while they opened: a page's two lanes check once.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import duckdb

T = TypeVar("T")
_lock = threading.Lock()
# connection -> its answers, or None for a connection that can write (nothing is kept for it)
_answers: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, dict[Hashable, Any] | None] = weakref.WeakKeyDictionary()
# file identity -> (the answers its open connections share, the ids of those connections); connection id -> identity
_groups: dict[tuple[object, ...], tuple[dict[Hashable, Any], set[int]]] = {}
_member_of: dict[int, tuple[object, ...]] = {}


def remember(con: duckdb.DuckDBPyConnection, key: Hashable, compute: Callable[[], T]) -> T:
    """compute()'s answer for `key`, computed once per read-only connection (always, on a writer) or once per group
    of connections that `share` joined; a caller asking while another computes it waits for that answer."""
    answers = _answers_of(con)
    if answers is None:
        return compute()
    with _lock:
        found: Future[T] | None = answers.get(key)
        mine = found is None
        future: Future[T] = Future() if found is None else found
        if mine:
            answers[key] = future
    if mine:
        try:
            future.set_result(compute())
        except BaseException as exc:
            with _lock:
                answers.pop(key, None)  # not an answer: the next caller computes it again
            future.set_exception(exc)
    return future.result()


def file_identity(path: Path) -> tuple[object, ...]:
    """The warehouse file and its write-ahead log as the file system shows them (inode, size, mtime)."""
    out: list[object] = [str(path.resolve())]
    for p in (path, path.with_name(path.name + ".wal")):
        try:
            st = p.stat()
        except FileNotFoundError:
            out.append(None)
            continue
        out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def share(con: duckdb.DuckDBPyConnection, identity: tuple[object, ...]) -> None:
    """Let read-only `con`, opened while the file showed `identity` before and after, share its answers with the
    other open connections that did: while any of them is open no process can write the file, so they all read the
    same warehouse (the dashboard's two lanes of a page then check the rollups once, not once each). `leave` when
    `con` closes: a group lives only while one of its connections is open."""
    with _lock:
        group = _groups.setdefault(identity, ({}, set()))
        group[1].add(id(con))
        _answers[con] = group[0]
        _member_of[id(con)] = identity


def leave(con: duckdb.DuckDBPyConnection) -> None:
    with _lock:
        identity = _member_of.pop(id(con), None)
        _answers.pop(con, None)
        if identity is None:
            return
        members = _groups[identity][1]
        members.discard(id(con))
        if not members:
            del _groups[identity]


def _answers_of(con: duckdb.DuckDBPyConnection) -> dict[Hashable, Any] | None:
    with _lock:
        if con in _answers:
            return _answers[con]
    rows = con.execute("SELECT current_setting('access_mode')").fetchall()
    answers: dict[Hashable, Any] | None = {} if rows and rows[0][0] == "read_only" else None
    with _lock:
        return _answers.setdefault(con, answers)
