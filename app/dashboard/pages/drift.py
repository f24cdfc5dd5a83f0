"""Drift: each serving feature's drift statistic per day against the window's first day."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app.dashboard import charts, ui

ui.require_admin()

st.title("Drift")
filters: ui.Filters | None = st.session_state.get("filters")
if filters is None:
    ui.no_data()
    ui.stop()
models = ui.serving_models(ui.mtime())
if not models:
    st.info(
        "No serving histograms yet: drift needs prompt/generation length or latency histograms from a model server."
    )
    ui.stop()
if (filters.end - filters.start).days < 2:
    st.info("Pick a window of at least two days: each day is compared with the first one.")
    ui.stop()
wanted = st.query_params.get("model", "")
model: str = st.selectbox("Model", models, index=models.index(wanted) if wanted in models else 0) or models[0]
st.query_params["model"] = model
data = ui.drift_days(ui.mtime(), filters.start, filters.end, model)
cells = pd.DataFrame(data["cells"])
if cells.empty:
    st.info(f"{model} has no traffic histograms in this window.")
    ui.stop()
st.caption(
    f"Reference: {data['reference']['start']} to {data['reference']['end']}. Cell = the feature's drift statistic "
    "(PSI for ordered histograms, chi-square p-value for categories); bold outline = drift."
)
heat = (
    alt.Chart(cells)
    .mark_rect()
    .encode(
        x=alt.X("day:O"),
        y=alt.Y("feature:N"),
        color=alt.Color("value:Q", scale=alt.Scale(scheme="orangered")),
        stroke=alt.condition("datum.drift", alt.value("black"), alt.value(None)),
        tooltip=["day", "feature", "method", "value", "drift"],
    )
)
st.altair_chart(heat, width="stretch")
day = st.selectbox("Day", sorted(cells["day"].unique()), index=len(cells["day"].unique()) - 1)
feature = st.selectbox("Feature", sorted(cells["feature"].unique()))
detail = data["details"].get(f"{day}|{feature}")
if detail:
    dist = detail.get("distributions") or {}
    if dist.get("edges"):
        frame = pd.DataFrame(
            {"bin": [str(e) for e in dist["edges"]], "reference": dist["reference"], "current": dist["current"]}
        )
        charts.wide_bars(frame.set_index("bin"), "bin", "frequency", "sample", stack=False)
    st.json(detail)
