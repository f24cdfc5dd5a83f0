"""Reading a window from a Prometheus-compatible store (Prometheus, Thanos, Mimir, VictoriaMetrics).

A window is read as a set of queries (the plan), each split into chunks of at most
`max_points_per_query` points per series (Prometheus refuses more than 11,000), run `concurrency`
at a time. Everything of one window is fetched before anything is written: any failure raises and
the window is not committed.

The query grid: for a window [start, end) at step s the points are start, start+s, ..., end. The
point at `start` is only the previous value counters need for their first increase; every other
point t becomes the warehouse row [t-s, t), inside the window.

Plans (`collect.pushdown`): `raw` reads the raw series and lets the warehouse aggregate, like the
file path; `query` sends the aggregations of core/promql.py; `auto` reads gpuledger's recording
rules instead when their heartbeat covers every step of the window, else does what `query` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from collectors.metrics.http import HttpClient
from collectors.metrics.prometheus import answers as promapi
from collectors.metrics.series import HEALTH_NAMES, PROMQL_BY_NAME, SeriesTable
from core import conventions as c
from core import promql
from core.errors import QueryError


@dataclass(frozen=True)
class Query:
    family: str  # the name the series are staged under (collectors/metrics/series.py KIND_BY_NAME)
    promql: str
    reads: tuple[str, ...]  # the metrics it selects: with none of them in the store, it answers nothing


@dataclass
class Fetched:
    """Series labels and their points on the query grid (t in epoch ms, grid END points)."""

    series: SeriesTable = field(default_factory=SeriesTable)
    sid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    t_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    v: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    skipped_series: int = 0
    plan: str = "raw series"


def selector_for(flavor: str, lookback_s: int, state_interval_ms: int | None = None) -> promql.Selector:
    """How each selector reads a grid point, the same rule the file path applies (grid_stage.py).

    State gauges (kube_*), with a known scrape interval: the last sample less than one interval old,
    which is Prometheus' staleness rule without relying on staleness markers (backfilled blocks and
    remote-written copies have none; where they exist the answer is the same). A range of
    interval - 1 ms excludes the sample one interval back in Prometheus 2.x's closed windows and in
    the left-open ones of Prometheus 3 and VictoriaMetrics alike.

    Other families: VictoriaMetrics guesses each series' staleness from its scrape interval (a series
    that ends vanishes one interval later, not after the lookback): pin Prometheus' rule explicitly.
    The window is left-open there, Prometheus 2.x's lookback is closed: one extra millisecond."""
    state = f"[{state_interval_ms - 1}ms]" if state_interval_ms else None
    lookback = f"[{lookback_s * 1000 + 1}ms]" if flavor == "victoriametrics" else None

    def pinned(selector: str) -> str:
        # timestamp(<sel>) (serving sample times) cannot take a range; it is sent as is: at the few
        # steps VictoriaMetrics already dropped, a serving row keeps its value without its sample time
        if selector.startswith("timestamp("):
            return selector
        window = state if selector.startswith(c.STATE_PREFIX) else lookback
        return f"last_over_time({selector}{window})" if window else selector

    return pinned


def raw_plan(sel: promql.Selector) -> list[Query]:
    return [_raw(name, query, sel) for name, query in PROMQL_BY_NAME.items()]


def _raw(name: str, query: str, sel: promql.Selector) -> Query:
    return Query(name, sel(query), (name.removesuffix(c.SAMPLE_TIME_SUFFIX),))


def pushdown_plan(
    style: str, sel: promql.Selector, rules_step_s: int | None = None, rules_interval_ms: int | None = None
) -> list[Query]:
    """Aggregations in the store; with rules_step_s, read the recording rules instead: an interval
    family's at its latest evaluation within the step before the point, the pods' state at its latest
    evaluation (every rules_interval_ms) at or before the point."""

    def pick(family: str, rule: str, expr: str, reads: tuple[str, ...]) -> Query:
        if rules_step_s:
            window_ms = rules_step_s * 1000
            if rule == c.REC_POD_ALLOCATION_RUNNING and rules_interval_ms:
                window_ms = min(rules_interval_ms, window_ms)
            return Query(family, promql.recorded(rule, window_ms), (rule,))
        return Query(family, expr, reads)

    plan = [pick(m, c.rec_device_gauge(m), promql.device_gauge(m, sel), (m,)) for m in c.DCGM_SAMPLE_COLUMNS]
    plan.append(Query(c.DCGM_GPU_UTIL, promql.per_process_util(style, sel), (c.DCGM_GPU_UTIL,)))
    mapping = promql.pod_device_mapping(style, sel)
    plan.append(pick(c.REC_POD_DEVICE, c.REC_POD_DEVICE, mapping, tuple(c.DCGM_SAMPLE_COLUMNS)))
    allocation = promql.pod_allocation(sel)
    rule = c.REC_POD_ALLOCATION_RUNNING
    plan.append(pick(rule, rule, allocation, (c.KSM_POD_REQUESTS,)))
    plan.append(Query(c.REC_POD_PENDING, promql.pod_pending(sel), (c.KSM_POD_REQUESTS,)))  # no recording rule
    plan += [Query(m, promql.device_health(m, sel), (m,)) for m in HEALTH_NAMES]
    pushed = {*c.DCGM_SAMPLE_COLUMNS, *HEALTH_NAMES, c.KSM_POD_REQUESTS, c.KSM_POD_PHASE}
    plan += [_raw(name, query, sel) for name, query in PROMQL_BY_NAME.items() if name not in pushed]
    return plan


