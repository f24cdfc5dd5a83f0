"""Committing staged rows into the warehouse: one transaction per collection window.

Facts: rows of the entities the staged data speaks for, inside the staged window, are deleted and
re-inserted, so ingesting the same data twice changes nothing and a re-collection replaces what an
earlier one wrote. Dimensions (nodes, GPUs, pods, namespaces) are upserted, widening first/last seen.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb

from collectors.metrics import grid_stage
from core import conventions as c
from core.store.rollups import classes as rollup_classes
from core.store.rollups import coverage, hourly, pools, waiting
from core.store.warehouse import one, transaction


@dataclass
class LoadResult:
    source: str
    rows: dict[str, int] = field(default_factory=dict)
    window: tuple[datetime, datetime] | None = None
    samples: int = 0
    skipped_series: int = 0
    warnings: list[str] = field(default_factory=list)
    windows: int = 0  # committed windows (one transaction each)
    plans: dict[str, int] = field(default_factory=dict)  # how windows were read: rules / query / off
    invalid: dict[str, int] = field(default_factory=dict)  # family -> values dropped (out of range, not finite)

    @property
    def invalid_values(self) -> int:
        return sum(self.invalid.values())

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def add(self, part: LoadResult) -> None:
        """Fold one committed window into a run's summary."""
        for table, n in part.rows.items():
            self.rows[table] = self.rows.get(table, 0) + n
        if part.window is not None:
            lo = min(self.window[0], part.window[0]) if self.window else part.window[0]
            hi = max(self.window[1], part.window[1]) if self.window else part.window[1]
            self.window = (lo, hi)
        self.samples += part.samples
        self.skipped_series += part.skipped_series
        self.windows += 1
        for name, n in part.plans.items():
            self.plans[name] = self.plans.get(name, 0) + n
        for family, n in part.invalid.items():
            self.invalid[family] = self.invalid.get(family, 0) + n


_DIMENSIONS: list[tuple[str, str, str, list[str]]] = [
    # (staged table, warehouse table, conflict key, columns updated from the newer data)
    (
        "st_nodes",
        c.T_NODES,
        "cluster, node",
        [
            "instance_type",
            "capacity_type",
            "region",
            "zone",
            "node_pool",
            "gpu_model",
            "gpu_count",
            "gpu_replicas",
            "gpu_sharing",
            "ksm_gpus",
            "ksm_shared",
            "ksm_mig_slices",
            "labels",
            "provider_id",
        ],
    ),
    ("st_gpus", c.T_GPUS, "cluster, node, gpu_uuid, gpu_instance", ["gpu_index", "model", "mig_profile"]),
    ("st_pods", c.T_PODS, "cluster, namespace, pod, uid", ["node", "labels", "created_at", "scheduled_at"]),
    ("st_namespaces", c.T_NAMESPACES, "cluster, namespace", ["labels"]),
]


