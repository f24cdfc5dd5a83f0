"""Small builders for hand-made warehouses (in-memory DuckDB at the latest schema)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import duckdb

from collectors.metrics import series_mapping
from collectors.metrics.series import META_COLUMNS, SeriesContext, SeriesTable
from core import conventions as c
from core.store.warehouse import migrate

T0 = datetime(2026, 11, 2)
R = TypeVar("R")


def rebuilt(
    con: duckdb.DuckDBPyConnection,
    refresh: Callable[..., None],
    read: Callable[[duckdb.DuckDBPyConnection], R],
) -> R:
    """What a full rebuild of a rollup computes (`refresh(con, None, None, full=True)`, then `read(con)`), rolled back:
    the rollup a commit kept is left as it was, to compare with."""
    con.execute("BEGIN TRANSACTION")
    try:
        refresh(con, None, None, full=True)
        return read(con)
    finally:
        con.execute("ROLLBACK")


def fresh_db() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    migrate(con, 0)
    return con


def add_node(
    con: duckdb.DuckDBPyConnection,
    node: str,
    gpus: int,
    *,
    instance_type: str = "p4d.24xlarge",
    capacity_type: str = "on_demand",
    region: str = "us-east-1",
    model: str = "NVIDIA A100-SXM4-40GB",
    replicas: int | None = None,
    pool: str = "pool-a",
    steps: int = 60,
    step_s: int = 60,
    start: datetime = T0,
    zone: str = "",
) -> None:
    con.execute(
        f"""INSERT INTO {c.T_NODES} (cluster, node, instance_type, capacity_type, region, zone, node_pool, gpu_model,
            gpu_count, gpu_replicas, labels, first_seen, last_seen) VALUES ('c1', ?, ?, ?, ?, ?, ?, ?, ?, ?, '{{}}', ?, ?)""",
        [
            node,
            instance_type,
            capacity_type,
            region,
            zone,
            pool,
            model,
            gpus,
            replicas,
            start,
            start + timedelta(seconds=steps * step_s),
        ],
    )
    con.execute(
        f"""INSERT INTO {c.T_NODE_SAMPLES} (ts, step_s, cluster, node, gpu_capacity)
        SELECT ? + to_seconds(i * ?), ?, 'c1', ?, ? FROM range(?) t(i)""",
        [start, step_s, step_s, node, gpus, steps],
    )


def add_pod(
    con: duckdb.DuckDBPyConnection,
    pod: str,
    node: str,
    *,
    team: str | None = "vision",
    namespace: str = "ns",
    resource: str = "nvidia_com_gpu",
    amount: float = 1,
    offset: int = 0,
    steps: int = 10,
    step_s: int = 60,
    labels: dict[str, str] | None = None,
    uid: str | None = None,
) -> None:
    """A pod Running on `node` for `steps` steps from step `offset` (uid: `uid-<pod>` unless given: a StatefulSet's pod
    recreated under its name is another uid)."""
    uid = uid or f"uid-{pod}"
    pod_labels = dict(labels or {})
    if team:
        pod_labels["team"] = team
    labels_json = json.dumps(pod_labels)
    con.execute(
        f"""INSERT INTO {c.T_PODS} (cluster, namespace, pod, uid, node, labels, first_seen, last_seen)
        VALUES ('c1', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
        [namespace, pod, uid, node, labels_json, T0, T0],
    )
    con.execute(
        f"""INSERT INTO {c.T_POD_ALLOCATIONS}
        SELECT ? + to_seconds((? + i) * ?), ?, 'c1', ?, ?, ?, ?, ?, ? FROM range(?) t(i)""",
        [T0, offset, step_s, step_s, namespace, pod, uid, node, resource, float(amount), steps],
    )


def add_price(
    con: duckdb.DuckDBPyConnection,
    price: str,
    *,
    gpus: int = 8,
    instance_type: str = "p4d.24xlarge",
    capacity_type: str = "on_demand",
    region: str = "us-east-1",
    effective_from: datetime = T0 - timedelta(days=30),
    zone: str = "",
    gpu_price: str | None = None,
    provider: str = "aws",
) -> None:
    con.execute(
        f"""INSERT INTO {c.T_PRICES} (provider, region, zone, instance_type, capacity_type, gpu_model, gpus,
            price_per_hour_usd, gpu_price_per_hour_usd, effective_from, source)
        VALUES (?, ?, ?, ?, ?, 'gpu', ?, ?, ?, ?, 'test')""",
        [
            provider,
            region,
            zone,
            instance_type,
            capacity_type,
            gpus,
            Decimal(price),
            Decimal(gpu_price if gpu_price is not None else price),
            effective_from,
        ],
    )


