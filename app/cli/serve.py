"""`gpuledger serve`: run the collections, analytics, rules, exports and price refreshes on a schedule.

APScheduler (3.x, background scheduler, UTC) owns the timing; one worker thread runs the jobs in
turn. Catch-up is not APScheduler's job store: it is derived from the warehouse and the export
folder at start (app/service/runner.py), so it survives a lost pod, a restored backup or a new node.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from app.cli.base import Context, fail_cleanly, main, pass_ctx
from core import conventions as c
from core.errors import ConfigError, TerminalError
from core.settings import Settings, with_override
from core.store.lock import WarehouseLock
from core.store.sql import literal
from core.timeutil import parse_duration

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from app.service.runner import Service

log = logging.getLogger("gpuledger.serve")


def build_scheduler(service: Service) -> BackgroundScheduler:
    """Every job of the settings, first runs after the start-up catch-up (which runs at once)."""
    # imported here: APScheduler costs every other `gpuledger` command a tenth of a second at start
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    s = service.settings.service
    scheduler = BackgroundScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(1)},
        # a run that could not start on time (the worker was busy, the host slept) runs once, late
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    now = datetime.now(UTC)
    scheduler.add_job(service.catch_up, "date", run_date=now, id="catch-up")
    for source in s.sources:
        every = parse_duration(source.interval)
        trigger = IntervalTrigger(seconds=every, start_date=now + timedelta(seconds=every), timezone=UTC)
        scheduler.add_job(service.collect_source, trigger, args=(source,), id=f"{c.JOB_COLLECT}:{source.name}")
    if s.weekly_export:
        trigger = CronTrigger(day_of_week=c.EXPORT_WEEKDAY, hour=c.EXPORT_HOUR_UTC, minute=0, timezone=UTC)
        scheduler.add_job(service.run_job, trigger, args=(c.JOB_EXPORT, service.export_due), id=c.JOB_EXPORT)
    health_every = parse_duration(s.health_interval)
    if health_every > 0:
        trigger = IntervalTrigger(seconds=health_every, start_date=now + timedelta(seconds=health_every), timezone=UTC)
        scheduler.add_job(service.run_job, trigger, args=(c.JOB_HEALTH, service.evaluate_health), id=c.JOB_HEALTH)
    if service.config is not None:
        every = parse_duration(s.config_check_interval)
        trigger = IntervalTrigger(seconds=every, start_date=now + timedelta(seconds=every), timezone=UTC)
        scheduler.add_job(service.run_job, trigger, args=(c.JOB_RULES, service.check_config), id=c.JOB_RULES)
    if s.price_refresh:
        hour, minute = (int(x) for x in s.price_refresh_at.split(":"))
        trigger = CronTrigger(hour=hour, minute=minute, timezone=UTC)
        scheduler.add_job(service.run_job, trigger, args=(c.JOB_PRICES, service.refresh_prices), id=c.JOB_PRICES)
    return scheduler


def check_settings(settings: Settings) -> None:
    """Refuse what would fail on the first run anyway (validated once, at start)."""
    names = [src.name for src in settings.service.sources]
    if len(set(names)) != len(names):
        raise ConfigError("service.sources: source names must be unique")
    for src in settings.service.sources:
        if src.type == "prometheus" and not src.url:
            raise ConfigError(f"service.sources[{src.name}]: a prometheus source needs a url")
        if src.type == "openmetrics" and not src.paths:
            raise ConfigError(f"service.sources[{src.name}]: an openmetrics source needs paths")
        for value in (src.interval, src.backfill):
            if parse_duration(value) <= 0:
                raise ConfigError(f"service.sources[{src.name}]: durations must be positive")
    for value in (settings.service.commit_window, settings.service.config_check_interval):
        if parse_duration(value) <= 0:
            raise ConfigError("service: commit_window and config_check_interval must be positive")


def serve(service: Service, host: str, port: int) -> int:
    """Hold the warehouse lock, serve /metrics, run the scheduler until SIGTERM/SIGINT."""
    from app.service.metrics import MetricsServer

    with WarehouseLock(service.warehouse):
        service.seed()
        # signals caught and jobs planned before /healthz answers: a SIGTERM right after start-up stops cleanly
        with StopSignals() as signals:
            scheduler = build_scheduler(service)
            server = MetricsServer(host, port, service.metrics, service.health).start()
            log.info(
                "gpuledger serve: warehouse %s, /metrics and /healthz on http://%s:%d",
                service.warehouse,
                host,
                server.port,
            )
            scheduler.start()
            log.info("received %s", signal.Signals(signals.wait()).name)
            abandoned = _stop(service, scheduler, signals)
            server.stop()
    if abandoned:
        # the open transaction dies with the process: DuckDB rolls the window back on the next open
        log.error("the running job is abandoned (%s): exiting; its window rolls back", abandoned)
        logging.shutdown()
        os._exit(3)
    log.info("stopped cleanly")
    return 0


def _stop(service: Service, scheduler: BackgroundScheduler, signals: StopSignals) -> str | None:
    """No job starts any more; the running one may finish. None when it did, else why it is abandoned: a
    second SIGTERM or Ctrl-C (whoever sends it wants out now), or service.stop_timeout passed."""
    service.stop.set()
    log.info("stopping: no new jobs; waiting for the running one (a second signal exits at once)")
    scheduler.shutdown(wait=False)
    deadline = time.monotonic() + parse_duration(service.settings.service.stop_timeout)
    while not service.running.acquire(timeout=max(0.0, min(0.1, deadline - time.monotonic()))):
        second = signals.poll()
        if second is not None:
            return f"a second {signal.Signals(second).name}"
        if time.monotonic() >= deadline:
            return f"still running after service.stop_timeout ({service.settings.service.stop_timeout})"
    service.running.release()  # jobs check `stop` under this lock: none starts any more
    return None


class StopSignals:
    """SIGTERM and SIGINT, for the main thread to wait for.

    The handler only wakes the main thread (through the wakeup fd, which CPython's C-level handler writes
    the signal's number to): it takes no lock and writes no log line. A Python handler runs on the main
    thread between any two bytecodes, including inside `Event.wait` while it holds the event's
    non-reentrant lock, so a handler that called `Event.set()` could hang `serve` for good (CI, stop 45).
    """

    CAUGHT = (signal.SIGTERM, signal.SIGINT)

    def __enter__(self) -> StopSignals:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)  # the C handler must never block on a full pipe
        self._old_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._old = {signum: signal.signal(signum, _wake_only) for signum in self.CAUGHT}
        return self

    def wait(self) -> int:
        """Block until SIGTERM or SIGINT arrives (one that arrived since __enter__ counts); its number."""
        signum = None
        while signum is None:  # None: another signal's byte on the wakeup fd
            signum = self._next(None)
        return signum

    def poll(self) -> int | None:
        """A SIGTERM or SIGINT that arrived and was not yet taken, without waiting; else None."""
        return self._next(0.0)

    def _next(self, timeout: float | None) -> int | None:
        # one byte per signal: a second one stays for the next call
        if not select.select([self._read], [], [], timeout)[0]:
            return None
        signum = os.read(self._read, 1)[0]
        return signum if signum in self.CAUGHT else None

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._old_fd)
        os.close(self._read)
        os.close(self._write)


def _wake_only(signum: int, frame: Any) -> None:
    """The wakeup fd already carries the signal to StopSignals.wait."""


def configure_logging(secrets: list[str], quiet: bool = False) -> None:
    """One JSON object per event on stderr, UTC; known secrets are masked in every message and traceback;
    `quiet`: warnings and errors only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets))
    root = logging.getLogger("gpuledger")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False


