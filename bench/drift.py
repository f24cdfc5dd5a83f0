"""Batch drift in `make bench`: `gpuledger drift check` beside Evidently's DataDriftPreset on the same Parquet files.

Two pairs of files (reference, current), written once under the bench cache:
- `wide`: 1,000,000 rows x 10 columns a side: six normal columns (two of them shifted in the current side), two
  integer columns of four values, two text columns of 10 categories (one of them re-weighted);
- `ids`: 200,000 rows a side of one text column of 100,000 categories, drawn alike on both sides.
Evidently runs in its own virtualenv under the bench cache (pip install evidently, once), as the FOCUS validator does
in the test suite; each side reports its seconds and peak RSS from its own process, and which columns it called
drifted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

EVIDENTLY = ("evidently==0.7.*", "pandas<3")  # Evidently 0.7 imports a pandas helper pandas 3 removed
ROWS, ID_ROWS, IDS = 1_000_000, 200_000, 100_000


def write_files(folder: Path) -> dict[str, tuple[Path, Path]]:
    """The two pairs of files (cached: written once)."""
    pairs = {
        name: (folder / f"{name}-reference.parquet", folder / f"{name}-current.parquet") for name in ("wide", "ids")
    }
    if all(p.exists() for pair in pairs.values() for p in pair):
        return pairs
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(29)
    for side, path in zip((0, 1), pairs["wide"], strict=True):
        columns: dict[str, Any] = {f"num_{i}": rng.normal(0.3 * side if i < 2 else 0, 1, ROWS) for i in range(6)}
        columns |= {f"int_{i}": rng.integers(0, 4, ROWS) for i in range(2)}
        weights = [np.full(10, 0.1), np.linspace(1, 2, 10) / np.linspace(1, 2, 10).sum() if side else np.full(10, 0.1)]
        columns |= {f"cat_{i}": rng.choice([f"c{k}" for k in range(10)], ROWS, p=w) for i, w in enumerate(weights)}
        pq.write_table(pa.table(columns), path)
    for path in pairs["ids"]:
        pq.write_table(pa.table({"id": [f"user-{i}" for i in rng.integers(0, IDS, ID_ROWS)]}), path)
    return pairs


_EVIDENTLY_SCRIPT = """
import json, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
times = []
for _ in range(int(sys.argv[3])):
    started = time.perf_counter()
    ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
    result = Report([DataDriftPreset()]).run(cur, ref).dict()
    times.append(time.perf_counter() - started)
count = [m["value"]["count"] for m in result["metrics"] if m["metric_name"].startswith("DriftedColumnsCount")]
hwm = [l for l in open("/proc/self/status").read().splitlines() if l.startswith("VmHWM:")][0]  # not ru_maxrss: harness
print(json.dumps({"times": times, "peak_rss_mb": int(hwm.split()[1]) / 1024,
                  "drifted": count[0] if count else None}, default=str))
"""


def evidently_python(cache: Path) -> Path:
    """Evidently's virtualenv under the bench cache, made once."""
    home = cache / "evidently-venv"
    python = home / "bin" / "python"
    if not python.exists():
        venv.create(home, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *EVIDENTLY, "pyarrow"], check=True)
    return python


EVIDENTLY_TIMEOUT = 600  # Evidently on 100,000 categories ran past 10 minutes (2026-12-06): stopped, and said so


def evidently(python: Path, pair: tuple[Path, Path], runs: int) -> dict[str, Any]:
    """Its times, peak RSS and drifted-columns count; `timed_out` when a run took longer than EVIDENTLY_TIMEOUT."""
    try:
        done = subprocess.run([str(python), "-c", _EVIDENTLY_SCRIPT, str(pair[0]), str(pair[1]), str(runs)],
                              capture_output=True, text=True, timeout=EVIDENTLY_TIMEOUT * runs, check=True)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"timed_out": EVIDENTLY_TIMEOUT}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def gpuledger(pair: tuple[Path, Path], runs: int) -> dict[str, Any]:
    """`drift check`'s work (read both files, every column's statistics and verdict), in this process."""
    import time

    from analytics.serving.drift import DriftPolicy
    from analytics.serving.drift_columns import column_drift
    from app.cli.serving import _read_parquet
    from bench.harness import own_peak_rss_mb

    times, drifted = [], []
    for _ in range(runs):
        started = time.perf_counter()
        ref, cur = _read_parquet(pair[0]), _read_parquet(pair[1])
        results = [column_drift(col, ref[col], cur[col], DriftPolicy()) for col in ref.columns]
        times.append(time.perf_counter() - started)
        drifted = [r.feature for r in results if r.drift]
    return {
        "times": times,
        "drifted": drifted,
        "peak_rss_mb": own_peak_rss_mb(),
    }


if __name__ == "__main__":  # python -m bench.drift PAIR RUNS: gpuledger's side in a process of its own
    reference, current = sys.argv[1].split(",")
    print(json.dumps(gpuledger((Path(reference), Path(current)), int(sys.argv[2]))))
