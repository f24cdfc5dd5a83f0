"""The exporters' real label conventions, read through a real Prometheus, give the rows the files give.

The fixtures' scrapes (MIG instances, time-slicing copies, per-process copies, idle GPUs, HA
kube-state-metrics) are replayed as ten one-minute scrapes, once as published and, an hour later,
as dcgm-exporter --kubernetes-enable-pod-uid writes them: pod_uid on every pod-mapped series, which
must not turn device series into per-process copies (collectors/metrics/series_mapping.py, core/promql.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from app.cli import main
from core import conventions as c
from core.store.warehouse import open_warehouse
from core.timeutil import iso
from tests import servers
from tests.builders import replayed, with_pod_uids
from tests.conftest import FIXTURES, backfill_command, require_binary

SCRAPES = [
    FIXTURES / "dcgm-exporter_4.8.2_k8s_h100.prom",
    FIXTURES / "dcgm-exporter_4.8.2_mig_and_timeslicing.prom",
    FIXTURES / "kube-state-metrics_v2.x_gpu_excerpt.prom",
]
PUBLISHED, WITH_UIDS = datetime(2026, 11, 2, 10), datetime(2026, 11, 2, 11)
MINUTES = 10
TABLES = (c.T_GPU_SAMPLES, c.T_GPU_POD_SAMPLES, c.T_HEALTH_SAMPLES, c.T_POD_ALLOCATIONS)


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory) -> dict[datetime, list[Path]]:
    base = tmp_path_factory.mktemp("replays")
    uids = [with_pod_uids(f, base / f"uids-{f.name}") if "dcgm" in f.name else f for f in SCRAPES]
    return {
        PUBLISHED: [replayed(f, base / f"published-{f.stem}.om", PUBLISHED, MINUTES) for f in SCRAPES],
        WITH_UIDS: [replayed(f, base / f"uids-{f.stem}.om", WITH_UIDS, MINUTES) for f in uids],
    }


@pytest.fixture(scope="module")
def fixture_prometheus(replays: dict[datetime, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    promtool, binary = require_binary("promtool"), require_binary("prometheus")
    base = tmp_path_factory.mktemp("fixture-prometheus")
    for om in (f for files in replays.values() for f in files):
        subprocess.run([*backfill_command(promtool), str(om), str(base / "tsdb")], check=True, capture_output=True)
    with servers.prometheus(binary, base / "tsdb", base) as url:
        yield url


def _rows(wh: Path, start: datetime) -> dict[str, list[tuple]]:
    """Every table's rows of the replayed minutes, without the times (one replay is an hour later)."""
    out = {}
    with open_warehouse(wh, read_only=True) as con:
        for table in TABLES:
            found = con.execute(
                f"SELECT * EXCLUDE (ts) FROM {table} WHERE ts >= ? AND ts < ? ORDER BY ALL",
                [start, start + timedelta(minutes=MINUTES - 1)],
            )
            out[table] = found.fetchall()
    return out


@pytest.mark.parametrize("pushdown", ["query", "raw"])
def test_prometheus_reads_the_fixtures_conventions_as_the_files_do_with_or_without_pod_uids(
    pushdown: str, fixture_prometheus: str, replays: dict[datetime, list[Path]], tmp_path: Path
) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text(f"collect:\n  pushdown: {pushdown}\n  step: 60s\n")
    found = {}
    for start, files in replays.items():
        files_wh, prom_wh = tmp_path / f"files-{start:%H}.duckdb", tmp_path / f"prom-{start:%H}.duckdb"
        assert _cli(settings, "--warehouse", str(files_wh), "collect", "openmetrics", *map(str, files)).exit_code == 0
        window = ["--start", iso(start), "--end", iso(start + timedelta(minutes=MINUTES))]
        result = _cli(
            settings, "--warehouse", str(prom_wh), "collect", "prometheus", "--url", fixture_prometheus, *window
        )
        assert result.exit_code == 0, result.output
        found[start] = _rows(files_wh, start)
        assert _rows(prom_wh, start) == found[start], f"replay at {start}"
    assert found[PUBLISHED] == found[WITH_UIDS]
    assert all(found[PUBLISHED][t] for t in TABLES)


def _cli(settings: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(settings), *args], catch_exceptions=False)
