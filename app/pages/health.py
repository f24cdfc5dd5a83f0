"""Health: filled in by the health analytics (see README)."""

from __future__ import annotations

import streamlit as st

st.title("Health")
st.info("This page needs the health analytics, which this build does not include yet.")
