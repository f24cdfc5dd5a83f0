"""`gpuledger serve` as a real process against a real Prometheus: the lock, SIGTERM, kill -9 mid-collection
(the warehouse opens, the watermark is consistent, a restart ends identical to an uninterrupted run), and
a known credential that must appear nowhere: logs, errors, the warehouse, /metrics, exports, the dashboard."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from app.cli import main
from core import conventions as c
from core.store.lock import WarehouseLock
from core.store.warehouse import one, open_warehouse
from core.timeutil import Window, iso, iso_week_of
from tests.conftest import free_port, run_cli, serve_prometheus
from tests.helpers import content_digest
from tests.serve_helpers import ROOT, ServeProcess
from tests.servers import hanging_store, refused_port

TOKEN = "s3cr3t-T0KEN-4b1d"


@pytest.fixture(scope="module")
def recent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Window]]:
    """Three simulated hours that ended two hours ago, served by a real Prometheus: (its port, the window)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    base = tmp_path_factory.mktemp("recent")
    out = base / "fleet"
    result = run_cli("simulate", "--start", iso(start), "--days", "0.125", "--out", str(out), "--no-incidents")
    assert result.exit_code == 0, result.output
    with serve_prometheus(sorted(out.glob("*.om")), base) as url:
        yield int(url.rsplit(":", 1)[1]), Window(start, start + timedelta(hours=3))


def _config(tmp_path: Path, name: str, port: int, extra: str = "") -> Path:
    config = tmp_path / f"{name}.yaml"
    url = f"http://gpuledger:{TOKEN}@127.0.0.1:{port}"
    config.write_text(
        f"warehouse: {{path: {tmp_path / name}.duckdb}}\n"
        "collect: {retries: 0, timeout: 20s}\n"
        "service:\n  weekly_export: false\n  health_interval: 0s\n  commit_window: 1h\n"
        f"  sources:\n    - {{name: prod, type: prometheus, url: '{url}', backfill: 6h}}\n{extra}"
    )
    return config


def _facts_before(path: Path, mark: datetime) -> dict[str, list[tuple]]:
    with open_warehouse(path, read_only=True) as con:
        rows = {t: con.execute(f"SELECT * FROM {t} WHERE ts < ?", [mark]).fetchall() for t in c.FACT_TABLES}
    return {t: sorted(r, key=repr) for t, r in rows.items()}  # repr: queue rows hold NULLs, which do not sort


def test_a_second_instance_is_refused_and_sigterm_stops_the_first_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "s.yaml"
    config.write_text(f"warehouse: {{path: {tmp_path / 'wh.duckdb'}}}\nservice: {{weekly_export: false}}\n")
    first = ServeProcess(config, free_port(), tmp_path / "first.log")
    try:
        first.wait_ready()
        second = CliRunner().invoke(main, ["--config", str(config), "serve", "--metrics-port", str(free_port())])
        assert second.exit_code == 3
        assert f"pid {first.proc.pid}" in second.output and "already written by another gpuledger" in second.output
        began = time.monotonic()
        assert first.stop() == 0
        assert time.monotonic() - began < 15 and "stopped cleanly" in first.log.read_text()
        WarehouseLock(tmp_path / "wh.duckdb").acquire().release()  # released on exit
        killed = ServeProcess(config, free_port(), tmp_path / "killed.log")
        killed.wait_ready()
        killed.kill()
        WarehouseLock(tmp_path / "wh.duckdb").acquire().release()  # and by the kernel on kill -9
    finally:
        first.kill()


# (service.stop_timeout, the signals sent 0.5 s apart, why the log says the running job is abandoned)
ABANDON_CASES = {
    "the stop timeout passes": ("1s", [signal.SIGTERM], "still running after service.stop_timeout (1s)"),
    "a second signal arrives": ("300s", [signal.SIGTERM, signal.SIGINT], "a second SIGINT"),
}


