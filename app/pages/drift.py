"""Drift: filled in by the drift analytics (see README)."""

from __future__ import annotations

import streamlit as st

st.title("Drift")
st.info("This page needs the drift analytics, which this build does not include yet.")
