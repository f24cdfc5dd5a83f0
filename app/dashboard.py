"""gpuledger overview page (Streamlit). Run with `gpuledger dashboard`.

Reads the warehouse named by $GPULEDGER_WAREHOUSE through the analytics functions only, read-only,
and caches results per warehouse modification time.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from analytics.chargeback import chargeback
from analytics.overview import data_span
from core import conventions as c
from core.errors import GpuledgerError
from core.settings import ENV_WAREHOUSE
from core.timeutil import Window
from core.warehouse import open_warehouse

st.set_page_config(page_title="gpuledger", page_icon=":bar_chart:", layout="wide")


def _warehouse() -> Path:
    return Path(os.environ.get(ENV_WAREHOUSE, "data/gpuledger.duckdb"))


@st.cache_data(show_spinner=False)
def _span(path: str, mtime: float) -> tuple[datetime, datetime] | None:
    with open_warehouse(Path(path), read_only=True) as con:
        return data_span(con)


@st.cache_data(show_spinner=False)
def _report(path: str, mtime: float, start: datetime, end: datetime) -> dict[str, Any]:
    with open_warehouse(Path(path), read_only=True) as con:
        return chargeback(con, Window(start, end)).as_dict()


def _pct(part: Decimal, whole: Decimal) -> str:
    return f"{(part / whole * 100):.1f}%" if whole else "n/a"


def main() -> None:
    st.title("GPU spend and efficiency")
    path = _warehouse()
    if not path.exists():
        st.info(
            f"No warehouse at `{path}` yet. Run `gpuledger demo` for a simulated fleet, or `gpuledger collect` for yours."
        )
        return
    mtime = path.stat().st_mtime
    try:
        span = _span(str(path), mtime)
    except GpuledgerError as exc:
        st.error(str(exc))
        return
    if span is None:
        st.info(
            "The warehouse has no GPU data yet. Run `gpuledger collect openmetrics FILE...` or `gpuledger collect prometheus`."
        )
        return
    first, last = span
    default_start = max(first.date(), (last - timedelta(days=7)).date())
    picked = st.date_input(
        "Window (UTC days)", value=(default_start, last.date()), min_value=first.date(), max_value=last.date()
    )
    start_day, end_day = picked if isinstance(picked, tuple) and len(picked) == 2 else (default_start, last.date())
    window = Window(
        datetime.combine(start_day, datetime.min.time()),
        datetime.combine(end_day, datetime.min.time()) + timedelta(days=1),
    )
    report = _report(str(path), mtime, window.start, window.end)
    _headline(report)
    _by_team(report)


def _headline(report: dict[str, Any]) -> None:
    totals = report["totals"]
    node = Decimal(totals["node_cost_usd"])
    allocated_h = sum(r["gpu_hours"] for r in report["rows"] if r["team"] not in (c.IDLE,))
    used_h = sum(r["used_gpu_hours"] for r in report["rows"] if r["team"] not in (c.IDLE,))
    cols = st.columns(4)
    cols[0].metric("GPU spend in window", f"${node:,.2f}")
    cols[1].metric("Idle share", _pct(Decimal(totals["idle_cost_usd"]), node), help="GPU capacity no pod requested")
    cols[2].metric(
        "Unallocated share", _pct(Decimal(totals["unallocated_cost_usd"]), node), help="GPU pods without a team label"
    )
    cols[3].metric(
        "Fleet efficiency",
        f"{used_h / allocated_h * 100:.1f}%" if allocated_h else "n/a",
        help="used / allocated GPU-hours",
    )
    if totals["unpriced_gpu_hours"]:
        st.warning(
            f"{totals['unpriced_gpu_hours']:.1f} GPU-hours ran on nodes with no matching price: import a price table."
        )


def _by_team(report: dict[str, Any]) -> None:
    frame = pd.DataFrame(
        [
            {
                "team": r["team"],
                "GPU-hours": r["gpu_hours"],
                "used GPU-hours": r["used_gpu_hours"],
                "efficiency": r["efficiency"],
                "cost (USD)": float(Decimal(r["cost_usd"])),
            }
            for r in report["rows"]
        ]
    )
    st.subheader("Cost by team")
    st.bar_chart(frame.set_index("team")["cost (USD)"], horizontal=True)
    st.dataframe(frame, hide_index=True, use_container_width=True)
    st.caption(
        f"Window {report['window']['start']} to {report['window']['end']}. `__idle__` is GPU capacity no pod requested; "
        "`__unallocated__` is GPU pods without a team label."
    )


main()
