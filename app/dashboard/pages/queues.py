"""Queues and capacity: who waits for GPUs, how long, and why free GPUs stay unusable (`report queues`)."""

from __future__ import annotations

import altair as alt
import streamlit as st

from app.dashboard import charts, ui

ui.require_admin()
st.title("Queues and capacity")
filters: ui.Filters | None = st.session_state.get("filters")
if filters is None:
    ui.no_data()
    ui.stop()

data = ui.queues(ui.mtime(), filters.start, filters.end)
totals = data["totals"]
cols = st.columns(4)
cols[0].metric(
    "Pending GPU-hours", f"{totals['pending_gpu_hours']:,.2f}", help="GPUs Pending pods asked for, x how long"
)
cols[1].metric(
    "Wait p95",
    f"{totals['wait_p95_seconds'] or 0:,.0f} s",
    help="creation to binding; still Pending: to the window's end",
)
cols[2].metric("Never started", totals["never_started"], help="Pending in the window and not started by its end")
cols[3].metric(
    "Fragmented GPU-hours",
    f"{totals['fragmented_gpu_hours']:,.2f}",
    help="GPUs free on nodes where none of the Pending pods fits (by GPU count and resource)",
)
st.caption(
    f"Fragmentation cost ${totals['fragmented_cost_usd']} at the nodes' prices; the largest whole-GPU request the "
    f"fleet could place while pods waited: {totals['largest_placeable_gpus_min']} to "
    f"{totals['largest_placeable_gpus_max']} GPUs."
)

rows = filters.apply(data["rows"]) if not data["rows"].empty else data["rows"]
if rows.empty:
    st.info("No GPU pod waited in this window (or no kube-state-metrics Pending phases were collected).")
else:
    st.subheader("Waiting by team")
    st.dataframe(rows, hide_index=True, width="stretch")
    timeline = filters.apply(data["timeline"])
    if not timeline.empty:
        st.subheader("Pending demand over time (GPU-hours per hour)")
        pending = timeline.pivot_table(index="hour", columns="team", values="pending_gpu_hours", aggfunc="sum")
        charts.wide_bars(pending, "hour", "pending GPU-hours", "team")
    waits = filters.apply(data["wait_histogram"])
    st.subheader("Wait to schedule: pods per wait")
    st.altair_chart(
        alt.Chart(waits)
        .mark_bar()
        .encode(
            x=alt.X("wait_from_seconds:O", title="wait from (s)", sort=None),
            y=alt.Y("pods:Q", title="pods"),
            color="team:N",
            tooltip=["team", "wait_from_seconds", "wait_to_seconds", "pods"],
        ),
        width="stretch",
    )

heat = data["heatmap"]
if not heat.empty:
    st.subheader("Fragmentation: node x hour (GPU-hours free but fitting no pending pod)")
    st.caption(
        f"The {heat['node'].nunique()} most fragmented of {totals['fragmented_nodes']} nodes with fragmented GPU-hours."
    )
    st.altair_chart(
        alt.Chart(heat)
        .mark_rect()
        .encode(
            x=alt.X("hour:T", title="UTC"),
            y=alt.Y("node:N"),
            color=alt.Color("fragmented_gpu_hours:Q", title="fragmented"),
            tooltip=["node", "hour", "free_gpu_hours", "fragmented_gpu_hours", "largest_pending_gpus"],
        ),
        width="stretch",
    )
if not data["mig"].empty:
    st.subheader("MIG profiles: free vs asked for while pods waited (instance-hours)")
    st.dataframe(data["mig"], hide_index=True, width="stretch")
if not data["queues"].empty:
    st.subheader("Queue quotas (Kueue / Volcano)")
    st.dataframe(data["queues"], hide_index=True, width="stretch")
