"""Bar charts from a Vega-Lite spec written here, not through st.bar_chart.

st.bar_chart builds an Altair chart and converts it on every page run, and Altair validates the whole spec against
the Vega-Lite JSON schema each time: py-spy on the teams page, rerun warm, put 42% of its script time in its two
bar charts, most of it in that validation. st.vega_lite_chart takes the spec as it is (Streamlit's theme still
applies); tests/test_dashboard.py validates every spec written here against the schema once, with Altair.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st


def spec(x: str, y: str, color: str | None = None, stack: bool = True) -> dict[str, Any]:
    """Bars of `y` per `x` (in the data's order), one colour per `color` value, stacked or side by side."""
    encoding: dict[str, Any] = {
        "x": {"field": x, "type": "ordinal", "sort": None, "title": x},
        "y": {"field": y, "type": "quantitative", "stack": "zero" if stack else None, "title": y},
        "tooltip": [{"field": x, "type": "ordinal"}, {"field": y, "type": "quantitative", "format": ",.2f"}],
    }
    if color is not None:
        encoding["color"] = {"field": color, "type": "nominal", "title": color}
        encoding["tooltip"].insert(1, {"field": color, "type": "nominal"})
        if not stack:
            encoding["xOffset"] = {"field": color, "type": "nominal"}
    return {"mark": {"type": "bar"}, "encoding": encoding}


def bars(data: pd.DataFrame, x: str, y: str, color: str | None = None, stack: bool = True) -> None:
    """A long frame's bars (one row per bar or bar part)."""
    st.vega_lite_chart(data, spec(x, y, color, stack), width="stretch")


def wide_bars(wide: pd.DataFrame | pd.Series, x: str, y: str, color: str = "series", stack: bool = True) -> None:
    """st.bar_chart's input: the index on the x axis and a bar part per column (a series: one bar per index value)."""
    long = long_frame(wide, x, y, color)
    bars(long, x, y, color if color in long.columns else None, stack)


def long_frame(wide: pd.DataFrame | pd.Series, x: str, y: str, color: str = "series") -> pd.DataFrame:
    """One row per bar part: (x, color, y) from a wide frame, (x, y) from a series. Times on the index show as
    YYYY-MM-DD (with HH:MM where any has a time of day): ordinal bars, as many as the index has values."""
    frame = wide.to_frame(y) if isinstance(wide, pd.Series) else wide
    labels = frame.index
    if _is_time(labels):
        times = pd.DatetimeIndex(pd.to_datetime(labels))
        labels = times.strftime("%Y-%m-%d %H:%M" if (times.hour.any() or times.minute.any()) else "%Y-%m-%d")
    long = frame.set_axis(pd.Index(labels, name=x)).reset_index()
    if isinstance(wide, pd.Series):
        return long
    return long.melt(id_vars=x, var_name=color, value_name=y)


def _is_time(index: pd.Index) -> bool:
    return isinstance(index, pd.DatetimeIndex) or (len(index) > 0 and hasattr(index[0], "strftime"))
