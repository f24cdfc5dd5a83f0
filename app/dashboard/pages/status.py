"""Data status: what was collected when, how much is stored, and what is missing."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.dashboard import ui

ui.require_admin()

st.title("Data status")
if not ui.warehouse().exists():
    ui.no_data()
    st.stop()
info = ui.status(ui.mtime())
for warning in info["warnings"]:
    st.warning(warning)
if not info["warnings"]:
    st.success("All inputs present: GPU requests, pod labels, DCGM samples and prices.")
st.subheader("Collection runs per source")
st.dataframe(pd.DataFrame(info["runs"]), hide_index=True, width="stretch")
st.subheader("Watermarks")
if info["watermarks"]:
    st.dataframe(pd.DataFrame(info["watermarks"]), hide_index=True, width="stretch")
else:
    st.write("No incremental source yet (`gpuledger collect prometheus` records one per source).")
st.subheader("Rows stored")
st.dataframe(pd.DataFrame(sorted(info["counts"].items()), columns=["table", "rows"]), hide_index=True, width="stretch")
