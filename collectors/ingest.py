"""Entry points of the collect stage: OpenMetrics files and Prometheus-compatible APIs.

Both read everything first, then stage it in temp tables, then commit in one transaction:
bad input raises before the warehouse is touched, and the warehouse never holds half a window.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from collectors import load, prometheus, stage
from collectors.openmetrics import Samples, parse_file
from collectors.series import SeriesContext, describe, wants_family, wants_series
from core.settings import CollectSettings
from core.timeutil import Window, parse_duration
from core.warehouse import open_warehouse


def collect_files(
    warehouse: Path,
    paths: list[Path],
    settings: CollectSettings,
    window: Window | None = None,
    at: datetime | None = None,
) -> load.LoadResult:
    """Ingest OpenMetrics / Prometheus-text files (all parsed before anything is written)."""
    default_ts = int(_epoch_ms(at)) if at is not None else None
    require_eof = at is None
    parsed = [parse_file(p, wants_family, wants_series, default_ts, require_eof) for p in paths]
    ctx = SeriesContext(settings.cluster, settings.workload_label_style)
    meta, sid, t_ms, v = _combine(parsed, ctx)
    step_s = parse_duration(settings.step)
    lookback_ms = parse_duration(settings.lookback) * 1000
    if at is not None:
        lookback_ms = step_s * 1000 - 1  # a lone scrape stands for the one step it falls in, not a lookback
    result = load.LoadResult(source="files:" + ",".join(sorted(p.name for p in paths)), samples=len(v))
    window_ms = None
    if window is not None:
        window_ms = (int(_epoch_ms(window.start)), int(_epoch_ms(window.end)))
    with open_warehouse(warehouse) as con:
        stage.register_meta(con, meta)
        stage.register_points(con, "stage_raw", sid, t_ms, v)
        stage.resample(con, step_s * 1000, lookback_ms, window_ms)
        stage.build_staged(con, step_s)
        load.commit(con, result)
    return result


def collect_prometheus(
    warehouse: Path, url: str, window: Window, settings: CollectSettings, step_s: int | None = None
) -> load.LoadResult:
    """Read the window from a Prometheus-compatible API, then commit it atomically."""
    step = step_s or parse_duration(settings.step)
    client = prometheus.make_client(url, parse_duration(settings.timeout), settings.retries)
    # messages name the URL without user:password@ (issue 11: secrets never reach logs or errors)
    fetched = prometheus.fetch(client, _redact(url), window, step, settings.max_points_per_query)
    ctx = SeriesContext(settings.cluster, settings.workload_label_style)
    meta = [describe(i, name, labels, ctx) for i, (name, labels) in enumerate(fetched.series)]
    result = load.LoadResult(
        source=f"prometheus:{_redact(url)}", samples=len(fetched.v), skipped_series=fetched.skipped_series
    )
    with open_warehouse(warehouse) as con:
        stage.register_meta(con, meta)
        stage.register_points(con, "stage_grid", fetched.sid, fetched.t_ms, fetched.v)
        stage.build_staged(con, step)
        load.commit(con, result, watermark=window.end)
    return result


def _combine(
    parsed: list[Samples], ctx: SeriesContext
) -> tuple[list[dict[str, object]], np.ndarray, np.ndarray, np.ndarray]:
    meta: list[dict[str, object]] = []
    sids, times, values = [], [], []
    for samples in parsed:
        offset = len(meta)
        meta += [describe(offset + i, name, labels, ctx) for i, (name, labels) in enumerate(samples.series)]
        sids.append(np.frombuffer(samples.sid, dtype=np.int32) + offset)
        times.append(np.frombuffer(samples.ts_ms, dtype=np.int64))
        values.append(np.frombuffer(samples.value, dtype=np.float64))
    if not sids:
        return meta, np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0)
    return meta, np.concatenate(sids), np.concatenate(times), np.concatenate(values)


def _epoch_ms(ts: datetime) -> float:
    return (ts - datetime(1970, 1, 1)) / timedelta(milliseconds=1)


def _redact(url: str) -> str:
    """Drop user:password@ from a URL before it is stored or printed."""
    if "@" in url.split("//", 1)[-1].split("/", 1)[0]:
        scheme, rest = url.split("//", 1) if "//" in url else ("", url)
        return f"{scheme}//{rest.split('@', 1)[1]}"
    return url
