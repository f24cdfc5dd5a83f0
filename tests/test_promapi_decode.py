"""Decoding query_range answers: every series' points parsed at once must give exactly the points
the answer holds, whatever the series, spacing or values; a bad series falls back to one at a time."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.metrics.prometheus import answers

_VALUE = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from([0.0, -0.0, 1e-300, 5e300])
_POINTS = st.lists(st.tuples(st.integers(1_700_000_000_000, 1_800_000_000_000), _VALUE), max_size=6)
_SERIES = st.lists(
    st.tuples(st.dictionaries(st.sampled_from(["a", "b", "__name__"]), st.text(max_size=3)), _POINTS), max_size=6
)


def _text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _answer(series: list[tuple[dict[str, str], list[tuple[int, float]]]], indent: int | None) -> bytes:
    result = [{"metric": m, "values": [[t / 1000, _text(v)] for t, v in points]} for m, points in series]
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    return json.dumps(body, indent=indent).encode()


@given(_SERIES, st.sampled_from([None, 1]))
@settings(max_examples=200, deadline=None)
def test_every_series_gets_exactly_its_points_without_nan_whatever_the_spacing(series, indent) -> None:  # type: ignore[no-untyped-def]
    matrix = answers.decode_matrix(_answer(series, indent), "http://p", "query 'x'")
    assert matrix.skipped == 0
    assert matrix.labels == [{k: v for k, v in m.items() if k != "__name__"} for m, _ in series]
    for i, (_, points) in enumerate(series):
        t, v = matrix.points(i)
        kept = [(ts, value) for ts, value in points if not math.isnan(value)]
        assert t.tolist() == [ts for ts, _ in kept]
        assert np.array_equal(v, np.array([value for _, value in kept], dtype=np.float64))


def test_a_series_with_bad_points_is_skipped_and_the_others_keep_theirs() -> None:
    body = json.loads(
        _answer([({"a": "1"}, [(1_700_000_000_000, 1.0)]), ({"a": "2"}, [(1_700_000_060_000, 2.0)])], None)
    )
    body["data"]["result"].insert(1, {"metric": {"a": "bad"}, "values": [[1_700_000_000, "hot"]]})
    body["data"]["result"].append({"metric": {"a": "flat"}, "values": [1_700_000_000, "1"]})
    matrix = answers.decode_matrix(json.dumps(body).encode(), "http://p", "query 'x'")
    assert matrix.skipped == 2
    assert matrix.labels == [{"a": "1"}, {"a": "2"}]
    assert [matrix.points(i)[1].tolist() for i in range(2)] == [[1.0], [2.0]]
