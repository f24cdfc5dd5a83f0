"""A tiny HTTP server in front of a real Prometheus that replays its recorded answers with faults.

Every request is forwarded to the real server and its answer recorded; a script then decides what
the client gets instead: the answer, a status with a body, a delay past the client's timeout, the
body cut short, malformed JSON, a Thanos-style partial answer, or one series corrupted. It also
records what each request carried (path, parameters, headers), so tests can check what was sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests


@dataclass(frozen=True)
class Fault:
    """What the client gets: kind in pass, status, delay, cut, malformed, partial, bad_series."""

    kind: str = "pass"
    status: int = 200
    body: bytes = b""
    seconds: float = 0.0


PASS = Fault()


@dataclass
class Seen:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeStore:
    upstream: str
    script: Callable[[int, dict[str, str]], Fault] = lambda n, params: PASS
    require_auth: str | None = None  # the exact Authorization header to demand
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    max_in_flight: int = 0

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        finished = threading.Event()

        def finish() -> None:
            """A query stops being in flight once its answer is ready, before the bytes go out: the
            client may send its next query the instant it has read them."""
            with self.lock:
                if not finished.is_set():
                    finished.set()
                    self.in_flight -= 1

        try:
            self._respond(handler, finish)
        finally:
            finish()

    def _respond(self, handler: BaseHTTPRequestHandler, finish: Callable[[], None]) -> None:
        parts = urlsplit(handler.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            n = len(self.seen)
            self.seen.append(Seen(parts.path, params, dict(handler.headers.items())))
        if self.require_auth is not None and handler.headers.get("Authorization") != self.require_auth:
            finish()
            return _send(handler, 401, b'{"status":"error","error":"unauthorized"}')
        fault = self.script(n, params)
        if fault.kind == "status":
            finish()
            return _send(handler, fault.status, fault.body)
        upstream = requests.get(f"{self.upstream}{parts.path}", params=params, timeout=60)
        body = upstream.content
        if fault.kind == "delay":
            time.sleep(fault.seconds)
        elif fault.kind == "cut":  # announce the whole body, send half, hang up
            finish()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body[: len(body) // 2])
            handler.close_connection = True
            return None
        elif fault.kind == "malformed":
            body = body[: len(body) // 2]
        elif fault.kind == "partial":
            answer = json.loads(body)
            answer["warnings"] = ["No StoreAPIs matched for this query: partial response"]
            body = json.dumps(answer).encode()
        elif fault.kind == "bad_series":
            body = corrupt_first_series(body)
        finish()
        return _send(handler, upstream.status_code, body)


def corrupt_first_series(body: bytes) -> bytes:
    """One series whose values are not numbers: the collector must skip and count it."""
    answer = json.loads(body)
    result = answer["data"]["result"]
    if result:
        result[0]["values"] = [[v[0], "not-a-number"] for v in result[0]["values"]]
    return json.dumps(answer).encode()


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@contextmanager
def serving(store: FakeStore, tls: tuple[str, str] | None = None) -> Iterator[str]:
    """Serve the fake store on a free 127.0.0.1 port (HTTPS with (cert, key) when given)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            store.respond(self)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # clients that timed out hang up mid-answer: expected here

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scheme = "http"
    if tls is not None:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
