"""The dashboard's read-only warehouse connections.

Each report opens one, waiting and retrying while a collector holds DuckDB's write lock, and closes it
when done, so the writer gets in between reports. Inside `shared`, every read on the thread uses one
connection instead: a page's reports computed together then share what a connection answers once
(core/store/read_memo.py: 0.2-0.3 s of rollup checks per report at 10,000 GPUs); and every connection to the same
version of the warehouse shares those answers too (a page's two lanes check once, and so does every later page
until the warehouse changes).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import duckdb

from core.errors import TransientError
from core.store import read_memo
from core.store.warehouse import open_warehouse

T = TypeVar("T")
_shared = threading.local()


def read(fn: Callable[[duckdb.DuckDBPyConnection], T], path: Path, memory_limit: str, attempts: int = 20) -> T:
    """fn on a read-only connection to `path` (the thread's shared one inside `shared`)."""
    con = getattr(_shared, "con", None)
    if con is not None:
        return fn(con)
    with contextlib.ExitStack() as stack:
        return fn(_open(stack, path, memory_limit, attempts))


@contextlib.contextmanager
def shared(path: Path, memory_limit: str, attempts: int = 20) -> Iterator[None]:
    """Every read() on this thread inside the block uses one connection to `path`."""
    with contextlib.ExitStack() as stack:
        _shared.con = _open(stack, path, memory_limit, attempts)
        try:
            yield
        finally:
            _shared.con = None


def _open(stack: contextlib.ExitStack, path: Path, memory_limit: str, attempts: int) -> duckdb.DuckDBPyConnection:
    """A read-only connection that shares its answers (core/store/read_memo.py) with the other connections to the same
    version of the file, when the file did not change while it opened."""
    for attempt in range(attempts):
        try:
            before = read_memo.file_identity(path)
            con = stack.enter_context(open_warehouse(path, read_only=True, memory_limit=memory_limit))
            if read_memo.file_identity(path) == before:
                read_memo.share(con, before)
            return con
        except TransientError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")
