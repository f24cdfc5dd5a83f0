"""Builders for hand-made GPU health data: one GPU's DCGM samples on a 60 s grid (see tests/builders.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from analytics.health.policy import HealthThresholds
from analytics.health.report import HealthResult, evaluate
from analytics.health.xid_catalog import load_catalog
from core import conventions as c
from core.settings import Settings
from core.timeutil import Window
from tests.builders import T0, add_node

A100 = "NVIDIA A100-SXM4-40GB"
STEP = 60


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def add_gpu(
    con: duckdb.DuckDBPyConnection,
    node: str = "n1",
    uuid: str = "GPU-1",
    *,
    model: str = A100,
    steps: int = 600,
    silent: tuple[int, int] | None = None,
    temps: Sequence[float] | None = None,
    with_node: bool = True,
) -> None:
    """A GPU reporting every step (except the `silent` range [a, b) of steps), on a node that is up."""
    if with_node:
        add_node(con, node, 1, model=model, steps=steps)
    con.execute(
        f"INSERT INTO {c.T_GPUS} VALUES ('c1', ?, ?, '', 0, ?, '', ?, ?)",
        [node, uuid, model, T0, T0 + timedelta(seconds=steps * STEP)],
    )
    kept = [i for i in range(steps) if not (silent and silent[0] <= i < silent[1])]
    frame = pd.DataFrame({"i": kept, "temp": [float(temps[i]) if temps is not None else 40.0 for i in kept]})
    con.register("gpu_frame", frame)
    con.execute(
        f"""INSERT INTO {c.T_GPU_SAMPLES} SELECT ?::TIMESTAMP + to_seconds(i * {STEP}), {STEP}, 'c1', ?, ?, '',
            0.5, 50, 1000, 200, temp FROM gpu_frame""",
        [T0, node, uuid],
    )
    con.unregister("gpu_frame")


def add_health(
    con: duckdb.DuckDBPyConnection, metric: str, values: Sequence[float | None], node: str = "n1", uuid: str = "GPU-1"
) -> None:
    """One health field's value per step (None: no sample at that step)."""
    kept = [(i, float(v)) for i, v in enumerate(values) if v is not None]
    con.register("health_frame", pd.DataFrame({"i": [i for i, _ in kept], "v": [v for _, v in kept]}))
    con.execute(
        f"""INSERT INTO {c.T_HEALTH_SAMPLES} (ts, step_s, cluster, node, gpu_uuid, gpu_instance, metric, value)
        SELECT ?::TIMESTAMP + to_seconds(i * {STEP}), {STEP}, 'c1', ?, ?, '', ?, v
        FROM health_frame""",
        [T0, node, uuid, metric],
    )
    con.unregister("health_frame")


def steps_of(*runs: tuple[int, float | None]) -> list[float | None]:
    """[(5, 0), (3, 2)] -> [0, 0, 0, 0, 0, 2, 2, 2]: a series as runs of (length, value)."""
    return [v for n, v in runs for _ in range(n)]


def ramp(start: float, per_step: float, n: int) -> list[float | None]:
    return [start + per_step * i for i in range(n)]


def run(con: duckdb.DuckDBPyConnection, steps: int = 600, settings: Settings | None = None) -> HealthResult:
    settings = settings or Settings()
    catalog = load_catalog(settings.health.xid_overrides)
    window = Window(T0, T0 + timedelta(seconds=steps * STEP))
    return evaluate(con, window, HealthThresholds.from_all(settings), catalog)


def timeline(result: HealthResult) -> list[tuple[float, str]]:
    """(minute, state) of every period: the initial state at minute 0, then each transition."""
    return [((p.start - T0).total_seconds() / 60, p.state) for p in result.periods]
