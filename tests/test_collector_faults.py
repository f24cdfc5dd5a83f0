"""Faults between the collector and the store, replayed from a real Prometheus's recorded answers.

Transient faults (5xx, timeouts, bodies cut short, malformed or partial answers) are retried with
backoff; once retries run out the run fails with exit 3 and the window being fetched is not
committed. A 4xx is terminal at once (exit 2) and names the query. A malformed series is skipped,
counted and reported once, and the run goes on.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from app.cli import main
from collectors.metrics.prometheus import reader
from core import conventions as c
from core.store.warehouse import open_warehouse
from tests.fake_store import PASS, FakeStore, Fault, serving
from tests.serve_helpers import ROOT

START, END = "2026-11-02T00:00:00Z", "2026-11-02T02:00:00Z"
# how the collector reads the simulated day: kube-state-metrics' 5-minute scrapes, read off the store
SIM_SELECTOR = reader.selector_for("prometheus", 300, 300_000)
Script = Callable[[int, dict[str, str]], Fault]


def _collect(url: str, wh: Path, tmp_path: Path, *extra: str, timeout: str = "3s") -> Result:
    config = tmp_path / "settings.yaml"
    config.write_text(
        "collect:\n  retries: 2\n  commit_window: 1h\n  concurrency: 2\n  pushdown: query\n"
        f"  timeout: {timeout}\n  cluster: sim-us-east-1\n"
    )
    args = ["--config", str(config), "--warehouse", str(wh), "collect", "prometheus", "--url", url, *extra]
    return CliRunner().invoke(main, args)


def _window_rows(wh: Path, table: str, lo: str = START, hi: str = END) -> list[tuple]:
    with open_warehouse(wh, read_only=True) as con:
        found = con.execute(f"SELECT * FROM {table} WHERE ts >= ?::TIMESTAMP AND ts < ?::TIMESTAMP", [lo, hi])
        return sorted(found.fetchall(), key=repr)


def _collected(store: FakeStore, tmp_path: Path) -> Path:
    """The fixture window collected through the store (which must let it succeed)."""
    wh = tmp_path / "wh.duckdb"
    with serving(store) as url:
        result = _collect(url, wh, tmp_path, "--start", START, "--end", END)
    assert result.exit_code == 0, result.output
    return wh


def _assert_rows_of_direct_ingestion(wh: Path, direct: Path, *tables: str) -> None:
    for table in tables or (c.T_POD_ALLOCATIONS, c.T_GPU_SAMPLES):
        assert _window_rows(wh, table) == _window_rows(direct, table), table


def _first_queries(fault: Fault, count: int = 1) -> Script:
    queries = itertools.count()
    return lambda n, params: fault if "query" in params and next(queries) < count else PASS


def _every_query(fault: Fault) -> Script:
    return lambda n, params: fault if "query" in params else PASS


def _names_request(fault: Fault) -> Script:
    """The fault on the metric-names request each commit window starts with; queries pass."""
    return lambda n, params: PASS if "query" in params else fault


RECOVERED = {
    "a 503 is retried": Fault("status", 503, b'{"status":"error","error":"overloaded"}'),
    "a timeout is retried": Fault("delay", seconds=4.0),
    "a body cut short is retried": Fault("cut"),
    "malformed JSON is retried": Fault("malformed"),
    "a partial answer is retried": Fault("partial"),
}


@pytest.mark.parametrize("case", list(RECOVERED), ids=list(RECOVERED))
def test_a_transient_fault_is_retried_and_the_window_commits_exactly(
    case: str, prometheus_url: str, direct_warehouse: Path, tmp_path: Path
) -> None:
    wh = _collected(FakeStore(prometheus_url, _first_queries(RECOVERED[case])), tmp_path)
    _assert_rows_of_direct_ingestion(wh, direct_warehouse)


FAILING = {
    "5xx until retries run out": (Fault("status", 502, b"bad gateway"), "HTTP 502"),
    "timeouts until retries run out": (Fault("delay", seconds=2.5), "timed out"),
    "malformed JSON until retries run out": (Fault("malformed"), "malformed answer"),
    "partial answers until retries run out": (Fault("partial"), "partial answer"),
    "bodies cut short until retries run out": (Fault("cut"), "cut short"),
}


@pytest.mark.parametrize("case", list(FAILING), ids=list(FAILING))
def test_a_lasting_fault_fails_transiently_names_the_query_and_commits_nothing(
    case: str, prometheus_url: str, tmp_path: Path
) -> None:
    fault, message = FAILING[case]
    store = FakeStore(prometheus_url, _every_query(fault))
    wh = tmp_path / "wh.duckdb"
    with serving(store) as url:
        result = _collect(url, wh, tmp_path, "--start", START, "--end", END, timeout="1s")
    assert result.exit_code == 3, result.output
    assert message in result.output and "query '" in result.output and "gave up after 3 attempts" in result.output
    assert len(result.output.strip().splitlines()) == 1
    with open_warehouse(wh, read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM {c.T_POD_ALLOCATIONS}").fetchall() == [(0,)]
        assert con.execute(f"SELECT count(*) FROM {c.T_WATERMARKS}").fetchall() == [(0,)]


def test_a_rejected_query_is_terminal_at_once_and_shows_the_query(prometheus_url: str, tmp_path: Path) -> None:
    body = b'{"status":"error","errorType":"bad_data","error":"parse error: unexpected end of input"}'
    store = FakeStore(prometheus_url, _every_query(Fault("status", 400, body)))
    with serving(store) as url:
        result = _collect(url, tmp_path / "wh.duckdb", tmp_path, "--start", START, "--end", END)
    assert result.exit_code == 2
    assert "query '" in result.output
    queries = {s.params.get("query") for s in store.seen if "query" in s.params}
    assert len(store.seen) <= 2 * len(queries)  # no retries: at most the requests already in flight


def test_queries_for_metrics_the_store_does_not_hold_are_not_sent_and_the_rows_are_the_same(
    prometheus_url: str, direct_warehouse: Path, tmp_path: Path
) -> None:
    store = FakeStore(prometheus_url)
    wh = _collected(store, tmp_path)
    names = [s for s in store.seen if s.path.endswith("/label/__name__/values")]
    held = set(requests.get(f"{prometheus_url}/api/v1/label/__name__/values", timeout=10).json()["data"])
    assert len(names) == 2  # one per commit window
    sent = {s.params["query"] for s in store.seen if s.path.endswith("query_range")}
    planned = reader.pushdown_plan("plain", SIM_SELECTOR)
    assert sent == {q.promql for q in planned if set(q.reads) & held}
    assert len(sent) < len(planned)  # the fixture fleet runs no Triton, TGI, SGLang...
    _assert_rows_of_direct_ingestion(wh, direct_warehouse, c.T_POD_ALLOCATIONS, c.T_GPU_SAMPLES, c.T_HEALTH_SAMPLES)


NAMES_REFUSED = {
    "a 404 from a proxy that only lets queries through": Fault("status", 404, b"not found"),
    "a 403": Fault("status", 403, b'{"status":"error","error":"forbidden"}'),
    "a partial list": Fault("partial"),
}


@pytest.mark.parametrize("case", list(NAMES_REFUSED), ids=list(NAMES_REFUSED))
def test_a_store_that_will_not_list_its_metric_names_gets_every_query(
    case: str, prometheus_url: str, direct_warehouse: Path, tmp_path: Path
) -> None:
    store = FakeStore(prometheus_url, _names_request(NAMES_REFUSED[case]))
    wh = _collected(store, tmp_path)
    sent = {s.params["query"] for s in store.seen if s.path.endswith("query_range")}
    assert sent == {q.promql for q in reader.pushdown_plan("plain", SIM_SELECTOR)}
    _assert_rows_of_direct_ingestion(wh, direct_warehouse)


def test_a_lasting_fault_on_the_metric_names_request_fails_transiently_and_commits_nothing(
    prometheus_url: str, tmp_path: Path
) -> None:
    store = FakeStore(prometheus_url, _names_request(Fault("status", 503, b"down")))
    wh = tmp_path / "wh.duckdb"
    with serving(store) as url:
        result = _collect(url, wh, tmp_path, "--start", START, "--end", END, timeout="1s")
    assert result.exit_code == 3, result.output
    assert "HTTP 503: down for metric names [2026-11-01T23:55" in result.output
    with open_warehouse(wh, read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM {c.T_WATERMARKS}").fetchall() == [(0,)]


def test_a_failure_in_a_later_window_keeps_the_committed_ones_and_the_next_run_resumes(
    prometheus_url: str, direct_warehouse: Path, tmp_path: Path
) -> None:
    outage = {"on": True}

    def second_window_fails(n: int, params: dict[str, str]) -> Fault:
        late = float(params.get("start", "0")) >= 1793581200  # 2026-11-02T01:00:00Z
        return Fault("status", 503, b"down") if late and outage["on"] else PASS

    wh = tmp_path / "wh.duckdb"
    with serving(FakeStore(prometheus_url, second_window_fails)) as url:
        failed = _collect(url, wh, tmp_path, "--start", START, "--end", END, timeout="1s")
        assert failed.exit_code == 3
        first_hour = _window_rows(wh, c.T_POD_ALLOCATIONS, hi="2026-11-02T01:00:00Z")
        assert first_hour == _window_rows(direct_warehouse, c.T_POD_ALLOCATIONS, hi="2026-11-02T01:00:00Z")
        assert _window_rows(wh, c.T_POD_ALLOCATIONS, lo="2026-11-02T01:00:00Z") == []
        outage["on"] = False
        resumed = _collect(url, wh, tmp_path, "--end", END)  # no --start: from the watermark
    assert resumed.exit_code == 0, resumed.output
    assert f"prometheus:{url} 2026-11-02T01:00Z..2026-11-02T02:00Z" in resumed.output
    assert _window_rows(wh, c.T_POD_ALLOCATIONS) == _window_rows(direct_warehouse, c.T_POD_ALLOCATIONS)


def test_ctrl_c_while_the_store_keeps_a_window_exits_130_at_once_keeping_the_windows_committed_before(
    prometheus_url: str, direct_warehouse: Path, tmp_path: Path
) -> None:
    """The next window is fetched while the current one commits: Ctrl-C must not wait for a store that stopped
    answering (here for 300 s, within collect.timeout), in the pipeline or at the process's exit."""
    waiting = threading.Event()

    def second_window_hangs(n: int, params: dict[str, str]) -> Fault:
        if float(params.get("start", "0")) >= 1793581200:  # 2026-11-02T01:00:00Z
            waiting.set()
            return Fault("delay", seconds=300)
        return PASS

    wh, config = tmp_path / "wh.duckdb", tmp_path / "settings.yaml"
    config.write_text("collect: {retries: 0, commit_window: 1h, timeout: 600s, cluster: sim-us-east-1}\n")
    # Ctrl-C as a terminal sends it: SIGINT raising KeyboardInterrupt (a test worker may have it ignored)
    command = "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); runpy.run_module('app', run_name='__main__')"
    log = tmp_path / "collect.log"
    with serving(FakeStore(prometheus_url, second_window_hangs)) as url, log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", command, "--config", str(config), "--warehouse", str(wh), "collect", "prometheus",
             "--url", url, "--start", START, "--end", END],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            assert waiting.wait(120), "the collection never asked for the second window"
            deadline = time.monotonic() + 120
            while '"windows": 1,' not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)  # the first window commits (its progress line: one per commit window)
            began = time.monotonic()
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
        finally:
            proc.kill()
    output = log.read_text()
    assert (proc.returncode, time.monotonic() - began < 20) == (130, True), output[-3000:]
    assert "gpuledger: interrupted" in output
    assert _window_rows(wh, c.T_POD_ALLOCATIONS) == _window_rows(
        direct_warehouse, c.T_POD_ALLOCATIONS, hi="2026-11-02T01:00:00Z"
    )  # the first hour, exactly, and nothing of the second


