"""Exports: the weekly chargeback and FOCUS files that exist, with download buttons."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from app.dashboard import ui
from app.service import schedule

ui.require_admin()

st.title("Weekly exports")
root = Path(ui.settings().export.directory)
for waiting_week, why in sorted(schedule.read_waiting(root).items()) if root.exists() else []:
    st.warning(f"{waiting_week} is not exported yet: {why}")
folders = (
    sorted((p for p in root.glob("*-W*") if (p / "manifest.json").exists()), reverse=True) if root.exists() else []
)
if not folders:
    st.info(
        f"No exports in `{root}` yet. Write one with `gpuledger export weekly --week 2026-W45`; `gpuledger serve` writes them every Monday."
    )
    ui.stop()
week = st.selectbox("Week", [f.name for f in folders])
folder = root / week
manifest = json.loads((folder / "manifest.json").read_text())
totals = manifest["totals"]
cols = st.columns(3)
cols[0].metric("GPU capacity cost", ui.money(totals["node_cost_usd"]))
cols[1].metric("Idle", ui.money(totals["idle_cost_usd"]))
cols[2].metric("Unallocated", ui.money(totals["unallocated_cost_usd"]))
for name, entry in manifest["files"].items():
    path = folder / name
    st.download_button(f"{name} ({entry['rows']} rows)", path.read_bytes(), file_name=f"{week}-{name}", key=name)
    st.caption(f"sha256 {entry['sha256']}")
