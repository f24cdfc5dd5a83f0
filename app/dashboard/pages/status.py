"""Data status: what was collected when, how much is stored, and what is missing."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.dashboard import ui

ui.require_admin()
POLL_S = 2

st.title("Data status")
if not ui.warehouse().exists():
    ui.no_data()
    ui.stop()
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
st.subheader("Time-slicing replicas per node")
if info["replicas"]:
    st.caption(
        "Where each shared node's replicas come from: the nvidia.com/gpu.replicas label, or kube-state-metrics' "
        "GPU capacity over the node's physical GPUs. `disagree`: the two differ (the label is used)."
    )
    st.dataframe(pd.DataFrame(info["replicas"]), hide_index=True, width="stretch")
else:
    st.write("No time-sliced or MPS node.")


def listed(report: dict, sections: dict[str, str]) -> None:
    """What a reconciliation lists beside its rows: each non-empty list under a warning."""
    for title, key in sections.items():
        if report[key]:
            st.warning(title)
            st.dataframe(pd.DataFrame(report[key]), hide_index=True, width="stretch")


def show_bill(bill: dict | None) -> None:
    st.subheader("Bill vs ledger")
    if bill is None:
        st.write("No GPU node-hours yet.")
        return
    totals, window = bill["totals"], bill["window"]
    st.caption(
        f"{window['start']} to {window['end']}: node-hours x the price in force (what the provider bills at the "
        "configured prices) against the ledger's total, per node (`gpuledger report reconcile` for any window)."
    )
    st.metric("Difference (ledger − provider)", f"${totals['difference_usd']}")
    st.dataframe(pd.DataFrame(bill["rows"]), hide_index=True, width="stretch")
    listed(
        bill,
        {
            "Unpriced nodes": "unpriced_nodes",
            "GPU-hours DCGM reported on nodes kube-state-metrics never listed": "dcgm_without_node",
            "GPU requests on nodes no source gives GPUs": "requests_without_gpus",
        },
    )


def show_invoice(invoice: dict | None) -> None:
    st.subheader("Invoice vs ledger")
    if invoice is None:
        st.write("No bill imported for the data's hours (`gpuledger billing import`).")
        return
    totals, window = invoice["totals"], invoice["window"]
    st.caption(
        f"{window['start']} to {window['end']}: the imported bill's effective cost against the ledger's node-hours at "
        "list prices, per instance type (`gpuledger report reconcile --source billing` for any window or grouping)."
    )
    left, mid, right = st.columns(3)
    left.metric("Invoice (effective)", f"${totals['invoice_effective_usd']}")
    mid.metric("Ledger at list", f"${totals['ledger_list_usd']}")
    right.metric("GPU node-hours priced by the bill", f"{invoice['coverage_pct']}%")
    st.dataframe(pd.DataFrame(invoice["rows"]), hide_index=True, width="stretch")
    listed(invoice, {"Invoice lines no node of the ledger ran": "outside_kubernetes",
                     "Nodes no invoice line names": "nodes_without_invoice"})  # fmt: skip


@st.fragment(run_every=POLL_S)
def pending() -> None:
    """Shown while the reconciliations are first worked out; polls the cache and reruns the page once they are there."""
    if ui.reconciliations_ready(ui.mtime()) is not None:
        st.rerun()
    st.subheader("Bill vs ledger")
    st.info(
        "Reconciling the last day of node-hours with the prices and the imported bill: the panels appear here when ready."
    )


panels = ui.reconciliations_ready(ui.mtime())
if panels is None:
    pending()
else:
    show_bill(panels["bill"])
    show_invoice(panels["invoice"])
