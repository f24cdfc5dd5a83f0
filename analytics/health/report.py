"""GPU fleet health: findings -> a state per GPU over time, with the evidence of every transition.

Pure function of the warehouse, an explicit window, thresholds and the Xid catalog (no settings
are read here). The order of operations:

1. Signals (analytics/health/signals.py): for each GPU, the islands of rows where a finding is
   present: a volatile DBE count above 0, a remap flag, a counter rate above its limit, a new Xid,
   a silence while its node is up. History from `lookbehind` before the window is read, so a GPU's
   state when the window opens is known.
2. Findings: each island becomes a finding asking for a state (policy in health_policy.py). A watch
   finding lasts `watch_hold` after it stops being present. A drain or offline finding ends when it
   is cleared (the volatile counters restart after a GPU reset or driver reload, the Xid gauge
   returns to 0, the GPU reports again) and leaves a `watch` probation of `watch_hold`. The
   `rma_after_failures`-th hardware failure within `lookbehind` adds an RMA finding. RMA findings
   never clear: the card must be replaced (a new UUID).
3. Sweep: at every instant a GPU is in the most severe state its active findings ask for
   (healthy < watch < drain_recommended < offline < rma_recommended). Each change is a transition
   whose evidence is the findings that started (or, going down, ended) at that instant.
4. A node is in the most severe state of its GPUs (analytics/health/views.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from analytics.cost.attribution import Attribution
from analytics.health import coverage as cov
from analytics.health import signals as hs
from analytics.health.coverage import GpuInfo
from analytics.health.policy import ACTION_TEXT, RANK, SEVERITY_STATE, XID_ACTION_TEXT, HealthThresholds
from analytics.health.signals import GpuKey, Island
from analytics.health.xid_catalog import XidCatalog
from core import conventions as c
from core.timeutil import Window, iso

# Evidence order when several findings change state at the same instant (most decisive first).
PRIORITY = (
    c.SIG_RECURRENCE,
    c.SIG_ROW_REMAP_FAILURE,
    c.SIG_RETIRED_PAGES,
    c.SIG_RETIRED_DBE,
    c.SIG_OFFLINE,
    c.SIG_ECC_DBE,
    c.SIG_XID,
    c.SIG_ROW_REMAP_PENDING,
    c.SIG_RETIRED_PENDING,
    c.SIG_UNCORRECTABLE_REMAP,
    c.SIG_PCIE_REPLAY,
    c.SIG_THERMAL_VIOLATION,
    c.SIG_TEMPERATURE,
    c.SIG_PROBATION,
)
SIGNAL_STATE = {
    c.SIG_ECC_DBE: c.STATE_DRAIN,
    c.SIG_ROW_REMAP_FAILURE: c.STATE_RMA,
    c.SIG_RETIRED_PAGES: c.STATE_RMA,
    c.SIG_RETIRED_DBE: c.STATE_RMA,
    c.SIG_ROW_REMAP_PENDING: c.STATE_WATCH,
    c.SIG_RETIRED_PENDING: c.STATE_WATCH,
    c.SIG_UNCORRECTABLE_REMAP: c.STATE_WATCH,
    c.SIG_PCIE_REPLAY: c.STATE_WATCH,
    c.SIG_THERMAL_VIOLATION: c.STATE_WATCH,
    c.SIG_TEMPERATURE: c.STATE_WATCH,
}


@dataclass(frozen=True)
class Evidence:
    signal: str
    metric: str | None
    ts: datetime
    value: float | None = None
    previous: float | None = None
    xid: int | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "metric": self.metric,
            "ts": iso(self.ts),
            "xid": self.xid,
            "value": self.value,
            "previous": self.previous,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Finding:
    key: GpuKey
    state: str
    start: datetime
    end: datetime | None  # None: still active when the data ends
    opened: Evidence
    closed: Evidence | None
    action: str
    hardware: bool = False  # a hardware failure (DBE, hardware or bus Xid): counts towards recurrence


@dataclass
class Period:
    key: GpuKey
    state: str
    start: datetime  # clipped to the window
    end: datetime
    began: datetime  # when the GPU entered this state (before the window, for the first period)
    ongoing: bool  # the state still holds at the window's end
    from_state: str | None  # None: the GPU's first observed state
    evidence: list[Evidence]
    action: str | None

    @property
    def hours(self) -> float:
        return hs.hours(self.end - self.start)


@dataclass(frozen=True)
class XidEvent:
    key: GpuKey
    ts: datetime
    xid: int
    previous: int
    mnemonic: str
    cause: str
    severity: str
    action: str
    device_plugin_ignores: bool
    pods: tuple[str, ...]
    teams: tuple[str, ...]
    why: str


@dataclass
class HealthResult:
    window: Window
    catalog_version: str
    gpus: dict[GpuKey, GpuInfo]
    periods: list[Period] = field(default_factory=list)
    events: list[XidEvent] = field(default_factory=list)
    counters: dict[GpuKey, dict[str, float]] = field(default_factory=dict)  # increases within the window

    def transitions(self) -> list[Period]:
        """Periods that begin with a change of state inside the window."""
        return [p for p in self.periods if p.from_state is not None and p.began >= self.window.start]

    def state_at_end(self, key: GpuKey) -> str | None:
        last = [p for p in self.periods if p.key == key]
        return last[-1].state if last else None


def evaluate(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    thresholds: HealthThresholds,
    catalog: XidCatalog,
    attribution: Attribution | None = None,
    use_rollups: bool = True,
) -> HealthResult:
    """Every GPU's health periods and Xid events in `window` (reading `lookbehind` of history; spans and
    silences from the coverage rollup where current, unless `use_rollups` is off). Xid events name the
    teams `attribution` gives, the chargeback's (settings.chargeback), so both name the same team."""
    lo, hi = window.start - timedelta(seconds=thresholds.lookbehind_s), window.end
    gpus = cov.gpu_infos(con, lo, hi, use_rollups)
    islands = hs.level_islands(con, lo, hi) + hs.rate_islands(con, lo, hi, thresholds)
    islands += hs.temperature_islands(con, lo, hi, thresholds) + hs.retired_page_islands(con, lo, hi, thresholds)
    changes = hs.xid_changes(con, lo, hi, attribution or Attribution())
    resets = hs.counter_resets(con, lo, hi)
    findings = [f for i in islands for f in _from_island(i, thresholds)]
    findings += [f for x in changes for f in _from_xid(x, catalog, thresholds, resets.get(x.key, []))]
    findings += [
        f
        for s in cov.silences(con, lo, hi, thresholds.offline_after_s, use_rollups)
        for f in _from_silence(s, thresholds)
    ]
    findings += _recurrences(findings, thresholds)
    result = HealthResult(window, catalog.version, {k: g for k, g in gpus.items() if g.span[1] > window.start})
    by_key: dict[GpuKey, list[Finding]] = {}
    for finding in findings:
        by_key.setdefault(finding.key, []).append(finding)
    for key, info in sorted(result.gpus.items()):
        result.periods += _clip(_sweep(info, by_key.get(key, [])), window)
    result.events = [_event(x, catalog) for x in changes if x.previous is not None and window.start <= x.ts < hi]
    result.counters = hs.counter_increases(con, lo, window.start, hi)
    return result