def commit(
    con: duckdb.DuckDBPyConnection,
    result: LoadResult,
    watermark: datetime | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> None:
    """Write every staged table in one transaction (all or nothing).

    `window` [start, end) is the span the staged data speaks for (rows of its entities there are
    replaced); without it, the span of the staged rows is used."""
    staged = _staged_window(con)
    if window is not None:
        result.window = window
        window = (window[0], window[1] - timedelta(microseconds=1))  # BETWEEN is inclusive
    else:
        window = result.window = staged
    started = datetime.now(UTC).replace(tzinfo=None)
    with transaction(con):
        rollups_current = hourly.in_sync(con)  # before this commit's writes change the counts
        coverage_current = coverage.in_sync(con)
        waiting_current = waiting.in_sync(con)
        pools_current = pools.in_sync(con)
        classes = rollup_classes.baseline(con)
        occupied = {table: _occupied(con, table, window) for _, table, _ in grid_stage.STAGED}
        # nothing in the window yet, and nothing staged outside it: the rollups only add its steps
        appended = _inside(staged, window) and not any(occupied[t] for t in hourly.STEP_TABLES)
        for temp, table, _ in grid_stage.STAGED:
            result.rows[table] = _replace_facts(con, temp, table, window, occupied[table])
        for temp, table, key, updated in _DIMENSIONS:
            _upsert(con, temp, table, key, updated)
        hourly.refresh(
            con,
            window,
            full=not rollups_current,
            coverage_full=not coverage_current,
            waiting_full=not waiting_current,
            pools_full=not pools_current,
            classes=classes,
            appended=appended,
        )
        if watermark is not None:
            con.execute(
                f"""INSERT INTO {c.T_WATERMARKS} VALUES (?, ?, ?)
                ON CONFLICT (source) DO UPDATE SET last_ts = greatest(excluded.last_ts, {c.T_WATERMARKS}.last_ts),
                    updated_at = excluded.updated_at""",
                [result.source, watermark, started],
            )
        con.execute(
            f"""INSERT INTO {c.T_INGEST_RUNS} (run_id, source, started_at, finished_at, window_start, window_end, rows,
                skipped_series, status, message, invalid_values) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'ok', ?, ?)""",
            [
                uuid.uuid4().hex,
                result.source,
                started,
                datetime.now(UTC).replace(tzinfo=None),
                result.window[0] if result.window else None,
                result.window[1] if result.window else None,
                result.total_rows,
                result.skipped_series,
                "; ".join(_run_notes(result)) or None,
                result.invalid_values,
            ],
        )


def _run_notes(result: LoadResult) -> list[str]:
    notes = [", ".join(f"read via {plan}" for plan in result.plans)] if result.plans else []
    if result.invalid:
        notes.append("invalid values dropped: " + ", ".join(f"{f} {n}" for f, n in sorted(result.invalid.items())))
    return notes


def _inside(span: tuple[datetime, datetime] | None, window: tuple[datetime, datetime] | None) -> bool:
    """Do the staged rows lie in the window (the rollups then only need the window's steps added)?"""
    return span is None or (window is not None and window[0] <= span[0] and span[1] <= window[1])


def _staged_window(con: duckdb.DuckDBPyConnection) -> tuple[datetime, datetime] | None:
    parts = " UNION ALL ".join(f"SELECT min(ts) lo, max(ts) hi FROM {temp}" for temp, _, _ in grid_stage.STAGED)
    row = one(con, f"SELECT min(lo), max(hi) FROM ({parts})")
    if not row or row[0] is None:
        return None
    return row[0], row[1]


def _occupied(con: duckdb.DuckDBPyConnection, table: str, window: tuple[datetime, datetime] | None) -> bool:
    """Does the table hold a row in the window [first, last]? (None: no window, nothing replaced.)"""
    return window is not None and bool(
        one(con, f"SELECT 1 FROM {table} WHERE ts BETWEEN ? AND ? LIMIT 1", list(window))
    )


def _replace_facts(
    con: duckdb.DuckDBPyConnection, temp: str, table: str, window: tuple[datetime, datetime] | None, occupied: bool
) -> int:
    keys, where = grid_stage.REPLACE_KEYS[table]
    # appending past the last committed window is the common case: nothing there to replace
    if window is not None and occupied:
        key_match = " AND ".join(f"t.{k.strip()} = k.{k.strip()}" for k in keys.split(","))
        con.execute(
            f"""DELETE FROM {table} t USING (SELECT DISTINCT {keys} FROM stage_meta WHERE {where}) k
            WHERE {key_match} AND t.ts BETWEEN ? AND ?""",
            [window[0], window[1]],
        )
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {temp}")
    row = one(con, f"SELECT count(*) FROM {temp}")
    return int(row[0]) if row else 0


def _upsert(con: duckdb.DuckDBPyConnection, temp: str, table: str, key: str, updated: list[str]) -> None:
    sets = [f"{col} = coalesce(excluded.{col}, {table}.{col})" for col in updated]
    sets += [
        f"first_seen = least(excluded.first_seen, {table}.first_seen)",
        f"last_seen = greatest(excluded.last_seen, {table}.last_seen)",
    ]
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {temp} ON CONFLICT ({key}) DO UPDATE SET {', '.join(sets)}")
