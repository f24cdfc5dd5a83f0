"""Small warehouse facts the dashboard and CLI need (data span, per-source status)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb

from core import conventions as c
from core.store.step_sql import nodes_sql
from core.store.warehouse import one
from core.timeutil import DAY, Window


def data_span(con: duckdb.DuckDBPyConnection) -> tuple[datetime, datetime] | None:
    """First and last covered instant of GPU data (allocations or device samples), or None.

    min(ts), max(ts) and max(step_s) of a bare column come from DuckDB's column statistics without a scan;
    the end of the last step is max(ts) + max(step_s) when a row at max(ts) has the longest step (a LIMIT 1
    probe), else it is looked for among rows that can reach past max(ts) (ts within max(step_s) of it), which
    zone maps narrow to the last row groups. Exact, and milliseconds instead of a pass over every row (seconds
    at 1,000 GPUs, every dashboard page's first view)."""
    spans = [span for t in (c.T_POD_ALLOCATIONS, c.T_GPU_SAMPLES) if (span := _table_span(con, t)) is not None]
    if not spans:
        return None
    return min(lo for lo, _ in spans), max(hi for _, hi in spans)


def days_without_data(con: duckdb.DuckDBPyConnection, window: Window) -> list[datetime]:
    """The UTC days of the window on which no GPU data (allocations, device samples, node capacity) was
    collected. One existence probe per day and table, which zone maps answer without a scan."""
    missing, day = [], window.start
    while day < window.end:
        params: list[object] = [day, min(day + DAY, window.end)]
        if not any(
            one(con, f"SELECT 1 FROM {t} WHERE ts >= ? AND ts < ? LIMIT 1", params)
            for t in (c.T_POD_ALLOCATIONS, c.T_GPU_SAMPLES, c.T_NODE_SAMPLES)
        ):
            missing.append(day)
        day += DAY
    return missing


def _table_span(con: duckdb.DuckDBPyConnection, table: str) -> tuple[datetime, datetime] | None:
    row = one(con, f"SELECT min(ts), max(ts), max(step_s) FROM {table}")
    if not row or row[0] is None:
        return None
    lo, last, longest = row
    # no step ends after last + longest: the probe stops at the first row that reaches it (3 ms), where the tail
    # query reads every row group holding the last step (a day's at 10,000 GPUs when a day was loaded in one
    # piece: 0.18 s of every first view)
    if one(con, f"SELECT 1 FROM {table} WHERE ts = ? AND step_s = ? LIMIT 1", [last, longest]):
        return lo, last + timedelta(seconds=longest)
    tail = one(
        con,
        f"SELECT max(ts + to_seconds(step_s)) FROM {table} WHERE ts >= ?::TIMESTAMP - to_seconds(?)",
        [last, longest],
    )
    return lo, tail[0]  # type: ignore[index]


def data_status(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """What the data-status page shows: runs, watermarks, row counts, coverage gaps and warnings."""
    runs = con.execute(
        f"""SELECT source, max(finished_at) AS last_success, max(window_end) AS data_until, sum(rows) AS rows,
            sum(skipped_series) AS skipped_series, count(*) AS runs, sum(invalid_values) AS invalid_values
        FROM {c.T_INGEST_RUNS} WHERE status = 'ok' GROUP BY source ORDER BY source"""
    ).fetchall()
    watermarks = con.execute(f"SELECT source, last_ts, updated_at FROM {c.T_WATERMARKS} ORDER BY source").fetchall()
    replicas = replicas_sources(con)
    counts = {
        t: int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0])
        for t in c.FACT_TABLES + (c.T_PODS, c.T_NODES, c.T_GPUS, c.T_PRICES)
    }
    return {
        "runs": [
            dict(
                zip(
                    ("source", "last_success", "data_until", "rows", "skipped_series", "runs", "invalid_values"),
                    r,
                    strict=True,
                )
            )
            for r in runs
        ],
        "watermarks": [dict(zip(("source", "last_ts", "updated_at"), w, strict=True)) for w in watermarks],
        "counts": counts,
        "replicas": replicas,
        "warnings": warnings(con, counts, replicas),
    }


