"""Inference: each service against its objectives, its burn rates, its unit cost, and canary verdicts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.dashboard import charts, ui

ui.require_admin()

st.title("Inference SLOs")
filters: ui.Filters | None = st.session_state.get("filters")
if filters is None:
    ui.no_data()
    ui.stop()
data = ui.serving(ui.mtime(), filters.start, filters.end)
if not data["has_data"]:
    st.info("No serving metrics yet: collect vLLM, Triton, TGI or KServe metrics (`gpuledger collect`).")
    ui.stop()
if not data["slos"]:
    st.info("No SLO is declared: add `serving.services.<name>.slos` (or `serving.sloth_specs`) to the settings file.")
else:
    st.caption(f"Evaluated at {data['at']} (UTC) over each SLO's window.")
    rows = []
    for s in data["slos"]:
        burns = {f"burn {b['long']}/{b['short']}": b["long_rate"] for b in s["burn_rates"]}
        firing = [f"{b['long']}/{b['short']}" for b in s["burn_rates"] if b["firing"]]
        rows.append(
            {
                "service": s["service"],
                "slo": s["slo"],
                "objective %": s["objective"],
                "SLI %": None if s["sli_value"] is None else round(s["sli_value"] * 100, 3),
                "error budget left %": None
                if s["error_budget_remaining"] is None
                else round(s["error_budget_remaining"] * 100, 1),
                **burns,
                "burning": ", ".join(firing) or "-",
            }
        )
    table = pd.DataFrame(rows)
    at_risk = table[(table["error budget left %"].fillna(100) < 25) | (table["burning"] != "-")]
    cols = st.columns(3)
    cols[0].metric("SLOs", len(table))
    cols[1].metric("At risk", len(at_risk), help="under 25% of the error budget left, or a burn-rate pair firing")
    cols[2].metric("Services", table["service"].nunique())
    st.dataframe(table, hide_index=True, width="stretch")
    st.subheader("Burn rate by window")
    burn = pd.DataFrame(
        [
            {"slo": f"{s['service']}/{s['slo']}", "window": b["long"], "burn rate": b["long_rate"]}
            for s in data["slos"]
            for b in s["burn_rates"]
            if b["long_rate"] is not None
        ]
    )
    if not burn.empty:
        charts.bars(burn, "window", "burn rate", "slo", stack=False)
st.subheader("Unit cost")
costs = pd.DataFrame(data["unit_costs"])
if not costs.empty:
    st.dataframe(costs, hide_index=True, width="stretch")
else:
    st.write("No serving pod cost in this window.")
st.subheader("Canary verdicts")
if data["canaries"]:
    for v in data["canaries"]:
        st.markdown(f"**{v['model']}**: **{v['verdict']}** — " + "; ".join(v.get("reasons", [])))
        st.dataframe(pd.DataFrame(v["checks"]), hide_index=True, width="stretch")
else:
    st.write("No model served two versions at once in this window.")
