"""A warehouse written at the previous schema version (a file checked into tests/fixtures/, made with the
migration machinery by tests/make_old_warehouse.py) migrates on first write and gives the same reports."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import duckdb
import pytest

from core import conventions as c
from core.errors import SchemaError
from core.store.rollups import coverage
from core.store.schema import LATEST_VERSION
from core.store.warehouse import connect, open_warehouse, schema_version, transaction
from tests.conftest import FIXTURES
from tests.make_old_warehouse import VERSION, reports

# older files (8: before the coverage rollup; 12: before energy; 13: before the stored bill prices; 14: before the
# queues; 15: before the waiting rollups; 16: before the pool rollup), the previous one
VERSIONS = (4, 8, 12, 13, 14, 15, 16, 17, VERSION)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_warehouse_from_an_older_schema_version_migrates_and_gives_the_same_reports(
    tmp_path: Path, version: int
) -> None:
    wh = tmp_path / f"warehouse-v{version}.duckdb"
    shutil.copy(FIXTURES / wh.name, wh)
    con = duckdb.connect(str(wh), read_only=True)
    assert schema_version(con) == version < LATEST_VERSION
    con.close()
    with pytest.raises(SchemaError, match="needs migrating"):  # readers never change a file
        connect(wh, read_only=True)
    with open_warehouse(wh) as con:
        assert schema_version(con) == LATEST_VERSION
    # chargeback, fleet health and serving unit cost, exactly as today's gpuledger gives them on the same
    # input ingested fresh (serving rows from before version 5 carry no scrape time: analytics/serving/counters.py
    # falls back to the step's end, which gives the same request counts on 5-minute scrapes)
    expected = json.loads((FIXTURES / f"warehouse-v{version}.expected.json").read_text())
    assert _same(reports(wh, version), expected), "reports differ from today's on the same input"


def test_the_coverage_rollup_migrated_to_version_10_equals_one_built_from_the_steps(tmp_path: Path) -> None:
    wh = tmp_path / "warehouse-v9.duckdb"
    shutil.copy(FIXTURES / wh.name, wh)
    columns = "hour, cluster, node, gpu_uuid, steps, first_ts, last_end, declared_steps, gpus, gpu_min_steps"
    with open_warehouse(wh) as con:
        assert coverage.in_sync(con)
        migrated = con.execute(f"SELECT {columns} FROM {c.T_COVERAGE_ROLLUP} ORDER BY ALL").fetchall()
        with transaction(con):
            coverage.refresh(con, None, None, full=True)
        rebuilt = con.execute(f"SELECT {columns} FROM {c.T_COVERAGE_ROLLUP} ORDER BY ALL").fetchall()
    assert any(row[8] for row in migrated), "node rows count their GPUs"
    assert migrated == rebuilt


def _same(got: object, want: object) -> bool:
    """Equal, floats to 1e-12 relative: DuckDB's parallel sums (request counts) add in no fixed order,
    so the last bit of a float may differ between runs; strings (money, rounded) must match exactly."""
    if isinstance(got, float) and isinstance(want, float):
        return math.isclose(got, want, rel_tol=1e-12)
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k]) for k in got)
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(_same(a, b) for a, b in zip(got, want, strict=True))
    return got == want


def test_the_newest_old_fixture_is_the_version_before_the_current_one() -> None:
    # a new migration must come with its predecessor's file: `python -m tests.make_old_warehouse`
    assert VERSION == LATEST_VERSION - 1
