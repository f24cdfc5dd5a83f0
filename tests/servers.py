"""Real servers for the tests: start, wait until ready, stop by process id; load data into them."""

from __future__ import annotations

import math
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml


class StubHandler(BaseHTTPRequestHandler):
    """A stub HTTP server's handler (an exporter, a store, a price API): answers with `reply`, logs nothing."""

    def reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass  # the test's own output stays readable


@contextmanager
def stub(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `handler` on a free port of `host` in a thread; yield its base URL; stop it afterwards."""
    server = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def refused_port() -> Iterator[int]:
    """A port that refuses connections for the whole block: bound and never listening, so no server
    started meanwhile (a `free_port()` is only free until someone binds it) can take it and answer."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@contextmanager
def hanging_store() -> Iterator[tuple[str, threading.Event]]:
    """A store that accepts connections and never answers (hung mid-request): its URL, and an event set once a
    client has connected."""
    connected = threading.Event()
    held: list[socket.socket] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return  # the listener was shut down
            connected.set()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", connected
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        for conn in held:
            conn.close()


@contextmanager
def running(args: list[str], log: Path, url: str, ready_path: str, **probe: Any) -> Iterator[None]:
    """Run a server until the block ends; it must answer 200 on ready_path within 60 s."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        _wait_ready(url, proc, ready_path, log, probe)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], ready_path: str, log: Path, probe: dict[str, Any]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: {log.read_text()[-500:]}")  # type: ignore[index]
        try:
            if requests.get(f"{url}{ready_path}", timeout=1, **probe).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{proc.args[0]} did not become ready within 60 s")  # type: ignore[index]


@contextmanager
def prometheus(binary: str, tsdb: Path, base: Path, web_config: Path | None = None, **probe: Any) -> Iterator[str]:
    """A Prometheus serving `tsdb`; with a --web.config.file (TLS, basic auth) when given."""
    config = base / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    port = free_port()
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tsdb}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=100y",
    ]
    if web_config is not None:
        args.append(f"--web.config.file={web_config}")
    url = f"{'https' if web_config else 'http'}://127.0.0.1:{port}"
    with running(args, base / f"prometheus-{port}.log", url, "/-/ready", **probe):
        yield url


def om_to_prometheus_text(om: Path) -> bytes:
    """OpenMetrics (timestamps in seconds) -> Prometheus text (milliseconds), for VictoriaMetrics' import."""
    out = []
    for line in om.read_text().splitlines():
        if line and not line.startswith("#"):
            head, ts = line.rsplit(" ", 1)
            out.append(f"{head} {round(float(ts) * 1000)}\n")
    return "".join(out).encode()


def recording_rules_as_openmetrics(
    url: str, rule_file: Path, start: float, end: float, step_s: int, live: dict[str, str] | None = None
) -> str:
    """Evaluate every recording rule of a PrometheusRule file at start, start+step, ..., end and
    write the results as OpenMetrics: the series a rule group evaluated on the grid would have
    stored (promtool's own rule backfill evaluates at the group's hash offset, not on the grid).

    `live`: record -> the expression a live Prometheus effectively evaluates where the backfilled
    TSDB lacks the staleness markers a live one writes (a deleted pod's series ending at the next
    scrape, not a lookback later)."""
    lines = []
    for group in yaml.safe_load(rule_file.read_text())["spec"]["groups"]:
        for rule in group["rules"]:
            expr = (live or {}).get(rule["record"], rule["expr"])
            answer = requests.get(
                f"{url}/api/v1/query_range",
                params={"query": expr, "start": start, "end": end, "step": step_s},
                timeout=120,
            ).json()
            assert answer["status"] == "success", answer
            for series in answer["data"]["result"]:
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(series["metric"].items()) if k != "__name__")
                for t, v in series["values"]:
                    if not math.isnan(float(v)):
                        lines.append(f"{rule['record']}{{{labels}}} {v} {int(float(t))}")
    return "\n".join(lines) + "\n# EOF\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
