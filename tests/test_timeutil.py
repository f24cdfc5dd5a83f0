"""Time helpers (core/timeutil.py)."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from core.timeutil import iso


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)))
def test_iso_writes_what_strftime_writes_for_any_naive_utc_instant(ts: datetime) -> None:
    assert iso(ts) == ts.strftime("%Y-%m-%dT%H:%M:%SZ")