@pytest.mark.parametrize(("stop_timeout", "signals", "why"), ABANDON_CASES.values(), ids=ABANDON_CASES)
def test_a_job_hung_on_its_store_is_abandoned_with_exit_3_and_the_warehouse_stays_as_it_was(
    tmp_path: Path, stop_timeout: str, signals: list[signal.Signals], why: str
) -> None:
    with hanging_store() as (url, connected):
        config = tmp_path / "s.yaml"
        config.write_text(
            f"warehouse: {{path: {tmp_path / 'wh.duckdb'}}}\ncollect: {{retries: 0, timeout: 300s}}\n"
            f"service:\n  weekly_export: false\n  stop_timeout: {stop_timeout}\n"
            f"  sources:\n    - {{name: hung, type: prometheus, url: '{url}', backfill: 6h}}\n"
        )
        hung = ServeProcess(config, free_port(), tmp_path / "serve.log")
        try:
            hung.wait_ready()
            assert connected.wait(60), hung.log.read_text()[-3000:]  # the start-up collection waits on the store
            began = time.monotonic()
            for sig in signals:
                os.kill(hung.proc.pid, sig)
                time.sleep(0.5)
            assert hung.proc.wait(timeout=60) == 3
            assert time.monotonic() - began < 30  # not the store's 300 s, nor a 300 s stop timeout
        finally:
            hung.kill()
    log = hung.log.read_text()
    assert f"the running job is abandoned ({why})" in log and "stopped cleanly" not in log
    WarehouseLock(tmp_path / "wh.duckdb").acquire().release()
    with open_warehouse(tmp_path / "wh.duckdb", read_only=True) as con:
        assert one(con, f"SELECT count(*) FROM {c.T_WATERMARKS}") == (0,)
        assert all(one(con, f"SELECT count(*) FROM {t}") == (0,) for t in c.FACT_TABLES)


# Each runs in its own interpreter: the signals are the process's, and a hang must fail, not stall the suite.
# `before_wait` is what the main thread does when the signal lands: Event.wait holds its event's (non-reentrant)
# lock for a few bytecodes before it sleeps, and a handler that set an event there hung `serve` for good.
STOP_SIGNAL_CASES = {
    "lands while the main thread holds an event's lock": (
        "stop = threading.Event()\nwith stop._cond:\n    os.kill(os.getpid(), signal.SIGTERM)\n    sum(range(9))",
        "SIGTERM",
    ),
    "lands before the main thread waits": ("os.kill(os.getpid(), signal.SIGINT)\ntime.sleep(0.2)", "SIGINT"),
    "lands while the main thread waits": (
        "threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()",
        "SIGTERM",
    ),
}


