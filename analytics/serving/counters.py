"""Counter increases and gauge averages over serving series, exactly as PromQL computes them.

`increase(x[W])` evaluated at T takes the raw samples with time in (T-W, T] (Prometheus 3 range
semantics; 2.x also includes a sample exactly at T-W), needs at least two, adds the value before
every drop (a counter reset), then extrapolates towards the window edges as promql/functions.go
extrapolatedRate does: by the distance to the edge when it is under 1.1 x the average sample
spacing, else by half a spacing, and never to before the counter would have been zero.

Raw samples come from the warehouse's step grid: every row keeps the time of the scrape its value
came from (`sample_ts`), so the distinct (series, sample_ts, value) are the scrapes themselves
whenever the step is no longer than the scrape interval. Older rows without it fall back to the
end of their step.

Gauges are read as PromQL's `*_over_time` functions read them: over the raw samples in (T-W, T], or, in a
subquery `(<selector> <op> [bool] <number>)[W:step]`, over the series' value at every multiple of `step` in
(T-W, T]: its latest sample no more than the 5-minute lookback before (there are no staleness markers in the
warehouse, so a vanished series lasts out the lookback, as in a TSDB backfilled from files).

Selectors are PromQL's: a sample name plus label matchers (=, !=, =~, !~; regexes fully anchored,
RE2 in both Prometheus and DuckDB). Labels map onto warehouse columns: the model label
(model_name / model / service_name) onto `model`, `le` onto the numeric edge, the rest onto
`namespace`, `pod`, `cluster` or the JSON `labels`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from core import conventions as c
from core.errors import ConfigError
from core.timeutil import to_epoch

_COLUMNS = {"namespace": "namespace", "pod": "pod", "cluster": "cluster"}
_SERIES_COLUMNS = ("cluster", "namespace", "pod", "model", "metric", "le", "labels")
_SERIES = ", ".join(_SERIES_COLUMNS)


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str  # = != =~ !~
    value: str

    def promql(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.label}{self.op}"{escaped}"'

    def accepts(self, value: str) -> bool:
        """Does a series whose label has `value` ("" when it has none) pass this matcher, as in PromQL?"""
        if self.op in ("=", "!="):
            return (value == self.value) == (self.op == "=")
        return bool(re.fullmatch(self.value, value)) == (self.op == "=~")


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...] = ()

    def promql(self) -> str:
        inner = ",".join(m.promql() for m in self.matchers)
        return f"{self.metric}{{{inner}}}" if inner else self.metric

    def matches(self, metric: str, labels: dict[str, str]) -> bool:
        """Does the series `metric{labels}` belong to this selector?"""
        return metric == self.metric and all(m.accepts(labels.get(m.label, "")) for m in self.matchers)

    def where(self) -> tuple[str, list[object]]:
        """A SQL condition on inference_samples (and its parameters) selecting these series."""
        parts: list[str] = ["metric = ?"]
        params: list[object] = [self.metric]
        for m in self.matchers:
            column = _column(m.label)
            if m.label == c.L_LE:
                column = "CASE WHEN le = 'inf'::DOUBLE THEN '+Inf' ELSE CAST(le AS VARCHAR) END"
                if m.op in ("=", "!="):
                    parts.append(f"{'' if m.op == '=' else 'NOT '}(le IS NOT NULL AND le = ?::DOUBLE)")
                    params.append(m.value.replace("+Inf", "inf"))
                    continue
            sql = {
                "=": "{} = ?",
                "!=": "{} <> ?",
                "=~": "regexp_full_match({}, ?)",
                "!~": "NOT regexp_full_match({}, ?)",
            }
            parts.append(sql[m.op].format(f"coalesce({column}, '')"))
            params.append(m.value)
        return " AND ".join(parts), params


def _column(label: str) -> str:
    if label in _COLUMNS:
        return _COLUMNS[label]
    if label in c.L_MODEL_LABELS:
        return "model"
    return f"json_extract_string(labels, '$.\"{label}\"')"


@dataclass(frozen=True)
class Span:
    """One evaluation: the range (end - seconds, end]."""

    end: datetime
    seconds: int

    @property
    def start(self) -> datetime:
        return self.end - timedelta(seconds=self.seconds)


def extrapolated_increase(
    n: int, first_t_ms: int, last_t_ms: int, first_v: float, delta: float, start_ms: int, end_ms: int
) -> float | None:
    """PromQL increase() of one series, given its samples' summary in the range (start, end]."""
    if n < 2:
        return None
    result = delta
    duration_to_start = (first_t_ms - start_ms) / 1000
    duration_to_end = (end_ms - last_t_ms) / 1000
    sampled = (last_t_ms - first_t_ms) / 1000
    average = sampled / (n - 1)
    if result > 0 and first_v >= 0:
        # A counter cannot have been below zero: do not extrapolate past that point.
        duration_to_zero = sampled * (first_v / result)
        if duration_to_zero < duration_to_start:
            duration_to_start = duration_to_zero
    threshold = average * 1.1
    extrapolate_to = sampled
    extrapolate_to += duration_to_start if duration_to_start < threshold else average / 2
    extrapolate_to += duration_to_end if duration_to_end < threshold else average / 2
    return result * (extrapolate_to / sampled)


