"""The dashboard's shared sidebar: the window and the filters (cluster, team, GPU model, node pool), kept in the URL.

`serve` is what the entrypoint does for a page: the window and what each filter holds first (nothing to wait for),
the page, then the filter lists, whose values come from the window's breakdown (a chargeback of the window), which
most pages do not show and need not wait for.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import pandas as pd
import streamlit as st

from app.dashboard import access, freshness, ui
from core.errors import GpuledgerError


def _query_dates(first: date, last: date) -> tuple[date, date]:
    q = st.query_params
    try:
        start = date.fromisoformat(q.get("start", "")) if q.get("start") else max(first, last - timedelta(days=6))
        end = date.fromisoformat(q.get("end", "")) if q.get("end") else last
    except ValueError:
        start, end = max(first, last - timedelta(days=6)), last
    return max(first, min(start, last)), max(first, min(end, last))


def serve(scope: access.Scope, page: str, run: Callable[[], None]) -> None:
    """What the entrypoint does for `page` (`run` renders it): the sidebar's window and filters, the page, then the
    filter lists."""
    filters = st.session_state["filters"] = sidebar_filters(scope, page)
    with ui.page_run():
        run()
    if filters is not None:  # after the page: their values come from the breakdown, which most pages do not wait for
        sidebar_pickers(filters)


def sidebar_filters(scope: access.Scope = access.EVERYTHING, page: str = "") -> ui.Filters | None:
    """The shared filters (kept in the URL), without waiting for anything: the window's date input, and what each
    filter list holds (the user's last choice, else the URL's; sidebar_pickers renders the lists after the page).
    None when the warehouse has no data. `page` (the one about to run) has its reports started beside the breakdown
    the filter lists offer values from."""
    try:
        covered = ui.span(ui.mtime()) if ui.warehouse().exists() else None
    except GpuledgerError as exc:
        st.error(str(exc))
        return None
    if covered is None:
        return None
    first, last = covered[0].date(), (covered[1] - timedelta(seconds=1)).date()
    start, end = _query_dates(first, last)
    picked = st.sidebar.date_input(
        "Window (UTC days)", value=(start, end), min_value=first, max_value=last, key="window"
    )
    if isinstance(picked, tuple) and len(picked) == 2:
        start, end = picked
    st.query_params["start"], st.query_params["end"] = start.isoformat(), end.isoformat()
    window = (
        datetime.combine(start, datetime.min.time()),
        datetime.combine(end, datetime.min.time()) + timedelta(days=1),
    )
    ui.prefetch_reports(page, *window, sidebar=True)
    picks = {key: _picked(key) for key in ui.FILTER_KEYS}
    for key, values in picks.items():
        st.query_params[key] = values
    return ui.Filters(window[0], window[1], picks, scope)


def _picked(key: str) -> list[str]:
    """What filter `key` holds: the user's last choice in its list (session state), else the URL's values."""
    chosen = st.session_state.get(f"f_{key}")
    return [str(v) for v in chosen] if chosen is not None else list(st.query_params.get_all(key))


def offered_values(
    version: tuple[str, float, str, float], start: datetime, end: datetime, admin: bool, teams: tuple[str, ...]
) -> dict[str, list[str]]:
    """What each sidebar filter offers, once per collection and window: every page run used to copy the whole
    breakdown frame for it (a tenth of the server's CPU under load)."""
    frame = access.Scope(admin, frozenset(teams)).restrict(ui.breakdown(version, start, end))
    return {
        key: sorted(str(v) for v in frame.get(key, pd.Series(dtype=str)).dropna().unique() if v)
        for key in ui.FILTER_KEYS
    }


cached_offered_values = st.cache_data(show_spinner=False, max_entries=64)(offered_values)


def sidebar_pickers(filters: ui.Filters) -> None:
    """The sidebar's filter lists, rendered after the page: the values they offer come from the window's breakdown
    (a chargeback of the window: 0.6-1 s at 10,000 GPUs), which the pages that do not show it (health, alerts,
    queues, status and the rest) need not wait for. A value the window does not hold (an old link, a window moved)
    is dropped, and the page runs again without it."""
    version, teams = ui.mtime(), tuple(sorted(filters.scope.teams))
    fresh = freshness.current(ui.breakdown, version, filters.start, filters.end)  # else one collection behind
    try:
        offered = (cached_offered_values if fresh else offered_values)(
            version, filters.start, filters.end, filters.scope.admin, teams
        )
    except GpuledgerError as exc:  # the page above is whole without them
        st.sidebar.error(f"No filter lists: {exc}")
        return
    held = {key: [v for v in filters.picks[key] if v in offered[key]] for key in ui.FILTER_KEYS}
    if held != filters.picks:
        for key, values in held.items():
            st.session_state[f"f_{key}"] = values
            st.query_params[key] = values
        st.rerun()
    for key in ui.FILTER_KEYS:
        # a list's value is its session state once it has one (a default beside it makes Streamlit warn)
        default = None if f"f_{key}" in st.session_state else held[key]
        st.sidebar.multiselect(key.replace("_", " ").title(), offered[key], default=default, key=f"f_{key}")