@pytest.mark.parametrize(("before_wait", "caught"), STOP_SIGNAL_CASES.values(), ids=STOP_SIGNAL_CASES)
def test_a_stop_signal_is_caught_wherever_it_lands_and_the_old_handlers_come_back(
    before_wait: str, caught: str
) -> None:
    script = (
        "import os, signal, threading, time\nfrom app.cli.serve import StopSignals\n"
        "with StopSignals() as signals:\n"
        + "".join(f"    {line}\n" for line in before_wait.splitlines())
        + "    print(signal.Signals(signals.wait()).name)\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, signal.set_wakeup_fd(-1))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.split()) == (0, [caught, "True", "-1"]), done.stderr


def test_kill_9_mid_collection_then_a_restart_ends_identical_to_an_uninterrupted_run(
    recent: tuple[int, Window], tmp_path: Path
) -> None:
    port, sim = recent
    key = f"prometheus:http://127.0.0.1:{port}"
    with refused_port() as down_port:  # a free_port() here once became the metrics port below
        down = f"    - {{name: down, type: prometheus, url: 'http://gpuledger:{TOKEN}@127.0.0.1:{down_port}'}}\n"
        whole = ServeProcess(_config(tmp_path, "whole", port, down), free_port(), tmp_path / "whole.log")
        whole.wait_ready()
        whole.wait_for(f"{c.M_JOB_DURATION}_count", at_least=2, job=c.JOB_COLLECT)  # both sources tried
        served = requests.get(f"{whole.url}/metrics", timeout=5).text
        served += requests.get(f"{whole.url}/healthz", timeout=5).text
        assert whole.value(f"{c.M_ERRORS}_total", job=c.JOB_COLLECT, kind="transient") == 1  # the down source
        assert whole.stop() == 0

    crashed = ServeProcess(_config(tmp_path, "crashed", port), free_port(), tmp_path / "crashed.log")
    crashed.wait_ready()
    crashed.wait_for(c.M_COLLECTION_WATERMARK, source="prod")  # one window committed, more to come
    time.sleep(random.uniform(0, 0.3))
    crashed.kill()
    with open_warehouse(tmp_path / "crashed.duckdb") as con:  # it opens: the open window is rolled back
        row = one(con, f"SELECT last_ts FROM {c.T_WATERMARKS} WHERE source = ?", [key])
        assert row is not None
        mark = row[0]
        for table in c.FACT_TABLES:
            assert one(con, f"SELECT count(*) FROM {table} WHERE ts >= ?", [mark]) == (0,), table
    assert mark < sim.end, "the kill landed after the collection had finished"
    assert _facts_before(tmp_path / "crashed.duckdb", mark) == _facts_before(tmp_path / "whole.duckdb", mark)

    resumed = ServeProcess(_config(tmp_path, "crashed", port), free_port(), tmp_path / "resumed.log")
    resumed.wait_ready()
    resumed.wait_for(f"{c.M_JOB_DURATION}_count", job=c.JOB_COLLECT)
    assert resumed.stop() == 0
    assert content_digest(tmp_path / "crashed.duckdb") == content_digest(tmp_path / "whole.duckdb")
    totals = [
        run_cli("--warehouse", str(tmp_path / f"{name}.duckdb"), "report", "chargeback", "--start", iso(sim.start),
                "--end", iso(sim.end), "--format", "json").output
        for name in ("whole", "crashed")
    ]  # fmt: skip
    assert totals[0] == totals[1] and '"gpu_hours"' in totals[0]
    _no_token_anywhere(tmp_path, sim, served, key)


def _no_token_anywhere(tmp_path: Path, sim: Window, served: str, key: str) -> None:
    assert TOKEN in (tmp_path / "whole.yaml").read_text()  # the grep below looks for the right string
    logs = "".join((tmp_path / f"{n}.log").read_text() for n in ("whole", "crashed", "resumed"))
    assert "collect down failed (transient)" in logs and "cannot connect" in logs  # the error was logged
    week = iso_week_of(sim.start)
    wh = str(tmp_path / "whole.duckdb")
    assert run_cli("--warehouse", wh, "export", "weekly", "--week", week, "--out", str(tmp_path / "x")).exit_code == 0
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix not in (".yaml",)]
    assert any(p.suffix == ".duckdb" for p in files) and any(p.name == c.EXPORT_MANIFEST for p in files)
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path
    page = _dashboard_text(Path(wh))
    assert key in page  # the data-status page shows the source, credentials stripped
    for text in (logs, served, page):
        assert TOKEN not in text and "gpuledger:" + TOKEN not in text


def _dashboard_text(warehouse: Path) -> str:
    import os

    os.environ["GPULEDGER_WAREHOUSE"], os.environ["GPULEDGER_CONFIG"] = str(warehouse), "/dev/null"
    try:
        at = AppTest.from_file(str(ROOT / "app" / "dashboard" / "streamlit_app.py"), default_timeout=120)
        at.run()
        at.switch_page(str(ROOT / "app" / "dashboard" / "pages" / "status.py"))
        at.run()
        assert not at.exception
        parts = [
            str(e.value) for kind in ("markdown", "title", "subheader", "warning", "success") for e in at.get(kind)
        ]
        parts += [e.value.to_csv() for e in at.dataframe]
        return "\n".join(parts)
    finally:
        del os.environ["GPULEDGER_WAREHOUSE"], os.environ["GPULEDGER_CONFIG"]


class _Echo(BaseHTTPRequestHandler):
    """A price API that refuses the key and echoes the request, key included, as some proxies do."""

    def do_GET(self) -> None:  # noqa: N802
        body = f"denied: {self.path}\n".encode()
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_api_key_echoed_back_by_a_server_never_reaches_the_error(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "key").write_text(TOKEN + "\n")
        config = tmp_path / "s.yaml"
        config.write_text(
            f"warehouse: {{path: {tmp_path / 'wh.duckdb'}}}\npricing:\n  gcp_api_key_file: {tmp_path / 'key'}\n"
            f"  gcp_catalog_url: http://127.0.0.1:{server.server_address[1]}/v1/skus\n"
        )
        result = CliRunner().invoke(main, ["--config", str(config), "pricing", "fetch", "gcp"])
        assert result.exit_code == 2 and "HTTP 403" in result.output and "key=***" in result.output
        assert TOKEN not in result.output
    finally:
        server.shutdown()
