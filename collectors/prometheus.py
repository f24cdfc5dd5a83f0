"""Collecting from a Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics).

Each family is read with one range query per chunk; chunks keep every series under the
`max_points_per_query` limit (Prometheus refuses more than 11,000 points per series). A window is
fetched completely before anything is written: a failure part-way leaves the warehouse as it was.

The query grid: for a window [start, end) at step s, points are start+s, ..., end (inclusive), so
every returned point t becomes the warehouse row [t-s, t), inside the window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from collectors.series import PROMQL_BY_NAME
from core.errors import QueryError, SourceUnavailable
from core.timeutil import Window, iso


@dataclass
class Fetched:
    """Series labels and their points on the query grid (t in epoch ms, grid END points)."""

    series: list[tuple[str, dict[str, str]]]
    sid: np.ndarray
    t_ms: np.ndarray
    v: np.ndarray
    skipped_series: int = 0


def make_client(url: str, timeout_s: float, retries: int) -> PrometheusConnect:
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        backoff_factor=0.5,
        backoff_jitter=0.25,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=("GET",),
        raise_on_status=False,
    )
    return PrometheusConnect(url=url.rstrip("/"), retry=retry, timeout=timeout_s)


def chunks(window: Window, step_s: int, max_points: int) -> Iterator[tuple[datetime, datetime]]:
    """(first point, last point) pairs covering start+step .. end with at most max_points each."""
    first = window.start + timedelta(seconds=step_s)
    span = timedelta(seconds=step_s * (max_points - 1))
    while first <= window.end:
        last = min(first + span, window.end)
        yield first, last
        first = last + timedelta(seconds=step_s)


def fetch(client: PrometheusConnect, url: str, window: Window, step_s: int, max_points: int) -> Fetched:
    """Read every ingested family over the window; raise before returning anything on failure."""
    series: list[tuple[str, dict[str, str]]] = []
    index: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    sids: list[np.ndarray] = []
    times: list[np.ndarray] = []
    values: list[np.ndarray] = []
    skipped = 0
    for name, query in PROMQL_BY_NAME.items():
        for first, last in chunks(window, step_s, max_points):
            for item in _query_range(client, url, query, first, last, step_s):
                labels = {k: v for k, v in item.get("metric", {}).items() if k != "__name__"}
                points = item.get("values")
                if not isinstance(points, list):
                    skipped += 1
                    continue
                key = (name, tuple(sorted(labels.items())))
                sid = index.setdefault(key, len(series))
                if sid == len(series):
                    series.append((name, labels))
                t, v = _points(points)
                sids.append(np.full(len(t), sid, dtype=np.int32))
                times.append(t)
                values.append(v)
    if not sids:
        return Fetched(series, np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0), skipped)
    return Fetched(series, np.concatenate(sids), np.concatenate(times), np.concatenate(values), skipped)


def _points(points: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    t = np.fromiter((round(float(p[0]) * 1000) for p in points), dtype=np.int64, count=len(points))
    v = np.fromiter((float(p[1]) for p in points), dtype=np.float64, count=len(points))
    keep = ~np.isnan(v)
    return t[keep], v[keep]


def _query_range(
    client: PrometheusConnect, url: str, query: str, first: datetime, last: datetime, step_s: int
) -> list[dict[str, Any]]:
    start, end = first.replace(tzinfo=UTC), last.replace(tzinfo=UTC)
    try:
        result = client.custom_query_range(query, start_time=start, end_time=end, step=f"{step_s}s")
    except PrometheusApiClientException as exc:
        text = str(exc)
        if "HTTP Status Code 5" in text:
            raise SourceUnavailable(
                f"{url}: server error for query {query!r} [{iso(first)}..{iso(last)}]: {text[:200]}"
            ) from exc
        raise QueryError(f"{url}: query {query!r} rejected: {text[:300]}") from exc
    except requests.exceptions.RetryError as exc:
        raise SourceUnavailable(f"{url}: still failing after retries for query {query!r}") from exc
    except requests.exceptions.ConnectionError as exc:
        raise SourceUnavailable(f"{url}: cannot connect ({type(exc).__name__}); is Prometheus running there?") from exc
    except requests.exceptions.Timeout as exc:
        raise SourceUnavailable(f"{url}: timed out on query {query!r}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise SourceUnavailable(f"{url}: malformed response to query {query!r} ({type(exc).__name__})") from exc
    if not isinstance(result, list):
        raise SourceUnavailable(f"{url}: malformed response to query {query!r} (result is not a list)")
    return result
