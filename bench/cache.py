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
from datetime import UTC, datetime
from pathlib import Path

from bench.fleet import FleetSpec, build
from core.store.schema import LATEST_VERSION

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
    upgraded = _upgrade(spec, folder)
    if upgraded is not None:
        return path, upgraded
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


# Fleets cached before this branch met main's schema versions 4-6 (health history, serving sample
# times, health deltas) were numbered without them: their 4 (rollups) is today's 7, their 5 (class
# rollups) today's 8. Caches written since are named by today's numbers, from 8 on.
_PRE_MERGE = {5: 8, 4: 7}
_FIRST_CURRENT = 8


def _upgrade(spec: FleetSpec, folder: Path) -> dict[str, object] | None:
    """A fleet cached at an older schema: move it here and let a commit-like rebuild bring it up to date
    (migrations add tables; rollups built from what the older warehouse already holds)."""
    from core.store.rollups import coverage, hourly, pools, waiting
    from core.store.warehouse import connect, transaction

    candidates = [(v, v, False) for v in range(LATEST_VERSION - 1, _FIRST_CURRENT - 1, -1)]
    candidates += [(old, new, True) for old, new in _PRE_MERGE.items() if new <= LATEST_VERSION]
    for old, equivalent, pre_merge in candidates:
        source = root() / "fleets" / f"{spec.key}-gen{GENERATOR_VERSION}-schema{old}"
        if not (source / "generated.json").exists():
            continue
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        tmp = folder / "warehouse.tmp.duckdb"
        os.replace(source / "warehouse.duckdb", tmp)  # moved, not copied: a 10,000-GPU month is ~16 GB
        (source / "generated.json").rename(source / "upgraded.json")
        started = time.monotonic()
        if pre_merge:
            _renumber(tmp, equivalent)
        con = connect(tmp)  # migrates
        try:
            with transaction(con):
                if not hourly.in_sync(con):  # a migration reset the rollups (schema 14: energy columns)
                    hourly.refresh(con, None, full=True, coverage_full=False)  # the class rows too
                else:
                    hourly.rebuild_derived(con)
                if not coverage.in_sync(con):  # schema 9: coverage is built from the step tables
                    coverage.refresh(con, None, None, full=True)
                if not waiting.in_sync(con):  # schema 16: fragmentation per hour
                    waiting.refresh(con, None, None, full=True)
                if not pools.in_sync(con):  # schema 17: pool occupancy per hour; 18: pod requests
                    pools.refresh(con, None, None, full=True)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, folder / "warehouse.duckdb")
        stats = json.loads((source / "upgraded.json").read_text())
        stats.update(upgraded_from_schema=equivalent, upgrade_s=round(time.monotonic() - started, 1))
        stats["bytes"] = (folder / "warehouse.duckdb").stat().st_size
        (folder / "generated.json").write_text(json.dumps(stats, indent=2) + "\n")
        return stats
    return None


def _renumber(path: Path, equivalent: int) -> None:
    """A pre-merge cache: add main's versions 4-6 and record its own versions under today's numbers."""
    import duckdb

    from core import conventions as c
    from core.store.schema import MIGRATIONS

    con = duckdb.connect(str(path))
    try:
        con.execute("BEGIN TRANSACTION")
        for version in (4, 5, 6):
            for statement in MIGRATIONS[version - 1]:
                con.execute(statement)
        con.execute(f"DELETE FROM {c.T_SCHEMA_VERSION} WHERE version > 3")
        now = datetime.now(UTC).replace(tzinfo=None)
        con.executemany(f"INSERT INTO {c.T_SCHEMA_VERSION} VALUES (?, ?)", [(v, now) for v in range(4, equivalent + 1)])
        con.execute("COMMIT")
    finally:
        con.close()
