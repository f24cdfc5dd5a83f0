"""gpuledger dashboard (Streamlit multipage). Run with `gpuledger dashboard`.

The entrypoint renders the shared sidebar filters (kept in the URL) and hands the chosen page the
filters through session state; each page lives in app/dashboard/pages/ and reads through app/dashboard/ui.py.
The filter lists are rendered after the page: the values they offer come from the window's breakdown, which most
pages do not show and need not wait for (sidebar.py; a page ends early with ui.stop, not st.stop, so the
lists still follow it).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.dashboard import access, freshness, sidebar, ui

st.set_page_config(page_title="gpuledger", page_icon=":bar_chart:", layout="wide")

PAGES = Path(__file__).parent / "pages"
ALL_PAGES = {
    "overview": ("Overview", ":material/dashboard:"),
    "teams": ("Teams", ":material/groups:"),
    "health": ("Fleet health", ":material/monitor_heart:"),
    "queues": ("Queues and capacity", ":material/hourglass_top:"),
    "inference": ("Inference", ":material/speed:"),
    "drift": ("Drift", ":material/ssid_chart:"),
    "alerts": ("Alerts", ":material/notifications:"),
    "exports": ("Exports", ":material/download:"),
    "status": ("Data status", ":material/database:"),
}
# who is looking decides what exists: a non-admin's navigation holds only their teams' pages
dashboard = ui.settings().dashboard
freshness.configure(dashboard.refresh_seconds)  # once per run, not per cached call
scope = ui.authenticate(dashboard)
st.session_state["scope"] = scope
pages = [
    st.Page(PAGES / f"{name}.py", title=ALL_PAGES[name][0], icon=ALL_PAGES[name][1], default=name == "overview")
    for name in access.pages_for(scope, ALL_PAGES)
]
nav = st.navigation(pages)
current = next((name for name, (title, _) in ALL_PAGES.items() if title == nav.title), "")
sidebar.serve(scope, current, nav.run)
