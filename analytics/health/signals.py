"""Raw health signals, in SQL: per physical GPU, when each finding started and when it stopped.

Everything is per physical GPU (cluster, node, UUID): MIG instances and time-slicing copies repeat
their card's device-wide fields, so they are collapsed with max, never summed.

Counters are read as PromQL's increase() reads them, without its boundary extrapolation: a value
below the previous one means the counter restarted (driver reload, GPU reset), and the increase is
the new value, not a negative jump or a burst. Rates are increases summed over the trailing
`rate_window`, which must be at least the scrape interval (else one scrape's increase is read as
a burst over a shorter window).

A finding is "present" over islands of consecutive rows where its condition holds; a gap in the
data does not end it (only a row where the condition is false does), so a GPU that goes silent
keeps its findings until it reports again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import duckdb

from analytics.cost.allocation import pod_labels_sql, team_sql
from analytics.cost.attribution import Attribution
from analytics.health.policy import HealthThresholds
from core import conventions as c
from core.store.sql import literal


class GpuKey(NamedTuple):
    """A GPU's identity. A tuple, not a dataclass: at 10,000 GPUs the health report hashes and sorts keys
    about 150,000 times, and a dataclass's Python-level __hash__ and __lt__ took 0.3 s of the page."""

    cluster: str
    node: str
    gpu_uuid: str


@dataclass(frozen=True)
class Island:
    """Rows of one GPU where a condition held: [start, end); end None = still holding at the end of data."""

    key: GpuKey
    signal: str
    metric: str
    start: datetime
    end: datetime | None
    value: float | None  # the value that started it
    previous: float | None  # the value before it
    end_value: float | None  # the value that ended it


@dataclass(frozen=True)
class XidChange:
    key: GpuKey
    ts: datetime
    xid: int
    previous: int | None  # None: the first row of the range already held this Xid (not an event)
    cleared_at: datetime | None  # first later row where the gauge went back to 0 (driver reload)
    pods: tuple[str, ...]  # namespace/pod running on the GPU at ts
    teams: tuple[str, ...]


# Level signals: metric -> (signal, SQL condition on v).
LEVEL = {
    c.DCGM_ECC_DBE_VOL: (c.SIG_ECC_DBE, "v > 0"),
    c.DCGM_ROW_REMAP_FAILURE: (c.SIG_ROW_REMAP_FAILURE, "v >= 1"),
    c.DCGM_ROW_REMAP_PENDING: (c.SIG_ROW_REMAP_PENDING, "v >= 1"),
    c.DCGM_RETIRED_PENDING: (c.SIG_RETIRED_PENDING, "v > 0"),
}
# Rate signals: metric -> signal (conditions depend on thresholds, see _rate_condition).
RATE = {
    c.DCGM_PCIE_REPLAY: c.SIG_PCIE_REPLAY,
    c.DCGM_THERMAL_VIOLATION: c.SIG_THERMAL_VIOLATION,
    c.DCGM_UNCORRECTABLE_REMAPPED_ROWS: c.SIG_UNCORRECTABLE_REMAP,
}


def _collapsed(metrics: list[str]) -> str:
    names = ", ".join(f"'{m}'" for m in metrics)
    return f"""
    s AS (
        SELECT cluster, node, gpu_uuid, metric, ts, max(step_s) AS step_s, max(value) AS v
        FROM {c.T_HEALTH_SAMPLES} WHERE ts >= $lo AND ts < $hi AND metric IN ({names}) GROUP BY ALL),
    d AS (
        SELECT *, lag(v) OVER w AS pv FROM s
        WINDOW w AS (PARTITION BY cluster, node, gpu_uuid, metric ORDER BY ts))"""


# Islands of rows where `on_` holds, from a relation `flagged(cluster, node, gpu_uuid, metric, ts, v, pv, on_)`.
_ISLANDS = """
    marked AS (
        SELECT *, lead(ts) OVER w AS next_ts, lead(v) OVER w AS next_v,
            CASE WHEN on_ IS DISTINCT FROM lag(on_) OVER w THEN 1 ELSE 0 END AS edge
        FROM flagged WINDOW w AS (PARTITION BY cluster, node, gpu_uuid, metric ORDER BY ts)),
    grouped AS (
        SELECT *, sum(edge) OVER (PARTITION BY cluster, node, gpu_uuid, metric ORDER BY ts) AS grp FROM marked)
    SELECT cluster, node, gpu_uuid, metric, min(ts) AS start, arg_max_null(next_ts, ts) AS end_,
        arg_min_null(v, ts) AS value, arg_min_null(pv, ts) AS previous, arg_max_null(next_v, ts) AS end_value
    FROM grouped WHERE on_ GROUP BY cluster, node, gpu_uuid, metric, grp"""