def add_gpu_usage(
    con: duckdb.DuckDBPyConnection,
    node: str,
    uuid: str,
    activity: float,
    *,
    pod: str | None = None,
    namespace: str = "ns",
    instance: str = "",
    mig_profile: str = "",
    model: str = "NVIDIA A100-SXM4-40GB",
    offset: int = 0,
    steps: int = 60,
    step_s: int = 60,
    power_w: float | None = None,
    util: float | None = None,
    gauges: bool = True,
) -> None:
    """One DCGM device (or MIG instance) at a constant activity (and power), optionally mapped to a pod (with its
    per-process GPU_UTIL); `gauges=False` adds the mapping only (another pod time-sharing a device already there)."""
    con.execute(
        f"INSERT INTO {c.T_GPUS} VALUES ('c1', ?, ?, ?, 0, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [node, uuid, instance, model, mig_profile, T0, T0],
    )
    if gauges:
        con.execute(
            f"""INSERT INTO {c.T_GPU_SAMPLES}
            SELECT ? + to_seconds((? + i) * ?), ?, 'c1', ?, ?, ?, ?, NULL, NULL, ?, NULL FROM range(?) t(i)""",
            [T0, offset, step_s, step_s, node, uuid, instance, activity, power_w, steps],
        )
    if pod:
        con.execute(
            f"""INSERT INTO {c.T_GPU_POD_SAMPLES}
            SELECT ? + to_seconds((? + i) * ?), ?, 'c1', ?, ?, ?, '', ?, ?, ? FROM range(?) t(i)""",
            [T0, offset, step_s, step_s, node, uuid, instance, namespace, pod, util, steps],
        )


def add_energy(
    con: duckdb.DuckDBPyConnection,
    node: str,
    uuid: str,
    increases_mj: Sequence[float | None],
    *,
    instance: str = "",
    offset: int = 0,
    step_s: int = 60,
    spans: dict[int, int] | None = None,
) -> None:
    """A GPU's energy counter as the collector stores it: its increase per step (mJ; None: no previous reading), and
    at the steps `spans` names, an increase across a silence of that many seconds."""
    con.executemany(
        f"INSERT INTO {c.T_HEALTH_SAMPLES} VALUES (?, ?, 'c1', ?, ?, ?, ?, 0, ?, ?)",
        [[T0 + timedelta(seconds=(offset + i) * step_s), step_s, node, uuid, instance, c.DCGM_ENERGY, delta,
          (spans or {}).get(i)] for i, delta in enumerate(increases_mj)],
    )  # fmt: skip


def add_namespace(con: duckdb.DuckDBPyConnection, namespace: str, labels: dict[str, str]) -> None:
    con.execute(f"INSERT INTO {c.T_NAMESPACES} VALUES ('c1', ?, ?, ?, ?)", [namespace, json.dumps(labels), T0, T0])


def describe_series(pairs: list[tuple[str, dict[str, str]]], ctx: SeriesContext) -> list[dict[str, object]]:
    """What collectors/metrics/series_mapping.py maps a few (family, labels) pairs onto: the kept ones' columns, in order."""
    con = duckdb.connect()
    try:
        series_mapping.register(con, SeriesTable.from_pairs(pairs), ctx)
        cur = con.execute(f"SELECT {', '.join(META_COLUMNS)} FROM stage_meta ORDER BY sid")
        return [dict(zip(META_COLUMNS, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


def with_pod_uids(src: Path, dst: Path) -> Path:
    """The scrape as dcgm-exporter --kubernetes-enable-pod-uid writes it: every pod-mapped series
    carries its pod's UID (the per-process copies already do)."""
    lines = []
    for line in src.read_text().splitlines():
        pod = re.search(r'[{,]pod="([^"]+)"', line)
        if pod and not line.startswith("#") and "pod_uid=" not in line:
            line = line.replace("}", f',pod_uid="uid-{pod.group(1)}"}}', 1)
        lines.append(line)
    dst.write_text("\n".join(lines) + "\n")
    return dst


def scrape_samples(scrape: Path) -> list[str]:
    """A saved /metrics scrape's sample lines (comments and blank lines left out)."""
    return [line for line in scrape.read_text().splitlines() if line and not line.startswith("#")]


def replayed(scrape: Path, out: Path, start: datetime, minutes: int = 10, extra: Sequence[str] = ()) -> Path:
    """The scrape's samples once a minute for `minutes` minutes from `start`, then `extra` lines, as
    timestamped OpenMetrics (what a scrape looks like collected over time)."""
    t0 = (start - datetime(1970, 1, 1)).total_seconds()
    lines = [f"{s} {t0 + 60 * k:.0f}" for k in range(minutes) for s in scrape_samples(scrape)]
    out.write_text("\n".join([*lines, *extra]) + "\n# EOF\n")
    return out