def warnings(con: duckdb.DuckDBPyConnection, counts: dict[str, int], replicas: list[dict[str, Any]]) -> list[str]:
    out = []
    labelled = one(con, f"SELECT count(*) FROM {c.T_PODS} WHERE labels IS NOT NULL AND labels <> '{{}}'")
    if counts[c.T_POD_ALLOCATIONS] and not (labelled and labelled[0]):
        out.append(
            "kube_pod_labels missing: start kube-state-metrics with --metric-labels-allowlist=pods=[team,cost-center] "
            "or every GPU pod lands on __unallocated__"
        )
    if counts[c.T_POD_ALLOCATIONS] and not counts[c.T_GPU_SAMPLES]:
        out.append("no dcgm-exporter samples: used GPU-hours and efficiency are unknown")
    if counts[c.T_GPU_SAMPLES] and not counts[c.T_POD_ALLOCATIONS]:
        out.append("no kube-state-metrics GPU requests: every GPU-hour counts as idle")
    if not counts[c.T_PRICES]:
        out.append("no prices: run `gpuledger pricing import --default` or import your own table")
    unpriced = con.execute(
        f"""SELECT DISTINCT n.instance_type, n.capacity_type, n.region FROM {c.T_NODES} n
        WHERE NOT EXISTS (SELECT 1 FROM {c.T_PRICES} p WHERE p.instance_type = n.instance_type
            AND p.capacity_type = n.capacity_type AND p.region = n.region) ORDER BY ALL"""
    ).fetchall()
    for itype, ctype, region in unpriced:
        out.append(
            f"no price for {itype or '(unknown instance type)'} {ctype} in {region or '(unknown region)'}: its GPU-hours are unpriced"
        )
    for r in replicas:
        if r["disagree"]:
            out.append(
                f"node {r['cluster']}/{r['node']}: the nvidia.com/gpu.replicas label says {r['replicas']} but its "
                f"GPU capacity says {r['capacity_says']} replicas; the label is used"
            )
    invalid = one(con, f"SELECT sum(invalid_values) FROM {c.T_INGEST_RUNS} WHERE status = 'ok'")
    if invalid and invalid[0]:
        out.append(
            f"{invalid[0]} sample values were out of their metric's range or not finite and were dropped "
            "(an exporter bug or a corrupted file: see each run's message for the metrics)"
        )
    return out


def serving_models(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Models that exported serving metrics."""
    rows = con.execute(f"SELECT DISTINCT model FROM {c.T_INFERENCE_SAMPLES} WHERE model <> '' ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def replicas_sources(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per time-sliced (or MPS) node: its replicas, which source gave them (`label`: nvidia.com/gpu.replicas;
    `capacity`: kube-state-metrics' shared capacity over the physical GPUs), and whether the label and the
    capacity disagree (the label then wins, and the node deserves a look)."""
    rows = con.execute(
        f"""SELECT cluster, node, gpu_replicas, replicas_source, replicas_capacity FROM ({nodes_sql()})
        WHERE gpu_replicas IS NOT NULL ORDER BY 1, 2"""
    ).fetchall()
    return [
        {
            "cluster": cl,
            "node": node,
            "replicas": replicas,
            "source": source,
            "capacity_says": derived,
            "disagree": derived is not None and replicas != derived,
        }
        for cl, node, replicas, source, derived in rows
    ]


def billed_span(con: duckdb.DuckDBPyConnection) -> tuple[datetime, datetime] | None:
    """The first and last instant the imported bill charges, or None without one."""
    row = con.execute(f"SELECT min(charge_start), max(charge_end) FROM {c.T_BILLING_LINES}").fetchone()
    return (row[0], row[1]) if row and row[0] is not None else None


def bill_files(con: duckdb.DuckDBPyConnection, window: Window) -> list[dict[str, str]]:
    """The imported bill files with lines charging inside `window`: what a report at billed cost read."""
    rows = con.execute(
        f"""SELECT provider, billing_account_id, strftime(billing_period, '%Y-%m') AS billing_period, source_file,
            strftime(max(imported_at), '%Y-%m-%dT%H:%M:%SZ') AS imported_at, count(*)::VARCHAR AS lines
        FROM {c.T_BILLING_LINES} WHERE charge_end > ? AND charge_start < ?
        GROUP BY provider, billing_account_id, billing_period, source_file ORDER BY ALL""",
        [window.start, window.end],
    )
    names = [d[0] for d in rows.description]
    return [dict(zip(names, r, strict=True)) for r in rows.fetchall()]
