"""Answers that hold for as long as a read-only connection is open, computed once per connection.

Every report first checks that the rollups it wants to read are current (row counts, fingerprints of
800,000 pods, stale nodes): 0.2-0.3 s per report at 10,000 GPUs, paid again by each of a dashboard
page's four reports. A read-only connection sees a fixed warehouse (DuckDB lets no process write the
file while a reader has it open), so those answers cannot change while it lives: `remember` keeps them
with the connection and forgets them with it. A writing connection changes what it reads, so there
`remember` always computes. Reports keep here too what every chargeback reads whole (the price rows, the instants
prices change at, the namespaces' labels). `per_connection` keeps what only its own connection can use: the
chargeback's table of node attributes (a temp table), made once per read-only connection.

The dashboard's connections (app/dashboard/reader.py) `share` their answers by warehouse version: every connection
opened on the same version of the file answers each check once, so a page's two lanes check once, and the next
page, window or report on an unchanged warehouse does not check again. A version is what the file system shows of
the file and its write-ahead log (inode, size, modification time in nanoseconds), unchanged while the connection
opened, and what DuckDB shows of its storage once open (blocks used and free, the log's size). A write is a
commit: it appends to the log (its size changes) and a checkpoint writes new blocks and frees the old ones, each
moving the modification time; two versions alike in all of that would need two writes, with a reader opening
between them, inside one tick of the file system's clock. The last KEEP_VERSIONS versions are kept.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import duckdb

T = TypeVar("T")
_lock = threading.Lock()
# connection -> its answers, or None for a connection that can write (nothing is kept for it)
_answers: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, dict[Hashable, Any] | None] = weakref.WeakKeyDictionary()
KEEP_VERSIONS = 4  # a version's answers are booleans, node lists, price rows and namespace labels: kilobytes
# connection -> what per_connection computed on it (temp table names: never shared between connections)
_own: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, dict[Hashable, Any]] = weakref.WeakKeyDictionary()
# warehouse version -> the answers its connections share, most recently opened last
_versions: OrderedDict[tuple[object, ...], dict[Hashable, Any]] = OrderedDict()


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


def per_connection(con: duckdb.DuckDBPyConnection, key: Hashable, compute: Callable[[], T]) -> T:
    """compute()'s answer for `key`, computed once per read-only connection and never shared with another: for
    answers that name something living on that connection only, such as a temp table. Always computed on a writer.
    A connection is used by one thread at a time (the dashboard's lanes each have their own)."""
    if _answers_of(con) is None:
        return compute()
    with _lock:
        own = _own.setdefault(con, {})
        if key in own:
            return own[key]  # type: ignore[no-any-return]
    value = compute()
    with _lock:
        own[key] = value
    return value


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
    """Let read-only `con`, opened while the file showed `identity` (file_identity) before and after, share its
    answers with every connection opened on the same version of the warehouse, before or after it."""
    rows = con.execute("SELECT total_blocks, used_blocks, free_blocks, wal_size FROM pragma_database_size()")
    version = (*identity, *rows.fetchall())
    with _lock:
        answers = _versions.setdefault(version, {})
        _versions.move_to_end(version)
        while len(_versions) > KEEP_VERSIONS:
            _versions.popitem(last=False)
        _answers[con] = answers


def forget() -> None:
    """Drop every version's answers: the next connection checks afresh (a cold start, as after a collection)."""
    with _lock:
        _versions.clear()


def _answers_of(con: duckdb.DuckDBPyConnection) -> dict[Hashable, Any] | None:
    with _lock:
        if con in _answers:
            return _answers[con]
    rows = con.execute("SELECT current_setting('access_mode')").fetchall()
    answers: dict[Hashable, Any] | None = {} if rows and rows[0][0] == "read_only" else None
    with _lock:
        return _answers.setdefault(con, answers)
