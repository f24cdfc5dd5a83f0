"""Counter increases in the warehouse equal PromQL's increase() on a real Prometheus, series by series:
resets, late starts, gaps, irregular scrapes, small first values, windows holding a single sample."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from analytics.serving.counters import Selector, Span, extrapolated_increase, series_increases
from core.store.warehouse import open_warehouse
from core.timeutil import parse_ts, to_epoch
from tests.conftest import serve_prometheus, warehouse_of

T0 = parse_ts("2026-11-02T00:00:00Z")
METRIC = "vllm:prompt_tokens_total"


def _series(rng: random.Random) -> dict[str, list[tuple[float, float]]]:
    """pod -> [(seconds since T0, value)]: each pod exercises one corner of extrapolatedRate."""
    out: dict[str, list[tuple[float, float]]] = {}
    value, steady = 1000.0, []
    for k in range(360):  # every 30 s for 3 h
        value += rng.randint(0, 40)
        steady.append((7 + 30 * k, value))
    out["steady"] = steady
    value, reset = 500.0, []
    for k in range(360):  # restarts at 1h17m and 2h: the counter drops and starts again
        t = 7 + 30 * k
        value = rng.randint(0, 5) if t in (4627, 7207) else value + rng.randint(10, 30)
        reset.append((t, value))
    out["reset"] = reset
    value, late = 3.0, []
    for k in range(120):  # starts at 47m10s from a small value: the zero point limits extrapolation
        late.append((2830 + 60 * k, value))
        value += rng.randint(100, 200)
    out["late"] = late
    gappy = [(13 + 60 * k, 50.0 * k) for k in range(150) if not 60 <= k < 80]  # 20 minutes missing
    out["gappy"] = gappy
    t, value, jitter = 3.25, 0.0, []
    while t < 3 * 3600:  # irregular scrapes, 25 to 35 s apart
        jitter.append((t, value))
        t += rng.uniform(25, 35)
        value += rng.randint(0, 9)
    out["jitter"] = jitter
    return out


def _openmetrics(series: dict[str, list[tuple[float, float]]]) -> str:
    lines = ["# TYPE vllm:prompt_tokens counter"]
    base = to_epoch(T0)
    for pod, points in series.items():
        labels = f'engine="0",model_name="m",namespace="ns",pod="{pod}"'
        lines += [f"{METRIC}{{{labels}}} {v:.1f} {base + t:.3f}" for t, v in points]
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def counters_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("counters") / "counters.om"
    path.write_text(_openmetrics(_series(random.Random(11))))
    return path


@pytest.fixture(scope="module")
def counters_prometheus(counters_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve_prometheus([counters_file], tmp_path_factory.mktemp("prom-counters")) as url:
        yield url


@pytest.fixture(scope="module")
def counters_warehouse(counters_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return warehouse_of([counters_file], tmp_path_factory.mktemp("wh-counters"), "15s")


def _prometheus_increase(url: str, window: str, at: float) -> dict[str, float]:
    answer = requests.get(
        f"{url}/api/v1/query", params={"query": f"increase({METRIC}[{window}])", "time": at}, timeout=10
    ).json()
    assert answer["status"] == "success", answer
    return {r["metric"]["pod"]: float(r["value"][1]) for r in answer["data"]["result"]}


WINDOWS = {"1m": 60, "5m": 300, "30m": 1800, "1h": 3600, "2h": 7200, "6h": 21600}
EVAL_OFFSETS = ["30m", "50m", "1h17m30s", "1h45m", "2h", "2h33m", "3h", "3h4m"]


def _seconds(text: str) -> int:
    from core.timeutil import parse_duration

    return parse_duration(text)


@pytest.mark.parametrize("at", EVAL_OFFSETS, ids=[f"evaluated {a} after the first scrape" for a in EVAL_OFFSETS])
def test_every_series_increase_equals_prometheus_at_every_window(
    counters_prometheus: str, counters_warehouse: Path, at: str
) -> None:
    end = T0 + timedelta(seconds=_seconds(at))
    spans = [Span(end, seconds) for seconds in WINDOWS.values()]
    with open_warehouse(counters_warehouse, read_only=True) as con:
        ours = series_increases(con, Selector(METRIC), spans)
    for i, window in enumerate(WINDOWS):
        theirs = _prometheus_increase(counters_prometheus, window, to_epoch(end))
        mine = {key[2]: value for key, value in ours.get(i, {}).items()}
        assert set(mine) == set(theirs), (window, "series with fewer than two samples have no increase")
        for pod, value in theirs.items():
            assert mine[pod] == pytest.approx(value, rel=1e-12, abs=1e-9), (window, pod)


EXTRAPOLATION_CASES = {
    "samples flush with both edges are not extrapolated": ((3, 0, 60_000, 10.0, 6.0, 0, 60_000), 6.0),
    "a gap under 1.1 spacings is extrapolated by its length": ((2, 10_000, 40_000, 10.0, 3.0, 0, 60_000), 6.0),
    "long gaps are extrapolated by half a spacing": ((2, 20_000, 30_000, 10.0, 2.0, 0, 60_000), 4.0),
    "a counter starting near zero is not extrapolated past zero": ((2, 30_000, 60_000, 1.0, 10.0, 0, 60_000), 11.0),
    "one sample is no data": ((1, 30_000, 30_000, 1.0, 0.0, 0, 60_000), None),
}


@pytest.mark.parametrize(("args", "expected"), list(EXTRAPOLATION_CASES.values()), ids=list(EXTRAPOLATION_CASES))
def test_extrapolation_follows_prometheus_rules(args: tuple, expected: float | None) -> None:
    assert extrapolated_increase(*args) == (pytest.approx(expected) if expected is not None else None)
