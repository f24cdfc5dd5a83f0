"""Entry points of the collect stage: OpenMetrics files and Prometheus-compatible APIs.

Both read everything of a window first, then stage it in temp tables, then commit it in one
transaction: bad input raises before the warehouse is touched, and the warehouse never holds half
a window. A long Prometheus collection is cut into commit windows (`collect.commit_window`), each
fetched, staged and committed on its own with the source's watermark, so memory is bounded by the
commit window and an interrupted run resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np

from collectors.metrics import commit as load
from collectors.metrics import grid_stage, http
from collectors.metrics.om_file import parse_file
from collectors.metrics.openmetrics import ANY_TIME_MS, Samples
from collectors.metrics.prometheus import reader as prometheus
from collectors.metrics.series import SeriesContext, SeriesTable, wants_family, warnings_for
from core import conventions as c
from core.errors import ConfigError, InputError
from core.progress import SILENT, Progress
from core.settings import CollectSettings, PrometheusSettings
from core.store.warehouse import one, open_warehouse
from core.timeutil import Window, commit_windows, floor_step, iso, parse_duration


def plausible_ms(now: datetime) -> tuple[int, int]:
    """Sample times a collection without a window accepts: from PLAUSIBLE_FROM to a day past now."""
    return int(epoch_ms(PLAUSIBLE_FROM)), int(epoch_ms(now + PLAUSIBLE_AHEAD))


PLAUSIBLE_FROM = datetime(2000, 1, 1)
PLAUSIBLE_AHEAD = timedelta(days=1)


def collect_files(
    warehouse: Path,
    paths: list[Path],
    settings: CollectSettings,
    window: Window | None = None,
    at: datetime | None = None,
    now: datetime | None = None,
    progress: Progress = SILENT,
) -> load.LoadResult:
    """Ingest OpenMetrics / Prometheus-text files (all parsed before anything is written), reporting each file
    parsed and the commit.

    With a window, samples outside it (and its lookback) are dropped and counted; without one, a
    sample time before 2000 or more than a day ahead of now is refused naming its file and line."""
    default_ts = int(epoch_ms(at)) if at is not None else None
    require_eof = at is None
    bounds = ANY_TIME_MS if window is not None else plausible_ms(now or utcnow())
    if default_ts is not None and not bounds[0] <= default_ts <= bounds[1]:
        raise ConfigError(f"--at {at:%Y-%m-%dT%H:%M:%SZ} is not a plausible sample time (2000 to a day from now)")
    progress.begin("collect files", len(paths) + 1, "steps")
    try:
        # files parse in parallel: the fast path spends its time in Arrow, which releases the GIL
        with ThreadPoolExecutor(max_workers=min(4, max(1, len(paths))), thread_name_prefix="gpuledger-parse") as pool:
            limit = settings.max_line_kb * 1024
            parsed = []
            read = pool.map(lambda p: parse_file(p, wants_family, default_ts, require_eof, bounds, limit), paths)
            for path, samples in zip(paths, read, strict=True):
                parsed.append(samples)
                progress.step(file=str(path), samples=len(samples))
        source = "files:" + ",".join(sorted(p.name for p in paths))
        result = commit_samples(warehouse, parsed, settings, source, window, at is not None)
        progress.step(stage="commit", rows=result.total_rows)
        return result
    finally:
        progress.end()


def commit_samples(
    warehouse: Path,
    parsed: list[Samples],
    settings: CollectSettings,
    source: str,
    window: Window | None = None,
    single_scrape: bool = False,
) -> load.LoadResult:
    """Resample parsed samples onto the step grid and commit them in one transaction."""
    ctx = SeriesContext(settings.cluster, settings.workload_label_style)
    table, sid, t_ms, v = _combine(parsed)
    _refuse_conflicting_duplicates(table, sid, t_ms, v, source)
    step_s = parse_duration(settings.step)
    lookback_ms = parse_duration(settings.lookback) * 1000
    result = load.LoadResult(source=source)
    if single_scrape:  # a lone scrape stands for the one step it falls in, not a lookback
        reach = grid_stage.Reach(step_s * 1000 - 1, step_s * 1000 - 1)
    else:
        has_state, interval_ms = grid_stage.state_interval_ms(table, sid, t_ms)
        interval_ms = configured_interval_ms(settings) or interval_ms
        reach = state_reach(interval_ms, lookback_ms, result.warnings if has_state else [])
    window_ms = (int(epoch_ms(window.start)), int(epoch_ms(window.end))) if window else None
    if window_ms is not None:
        # what a grid point of the window (and the counters' step before it) can read, nothing else
        inside = (t_ms > window_ms[0] - step_s * 1000 - lookback_ms) & (t_ms <= window_ms[1])
        if not inside.all():
            dropped = int((~inside).sum())
            what = (
                "1 sample outside the window (and its lookback) was"
                if dropped == 1
                else f"{dropped} samples outside the window (and its lookback) were"
            )
            result.warnings.append(f"{what} dropped")
            sid, t_ms, v = sid[inside], t_ms[inside], v[inside]
    with open_warehouse(warehouse, memory_limit=settings.memory_limit) as con:
        _fast_writes(con)
        registered = grid_stage.register_series(con, "stage_raw", table, ctx, (sid, t_ms, v))
        result.samples, kinds, result.invalid = registered.samples, registered.kinds, registered.invalid
        grid_stage.resample(con, step_s * 1000, reach, window_ms)
        grid_stage.build_staged(con, step_s, window_ms)
        load.commit(con, result, window=(window.start, window.end) if window else None)
    result.warnings += warnings_for(kinds)
    return result


def configured_interval_ms(settings: CollectSettings) -> int | None:
    """collect.scrape_interval in ms, or None for `auto`."""
    if settings.scrape_interval == "auto":
        return None
    return parse_duration(settings.scrape_interval) * 1000


def state_reach(interval_ms: int | None, lookback_ms: int, warnings: list[str]) -> grid_stage.Reach:
    """How far state gauges' samples reach: to just before the next scrape; the lookback when the
    interval cannot be known (and a warning saying what that costs)."""
    if interval_ms is None:
        warnings.append(
            "kube-state-metrics' scrape interval could not be read off the samples: pods and nodes are carried "
            "for the lookback after their last sample (set collect.scrape_interval)"
        )
        return grid_stage.Reach(lookback_ms, lookback_ms)
    return grid_stage.Reach(interval_ms - 1, lookback_ms)


def collect_prometheus(
    warehouse: Path,
    prom: PrometheusSettings,
    settings: CollectSettings,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
    progress: Progress = SILENT,
) -> load.LoadResult:
    """Read [start, end) from a Prometheus-compatible API, one committed window at a time, reporting each.

    Without `start`, resume from the source's watermark; without `end`, stop `collect.safety_lag`
    before now. Both are aligned down to the step."""
    if not prom.url:
        raise ConfigError("no Prometheus URL: pass --url or set prometheus.url in the settings file")
    step = parse_duration(settings.step)
    client = http.HttpClient(prom.url, http.config_for(prom, parse_duration(settings.timeout), settings.retries))
    source = source_name(client.base_url, prom.tenant)
    reader = prometheus.Reader(client, prom.flavor, step, settings.max_points_per_query, settings.concurrency)
    total = load.LoadResult(source=source)
    kinds: set[str] = set()
    now = now or utcnow()
    # the watermark never passes what the store can already hold completely: a window reaching
    # into the future is collected, but resuming starts again where the data was still arriving
    settled = floor_step(now - timedelta(seconds=parse_duration(settings.safety_lag)), step)
    with open_warehouse(warehouse, memory_limit=settings.memory_limit) as con:
        _fast_writes(con)
        window = resolve_window(con, source, start, end, now, step, settings)
        if window is None:
            total.warnings.append(f"nothing new to collect from {source} yet")
            return total
        interval_ms = store_interval_ms(reader, settings, window, now, total.warnings)
        for part, part_kinds in _pipeline(con, reader, settings, source, window, settled, interval_ms, progress):
            total.add(part)
            kinds |= part_kinds
    total.warnings += warnings_for(kinds)
    return total


def store_interval_ms(
    reader: prometheus.Reader, settings: CollectSettings, window: Window, now: datetime, warnings: list[str]
) -> int | None:
    """kube-state-metrics' scrape interval: configured, or read off the store's samples at the end of
    the window (else near its start); None (state carried for the lookback) when the store holds none."""
    configured = configured_interval_ms(settings)
    if configured is not None:
        return configured
    for at in (min(window.end, now), min(window.start + timedelta(hours=3), window.end)):
        interval_ms = reader.state_interval_ms(at)
        if interval_ms is not None:
            return interval_ms
    names = reader.names(window.start, window.end)
    if names is None or c.KSM_POD_PHASE in names:
        state_reach(None, 0, warnings)  # the warning
    return None


def _pipeline(
    con: duckdb.DuckDBPyConnection,
    reader: prometheus.Reader,
    settings: CollectSettings,
    source: str,
    window: Window,
    settled: datetime,
    interval_ms: int | None = None,
    progress: Progress = SILENT,
) -> Iterator[tuple[load.LoadResult, set[str]]]:
    """Commit window after window, fetching the next one while the current one is staged and
    committed (DuckDB and the network both release the GIL); at most two windows are in memory."""
    windows = commit_windows(window, parse_duration(settings.commit_window), reader.step_s)
    progress.begin(f"collect {source}", len(windows), "windows")
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpuledger-prefetch")
    try:
        pending = ahead.submit(_fetch_window, reader, settings, windows[0], interval_ms)
        for i, part_window in enumerate(windows):
            plan_name, fetched = pending.result()
            if i + 1 < len(windows):
                pending = ahead.submit(_fetch_window, reader, settings, windows[i + 1], interval_ms)
            part, kinds = _commit_window(con, settings, source, part_window, plan_name, fetched, settled)
            span = f"{iso(part_window.start)}..{iso(part_window.end)}"
            progress.step(window=span, samples=part.samples, rows=part.total_rows)
            yield part, kinds
    except BaseException:
        # an error or Ctrl-C: the window being fetched is not wanted, and waiting for it (a store that stopped
        # answering keeps it for collect.timeout on every retry) would hold the rollback and the exit back
        ahead.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        ahead.shutdown()
    finally:
        progress.end()


def _fetch_window(
    reader: prometheus.Reader, settings: CollectSettings, window: Window, interval_ms: int | None
) -> tuple[str, prometheus.Fetched]:
    plan_name, plan = window_plan(reader, settings, window, interval_ms)
    # the point at window.start is read too: counters need the value before their first step
    return plan_name, prometheus.fetch(reader, plan, window.start, window.end, plan_name)


def window_plan(
    reader: prometheus.Reader, settings: CollectSettings, window: Window, interval_ms: int | None = None
) -> tuple[str, list[prometheus.Query]]:
    """The queries a commit window is read with: the chosen plan, less those for metrics the store
    does not hold (a query at window.start reads samples one lookback before it)."""
    names = reader.names(window.start - timedelta(seconds=parse_duration(settings.lookback)), window.end)
    plan_name, plan = choose_plan(reader, settings, window, names, interval_ms)
    return plan_name, prometheus.held(plan, names)


def _commit_window(
    con: duckdb.DuckDBPyConnection,
    settings: CollectSettings,
    source: str,
    window: Window,
    plan_name: str,
    fetched: prometheus.Fetched,
    settled: datetime,
) -> tuple[load.LoadResult, set[str]]:
    ctx = SeriesContext(settings.cluster, settings.workload_label_style)
    part = load.LoadResult(source=source, skipped_series=fetched.skipped_series)
    part.plans = {plan_name: 1}
    step_s = parse_duration(settings.step)
    points = (fetched.sid, fetched.t_ms, fetched.v)
    registered = grid_stage.register_series(con, "stage_grid", fetched.series, ctx, points)
    part.samples, kinds, part.invalid = registered.samples, registered.kinds, registered.invalid
    grid_stage.build_staged(con, step_s, (int(epoch_ms(window.start)), int(epoch_ms(window.end))))
    load.commit(con, part, watermark=min(window.end, settled), window=(window.start, window.end))
    return part, kinds


def choose_plan(
    reader: prometheus.Reader,
    settings: CollectSettings,
    window: Window,
    names: frozenset[str] | None = None,
    interval_ms: int | None = None,
) -> tuple[str, list[prometheus.Query]]:
    """(name, queries): recording rules when they cover the window, else aggregation in the query.
    `names`: the metric names the store holds over the window, when it said; `interval_ms`:
    kube-state-metrics' scrape interval, when known."""
    sel = prometheus.selector_for(reader.flavor, parse_duration(settings.lookback), interval_ms)
    style = settings.workload_label_style
    if settings.pushdown == "raw":
        return "raw series", prometheus.raw_plan(sel)
    first = window.start + timedelta(seconds=reader.step_s)
    rules = names is None or c.REC_HEARTBEAT in names
    if settings.pushdown == "auto" and rules and reader.covered(c.REC_HEARTBEAT, first, window.end):
        every_ms = reader.interval_ms(c.REC_HEARTBEAT, window.end)  # the rule group's evaluation interval
        return "recording rules", prometheus.pushdown_plan(style, sel, reader.step_s, every_ms)
    return "aggregating queries", prometheus.pushdown_plan(style, sel)