def test_a_malformed_series_is_skipped_counted_and_reported_once(prometheus_url: str, tmp_path: Path) -> None:
    def corrupt_allocations(n: int, params: dict[str, str]) -> Fault:
        return Fault("bad_series") if c.KSM_POD_REQUESTS in params.get("query", "") else PASS

    wh = tmp_path / "wh.duckdb"
    with serving(FakeStore(prometheus_url, corrupt_allocations)) as url:
        result = _collect(url, wh, tmp_path, "--start", START, "--end", END)
    assert result.exit_code == 0, result.output
    # one per query reading the requests (Running pods' and Pending pods') per commit window: 2 x 2
    assert "; 4 malformed series skipped" in result.output
    assert result.output.count("malformed series were skipped") == 1
    with open_warehouse(wh, read_only=True) as con:
        assert con.execute(f"SELECT sum(skipped_series) FROM {c.T_INGEST_RUNS}").fetchall() == [(4,)]


@pytest.mark.parametrize(("draw", "expected"), [(1.0, [0.5, 1.0, 2.0, 4.0, 5.0]), (0.5, [0.25, 0.5, 1.0, 2.0, 2.5])])
def test_backoff_doubles_per_attempt_with_full_jitter_up_to_a_cap(draw: float, expected: list[float]) -> None:
    from collectors.metrics.http import HttpClient, HttpConfig

    client = HttpClient("http://127.0.0.1:1", HttpConfig(backoff_base_s=0.5, backoff_max_s=5.0), rng=lambda: draw)
    assert [client.backoff(attempt) for attempt in range(5)] == expected


def test_retries_sleep_between_attempts_and_stop_at_the_configured_count(prometheus_url: str) -> None:
    from collectors.metrics.http import HttpClient, HttpConfig
    from core.errors import SourceUnavailable

    slept: list[float] = []
    store = FakeStore(prometheus_url, _every_query(Fault("status", 503, b"busy")))
    with serving(store) as url:
        client = HttpClient(url, HttpConfig(retries=3), sleep=slept.append, rng=lambda: 1.0)
        with pytest.raises(SourceUnavailable, match="HTTP 503: busy .*gave up after 4 attempts"):
            client.get("/api/v1/query", {"query": "up"}, "query 'up'")
    assert len(store.seen) == 4 and slept == [0.5, 1.0, 2.0]
