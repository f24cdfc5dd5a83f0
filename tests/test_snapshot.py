"""What a read-only connection answers once (core/store/read_memo.py): kept for its life, and shared by the dashboard's
connections to the same version of the warehouse, never across a write."""

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

from analytics.cost import fact_plan
from analytics.cost.chargeback import chargeback, namespace_labels
from analytics.cost.prices import load_prices
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


def test_dashboard_connections_to_an_unchanged_warehouse_compute_each_answer_once_open_at_once_or_later(
    warehouse: Path,
) -> None:
    count = Counter()
    with contextlib.ExitStack() as a, contextlib.ExitStack() as b:
        first, second = _reader(warehouse, a), _reader(warehouse, b)
        assert [read_memo.remember(con, "k", count) for con in (first, second, first)] == [1, 1, 1]
    with contextlib.ExitStack() as c_:  # every connection closed, the file unchanged: the same version
        assert read_memo.remember(_reader(warehouse, c_), "k", count) == 1
    read_memo.forget()  # a cold start
    with contextlib.ExitStack() as d:
        assert read_memo.remember(_reader(warehouse, d), "k", count) == 2


WRITES = {
    "a pod relabelled (one row rewritten in place)": f"UPDATE {c.T_PODS} SET labels = json_object('team', 'moved') "
    f"WHERE pod = (SELECT min(pod) FROM {c.T_PODS})",
    "a node's GPU model changed": f"UPDATE {c.T_NODES} SET gpu_model = 'NVIDIA-H100-80GB-HBM3' "
    f"WHERE node = (SELECT min(node) FROM {c.T_NODES})",
}


@pytest.mark.parametrize("checkpoint", [False, True], ids=["left in the log", "checkpointed into the file"])
@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_after_a_write_between_two_dashboard_connections_the_second_checks_the_rollups_afresh(
    warehouse: Path, write: str, checkpoint: bool
) -> None:
    """The class rollups were current; a write behind their back makes them stale. The dashboard's next connection
    must see that, not the answer its earlier connection gave for the previous version."""
    with contextlib.ExitStack() as a:
        assert classes.valid(_reader(warehouse, a))
    with open_warehouse(warehouse) as con:
        con.execute(write)
        con.execute("CHECKPOINT" if checkpoint else "PRAGMA disable_checkpoint_on_shutdown")
    assert warehouse.with_name(warehouse.name + ".wal").exists() != checkpoint
    with contextlib.ExitStack() as b:
        assert not classes.valid(_reader(warehouse, b)), "an answer of the previous version leaked"


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


def _per_version_answers(con: duckdb.DuckDBPyConnection, window: Window) -> tuple[object, ...]:
    """What a chargeback reads once per warehouse version: the price rows, the instants prices change at, the
    namespaces' labels."""
    return (load_prices(con), sorted(fact_plan._price_changes(con, window)), namespace_labels(con))


PRICING_WRITES = {
    "every price doubled": f"UPDATE {c.T_PRICES} SET price_per_hour_usd = 2 * price_per_hour_usd, "
    "gpu_price_per_hour_usd = 2 * gpu_price_per_hour_usd",
    "a discount from the middle of the window": f"INSERT INTO {c.T_PRICE_DISCOUNTS} VALUES ('promo', 10, '', '', '*', "
    "'', $mid, NULL, 'test')",
    "a namespace labelled for a team": f"UPDATE {c.T_NAMESPACES} SET labels = json_object('team', 'moved') "
    f"WHERE namespace = (SELECT min(namespace) FROM {c.T_NAMESPACES})",
}


@pytest.mark.parametrize("write", PRICING_WRITES.values(), ids=PRICING_WRITES.keys())
def test_prices_discounts_and_namespace_labels_written_between_two_dashboard_connections_are_read_afresh(
    warehouse: Path, write: str
) -> None:
    """A dashboard connection answers them once per warehouse version; the next version's connection must read the
    write, and its chargeback must equal a writer's (which reads them every time)."""
    opts = chargeback_options(load_settings(Path("/dev/null")), ("team",))
    with contextlib.ExitStack() as a:
        con = _reader(warehouse, a)
        first, last = data_span(con)  # type: ignore[misc]
        window = Window(first.replace(hour=0, minute=0, second=0, microsecond=0), last)
        before = _per_version_answers(con, window)
        assert _per_version_answers(con, window) == before
        chargeback(con, window, opts)
    with open_warehouse(warehouse) as con:
        con.execute(write, {"mid": window.start + (window.end - window.start) / 2} if "$mid" in write else None)
        reference = _per_version_answers(con, window), chargeback(con, window, opts).rows
    with contextlib.ExitStack() as b:
        con = _reader(warehouse, b)
        after = _per_version_answers(con, window), chargeback(con, window, opts).rows
    assert after[0] != before, "the write changed none of the answers: the test proves nothing"
    assert after == reference, "an answer of the previous version leaked"


def test_a_nodes_pool_changed_is_billed_in_its_new_pool_by_the_writer_at_once_and_by_the_next_dashboard_connection(
    warehouse: Path,
) -> None:
    """The chargeback keeps node attributes in a temp table made once per read-only connection (fact_plan): a writer
    must read its own write in its next report, and a dashboard connection opened after it must read it too."""
    opts = chargeback_options(load_settings(Path("/dev/null")), ("team", "node_pool"))

    def pools(con: duckdb.DuckDBPyConnection, window: Window) -> dict[str, object]:
        rows = chargeback(con, window, opts).rows
        return {
            p: sum(r.cost_usd for r in rows if r.keys["node_pool"] == p) for p in {r.keys["node_pool"] for r in rows}
        }

    with contextlib.ExitStack() as a:
        con = _reader(warehouse, a)
        first, last = data_span(con)  # type: ignore[misc]
        window = Window(first.replace(hour=0, minute=0, second=0, microsecond=0), last)
        before = pools(con, window)
        assert pools(con, window) == before  # the second report reads the connection's table
    with open_warehouse(warehouse) as con:
        node = con.execute(f"SELECT min(node) FROM {c.T_NODES}").fetchone()[0]  # type: ignore[index]
        assert pools(con, window) == before
        con.execute(f"UPDATE {c.T_NODES} SET node_pool = 'moved' WHERE node = ?", [node])
        written = pools(con, window)
    with contextlib.ExitStack() as b:
        after = pools(_reader(warehouse, b), window)
    assert "moved" not in before and written.get("moved", 0) > 0, "the node cost nothing: the test proves nothing"
    assert sum(written.values()) == sum(before.values()) and after == written