def _fast_writes(con: duckdb.DuckDBPyConnection) -> None:
    """Facts carry their own order (ts): letting DuckDB write staged tables in any order saves
    about a quarter of the staging time. (The connection's memory cap, collect.memory_limit, keeps
    DuckDB from caching the ever larger warehouse: a 30-day collection needs no more than a 1-day one.)"""
    con.execute("SET preserve_insertion_order = false")


def resolve_window(
    con: duckdb.DuckDBPyConnection,
    source: str,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    step_s: int,
    settings: CollectSettings,
) -> Window | None:
    """The window to collect, on the step grid; None when there is nothing new yet."""
    if start is None:
        start = _watermark(con, source)
        if start is None:
            raise ConfigError(f"no watermark for {source} yet: pass --start for its first collection")
    if end is None:
        end = now - timedelta(seconds=parse_duration(settings.safety_lag))
    start, end = floor_step(start, step_s), floor_step(end, step_s)
    return Window(start, end) if end > start else None


def source_name(base_url: str, tenant: str | None) -> str:
    """Watermark key of a store: its URL (credentials already stripped) and tenant."""
    return f"prometheus:{base_url}" + (f"#tenant={tenant}" if tenant else "")


def _watermark(con: duckdb.DuckDBPyConnection, source: str) -> datetime | None:
    row = one(con, f"SELECT last_ts FROM {c.T_WATERMARKS} WHERE source = ?", [source])
    return row[0] if row else None


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _combine(parsed: list[Samples]) -> tuple[SeriesTable, np.ndarray, np.ndarray, np.ndarray]:
    """All files' series in one table (each file's sids shifted past the previous files')."""
    sids, times, values, offset = [], [], [], 0
    for samples in parsed:
        sids.append(np.frombuffer(samples.sid, dtype=np.int32) + offset)
        times.append(np.frombuffer(samples.ts_ms, dtype=np.int64))
        values.append(np.frombuffer(samples.value, dtype=np.float64))
        offset += len(samples.table)
    table = SeriesTable.concat([samples.table for samples in parsed])
    if not sids:
        return table, np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0)
    return table, np.concatenate(sids).astype(np.int32), np.concatenate(times), np.concatenate(values)