def _hold(ts: datetime | None, t: HealthThresholds) -> datetime | None:
    return ts + timedelta(seconds=t.watch_hold_s) if ts is not None else None


def _probation(key: GpuKey, at: datetime, cause: Evidence, t: HealthThresholds) -> Finding:
    hold = timedelta(seconds=t.watch_hold_s)
    detail = f"probation: {cause.signal} cleared at {iso(at)}"
    closed = Evidence(c.SIG_PROBATION, cause.metric, at + hold, xid=cause.xid, detail=f"{detail}, {hold} elapsed")
    opened = Evidence(c.SIG_PROBATION, cause.metric, at, xid=cause.xid, detail=detail)
    return Finding(key, c.STATE_WATCH, at, at + hold, opened, closed, ACTION_TEXT[c.SIG_PROBATION])


def _from_island(i: Island, t: HealthThresholds) -> list[Finding]:
    state = SIGNAL_STATE[i.signal]
    opened = Evidence(i.signal, i.metric, i.start, i.value, i.previous, detail=_describe(i))
    action = ACTION_TEXT[i.signal]
    if state == c.STATE_RMA:  # never clears: the card is replaced, and comes back with a new UUID
        return [Finding(i.key, state, i.start, None, opened, None, action)]
    closed = None
    if i.end is not None:
        closed = Evidence(i.signal, i.metric, i.end, i.end_value, detail=_cleared(i))
    if state == c.STATE_WATCH:
        end = _hold(i.end, t)
        if closed is not None and end is not None:
            closed = Evidence(i.signal, i.metric, end, i.end_value, detail=f"{_cleared(i)} since {iso(closed.ts)}")
        return [Finding(i.key, state, i.start, end, opened, closed, action)]
    found = [Finding(i.key, state, i.start, i.end, opened, closed, action, hardware=i.signal == c.SIG_ECC_DBE)]
    if i.end is not None and closed is not None:
        found.append(_probation(i.key, i.end, closed, t))
    return found


