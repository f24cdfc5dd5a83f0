"""The Prometheus HTTP API (query_range) as Prometheus, Thanos, Mimir and VictoriaMetrics serve it.

Decoding is built for volume: the envelope and each series' labels are decoded by msgspec, while
the points ([[t, "v"], ...]) of all series of one answer are parsed in one pass by Arrow's CSV
reader (multi-threaded C++), about ten times faster than json + float() per point. A series whose
points do not parse is skipped and counted (the rest of the answer is kept); an answer that is not
a Prometheus matrix at all, or that the server flags as partial, is an error: the window it
belongs to is never committed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from collectors.metrics.http import HttpClient
from core.errors import SourceUnavailable
from core.timeutil import iso

# Query parameters each store needs so that its answer equals Prometheus' (see README, "Backends").
FLAVOR_PARAMS: dict[str, dict[str, str]] = {
    "prometheus": {},
    # refuse partial answers (a store down would silently drop series) and merge HA replicas
    "thanos": {"partial_response": "false", "dedup": "true"},
    "mimir": {},
    # the rollup cache aligns start/end to the step and may serve stale points; we read history once
    "victoriametrics": {"nocache": "1"},
}


R = TypeVar("R")  # how an answer's series are decoded: whole, or kept raw


class _Series(msgspec.Struct):
    metric: dict[str, str]
    values: msgspec.Raw = msgspec.Raw(b"[]")


class _Data(msgspec.Struct, Generic[R]):
    resultType: str
    result: list[R]


class _Answer(msgspec.Struct, Generic[R]):
    status: str
    data: _Data[R] | None = None
    error: str = ""
    warnings: list[str] = []


class _Names(msgspec.Struct):
    status: str
    data: list[str] | None = None
    error: str = ""
    warnings: list[str] = []


# every series in one call (nearly always); a series that does not decode sends the answer to
# _ANSWER, which keeps each series undecoded, decodes them one by one and skips the bad ones
_WHOLE = msgspec.json.Decoder(_Answer[_Series])
_NAMES = msgspec.json.Decoder(_Names)
_ANSWER = msgspec.json.Decoder(_Answer[msgspec.Raw])
_SERIES = msgspec.json.Decoder(_Series)
_CSV_READ = pacsv.ReadOptions(column_names=["t", "v"])
_CSV_CONVERT = pacsv.ConvertOptions(column_types={"t": pa.float64(), "v": pa.float64()})
_STRIP = b' \t\r\n"'
_NUL_TO_NEWLINE = bytes.maketrans(b"\0", b"\n")


@dataclass
class Matrix:
    """One answer: series labels and their points, series after series (`counts[i]` points of
    series i; t in epoch ms; NaN values dropped)."""

    labels: list[dict[str, str]] = field(default_factory=list)
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    t_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    values: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    skipped: int = 0

    @property
    def samples(self) -> int:
        return len(self.values)

    def points(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(t_ms, values) of series i."""
        lo = int(self.counts[:i].sum())
        return self.t_ms[lo : lo + self.counts[i]], self.values[lo : lo + self.counts[i]]


def query_range(client: HttpClient, flavor: str, query: str, first: datetime, last: datetime, step_s: int) -> Matrix:
    """Evaluate `query` at first, first+step, ..., last (inclusive)."""
    params = {
        "query": query,
        "start": _epoch(first),
        "end": _epoch(last),
        "step": str(step_s),
        **FLAVOR_PARAMS[flavor],
    }
    what = f"query {query!r} [{iso(first)}..{iso(last)}]"
    return client.fetch("/api/v1/query_range", params, what, lambda body: decode_matrix(body, client.base_url, what))


def raw_samples(client: HttpClient, flavor: str, selector: str, range_ms: int, at: datetime) -> Matrix:
    """The raw samples of `selector` in the range before `at` (an instant query of a range vector)."""
    query = f"{selector}[{range_ms}ms]"
    params = {"query": query, "time": _epoch(at), **FLAVOR_PARAMS[flavor]}
    what = f"query {query!r} [at {iso(at)}]"
    return client.fetch("/api/v1/query", params, what, lambda body: decode_matrix(body, client.base_url, what))


def metric_names(client: HttpClient, flavor: str, first: datetime, last: datetime) -> frozenset[str] | None:
    """The metric names the store holds between first and last, or None when its list may be
    incomplete (a store or querier did not answer). Stores answer from whole blocks or days, so
    the list can only hold too many names, never too few."""
    params = {"start": _epoch(first), "end": _epoch(last), **FLAVOR_PARAMS[flavor]}
    what = f"metric names [{iso(first)}..{iso(last)}]"
    return client.fetch(
        "/api/v1/label/__name__/values", params, what, lambda body: _decode_names(body, client.base_url, what)
    )


def _decode_names(body: bytes, url: str, what: str) -> frozenset[str] | None:
    try:
        answer = _NAMES.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SourceUnavailable(f"{url}: malformed answer to {what} ({_short(exc)})") from None
    if answer.status != "success" or answer.data is None:
        raise SourceUnavailable(f"{url}: {what} failed: {answer.error or answer.status}")
    return None if answer.warnings else frozenset(answer.data)


def _epoch(ts: datetime) -> str:
    return f"{ts.replace(tzinfo=UTC).timestamp():.3f}"