def _refuse_conflicting_duplicates(
    table: SeriesTable, sid: np.ndarray, t_ms: np.ndarray, v: np.ndarray, source: str
) -> None:
    """Two samples of one series at one time with different values: refused, naming the series. Which one is
    true cannot be known, and taking the last (as parsing did) once doubled a pod's GPU-hours when a request
    of 4 was repeated as 8. Identical repeats are harmless and pass."""
    if len(sid) < 2:
        return
    order = np.lexsort((t_ms, sid))
    s, t, x = sid[order], t_ms[order], v[order]
    clash = (s[1:] == s[:-1]) & (t[1:] == t[:-1]) & ~((x[1:] == x[:-1]) | (np.isnan(x[1:]) & np.isnan(x[:-1])))
    if not clash.any():
        return
    i = int(np.flatnonzero(clash)[0])
    series = int(s[i])
    rows = np.flatnonzero(table.label_sid == series)
    labels = ",".join(f'{table.label_name[r]}="{table.label_value[r]}"' for r in rows.tolist())
    when = datetime(1970, 1, 1) + timedelta(milliseconds=int(t[i]))
    raise InputError(
        source,
        f"{table.family[series]}{{{labels}}} has two samples at {when:%Y-%m-%dT%H:%M:%S}Z with different values "
        f"({x[i]:g} and {x[i + 1]:g}): which one is true cannot be known, so nothing was collected",
    )


def epoch_ms(ts: datetime) -> float:
    return (ts - datetime(1970, 1, 1)) / timedelta(milliseconds=1)