def held(plan: list[Query], names: frozenset[str] | None) -> list[Query]:
    """The queries that can answer something. A store answers each of the ~160 queries for families
    it does not hold (serving frameworks the fleet does not run, health counters its exporter does
    not export) in 5-15 ms: nine tenths of the store's work for a 5-minute window at 100 GPUs."""
    if names is None:
        return plan
    return [q for q in plan if any(name in names for name in q.reads)]


def chunks(first: datetime, last: datetime, step_s: int, max_points: int) -> Iterator[tuple[datetime, datetime]]:
    """(first point, last point) pairs covering first..last with at most max_points each."""
    span = timedelta(seconds=step_s * (max_points - 1))
    while first <= last:
        end = min(first + span, last)
        yield first, end
        first = end + timedelta(seconds=step_s)


@dataclass(frozen=True)
class Reader:
    client: HttpClient
    flavor: str
    step_s: int
    max_points: int
    concurrency: int

    def run(self, query: str, first: datetime, last: datetime) -> promapi.Matrix:
        return promapi.query_range(self.client, self.flavor, query, first, last, self.step_s)

    def names(self, first: datetime, last: datetime) -> frozenset[str] | None:
        """The metric names the store holds from first to last (too many, never too few), or None
        when it will not say (a proxy in front of it that only lets queries through)."""
        try:
            return promapi.metric_names(self.client, self.flavor, first, last)
        except QueryError:
            return None

    def state_interval_ms(self, at: datetime) -> int | None:
        """kube-state-metrics' scrape interval (see interval_ms), read off its node series."""
        return self.interval_ms(c.KSM_NODE_LABELS, at)

    def interval_ms(self, selector: str, at: datetime) -> int | None:
        """How often the series are written: the median time between consecutive raw samples of a
        series before `at` (15 minutes of them, else 3 hours), the rule the file path applies; None
        when the store holds no two samples of one series there."""
        for range_ms in (15 * 60_000, 3 * 3_600_000):
            matrix = promapi.raw_samples(self.client, self.flavor, selector, range_ms, at)
            sid = np.repeat(np.arange(len(matrix.counts)), matrix.counts)
            gaps = np.diff(matrix.t_ms)[(sid[1:] == sid[:-1]) & (np.diff(matrix.t_ms) > 0)]
            if len(gaps):
                return int(np.median(gaps))
        return None

    def covered(self, rule: str, first: datetime, last: datetime) -> bool:
        """Does the recording rule have a value at every grid point first..last?"""
        expected = int((last - first).total_seconds()) // self.step_s + 1
        seen = 0
        for lo, hi in chunks(first, last, self.step_s, self.max_points):
            matrix = self.run(f"count({promql.recorded(rule, self.step_s * 1000)})", lo, hi)
            seen += len(matrix.t_ms)
        return seen == expected


def fetch(reader: Reader, plan: list[Query], first: datetime, last: datetime, name: str = "raw series") -> Fetched:
    """Run every query of the plan over first..last; raise before returning anything on failure."""
    tasks = [(q, lo, hi) for q in plan for lo, hi in chunks(first, last, reader.step_s, reader.max_points)]

    def run(task: tuple[Query, datetime, datetime]) -> promapi.Matrix:
        return reader.run(task[0].promql, task[1], task[2])

    with ThreadPoolExecutor(max_workers=reader.concurrency, thread_name_prefix="gpuledger-query") as pool:
        matrices = list(pool.map(run, tasks))  # the first failure propagates; nothing is returned
    return _merge([(q.family, m) for (q, _, _), m in zip(tasks, matrices, strict=True)], name)


def _merge(answers: list[tuple[str, promapi.Matrix]], plan: str) -> Fetched:
    """All answers' series one after the other. A series read in two chunks (or by two queries)
    becomes two series of the same labels: every staged table groups by what the labels say and
    takes the max, so it still counts once, and no series key is built and hashed per series."""
    out = Fetched(plan=plan)
    pairs: list[tuple[str, dict[str, str]]] = []
    sids: list[np.ndarray] = [np.zeros(0, np.int32)]
    times: list[np.ndarray] = [np.zeros(0, np.int64)]
    values: list[np.ndarray] = [np.zeros(0, np.float64)]
    for family, matrix in answers:
        out.skipped_series += matrix.skipped
        sids.append(np.repeat(np.arange(len(pairs), len(pairs) + len(matrix.labels), dtype=np.int32), matrix.counts))
        pairs += [(family, labels) for labels in matrix.labels]
        times.append(matrix.t_ms)
        values.append(matrix.values)
    out.series = SeriesTable.from_pairs(pairs)
    out.sid, out.t_ms, out.v = np.concatenate(sids), np.concatenate(times), np.concatenate(values)
    return out
