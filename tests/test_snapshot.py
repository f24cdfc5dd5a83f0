"""What a read-only connection answers once (core/store/read_memo.py): kept for its life, shared only by dashboard
connections open at the same time on an unchanged file, never with a later one."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from analytics.cost.chargeback import chargeback
from app.stage_options import chargeback_options
from core import conventions as c
from core.settings import load_settings
from core.store import read_memo
from core.store.rollups import classes, hourly
from core.store.status import data_span
from core.store.warehouse import open_warehouse
from core.timeutil import Window


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


@pytest.fixture
def warehouse(direct_warehouse: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "w.duckdb"
    shutil.copy(direct_warehouse, copy)
    return copy


def test_a_read_only_connection_computes_each_answer_once_and_a_new_connection_afresh(warehouse: Path) -> None:
    count = Counter()
    with open_warehouse(warehouse, read_only=True) as con:
        assert [read_memo.remember(con, "k", count) for _ in range(3)] == [1, 1, 1]
        assert read_memo.remember(con, "other", count) == 2
    with open_warehouse(warehouse, read_only=True) as con:
        assert read_memo.remember(con, "k", count) == 3


def test_a_connection_that_can_write_computes_every_time(warehouse: Path) -> None:
    count = Counter()
    with open_warehouse(warehouse) as con:
        assert [read_memo.remember(con, "k", count) for _ in range(3)] == [1, 2, 3]
    memory = duckdb.connect()
    assert [read_memo.remember(memory, "k", count) for _ in range(2)] == [4, 5]


def test_while_a_reader_is_open_no_other_process_can_write_so_its_answers_cannot_go_stale(warehouse: Path) -> None:
    """The premise of keeping answers per read-only connection: DuckDB's file lock."""
    write = f"import duckdb; duckdb.connect({str(warehouse)!r}).execute('DELETE FROM {c.T_GPU_SAMPLES}')"
    with open_warehouse(warehouse, read_only=True) as con:
        assert hourly.in_sync(con) and classes.valid(con)
        writer = subprocess.run([sys.executable, "-c", write], capture_output=True, text=True, timeout=60)
        assert writer.returncode != 0 and "lock" in writer.stderr.lower()
    writer = subprocess.run([sys.executable, "-c", write], capture_output=True, text=True, timeout=60)
    assert writer.returncode == 0, writer.stderr


def test_a_write_that_bypassed_the_rollups_is_seen_by_the_next_reader_and_its_report_stays_right(
    warehouse: Path,
) -> None:
    opts = chargeback_options(load_settings(Path("/dev/null")), ("team",))
    with open_warehouse(warehouse, read_only=True) as con:
        first, last = data_span(con)  # type: ignore[misc]
        window = Window(first.replace(hour=0, minute=0, second=0, microsecond=0), last)
        before = chargeback(con, window, opts).rows
        assert hourly.in_sync(con) and classes.valid(con)
    with open_warehouse(warehouse) as con:  # a pod's labels changed behind the class rollups' back
        con.execute(
            f"UPDATE {c.T_PODS} SET labels = json_object('team', 'moved') WHERE pod = (SELECT min(pod) FROM {c.T_PODS})"
        )
    with open_warehouse(warehouse, read_only=True) as con:
        assert not classes.valid(con), "an answer of the previous connection leaked into this one"
        after = chargeback(con, window, opts).rows
    with open_warehouse(warehouse) as con:  # a writer checks afresh every time: the reference
        reference = chargeback(con, window, opts).rows
    assert "moved" in {r.keys["team"] for r in after} and after == reference
    assert sum(r.cost_usd for r in after) == sum(r.cost_usd for r in before)
    assert window.end - window.start > timedelta(hours=1)


def _reader(warehouse: Path, stack: contextlib.ExitStack) -> duckdb.DuckDBPyConnection:
    from app.dashboard import reader

    return reader._open(stack, warehouse, "256MB", 1)


def test_dashboard_connections_open_at_once_on_an_unchanged_file_compute_each_answer_once(warehouse: Path) -> None:
    count = Counter()
    with contextlib.ExitStack() as a, contextlib.ExitStack() as b:
        first, second = _reader(warehouse, a), _reader(warehouse, b)
        assert [read_memo.remember(con, "k", count) for con in (first, second, first)] == [1, 1, 1]
    with contextlib.ExitStack() as c_:  # every connection of the group closed: a writer may have been in between
        assert read_memo.remember(_reader(warehouse, c_), "k", count) == 2


def test_a_connection_to_a_file_that_changed_since_the_others_opened_keeps_its_own_answers(warehouse: Path) -> None:
    count = Counter()
    with contextlib.ExitStack() as a, contextlib.ExitStack() as b:
        first = _reader(warehouse, a)
        assert read_memo.remember(first, "k", count) == 1
        later = time.time() + 5
        os.utime(warehouse, (later, later))  # as a write between the two opens would leave it
        assert read_memo.remember(_reader(warehouse, b), "k", count) == 2


def test_two_threads_asking_at_once_wait_for_one_computation_and_a_failure_is_not_an_answer(warehouse: Path) -> None:
    started, release, calls = threading.Event(), threading.Event(), []

    def slow() -> str:
        calls.append(1)
        started.set()
        release.wait(30)
        return "answer"

    def failing() -> str:
        calls.append(2)
        raise RuntimeError("query failed")

    with contextlib.ExitStack() as a, contextlib.ExitStack() as b:
        first, second = _reader(warehouse, a), _reader(warehouse, b)
        with ThreadPoolExecutor(2) as pool:
            one = pool.submit(read_memo.remember, first, "k", slow)
            started.wait(30)
            other = pool.submit(read_memo.remember, second, "k", slow)
            release.set()
            assert (one.result(30), other.result(30), calls) == ("answer", "answer", [1])
        with pytest.raises(RuntimeError):
            read_memo.remember(first, "bad", failing)
        assert read_memo.remember(second, "bad", lambda: "now") == "now"
