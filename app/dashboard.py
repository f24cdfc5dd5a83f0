"""gpuledger dashboard (Streamlit multipage). Run with `gpuledger dashboard`.

The entrypoint renders the shared sidebar filters (kept in the URL) and hands the chosen page the
filters through session state; each page lives in app/pages/ and reads through app/ui.py.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import ui

st.set_page_config(page_title="gpuledger", page_icon=":bar_chart:", layout="wide")

PAGES = Path(__file__).parent / "pages"
pages = [
    st.Page(PAGES / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page(PAGES / "teams.py", title="Teams", icon=":material/groups:"),
    st.Page(PAGES / "health.py", title="Fleet health", icon=":material/monitor_heart:"),
    st.Page(PAGES / "inference.py", title="Inference", icon=":material/speed:"),
    st.Page(PAGES / "drift.py", title="Drift", icon=":material/ssid_chart:"),
    st.Page(PAGES / "alerts.py", title="Alerts", icon=":material/notifications:"),
    st.Page(PAGES / "exports.py", title="Exports", icon=":material/download:"),
    st.Page(PAGES / "status.py", title="Data status", icon=":material/database:"),
]
nav = st.navigation(pages)
st.session_state["filters"] = ui.sidebar_filters()
nav.run()
