"""Generated fleets are kept outside the repository and reused across `make bench` runs.

A 10,000-GPU month is ~1.2 billion warehouse rows; writing them costs DuckDB about a microsecond a
row on this machine, so each fleet is generated once per generator version and cached under
$GPULEDGER_BENCH_DIR (default /tmp/gpuledger-bench), with how long it took.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from bench.fleet import FleetSpec, build
from core.schema import LATEST_VERSION

GENERATOR_VERSION = 1  # bump when bench/fleet*.py change what they write


def root() -> Path:
    return Path(os.environ.get("GPULEDGER_BENCH_DIR", "/tmp/gpuledger-bench"))


def fleet_dir(spec: FleetSpec) -> Path:
    return root() / "fleets" / f"{spec.key}-gen{GENERATOR_VERSION}-schema{LATEST_VERSION}"


def warehouse(spec: FleetSpec, log: bool = True) -> tuple[Path, dict[str, object]]:
    """The fleet's warehouse (generated now if not cached) and its generation stats."""
    from bench import fleet_warehouse

    folder = fleet_dir(spec)
    path, stats_path = folder / "warehouse.duckdb", folder / "generated.json"
    if stats_path.exists() and path.exists():
        return path, json.loads(stats_path.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if log:
        print(
            f"generating the {spec.gpus}-GPU fleet ({spec.days:g} days at {spec.step_s} s) into {folder} ...",
            flush=True,
        )
    started = time.monotonic()
    fleet = build(spec)
    built = time.monotonic()
    tmp = folder / "warehouse.tmp.duckdb"
    timings = fleet_warehouse.write(fleet, tmp)
    os.replace(tmp, path)
    stats = {
        "gpus": fleet.physical_gpus,
        "nodes": len(fleet.nodes),
        "pods": len(fleet.pods),
        "schedule_s": round(built - started, 1),
        "write_s": round(time.monotonic() - built, 1),
        **timings,
        "bytes": path.stat().st_size,
    }
    stats_path.write_text(json.dumps(stats, indent=2) + "\n")
    return path, stats