def _describe(i: Island) -> str:
    if i.signal in (c.SIG_PCIE_REPLAY, c.SIG_THERMAL_VIOLATION, c.SIG_UNCORRECTABLE_REMAP):
        return f"{i.metric} rose {i.previous:g} -> {i.value:g} (rate above its limit)"
    if i.signal == c.SIG_TEMPERATURE:
        return f"{i.metric} = {i.value:g} C, above the model's limit"
    before = f" (was {i.previous:g})" if i.previous is not None else ""
    return f"{i.metric} = {i.value:g}{before}"


def _cleared(i: Island) -> str:
    if i.signal == c.SIG_ECC_DBE:
        return f"{i.metric} reset to {i.end_value:g}: the GPU was reset or its driver reloaded"
    value = f" ({i.end_value:g})" if i.end_value is not None else ""
    return f"{i.metric} back within limits{value}"


def _from_xid(x: hs.XidChange, catalog: XidCatalog, t: HealthThresholds, resets: list[datetime]) -> list[Finding]:
    entry = catalog.lookup(x.xid)
    state = SEVERITY_STATE.get(entry.severity)
    stale = x.previous is None  # already shown when the data starts: when it happened is unknown
    if state is None or (stale and state == c.STATE_WATCH):
        return []  # counts against the workload; or an old watch-level Xid still on the gauge
    if stale and state == c.STATE_DRAIN:
        state = c.STATE_WATCH  # verify it was remediated rather than drain a GPU for an Xid of unknown age
    since = " (already shown when the data starts: verify it was remediated)" if stale else ""
    detail = f"Xid {x.xid} {entry.mnemonic}: {entry.description}{since}. {entry.why}"
    opened = Evidence(c.SIG_XID, c.DCGM_XID, x.ts, float(x.xid), _float(x.previous), x.xid, detail)
    action = XID_ACTION_TEXT[entry.action]
    if state == c.STATE_RMA:
        return [Finding(x.key, state, x.ts, None, opened, None, action)]
    if state == c.STATE_WATCH and not stale:
        end = x.ts + timedelta(seconds=t.rate_window_s + t.watch_hold_s)
        quiet = Evidence(c.SIG_XID, c.DCGM_XID, end, xid=x.xid, detail=f"no new Xid {x.xid} for {t.watch_hold_s} s")
        return [Finding(x.key, state, x.ts, end, opened, quiet, action)]
    cleared = _xid_cleared(x, resets)
    hardware = state == c.STATE_DRAIN and entry.cause in ("hardware", "bus")
    if cleared is None:
        return [Finding(x.key, state, x.ts, None, opened, None, action, hardware)]
    if state == c.STATE_WATCH:
        return [Finding(x.key, state, x.ts, _hold(cleared.ts, t), opened, cleared, action)]
    drain = Finding(x.key, state, x.ts, cleared.ts, opened, cleared, action, hardware)
    return [drain, _probation(x.key, cleared.ts, cleared, t)]


def _recurrences(findings: list[Finding], t: HealthThresholds) -> list[Finding]:
    """RMA when a GPU's hardware fault comes back: the Nth hardware failure within `lookbehind`.
    Findings that start while an earlier one is still active are the same failure (a DBE and its
    Xid 48 arrive together), so only the start of each episode counts."""
    if t.rma_after_failures < 1:
        return []
    out = []
    for key, own in hs.by_gpu([f for f in findings if f.hardware]):
        own.sort(key=lambda f: f.start)
        episodes = [f for i, f in enumerate(own) if not any(_active(e, f.start) for e in own[:i])]
        for i in range(t.rma_after_failures - 1, len(episodes)):
            first, now = episodes[i - t.rma_after_failures + 1], episodes[i]
            if (now.start - first.start).total_seconds() <= t.lookbehind_s:
                before = ", ".join(f"{e.opened.signal} at {iso(e.start)}" for e in episodes[:i])
                detail = f"hardware failure #{i + 1} ({now.opened.detail}); before: {before}"
                opened = Evidence(c.SIG_RECURRENCE, now.opened.metric, now.start, xid=now.opened.xid, detail=detail)
                out.append(Finding(key, c.STATE_RMA, now.start, None, opened, None, ACTION_TEXT[c.SIG_RECURRENCE]))
                break
    return out


def _active(f: Finding, at: datetime) -> bool:
    return f.start <= at and (f.end is None or at < f.end)