def _ms(ts: datetime) -> int:
    return round(to_epoch(ts) * 1000)


def _spans_table(con: duckdb.DuckDBPyConnection, spans: list[Span]) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE serving_spans (sid INTEGER, lo BIGINT, hi BIGINT)")
    con.executemany(
        "INSERT INTO serving_spans VALUES (?, ?, ?)",
        [[i, _ms(s.end) - s.seconds * 1000, _ms(s.end)] for i, s in enumerate(spans)],
    )


def _points_sql(selector: Selector, spans: list[Span]) -> tuple[str, list[object]]:
    where, params = selector.where()
    lo = min(s.start for s in spans) - timedelta(hours=1)
    hi = max(s.end for s in spans) + timedelta(hours=1)
    sql = f"""SELECT DISTINCT {_SERIES}, value,
            epoch_ms(coalesce(sample_ts, ts + to_seconds(step_s))) AS t
        FROM {c.T_INFERENCE_SAMPLES} WHERE ts >= ? AND ts <= ? AND {where}"""
    return sql, [lo, hi, *params]


def series_increases(
    con: duckdb.DuckDBPyConnection, selector: Selector, spans: list[Span]
) -> dict[int, dict[tuple[object, ...], float]]:
    """increase() of every series the selector matches, per span index (series without two
    samples in a span are absent from it, as in PromQL)."""
    if not spans:
        return {}
    _spans_table(con, spans)
    points, params = _points_sql(selector, spans)
    out: dict[int, dict[tuple[object, ...], float]] = defaultdict(dict)
    for sid, lo, hi, *rest in con.execute(_increase_sql(points), params).fetchall():
        key, (n, first_t, last_t, first_v, delta) = tuple(rest[:7]), rest[7:]
        value = extrapolated_increase(n, first_t, last_t, first_v, delta, lo, hi)
        if value is not None:
            out[sid][key] = value
    return out