# what a log call may add with `extra=`: the job, its source and window, how it ended and what it did
LOG_FIELDS = ("job", "source", "window", "outcome", "samples", "rows", "seconds")


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line: time, level, logger, message, the LOG_FIELDS it carries, any traceback."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def _masked(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self._masked(record.getMessage()),
        }
        line.update({k: getattr(record, k) for k in LOG_FIELDS if hasattr(record, k)})
        if record.exc_info:
            line["traceback"] = self._masked(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


def known_secrets(settings: Settings) -> list[str]:
    """Credentials the settings point at: URL passwords and the GCP key file's content."""
    from urllib.parse import urlsplit

    out = []
    urls = [settings.prometheus.url, *(s.url for s in settings.service.sources)]
    for url in filter(None, urls):
        parts = urlsplit(url)
        if parts.password:  # user names are not secret, and masking them would mask words in the log
            out.append(parts.password)
    key = settings.pricing.gcp_api_key_file
    if key is not None and key.is_file():
        out.append(key.read_text(encoding="utf-8").strip())
    return out


@main.command("serve")
@click.option("--metrics-host", default=None, help="Address of /metrics and /healthz (default service.metrics_host).")
@click.option("--metrics-port", default=None, type=int, help="Port of /metrics and /healthz (default 9464).")
@pass_ctx
@fail_cleanly
def serve_cmd(ctx: Context, metrics_host: str | None, metrics_port: int | None) -> None:
    """Run collections, health, rules, the weekly export and price refreshes on a schedule."""
    from app.service.runner import Service

    settings = with_override(ctx.settings, "service", metrics_host=metrics_host, metrics_port=metrics_port)
    check_settings(settings)
    configure_logging(known_secrets(settings), ctx.quiet)
    config = ctx.config if ctx.config and ctx.config.is_file() else None
    sys.exit(
        serve(
            Service(settings, Path(config) if config else None),
            settings.service.metrics_host,
            settings.service.metrics_port,
        )
    )


@main.command("backup")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New, empty directory for the snapshot.")
@pass_ctx
@fail_cleanly
def backup_cmd(ctx: Context, out: Path) -> None:
    """Snapshot the warehouse as Parquet files (DuckDB EXPORT DATABASE, read-only: safe while serve runs)."""
    from core.store.warehouse import open_warehouse

    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: not empty; give each backup its own directory")
    out.mkdir(parents=True, exist_ok=True)
    with open_warehouse(ctx.warehouse, read_only=True) as con:
        con.execute(f"EXPORT DATABASE {literal(str(out.resolve()))} (FORMAT parquet)")
    click.echo(f"backed up {ctx.warehouse} to {out} (restore: gpuledger --warehouse NEW.duckdb restore --from {out})")


@main.command("restore")
@click.option("--from", "source", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False))
@pass_ctx
@fail_cleanly
def restore_cmd(ctx: Context, source: Path) -> None:
    """Rebuild a warehouse from `gpuledger backup` files into a new file (never over an existing one)."""
    import duckdb

    from core.store.warehouse import open_warehouse

    if ctx.warehouse.exists():
        raise ConfigError(f"{ctx.warehouse}: exists; restore into a new file, then move it into place while stopped")
    ctx.warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(ctx.warehouse))
    try:
        con.execute(f"IMPORT DATABASE {literal(str(source.resolve()))}")
    except duckdb.Error as exc:
        con.close()
        for partial in (ctx.warehouse, ctx.warehouse.with_name(ctx.warehouse.name + ".wal")):
            partial.unlink(missing_ok=True)  # a new file: nothing of value is lost
        raise TerminalError(f"{source}: not a gpuledger backup ({str(exc).splitlines()[0]})") from None
    con.close()
    with open_warehouse(ctx.warehouse):  # a backup of an older schema is migrated now
        pass
    click.echo(f"restored {source} into {ctx.warehouse}")
