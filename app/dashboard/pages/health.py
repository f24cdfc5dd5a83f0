"""Fleet health: which GPUs need action, why, since when, and what their unreliability cost."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app.dashboard import health_grid, ui
from core import conventions as c

ui.require_admin()
COLOURS = {
    c.STATE_HEALTHY: "#2e7d32",
    c.STATE_WATCH: "#f9a825",
    c.STATE_DRAIN: "#ef6c00",
    c.STATE_OFFLINE: "#6d4c41",
    c.STATE_RMA: "#c62828",
}

st.title("Fleet health")
filters: ui.Filters | None = st.session_state.get("filters")
if filters is None:
    ui.no_data()
    ui.stop()

ui.prefetch_reports("health", filters.start, filters.end)  # the sidebar started them (a no-op then)
data = ui.health_report(ui.mtime(), filters.start, filters.end)
periods, cells = data["periods"], data["cells"]
if cells.empty:
    st.info("No DCGM samples in this window: health needs dcgm-exporter metrics (`gpuledger collect`).")
    ui.stop()
totals = data["totals"]
actions = periods[periods["state"].isin([c.STATE_DRAIN, c.STATE_OFFLINE, c.STATE_RMA])]
cols = st.columns(4)
cols[0].metric("GPUs evaluated", totals["gpus_evaluated"])
cols[1].metric("GPUs needing action", actions["gpu_uuid"].nunique())
cols[2].metric("GPU-hours lost", f"{totals['lost_gpu_hours']:,.1f}")
cols[3].metric("Cost of unreliability", ui.money(totals["lost_cost_usd"]))

st.subheader("Nodes × GPUs (worst state in the window)")
grid, hidden = health_grid.worst_states(cells)
if hidden:
    st.caption(f"{hidden:,} more nodes, every GPU healthy in this window, are not shown.")
if grid.empty:
    st.success("Every GPU of every node was healthy in this window.")
else:
    st.dataframe(
        grid.style.map(lambda v: f"background-color: {COLOURS.get(v, '#ffffff')}; color: white" if v else ""),
        width="stretch",
    )

unhealthy = periods.copy()  # the report's rows are the periods not healthy
if not unhealthy.empty:
    st.subheader("Incident timeline")
    unhealthy["gpu"] = unhealthy["node"] + " / GPU " + unhealthy["gpu_index"].astype(str)
    chart = (
        alt.Chart(unhealthy)
        .mark_bar()
        .encode(
            x=alt.X("since:T", title="UTC"),
            x2="until:T",
            y=alt.Y("gpu:N", title=None),
            color=alt.Color("state:N", scale=alt.Scale(domain=list(COLOURS), range=list(COLOURS.values()))),
            tooltip=["node", "gpu_uuid", "state", "since", "until", "evidence", "action"],
        )
    )
    st.altair_chart(chart, width="stretch")

st.subheader("GPUs needing action")
if actions.empty:
    st.success("No GPU needed draining, a reset or an RMA in this window.")
else:
    st.dataframe(
        actions[
            ["node", "gpu_uuid", "model", "state", "since", "until", "hours", "evidence", "action", "lost_cost_usd"]
        ],
        hide_index=True,
        width="stretch",
    )

st.subheader("Xid events")
events = pd.DataFrame(data["xid_events"])
if not events.empty:
    st.dataframe(events, hide_index=True, width="stretch")
else:
    st.write("No Xid in this window.")

st.subheader("Workloads that ran on unhealthy GPUs")
impacted = pd.DataFrame(data["impacted_pods"])
if not impacted.empty:
    st.dataframe(impacted, hide_index=True, width="stretch")
else:
    st.write("None.")

st.subheader("Failures and MTBF")
st.dataframe(pd.DataFrame(data["reliability"]["gpu_model"]), hide_index=True, width="stretch")