def _increase_sql(points: str) -> str:
    """Each series' samples numbered in time order with a running sum of the drops (the value before each
    counter reset), read once; a span's count and drops are then differences of those at its first and last
    samples, found by two ASOF joins. Joining every sample to every span it falls in instead read a month's
    samples ~17 times for an SLO report (the period, burn windows, daily and cumulative spans)."""

    def same_series(a: str) -> str:
        return " AND ".join(f"{a}.{col} IS NOT DISTINCT FROM p.{col}" for col in _SERIES_COLUMNS)

    return f"""WITH p0 AS ({points}),
        p AS (SELECT *, row_number() OVER w AS i,
                sum(CASE WHEN value < prev THEN prev ELSE 0 END) OVER (w ROWS UNBOUNDED PRECEDING) AS drops
            FROM (SELECT *, lag(value) OVER (PARTITION BY {_SERIES} ORDER BY t, value) AS prev FROM p0)
            WINDOW w AS (PARTITION BY {_SERIES} ORDER BY t, value)),
        k AS (SELECT s.sid, s.lo, s.hi, r.* FROM (SELECT DISTINCT {_SERIES} FROM p0) r, serving_spans s),
        last_ AS (SELECT k.*, p.t AS last_t, p.value AS last_v, p.i AS last_i, p.drops AS last_drops
            FROM k ASOF JOIN p ON {same_series("k")} AND k.hi >= p.t),
        both_ AS (SELECT l.*, p.t AS first_t, p.value AS first_v, p.i AS first_i, p.drops AS first_drops
            FROM last_ l ASOF JOIN p ON {same_series("l")} AND l.lo < p.t)
        SELECT sid, lo, hi, {_SERIES}, last_i - first_i + 1 AS n, first_t, last_t, first_v,
            last_v - first_v + last_drops - first_drops AS delta
        FROM both_ WHERE first_t <= last_t"""


def summed_increase(con: duckdb.DuckDBPyConnection, selector: Selector, spans: list[Span]) -> list[float | None]:
    """`sum(increase(selector[W]))` per span: None where no series has two samples (no data)."""
    per_span = series_increases(con, selector, spans)
    return [sum(per_span[i].values()) if per_span.get(i) else None for i in range(len(spans))]


def gauge_means(
    con: duckdb.DuckDBPyConnection, selector: Selector, spans: list[Span]
) -> dict[int, dict[tuple[object, ...], tuple[float, int]]]:
    """avg_over_time() of every matched gauge series per span, with its sample count."""
    sums = _gauge_sums(con, selector, Reading("avg_over_time"), spans)
    return {sid: {key: (total / n, n) for key, (total, n) in series.items()} for sid, series in sums.items()}


