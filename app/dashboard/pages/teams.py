"""Teams: one team's bill line by line, its trend, budget forecast and anomalies, downloadable."""

from __future__ import annotations

import streamlit as st

from analytics.cost.cost_rows import ROW_COLUMNS
from app.dashboard import charts, ui
from app.publish import render
from core import conventions as c

st.title("Team bill")
filters: ui.Filters | None = st.session_state.get("filters")
if filters is None:
    ui.no_data()
    ui.stop()

ui.prefetch_reports("teams", filters.start, filters.end)  # the sidebar started them (a no-op then)
lines = filters.apply(ui.workloads_frame(ui.mtime(), filters.start, filters.end))
teams = sorted(t for t in lines["team"].unique() if t not in (c.IDLE, c.UNHEALTHY))
if not teams:
    st.info("No team used GPUs in this window and filter. Widen the window or clear the filters.")
    ui.stop()
default = st.query_params.get("bill", teams[0])
team = st.selectbox("Team", teams, index=teams.index(default) if default in teams else 0)
st.query_params["bill"] = team

bill = lines[lines["team"] == team].sort_values("cost_usd", ascending=False)
line = ui.grouped(bill, ["team"]).iloc[0]  # the bill's lines summed, efficiency from the sums
cols = st.columns(5)
cols[0].metric("Total", ui.money(line["cost_usd"]))
cols[1].metric("GPU-hours", f"{line['gpu_hours']:,.1f}")
cols[2].metric("Efficiency", f"{line['efficiency'] * 100:.1f}%" if line["gpu_hours"] > 0 else "n/a")
cols[3].metric("Allocated but unused", ui.money(line["unused_cost_usd"]))
cols[4].metric("GPU energy", f"{line['energy_kwh']:,.1f} kWh", help="measured at the team's GPUs")

shown = bill[
    [
        "namespace",
        "workload",
        "cluster",
        "node_pool",
        "gpu_model",
        *ROW_COLUMNS,
        "price_sources",
    ]
]
st.subheader("Line by line")
st.dataframe(shown, hide_index=True, width="stretch")
st.download_button(
    "Download this bill (CSV)",
    # the shown rows only (already restricted to this user's teams), formula cells neutralised
    render.csv_text(shown.to_dict("records"), list(shown.columns)).encode("utf-8"),
    file_name=render.safe_filename(f"gpuledger-{team}-{filters.start:%Y%m%d}-{filters.end:%Y%m%d}.csv"),
    mime="text/csv",
)

daily = filters.apply(ui.breakdown(ui.mtime(), filters.start, filters.end))
st.subheader("Daily cost")
charts.wide_bars(daily[daily["team"] == team].groupby("day")["cost_usd"].sum(), "day", "cost (USD)")
st.subheader("Daily GPU energy (kWh)")
charts.wide_bars(daily[daily["team"] == team].groupby("day")["energy_kwh"].sum(), "day", "kWh")

budgets = ui.budget_frame(ui.mtime(), filters.end)
if budgets is not None and team in set(budgets["team"]):
    line = budgets[budgets["team"] == team].iloc[0]
    st.subheader("Forecast vs budget")
    st.write(
        f"Month to date **{ui.money(line['month_to_date_usd'])}**, month-end forecast **{ui.money(line['forecast_usd'])}**"
        + (
            f" against a budget of **{ui.money(line['budget_usd'])}** ({line['status']})."
            if line["budget_usd"]
            else " (no budget set: `budgets.monthly_usd`)."
        )
        + f" Method: {line['method']}; error on held-out days: "
        + (
            f"{line['holdout_mape']:.0%}."
            if line["holdout_mape"] == line["holdout_mape"] and line["holdout_mape"] is not None
            else "n/a."
        )
    )

found = filters.restrict(ui.anomalies_frame(ui.mtime(), filters.start, filters.end))
found = found[found["team"] == team]
st.subheader("Anomalies")
if found.empty:
    st.write("No day in this window departs from the team's usual spend.")
else:
    st.dataframe(found, hide_index=True, width="stretch")
