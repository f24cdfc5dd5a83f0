"""Alerts: the generated rules, what each means, and which would have fired in the window."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from alerts import generator
from app.dashboard import ui
from app.stage_options import rule_spec
from core import conventions as c

ui.require_admin()

st.title("Alert rules")
spec = rule_spec(ui.settings())
rows = []
for rule_file in generator.generate(spec):
    for group in rule_file.groups:
        for rule in group.rules:
            rows.append(
                {
                    "file": rule_file.name,
                    "name": rule.alert or rule.record,
                    "kind": "alert" if rule.alert else "recording",
                    "severity": rule.labels.get("severity", ""),
                    "meaning": rule.annotations.get("summary", ""),
                    "action": rule.annotations.get("description", ""),
                    "expr": rule.expr,
                }
            )
frame = pd.DataFrame(rows)
for name, group in frame.groupby("file", sort=True):
    st.subheader(str(name))
    st.dataframe(group.drop(columns=["file"]), hide_index=True, width="stretch")

filters: ui.Filters | None = st.session_state.get("filters")
if filters is None:
    ui.stop()
st.subheader("Would have fired in this window")
lines = filters.apply(ui.workloads_frame(ui.mtime(), filters.start, filters.end))
low = lines[
    (lines["efficiency"].notna())
    & (lines["efficiency"] < spec.low_utilization_threshold)
    & (~lines["kind"].isin([c.IDLE, c.UNHEALTHY]))
]
st.write(
    f"**{c.ALERT_LOW_GPU_UTILIZATION}**: {len(low)} workload(s) averaged below {spec.low_utilization_threshold:.0%} activity."
)
if not low.empty:
    st.dataframe(
        low[["team", "namespace", "workload", "gpu_hours", "efficiency", "cost_usd"]], hide_index=True, width="stretch"
    )
orphans = lines[lines["kind"] == c.UNALLOCATED]
st.write(f"**{c.ALERT_GPU_POD_WITHOUT_TEAM}**: {len(orphans)} workload(s) ran GPU pods without an owner label.")
if not orphans.empty:
    st.dataframe(orphans[["namespace", "workload", "gpu_hours", "cost_usd"]], hide_index=True, width="stretch")