def decode_matrix(body: bytes, url: str, what: str) -> Matrix:
    try:
        whole = _WHOLE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _decode_one_by_one(body, url, what)
    _check(whole, url, what)
    assert whole.data is not None
    out = Matrix()
    for series in whole.data.result:
        series.metric.pop("__name__", None)
        out.labels.append(series.metric)
    _parse_points([s.values for s in whole.data.result], out)
    return out


def _check(answer: _Answer[Any], url: str, what: str) -> None:
    if answer.status != "success" or answer.data is None:
        raise SourceUnavailable(f"{url}: {what} failed: {answer.error or answer.status}")
    if answer.warnings:
        # Thanos/Mimir warn when a store or querier did not answer: the data may be incomplete
        raise SourceUnavailable(f"{url}: partial answer to {what}: {'; '.join(answer.warnings)[:300]}")
    if answer.data.resultType != "matrix":
        raise SourceUnavailable(f"{url}: {what} returned a {answer.data.resultType}, not a matrix")


def _decode_one_by_one(body: bytes, url: str, what: str) -> Matrix:
    try:
        answer = _ANSWER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SourceUnavailable(f"{url}: malformed answer to {what} ({_short(exc)})") from None
    _check(answer, url, what)
    assert answer.data is not None
    out = Matrix()
    raws: list[bytes] = []
    for raw in answer.data.result:
        try:
            series = _SERIES.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            out.skipped += 1
            continue
        out.labels.append({k: v for k, v in series.metric.items() if k != "__name__"})
        raws.append(bytes(series.values))
    _parse_points(raws, out)
    return out


def _parse_points(raws: list[bytes], out: Matrix) -> None:
    """Fill out's points; on a bad batch, parse series one by one and drop the bad ones."""
    try:
        t, v, counts = _all_at_once(raws)
    except ValueError:
        t, v, counts = _one_by_one(raws, out)
    keep = ~np.isnan(v)
    series = np.repeat(np.arange(len(counts)), counts)
    out.counts = np.bincount(series[keep], minlength=len(counts)).astype(np.int64)
    out.t_ms = np.round(t[keep] * 1000.0).astype(np.int64)
    out.values = v[keep]


def _all_at_once(raws: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every series' points as one CSV text: `[[t,"v"],[t,"v"]]` per series, separated by NUL (never
    in JSON text), and each series' point count from its brackets, all without a Python step per
    series. A series that is not a list of [t, v] pairs fails the parse or the count check."""
    text = b"\0".join(raws).translate(None, _STRIP)
    if not text.startswith(b"[") or not text.endswith(b"]"):
        raise ValueError("points are not a list of [t, v] pairs")
    chars = np.frombuffer(text, dtype=np.uint8)
    ends = np.append(np.flatnonzero(chars == 0), len(chars))
    opened = np.cumsum(chars == ord("["))[ends - 1]  # "[" up to each series' end
    counts = np.diff(opened, prepend=0) - 1  # one "[" per point plus the list's own
    if len(raws) and counts.min() < 0:
        raise ValueError("points are not a list of [t, v] pairs")
    t, v = _csv_text(text.replace(b"],[", b"\n").translate(_NUL_TO_NEWLINE, b"[]"))
    if len(t) != counts.sum():
        raise ValueError("point count mismatch")
    return t, v, counts.astype(np.int64)


def _one_by_one(raws: list[bytes], out: Matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points of the series that parse; the others are skipped, counted and their labels dropped."""
    ts, vs, counts, labels = [], [], [], []
    for series_raw, series_labels in zip(raws, out.labels, strict=True):
        raw = bytes(series_raw).translate(None, _STRIP)
        try:
            t, v = _csv([raw])
            if len(t) != _count(raw):
                raise ValueError("point count mismatch")
        except ValueError:
            out.skipped += 1
            continue
        ts.append(t)
        vs.append(v)
        counts.append(len(t))
        labels.append(series_labels)
    out.labels = labels
    empty = np.zeros(0, np.float64)
    return np.concatenate([empty, *ts]), np.concatenate([empty, *vs]), np.array(counts, dtype=np.int64)


def _count(raw: bytes) -> int:
    if len(raw) < 4 or not raw.startswith(b"[[") or not raw.endswith(b"]]"):
        if raw == b"[]":
            return 0
        raise ValueError("points are not a list of [t, v] pairs")
    return raw.count(b"],[") + 1


def _csv(raws: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    return _csv_text(b"\n".join(r[2:-2].replace(b"],[", b"\n") for r in raws if r != b"[]"))


def _csv_text(text: bytes) -> tuple[np.ndarray, np.ndarray]:
    """`t,v` lines (empty lines skipped) -> (t, v); NaN values stay NaN."""
    if not text.strip():
        return np.zeros(0, np.float64), np.zeros(0, np.float64)
    try:
        table = pacsv.read_csv(io.BytesIO(text), _CSV_READ, convert_options=_CSV_CONVERT)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(str(exc)) from None
    t = table.column("t")
    if t.null_count:
        raise ValueError("a point has no timestamp")
    # NaN values ("NaN" reads as null) are dropped, as the file path drops them
    return t.to_numpy(), table.column("v").to_numpy(zero_copy_only=False)


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:160]