def _xid_cleared(x: hs.XidChange, resets: list[datetime]) -> Evidence | None:
    """The first remediation after the Xid: the gauge back to 0 (driver reload) or a volatile ECC
    counter restarting (GPU reset), whichever comes first."""
    reset = next((r for r in resets if r > x.ts), None)
    if reset is not None and (x.cleared_at is None or reset < x.cleared_at):
        detail = "volatile ECC counters restarted: the GPU was reset or its driver reloaded"
        return Evidence(c.SIG_XID, c.DCGM_ECC_DBE_VOL, reset, xid=x.xid, detail=detail)
    if x.cleared_at is not None:
        return Evidence(
            c.SIG_XID, c.DCGM_XID, x.cleared_at, 0.0, float(x.xid), x.xid, "Xid gauge back to 0: driver reloaded"
        )
    return None


def _float(value: int | None) -> float | None:
    return float(value) if value is not None else None


def _from_silence(s: cov.Silence, t: HealthThresholds) -> list[Finding]:
    opened = Evidence(c.SIG_OFFLINE, None, s.start, detail=f"no DCGM samples since {iso(s.start)} while the node is up")
    if not s.reported_again:
        return [Finding(s.key, c.STATE_OFFLINE, s.start, s.end, opened, None, ACTION_TEXT[c.SIG_OFFLINE])]
    closed = Evidence(c.SIG_OFFLINE, None, s.end, detail=f"reporting again at {iso(s.end)}")
    return [
        Finding(s.key, c.STATE_OFFLINE, s.start, s.end, opened, closed, ACTION_TEXT[c.SIG_OFFLINE]),
        _probation(s.key, s.end, closed, t),
    ]


def _sweep(info: GpuInfo, findings: list[Finding]) -> list[Period]:
    """Periods of constant state over the GPU's observed span; each opens with its evidence."""
    start, end = info.span
    if not findings:
        # most GPUs of a fleet: one healthy period, what the general sweep below gives them, built directly
        # because at 10,000 GPUs the general path cost a quarter of a second of the health page
        return [Period(info.key, c.STATE_HEALTHY, start, end, start, False, None, [], None)] if start < end else []
    points = {start, end}
    points |= {f.start for f in findings if start < f.start < end}
    points |= {f.end for f in findings if f.end is not None and start < f.end < end}
    ordered = sorted(points)
    periods: list[Period] = []
    for a, b in zip(ordered, ordered[1:], strict=False):
        active = [f for f in findings if f.start <= a and (f.end is None or f.end > a)]
        state = max((f.state for f in active), key=RANK.__getitem__, default=c.STATE_HEALTHY)
        if periods and periods[-1].state == state:
            periods[-1].end = b
            continue
        before = periods[-1].state if periods else None
        evidence = _explain(a, state, before, active, findings)
        # the action of what just happened (a probation after a reset), else of the worst finding
        dominant = _ordered([f for f in active if f.state == state and f.start == a])
        dominant += _ordered([f for f in active if f.state == state])
        action = dominant[0].action if dominant else None
        periods.append(Period(info.key, state, a, b, a, False, before, evidence, action))
    return periods


def _ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (PRIORITY.index(f.opened.signal), f.start, f.opened.metric or ""))


def _explain(
    at: datetime, state: str, before: str | None, active: list[Finding], found: list[Finding]
) -> list[Evidence]:
    """Going up: the findings that started now. Going down: those that ended now, then any started."""
    started = _ordered([f for f in active if f.start == at and f.state == state])
    if before is None or RANK[state] > RANK[before]:
        return [f.opened for f in started] or [f.opened for f in _ordered([f for f in active if f.state == state])]
    ended = _ordered([f for f in found if f.end == at and f.state == before and f.closed is not None])
    return [f.closed for f in ended if f.closed is not None] + [f.opened for f in started]


def _clip(periods: list[Period], window: Window) -> list[Period]:
    out = []
    for p in periods:
        if p.end <= window.start or p.start >= window.end:
            continue
        p.start, p.end = max(p.start, window.start), min(p.end, window.end)
        p.ongoing = p.end == window.end
        out.append(p)
    return out


def _event(x: hs.XidChange, catalog: XidCatalog) -> XidEvent:
    e = catalog.lookup(x.xid)
    previous = x.previous if x.previous is not None else 0
    return XidEvent(
        x.key,
        x.ts,
        x.xid,
        previous,
        e.mnemonic,
        e.cause,
        e.severity,
        e.action,
        e.device_plugin_ignores,
        x.pods,
        x.teams,
        e.why,
    )
