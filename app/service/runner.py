"""`gpuledger serve`: the scheduled jobs. Each body is thin: it calls the stage function the
matching CLI command calls, and records what happened in the service's metrics and log.

Jobs run one at a time on a single worker thread (DuckDB allows one writer, and a collection must
not race the export that reads it). State that must survive a restart lives where the stages
already keep it: collection resumes from the warehouse's watermark, and a week counts as exported
when its folder holds a manifest. So catch-up after any outage is: collect from each watermark,
then export every due week whose data is complete, exactly once.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from app.jobs import record_health, weekly_inputs, write_rules
from app.publish import exports
from app.service import schedule
from app.service.metrics import ServiceMetrics
from app.stage_options import rule_spec
from collectors.metrics import http, ingest
from collectors.metrics.commit import LoadResult
from collectors.pricing import fetch as pricing_fetch
from collectors.pricing import price_table
from core import conventions as c
from core.errors import GpuledgerError, InputError, TransientError, WarehouseBusy
from core.settings import PrometheusSettings, Settings, SourceSettings, load_settings, with_override
from core.store.status import data_span, days_without_data
from core.store.warehouse import open_warehouse
from core.timeutil import Window, commit_windows, floor_step, iso, iso_week_window, parse_duration, to_epoch

log = logging.getLogger("gpuledger.serve")
Clock = Callable[[], datetime]
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def store_settings(settings: Settings, source: SourceSettings) -> PrometheusSettings:
    """A `prometheus` source's store: its own URL, with the `prometheus` section's flavor, tenant,
    credentials and TLS (secrets come from files or the environment, never from the URL in logs)."""
    return settings.prometheus.model_copy(update={"url": str(source.url)})


def watermark_key(prom: PrometheusSettings) -> str:
    """The watermark the collector records for a store (ingest.source_name: credentials stripped)."""
    return ingest.source_name(http.split_userinfo(str(prom.url).rstrip("/"))[0], prom.tenant)


class Service:
    def __init__(self, settings: Settings, config: Path | None = None, clock: Clock = utcnow) -> None:
        self.settings = settings
        self.rule_settings = settings
        self.config = config
        self.clock = clock
        self.metrics = ServiceMetrics()
        self.stop = threading.Event()
        self.running = threading.Lock()  # held while a job runs; SIGTERM waits for it
        self.watermarks: dict[str, datetime] = {}
        self.config_digest = _digest(config)
        self.last_ok: dict[str, str] = {}
        self.pending_weeks = 0

    @property
    def warehouse(self) -> Path:
        return self.settings.warehouse.path

    # --- bookkeeping -------------------------------------------------------------------------
    def run_job(self, job: str, fn: Callable[..., Any], *args: Any) -> bool:
        """Run one job body: time it, count its failure by kind, never let it kill the service."""
        label = f"{job} {args[0].name}" if args and isinstance(args[0], SourceSettings) else job
        with self.running:
            if self.stop.is_set():  # stopping: nothing new starts, not even the rest of a catch-up
                log.info("%s skipped: stopping", label)
                return False
            began = time.monotonic()
            fields: dict[str, object] = {"job": job, **({"source": args[0].name} if label != job else {})}
            try:
                fn(*args)
            except GpuledgerError as exc:
                kind = "transient" if isinstance(exc, TransientError) else "terminal"
                self.metrics.errors.labels(job=job, kind=kind).inc()
                log.error("%s failed (%s): %s", label, kind, exc, extra={**fields, "outcome": kind})
                return False
            except Exception:
                self.metrics.errors.labels(job=job, kind="bug").inc()
                log.exception("%s failed with an unexpected error (a bug: please report it)", label,
                              extra={**fields, "outcome": "bug"})  # fmt: skip
                return False
            finally:
                self.metrics.duration.labels(job=job).observe(time.monotonic() - began)
            seconds = round(time.monotonic() - began, 3)
            log.info("%s done in %.1f s", label, seconds, extra={**fields, "outcome": "ok", "seconds": seconds})
            self.metrics.job_success.labels(job=job).set(time.time())
            self.last_ok[job] = iso(utcnow())
            return True

    def seed(self) -> None:
        """Create or migrate the warehouse, then load watermarks and export state into the metrics."""
        self.metrics.start_time.set(time.time())
        with open_warehouse(self.warehouse) as con:
            marks = con.execute(f"SELECT source, last_ts FROM {c.T_WATERMARKS}").fetchall()
            runs = con.execute(
                f"SELECT source, max(finished_at) FROM {c.T_INGEST_RUNS} WHERE status = 'ok' GROUP BY source"
            ).fetchall()
        self.watermarks = {str(k): v for k, v in marks}
        finished = {str(k): v for k, v in runs}
        for source in self._prometheus_sources():
            key = watermark_key(store_settings(self.settings, source))
            if key in self.watermarks:
                self.metrics.watermark.labels(source=source.name).set(to_epoch(self.watermarks[key]))
            if finished.get(key):
                self.metrics.last_success.labels(source=source.name).set(to_epoch(finished[key]))
        self._export_gauges()

    # --- collection --------------------------------------------------------------------------
    def collect(self, source: SourceSettings) -> None:
        cs = with_override(self.settings, "collect", cluster=source.cluster).collect
        if source.type == "openmetrics":
            files = sorted({Path(p) for pattern in source.paths for p in glob.glob(pattern)})
            if not files:
                raise InputError(source.name, f"no file matches {', '.join(source.paths)}")
            self._collected(source, self._writing(ingest.collect_files, self.warehouse, files, cs), None)
            return
        step = parse_duration(cs.step)
        prom = store_settings(self.settings, source)
        key = watermark_key(prom)
        now = self.clock()
        end = floor_step(now - timedelta(seconds=parse_duration(cs.safety_lag)), step)
        start = self.watermarks.get(key) or floor_step(now - timedelta(seconds=parse_duration(source.backfill)), step)
        if end <= start:
            return
        length = parse_duration(self.settings.service.commit_window)
        for window in commit_windows(Window(start, end), length, step):
            if self.stop.is_set():
                log.info("%s: stopping before %s (collected up to the watermark)", source.name, iso(window.start))
                return
            result = self._writing(ingest.collect_prometheus, self.warehouse, prom, cs, window.start, window.end, now)
            self.watermarks[key] = max(window.end, self.watermarks.get(key, window.end))
            self._collected(source, result, window.end)

    def _writing(self, call: Callable[..., T], *args: Any) -> T:
        """Run a warehouse write, waiting up to service.lock_wait while readers (the dashboard, a backup)
        hold DuckDB's file lock: they let go between queries, so retrying soon gets in."""
        deadline = time.monotonic() + parse_duration(self.settings.service.lock_wait)
        while True:
            try:
                return call(*args)
            except WarehouseBusy:
                if time.monotonic() > deadline or self.stop.is_set():
                    raise
            time.sleep(0.2)

    def _collected(self, source: SourceSettings, result: LoadResult, watermark: datetime | None) -> None:
        m = self.metrics
        m.samples.labels(source=source.name).inc(result.samples)
        m.rows.labels(source=source.name).inc(result.total_rows)
        m.last_success.labels(source=source.name).set(time.time())
        if watermark is not None:
            m.watermark.labels(source=source.name).set(to_epoch(watermark))
        span = f"{iso(result.window[0])}..{iso(result.window[1])}" if result.window else ""
        fields = {"job": c.JOB_COLLECT, "source": source.name, "window": span, "outcome": "committed",
                  "samples": result.samples, "rows": result.total_rows}  # fmt: skip
        log.info("%s: collected %d samples %s (%d rows)", source.name, result.samples, span, result.total_rows,
                 extra=fields)  # fmt: skip

    def collect_source(self, source: SourceSettings) -> None:
        if self.run_job(c.JOB_COLLECT, self.collect, source):
            self.export_if_pending()

    def _prometheus_sources(self) -> list[SourceSettings]:
        return [s for s in self.settings.service.sources if s.type == "prometheus" and s.url]

    # --- weekly export -----------------------------------------------------------------------
    def export_due(self) -> None:
        """Export every due week whose collection covers it, oldest first; a week that is not covered waits
        (recorded with its reason in `waiting.json`) and is exported once its data arrives."""
        root = self.settings.export.directory
        waiting: dict[str, str] = {}
        for week in schedule.due_weeks(self.clock(), schedule.exported_weeks(root)):
            if self.stop.is_set():
                break
            ready, why = self._complete(week)
            if not ready:
                log.info("export %s: %s", week, why, extra={"job": c.JOB_EXPORT, "window": week, "outcome": "waiting"})
                waiting[week] = why
                continue
            published = exports.write_weekly(weekly_inputs(self.settings, week), root)
            self.metrics.export_success.set(time.time())
            log.info(
                "exported %s", published.summary(week), extra={"job": c.JOB_EXPORT, "window": week, "outcome": "ok"}
            )
        if not self.stop.is_set():
            schedule.write_waiting(root, waiting)
        self._export_gauges()

    def export_if_pending(self) -> None:
        if self.settings.service.weekly_export and self.pending_weeks > 0:
            self.run_job(c.JOB_EXPORT, self.export_due)

    def _complete(self, week: str) -> tuple[bool, str]:
        """Does collection cover the week: data on each of its days, and every store read up to its end?"""
        window = iso_week_window(week)
        with open_warehouse(self.warehouse, read_only=True) as con:
            span = data_span(con)
            missing = days_without_data(con, window)
        if span is None or span[0] > window.start:
            return False, "waiting: the warehouse holds no data from the week's start"
        for source in self._prometheus_sources():
            mark = self.watermarks.get(watermark_key(store_settings(self.settings, source)))
            if mark is None or mark < window.end:
                return False, f"waiting for {source.name} to collect up to {iso(window.end)}"
        if not self._prometheus_sources() and span[1] < window.end:
            return False, f"waiting: the warehouse's data ends at {iso(span[1])}"
        if missing:
            days = ", ".join(f"{d:%Y-%m-%d}" for d in missing)
            return (
                False,
                f"waiting: no data collected on {days} (collect it, or export by hand with `gpuledger export weekly`)",
            )
        return True, ""

    def _export_gauges(self) -> None:
        done = schedule.exported_weeks(self.settings.export.directory)
        if done:
            self.metrics.export_week_end.set(to_epoch(iso_week_window(done[-1]).end))
        pending = schedule.due_weeks(self.clock(), done) if self.settings.service.weekly_export else []
        self.pending_weeks = len(pending)
        self.metrics.export_pending.set(len(pending))

    # --- analytics, rules, prices ------------------------------------------------------------
    def evaluate_health(self) -> None:
        s = self.settings.service
        lag = parse_duration(self.settings.collect.safety_lag)
        end = floor_step(self.clock() - timedelta(seconds=lag), 60)
        log.info(
            "health: %s",
            record_health(self.settings, Window(end - timedelta(seconds=parse_duration(s.health_window)), end)),
        )

    def check_config(self, force: bool = False) -> None:
        """Regenerate the rules when the settings file changed (a bad file keeps the old rules)."""
        digest = _digest(self.config)
        if digest != self.config_digest and self.config is not None:
            self.rule_settings = load_settings(self.config)
            self.config_digest = digest
            log.info("settings file %s changed: regenerating rules", self.config)
            force = True
        if force and self.settings.service.rules_dir is not None:
            paths = write_rules(rule_spec(self.rule_settings), self.settings.service.rules_dir)
            log.info("rules: wrote %d files to %s", len(paths), self.settings.service.rules_dir)

    def refresh_prices(self) -> None:
        for provider in self.settings.service.price_refresh:
            parsed = pricing_fetch.fetch(provider, self.settings.pricing)
            with open_warehouse(self.warehouse) as con:
                changed = price_table.store(con, parsed.rows).changed
            log.info("prices: %s: %d rows (%d new or changed)", provider, len(parsed.rows), changed)

    # --- start-up ----------------------------------------------------------------------------
    def catch_up(self) -> None:
        """What a (re)start owes: collect every source from its watermark, then export due weeks."""
        for source in self.settings.service.sources:
            if self.stop.is_set():
                return
            self.run_job(c.JOB_COLLECT, self.collect, source)
        if self.settings.service.weekly_export:
            self.run_job(c.JOB_EXPORT, self.export_due)
        if parse_duration(self.settings.service.health_interval) > 0:
            self.run_job(c.JOB_HEALTH, self.evaluate_health)
        self.run_job(c.JOB_RULES, self.check_config, True)

    def health(self) -> tuple[bool, dict[str, Any]]:
        ok = not self.stop.is_set()
        return ok, {"status": "ok" if ok else "stopping", "last_success": dict(sorted(self.last_ok.items()))}


def _digest(path: Path | None) -> str:
    if path is None or not path.is_file():
        return ""
    return hashlib.sha256(path.read_bytes()).hexdigest()
