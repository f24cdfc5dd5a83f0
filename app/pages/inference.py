"""Inference: filled in by the inference analytics (see README)."""

from __future__ import annotations

import streamlit as st

st.title("Inference")
st.info("This page needs the inference analytics, which this build does not include yet.")
