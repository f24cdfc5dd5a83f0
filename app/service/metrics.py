"""`gpuledger serve`'s own observability: a private prometheus_client registry, /metrics and /healthz.

The HTTP server never touches the warehouse (DuckDB allows one writer, and the jobs are it): every
value is set by the jobs as they run, and seeded at start from the warehouse's watermarks and the
export folder, so a restart does not make a healthy collection look stale.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from core import conventions as c

# Job durations run from milliseconds (nothing new to collect) to many minutes (a backfill).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class ServiceMetrics:
    def __init__(self) -> None:
        disable_created_metrics()  # `_created` series double the exposition and no rule reads them
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.last_success = Gauge(
            c.M_COLLECTION_LAST_SUCCESS, "Unix time of the last successful collection", ["source"], registry=r
        )
        self.watermark = Gauge(
            c.M_COLLECTION_WATERMARK, "Unix time up to which the source's data is committed", ["source"], registry=r
        )
        self.samples = Counter(c.M_SAMPLES_INGESTED, "Samples read from each source", ["source"], registry=r)
        self.rows = Counter(c.M_ROWS_COMMITTED, "Warehouse rows committed from each source", ["source"], registry=r)
        self.errors = Counter(c.M_ERRORS, "Failed job runs by job and error kind", ["job", "kind"], registry=r)
        self.duration = Histogram(
            c.M_JOB_DURATION, "Duration of job runs", ["job"], buckets=DURATION_BUCKETS, registry=r
        )
        self.job_success = Gauge(c.M_JOB_LAST_SUCCESS, "Unix time of each job's last success", ["job"], registry=r)
        self.export_success = Gauge(c.M_EXPORT_LAST_SUCCESS, "Unix time of the last weekly export", registry=r)
        self.export_week_end = Gauge(
            c.M_EXPORT_LATEST_WEEK_END, "Unix time at which the newest exported week ends", registry=r
        )
        self.export_pending = Gauge(c.M_EXPORT_PENDING, "Weeks due for export but not exported yet", registry=r)
        self.start_time = Gauge(c.M_START_TIME, "Unix time the service started", registry=r)
        for job in (c.JOB_COLLECT, c.JOB_HEALTH, c.JOB_RULES, c.JOB_EXPORT, c.JOB_PRICES):
            for kind in c.ERROR_KINDS:  # present at 0, so increase() sees the first error
                self.errors.labels(job=job, kind=kind)

    def text(self) -> bytes:
        return generate_latest(self.registry)


def _handler(metrics: ServiceMetrics, health: Callable[[], tuple[bool, dict[str, Any]]]) -> type:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, metrics.text())
            elif path == "/healthz":
                ok, detail = health()
                self._send(200 if ok else 503, "application/json", json.dumps(detail).encode())
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n")

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # scrapes every 30 s would drown the service's own log

    return Handler


class MetricsServer:
    """/metrics and /healthz on a daemon thread (a scrape never blocks a job, nor the reverse)."""

    def __init__(
        self, host: str, port: int, metrics: ServiceMetrics, health: Callable[[], tuple[bool, dict[str, Any]]]
    ) -> None:
        self.server = ThreadingHTTPServer((host, port), _handler(metrics, health))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="gpuledger-metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
