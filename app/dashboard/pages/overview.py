"""Overview: the spend, where it went, how well it was used, and what to do about it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from analytics.cost.cost_rows import ENERGY_COLUMNS
from app.dashboard import charts, ui
from core import conventions as c

SAVINGS_POLL_S = 2

st.title("GPU spend and efficiency")
filters: ui.Filters | None = st.session_state.get("filters")
if filters is None:
    ui.no_data()
    ui.stop()

ui.prefetch_reports("overview", filters.start, filters.end)  # the sidebar started them (a no-op then)
frame = filters.apply(ui.breakdown(ui.mtime(), filters.start, filters.end))
total = frame["cost_usd"].sum()
idle = frame.loc[frame["kind"] == c.IDLE, "cost_usd"].sum()
unallocated = frame.loc[frame["kind"] == c.UNALLOCATED, "cost_usd"].sum()
unhealthy = frame.loc[frame["kind"] == c.UNHEALTHY, "cost_usd"].sum()
work = frame[~frame["kind"].isin([c.IDLE, c.UNHEALTHY])]
allocated_h, used_h = work["gpu_hours"].sum(), work["used_gpu_hours"].sum()

cols = st.columns(4)
cols[0].metric("GPU spend in window", ui.money(total))
cols[1].metric("Idle share", f"{idle / total * 100:.1f}%" if total else "n/a", help="GPU capacity no pod requested")
cols[2].metric(
    "Unallocated share", f"{unallocated / total * 100:.1f}%" if total else "n/a", help="GPU pods without an owner label"
)
cols[3].metric(
    "Fleet efficiency",
    f"{used_h / allocated_h * 100:.1f}%" if allocated_h else "n/a",
    help="used / allocated GPU-hours",
)

if unhealthy:
    st.warning(
        f"{ui.money(unhealthy)} of the window's spend is on GPUs that stopped reporting (`{c.UNHEALTHY}`: fallen "
        "off the bus, or their exporter down): see the Health page for which GPUs and since when."
    )

st.subheader("Cost by team and day")
trend = frame.pivot_table(index="day", columns="team", values="cost_usd", aggfunc="sum").fillna(0.0)
charts.wide_bars(trend, "day", "cost (USD)", "team")

st.subheader("Cost by team")
by_team = ui.grouped(frame, ["team"])  # the chargeback's rows summed: the CLI's and exports' by-team numbers
st.dataframe(by_team, hide_index=True, width="stretch")
st.caption(
    f"Window {filters.start:%Y-%m-%d} to {filters.end:%Y-%m-%d} (UTC, end exclusive). `__idle__` is GPU capacity no pod "
    "requested; `__unallocated__` is GPU pods without an owner label. Rows sum to the capacity's cost, to the cent."
)

st.subheader("GPU energy")
energy = frame["energy_kwh"].sum()
idle_kwh = frame.loc[frame["kind"] == c.IDLE, "energy_kwh"].sum()
energy_cols = st.columns(4)
energy_cols[0].metric("GPU energy in window", f"{energy:,.1f} kWh", help="measured at each GPU (its energy counter)")
energy_cols[1].metric(
    "Drawn by idle GPUs", f"{idle_kwh:,.1f} kWh", help="GPUs and MIG slices no pod held: their energy stays on __idle__"
)
energy_cols[2].metric(
    "Integrated from power",
    f"{frame['energy_derived_kwh'].sum() / energy * 100:.1f}%" if energy else "n/a",
    help="the share of GPUs' energy without an energy counter reading (power held over the step)",
)
energy_cols[3].metric(
    "Carbon",
    f"{frame['co2e_kg'].sum():,.1f} kgCO2e",
    help="kWh x PUE x the grid's carbon intensity in each node's region",
)
charts.wide_bars(
    frame.pivot_table(index="day", columns="team", values="energy_kwh", aggfunc="sum").fillna(0.0), "day", "kWh", "team"
)
by_model = ui.grouped(frame, ["gpu_model"])[["gpu_model", "gpu_hours", *ENERGY_COLUMNS]]
# kWh per GPU-hour is the model's mean draw in kW: measured, where a per-instance-type coefficient would be one number
by_model.insert(
    2, "mean_draw_w", (by_model["energy_kwh"] / by_model["gpu_hours"] * 1000).where(by_model["gpu_hours"] > 0)
)
st.dataframe(by_model.sort_values("energy_kwh", ascending=False, ignore_index=True), hide_index=True, width="stretch")
st.caption(
    "GPU energy and carbon by GPU model (idle GPUs included): `mean_draw_w` is kWh per GPU-hour held or idle, the "
    "measured mean draw; `embodied_co2e_kg` is the GPUs' amortised manufacturing carbon where `carbon.embodied` is set."
)

budgets = ui.budget_frame(ui.mtime(), filters.end)
budgets = filters.restrict(budgets) if budgets is not None else None
if budgets is not None and not budgets.empty:
    st.subheader("Month to date vs budget")
    st.dataframe(budgets, hide_index=True, width="stretch")


def _show_savings(recs: pd.DataFrame) -> None:
    st.subheader("Top savings")
    if recs.empty:
        st.caption(
            "No savings recommendations for this window and filter: no idle pool, oversized pod or move to spot."
        )
        return
    st.dataframe(recs.head(5), hide_index=True, width="stretch")
    st.caption(
        f"{len(recs)} recommendations worth {ui.money(pd.to_numeric(recs['monthly_savings_usd']).sum())}/month in all."
    )


@st.fragment(run_every=SAVINGS_POLL_S)
def _savings_pending(f: ui.Filters) -> None:
    """Shown while the recommendations are first worked out: they read per-step samples (a pool's peak, a
    pod's run hours and memory p95), which takes seconds to a minute on a large fleet, so the rest of the
    page does not wait for them. Polls the cache and reruns the page once they are there."""
    if ui.savings_ready(ui.mtime(), f.start, f.end) is not None:
        st.rerun()
    st.subheader("Top savings")
    st.info(
        "Working out savings recommendations for this window (a pass over its per-step samples): they appear here when ready."
    )


recs = ui.savings_ready(ui.mtime(), filters.start, filters.end)
if recs is None:
    _savings_pending(filters)
else:
    _show_savings(filters.restrict(recs))