COUNTER_FNS = ("increase", "rate")  # a ratio of rates is the ratio of increases: read as increases
GAUGE_FNS = ("avg_over_time", "count_over_time", "sum_over_time")
_COMPARE = {"==": "=", "!=": "<>", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
LOOKBACK_MS = 300_000  # PromQL's default lookback delta: an instant selector reads samples up to 5 m old


@dataclass(frozen=True)
class Compare:
    """A comparison inside a subquery: `<selector> > 0.5` keeps the samples it holds for, `> bool 0.5` makes
    every sample 1 where it holds, else 0."""

    op: str  # == != < > <= >=
    value: float
    as_bool: bool = False

    def promql(self) -> str:
        return f" {self.op}{' bool' if self.as_bool else ''} {self.value!r}"


@dataclass(frozen=True)
class Reading:
    """How a term reads its series over a window: a PromQL range function over the raw samples, or over a
    subquery's points every `step_s` (kept where `compare` holds); `aggregate` joins the series (None: the
    expression is not aggregated, so it must match one series to be one SLI)."""

    fn: str = "increase"  # COUNTER_FNS | GAUGE_FNS
    step_s: int | None = None
    compare: Compare | None = None
    aggregate: str | None = "sum"  # sum | avg | None

    @property
    def counts_events(self) -> bool:
        return self.fn in COUNTER_FNS

    def promql(self, selector: Selector, window: str) -> str:
        """This reading of `selector` over `window`, aggregated, in PromQL."""
        if self.step_s is None:
            inner = f"{self.fn}({selector.promql()}[{window}])"
        else:
            compared = f"({selector.promql()}{self.compare.promql()})" if self.compare else selector.promql()
            inner = f"{self.fn}({compared}[{window}:{self.step_s}s])"
        return f"{self.aggregate}({inner})" if self.aggregate else inner


def read_sums(
    con: duckdb.DuckDBPyConnection, selector: Selector, reading: Reading, spans: list[Span]
) -> list[float | None]:
    """The reading's value per span: None where no series has data. An unaggregated gauge reading matching more
    than one series has no single value: refused, naming the selector."""
    if reading.counts_events:
        return summed_increase(con, selector, spans)
    per_span = _gauge_sums(con, selector, reading, spans)
    out: list[float | None] = []
    for i in range(len(spans)):
        series = list(per_span.get(i, {}).values())
        if not series:
            out.append(None)
            continue
        if reading.aggregate is None and len(series) > 1:
            raise ConfigError(
                f"{reading.promql(selector, f'{spans[i].seconds}s')} matches {len(series)} series: one SLI needs "
                "one, so aggregate it (sum or avg)"
            )
        values = [{"avg_over_time": s / n, "count_over_time": float(n)}.get(reading.fn, s) for s, n in series]
        out.append(sum(values) / len(values) if reading.aggregate == "avg" else sum(values))
    return out


def _gauge_sums(
    con: duckdb.DuckDBPyConnection, selector: Selector, reading: Reading, spans: list[Span]
) -> dict[int, dict[tuple[object, ...], tuple[float, int]]]:
    """(sum, count) of every matched series' points per span: raw samples, or the subquery's points."""
    if not spans:
        return {}
    _spans_table(con, spans)
    points, params = _points_sql(selector, spans)
    keys = ", ".join(f"p.{col}" for col in _SERIES_COLUMNS)
    if reading.step_s is None:
        sql = f"""WITH p AS ({points}) SELECT s.sid, {keys}, sum(p.value), count(*)
            FROM p JOIN serving_spans s ON p.t > s.lo AND p.t <= s.hi GROUP BY ALL"""
    else:
        sql, extra = _subquery_sql(points, reading, spans)
        params += extra
    out: dict[int, dict[tuple[object, ...], tuple[float, int]]] = defaultdict(dict)
    for sid, *rest in con.execute(sql, params).fetchall():
        out[sid][tuple(rest[:7])] = (float(rest[7]), int(rest[8]))
    return out


def _subquery_sql(points: str, reading: Reading, spans: list[Span]) -> tuple[str, list[object]]:
    """Every series' value at each multiple of the step (PromQL aligns subquery points to the epoch), its latest
    sample within the lookback, compared; then summed per span."""
    assert reading.step_s is not None
    step = reading.step_s * 1000
    first = (min(_ms(s.start) for s in spans) // step + 1) * step
    last = max(_ms(s.end) for s in spans)
    value, keep = "p.value", ""
    if reading.compare is not None:
        test = f"p.value {_COMPARE[reading.compare.op]} {reading.compare.value!r}"
        value, keep = (f"CASE WHEN {test} THEN 1.0 ELSE 0.0 END", "") if reading.compare.as_bool else (value, test)
    same = " AND ".join(f"g.{col} IS NOT DISTINCT FROM p.{col}" for col in _SERIES_COLUMNS)
    keys = ", ".join(f"v.{col}" for col in _SERIES_COLUMNS)
    sql = f"""WITH p AS ({points}),
        g AS (SELECT r.*, grid.t FROM (SELECT DISTINCT {_SERIES} FROM p) r,
            (SELECT unnest(range(?::BIGINT, ?::BIGINT + 1, ?::BIGINT)) AS t) grid),
        v AS (SELECT g.*, {value} AS point FROM g ASOF JOIN p ON {same} AND g.t >= p.t
            WHERE g.t - p.t < {LOOKBACK_MS} {"AND " + keep if keep else ""})
        SELECT s.sid, {keys}, sum(v.point), count(*) FROM v JOIN serving_spans s ON v.t > s.lo AND v.t <= s.hi
        GROUP BY ALL"""
    return sql, [first, last, step]