def _islands(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any], signal_of: dict[str, str]
) -> list[Island]:
    out = []
    for row in con.execute(sql, params).fetchall():
        cluster, node, uuid, metric, start, end, value, previous, end_value = row
        out.append(
            Island(GpuKey(cluster, node, uuid), signal_of[metric], metric, start, end, value, previous, end_value)
        )
    return out


def level_islands(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> list[Island]:
    """Drain/watch conditions read straight off a gauge or a volatile counter's level."""
    cases = " ".join(f"WHEN '{m}' THEN {cond}" for m, (_, cond) in LEVEL.items())
    sql = f"""WITH {_collapsed(list(LEVEL))},
    -- a level condition only changes where the value does: keep the change points
    flagged AS (SELECT *, CASE metric {cases} END AS on_ FROM d WHERE pv IS NULL OR v <> pv),
    {_ISLANDS.strip()}"""
    return _islands(con, sql, {"lo": lo, "hi": hi}, {m: sig for m, (sig, _) in LEVEL.items()})


def _rate_condition(t: HealthThresholds) -> str:
    minutes = t.rate_window_s / 60
    return f"""CASE metric
        WHEN '{c.DCGM_PCIE_REPLAY}' THEN win / {minutes} > {float(t.pcie_replay_per_minute)}
        WHEN '{c.DCGM_THERMAL_VIOLATION}' THEN win / 1e9 / {t.rate_window_s} > {float(t.thermal_violation_ratio)}
        ELSE win > 0 END"""


def _rate_bound(t: HealthThresholds) -> str:
    """The smallest total increase that can put a series over its rate limit (see _rate_condition)."""
    minutes = t.rate_window_s / 60
    return f"""CASE metric
        WHEN '{c.DCGM_PCIE_REPLAY}' THEN {float(t.pcie_replay_per_minute) * minutes}
        WHEN '{c.DCGM_THERMAL_VIOLATION}' THEN {float(t.thermal_violation_ratio) * t.rate_window_s * 1e9}
        ELSE 0 END"""


def rate_islands(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, t: HealthThresholds) -> list[Island]:
    """Watch conditions on counter rates over the trailing rate window (resets handled)."""
    sql = f"""WITH {_collapsed(list(RATE))},
    inc AS (SELECT *, CASE WHEN pv IS NULL THEN 0 WHEN v >= pv THEN v - pv ELSE v END AS inc FROM d),
    busy AS (
        -- a series whose increases over the whole range stay within one window's limit cannot
        -- cross it: skip the rolling sum for it (most counters barely move)
        SELECT cluster, node, gpu_uuid, metric FROM inc GROUP BY ALL HAVING sum(inc) > {_rate_bound(t)}),
    roll AS (
        SELECT *, sum(inc) OVER (PARTITION BY cluster, node, gpu_uuid, metric ORDER BY ts
            RANGE BETWEEN INTERVAL {max(t.rate_window_s - 1, 0)} SECOND PRECEDING AND CURRENT ROW) AS win
        FROM inc SEMI JOIN busy USING (cluster, node, gpu_uuid, metric)),
    flagged AS (SELECT *, {_rate_condition(t)} AS on_ FROM roll),
    {_ISLANDS.strip()}"""
    return _islands(con, sql, {"lo": lo, "hi": hi}, RATE)


def temperature_islands(
    con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, t: HealthThresholds
) -> list[Island]:
    """GPU temperature above the model's limit (gpu_samples; MIG instances repeat the card's value)."""
    limits = " ".join(f"WHEN {literal(model)} THEN {float(v)}" for model, v in t.max_gpu_temp_c_by_model.items())
    limit = f"CASE m.model {limits} ELSE {float(t.max_gpu_temp_c)} END" if limits else str(float(t.max_gpu_temp_c))
    sql = f"""WITH models AS (SELECT cluster, node, gpu_uuid, max(model) AS model FROM {c.T_GPUS} GROUP BY ALL),
    t AS (
        SELECT g.cluster, g.node, g.gpu_uuid, g.ts, g.temp_c, {limit} AS lim
        FROM {c.T_GPU_SAMPLES} g LEFT JOIN models m USING (cluster, node, gpu_uuid)
        WHERE g.ts >= $lo AND g.ts < $hi AND g.temp_c IS NOT NULL),
    -- only a GPU that ever runs over its limit can have an island: one aggregate pass finds them, so
    -- the per-step window functions below run on a handful of GPUs instead of the fleet
    hot AS (SELECT cluster, node, gpu_uuid FROM t GROUP BY ALL HAVING max(temp_c - lim) > 0),
    s AS (
        SELECT cluster, node, gpu_uuid, '{c.DCGM_GPU_TEMP}' AS metric, ts, max(temp_c) AS v, max(lim) AS lim
        FROM t SEMI JOIN hot USING (cluster, node, gpu_uuid) GROUP BY ALL),
    d AS (SELECT *, lag(v) OVER (PARTITION BY cluster, node, gpu_uuid ORDER BY ts) AS pv FROM s),
    flagged AS (SELECT *, v > lim AS on_ FROM d WHERE pv IS NULL OR v <> pv),
    {_ISLANDS.strip()}"""
    return _islands(con, sql, {"lo": lo, "hi": hi}, {c.DCGM_GPU_TEMP: c.SIG_TEMPERATURE})


def retired_page_islands(
    con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, t: HealthThresholds
) -> list[Island]:
    """RMA limits on retired pages (pre-Ampere). Sticky: retired pages never come back."""
    sql = f"""WITH {_collapsed([c.DCGM_RETIRED_SBE, c.DCGM_RETIRED_DBE])},
    pages AS (
        SELECT cluster, node, gpu_uuid, ts, sum(v) AS total, max(v) FILTER (WHERE metric = '{c.DCGM_RETIRED_DBE}') AS dbe
        FROM d GROUP BY ALL),
    weekly AS (
        SELECT *, dbe - min(dbe) OVER (PARTITION BY cluster, node, gpu_uuid ORDER BY ts
            RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND CURRENT ROW) AS new_dbe
        FROM pages),
    hits AS (
        SELECT cluster, node, gpu_uuid, '{c.DCGM_RETIRED_SBE}+{c.DCGM_RETIRED_DBE}' AS metric, ts, total AS v
        FROM weekly WHERE total >= {int(t.retired_pages_rma)}
        UNION ALL
        SELECT cluster, node, gpu_uuid, '{c.DCGM_RETIRED_DBE}', ts, dbe FROM weekly
        WHERE dbe > {int(t.retired_dbe_soft_limit)} AND new_dbe > {int(t.retired_dbe_per_week)})
    SELECT cluster, node, gpu_uuid, metric, min(ts), NULL, arg_min(v, ts), NULL, NULL FROM hits GROUP BY ALL"""
    signals = {f"{c.DCGM_RETIRED_SBE}+{c.DCGM_RETIRED_DBE}": c.SIG_RETIRED_PAGES, c.DCGM_RETIRED_DBE: c.SIG_RETIRED_DBE}
    return _islands(con, sql, {"lo": lo, "hi": hi}, signals)


def xid_changes(
    con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, attribution: Attribution
) -> list[XidChange]:
    """Changes of the last-Xid gauge to a non-zero code, with the pods then on the GPU.

    The gauge holds the LAST Xid until the driver reloads, so an event is a change of value. It
    cannot see: a repeat of the same Xid, several Xids between two scrapes (only the last shows),
    Xids 79/119/120 (NVML cannot report them through this field; 79 shows as the GPU going silent),
    anything before the exporter started; and an exporter restart zeroes it like a driver reload.
    """
    team = team_sql("p.labels", "ns.labels", "e.namespace", attribution)
    sql = f"""WITH {_collapsed([c.DCGM_XID])},
    z AS (
        SELECT *, min(CASE WHEN v = 0 THEN ts END) OVER (PARTITION BY cluster, node, gpu_uuid ORDER BY ts
            ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS cleared_at
        FROM d),
    ev AS (
        SELECT z.*, m.namespace, m.pod FROM z LEFT JOIN {c.T_GPU_POD_SAMPLES} m USING (cluster, node, gpu_uuid, ts)
        WHERE z.v <> 0 AND (z.pv IS NULL OR z.v <> z.pv)),
    pods_ AS ({pod_labels_sql("ev")})
    SELECT e.cluster, e.node, e.gpu_uuid, e.ts, e.v, e.pv, e.cleared_at,
        list(DISTINCT e.namespace || '/' || e.pod ORDER BY e.namespace || '/' || e.pod)
            FILTER (WHERE e.pod IS NOT NULL) AS pods,
        list(DISTINCT {team} ORDER BY {team}) FILTER (WHERE e.pod IS NOT NULL) AS teams
    FROM ev e
    LEFT JOIN pods_ p ON p.cluster = e.cluster AND p.namespace = e.namespace AND p.pod = e.pod
    LEFT JOIN {c.T_NAMESPACES} ns ON ns.cluster = e.cluster AND ns.namespace = e.namespace
    GROUP BY ALL ORDER BY e.ts"""
    out = []
    for cluster, node, uuid, ts, v, pv, cleared, pods, teams in con.execute(sql, {"lo": lo, "hi": hi}).fetchall():
        previous = int(pv) if pv is not None else None
        out.append(
            XidChange(GpuKey(cluster, node, uuid), ts, int(v), previous, cleared, tuple(pods or ()), tuple(teams or ()))
        )
    return out


def hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def by_gpu(items: list[Any]) -> Iterator[tuple[GpuKey, list[Any]]]:
    grouped: dict[GpuKey, list[Any]] = {}
    for item in items:
        grouped.setdefault(item.key, []).append(item)
    yield from sorted(grouped.items())


def counter_resets(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime) -> dict[GpuKey, list[datetime]]:
    """When each GPU's volatile ECC counters restarted: evidence of a GPU reset or driver reload
    (which the Xid gauge does not always show: it keeps the last Xid until the driver reloads)."""
    sql = f"""WITH {_collapsed([c.DCGM_ECC_SBE_VOL, c.DCGM_ECC_DBE_VOL])}
    SELECT DISTINCT cluster, node, gpu_uuid, ts FROM d WHERE v < pv ORDER BY ALL"""
    out: dict[GpuKey, list[datetime]] = {}
    for cluster, node, uuid, ts in con.execute(sql, {"lo": lo, "hi": hi}).fetchall():
        out.setdefault(GpuKey(cluster, node, uuid), []).append(ts)
    return out


ECC_COUNTERS = (
    c.DCGM_ECC_SBE_VOL,
    c.DCGM_ECC_DBE_VOL,
    c.DCGM_ECC_SBE_AGG,
    c.DCGM_ECC_DBE_AGG,
    c.DCGM_PCIE_REPLAY,
    c.DCGM_UNCORRECTABLE_REMAPPED_ROWS,
    c.DCGM_CORRECTABLE_REMAPPED_ROWS,
    c.DCGM_RETIRED_SBE,
    c.DCGM_RETIRED_DBE,
)


def counter_increases(
    con: duckdb.DuckDBPyConnection, lo: datetime, start: datetime, end: datetime
) -> dict[GpuKey, dict[str, float]]:
    """Each GPU's counter increases within [start, end), as PromQL's increase() counts them (a drop
    is a restart: the new value is the increase); rows from `lo` give the value before `start`."""
    sql = f"""WITH {_collapsed(list(ECC_COUNTERS))}
    SELECT cluster, node, gpu_uuid, metric,
        sum(CASE WHEN pv IS NULL THEN 0 WHEN v >= pv THEN v - pv ELSE v END) AS inc
    FROM d WHERE ts >= $start GROUP BY ALL ORDER BY ALL"""
    out: dict[GpuKey, dict[str, float]] = {}
    for cluster, node, uuid, metric, inc in con.execute(sql, {"lo": lo, "hi": end, "start": start}).fetchall():
        out.setdefault(GpuKey(cluster, node, uuid), {})[metric] = float(inc)
    return out
