"""Direct ingestion reproduces the simulator's truth; re-ingesting changes nothing; bad input changes nothing."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from core import conventions as c
from core.store.warehouse import open_warehouse
from tests.builders import with_pod_uids
from tests.conftest import FIXTURES, run_cli
from tests.helpers import content_digest, team_day_hours


def test_direct_ingestion_gives_the_truth_files_gpu_hours_per_team_per_day(direct_warehouse: Path, truth: dict) -> None:
    days = sorted({d for per_day in truth["allocated_gpu_hours"].values() for d in per_day})
    got = team_day_hours(direct_warehouse, days)
    assert set(got) == set(truth["allocated_gpu_hours"])
    for team, per_day in truth["allocated_gpu_hours"].items():
        for day, hours in per_day.items():
            assert got[team][day] == pytest.approx(hours, abs=1e-9), (team, day)


@pytest.mark.parametrize("step", ["60s", "300s"], ids=["at one minute", "at the scrape interval"])
def test_the_truth_holds_at_any_step_that_divides_the_scrape_interval(
    sim_day: Path, truth: dict, tmp_path: Path, step: str
) -> None:
    wh = tmp_path / "wh.duckdb"
    files = [str(p) for p in sorted(sim_day.glob("*.om"))]
    assert run_cli("--warehouse", str(wh), "collect", "openmetrics", *files, "--step", step).exit_code == 0
    got = team_day_hours(wh, ["2026-11-02"])
    for team, per_day in truth["allocated_gpu_hours"].items():
        assert got[team]["2026-11-02"] == pytest.approx(per_day["2026-11-02"], abs=1e-9)


def test_ingesting_the_same_files_twice_changes_nothing(sim_day: Path, tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    files = [str(p) for p in sorted(sim_day.glob("*.om"))]
    assert run_cli("--warehouse", str(wh), "collect", "openmetrics", *files).exit_code == 0
    first = content_digest(wh)
    assert run_cli("--warehouse", str(wh), "collect", "openmetrics", *files).exit_code == 0
    assert content_digest(wh) == first
    assert all(
        first[t][0] > 0 for t in (c.T_GPU_SAMPLES, c.T_POD_ALLOCATIONS, c.T_INFERENCE_SAMPLES, c.T_PODS, c.T_NODES)
    )


def test_overlapping_windows_never_double_count(sim_day: Path, tmp_path: Path, truth: dict) -> None:
    wh = tmp_path / "wh.duckdb"
    files = [str(p) for p in sorted(sim_day.glob("*.om"))]
    for start, end in (
        ("2026-11-02T00:00:00Z", "2026-11-02T14:00:00Z"),
        ("2026-11-02T10:00:00Z", "2026-11-03T00:00:00Z"),
    ):
        assert (
            run_cli("--warehouse", str(wh), "collect", "openmetrics", *files, "--start", start, "--end", end).exit_code
            == 0
        )
    got = team_day_hours(wh, ["2026-11-02"])
    for team, per_day in truth["allocated_gpu_hours"].items():
        assert got[team]["2026-11-02"] == pytest.approx(per_day["2026-11-02"], abs=1e-9)


def _garble(src: Path, dst: Path, line_no: int, text: str) -> None:
    lines = src.read_text().splitlines(keepends=True)
    lines[line_no - 1] = text
    dst.write_text("".join(lines))


BAD_INPUTS = {
    "a missing file": (lambda d, src: d / "nope.om", "nope.om: no such file"),
    "a garbled sample line": (
        lambda d, src: (_garble(src, d / "bad.om", 5, 'DCGM_FI_DEV_GPU_TEMP{gpu="0" 12 1793577607\n'), d / "bad.om")[1],
        "bad.om:5:",
    ),
    "a non-numeric value": (
        lambda d, src: (_garble(src, d / "bad.om", 6, 'DCGM_FI_DEV_GPU_TEMP{gpu="0"} hot 1793577607\n'), d / "bad.om")[
            1
        ],
        "bad.om:6: value 'hot' is not a number",
    ),
    "a file truncated before # EOF": (
        lambda d, src: (
            (d / "cut.om").write_text("".join(src.read_text().splitlines(keepends=True)[:100])),
            d / "cut.om",
        )[1],
        "cut.om:100: ends without '# EOF'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_names_file_and_line_exits_non_zero_and_leaves_the_warehouse_as_it_was(
    case: str, sim_day: Path, direct_warehouse: Path, tmp_path: Path
) -> None:
    wh = tmp_path / "wh.duckdb"
    shutil.copy(direct_warehouse, wh)
    before = content_digest(wh)
    make, message = BAD_INPUTS[case]
    bad = make(tmp_path, sim_day / "dcgm-exporter.om")
    good = sim_day / "kube-state-metrics.om"
    result = run_cli("--warehouse", str(wh), "collect", "openmetrics", str(good), str(bad))
    assert result.exit_code == 2 and result.stdout == ""
    # one line says what is wrong (the files parsed before it report their progress, as JSON lines)
    errors = [line for line in result.stderr.splitlines() if not line.startswith('{"progress"')]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert content_digest(wh) == before


def test_a_failed_first_ingest_creates_no_warehouse(tmp_path: Path) -> None:
    wh = tmp_path / "new.duckdb"
    result = run_cli("--warehouse", str(wh), "collect", "openmetrics", str(tmp_path / "missing.om"))
    assert result.exit_code == 2 and not wh.exists()


def test_real_exporter_scrapes_ingest_with_mig_time_slicing_and_idle_gpus(tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    files = [
        FIXTURES / "dcgm-exporter_4.8.2_k8s_h100.prom",
        FIXTURES / "dcgm-exporter_4.8.2_mig_and_timeslicing.prom",
        FIXTURES / "kube-state-metrics_v2.x_gpu_excerpt.prom",
    ]
    result = run_cli("--warehouse", str(wh), "collect", "openmetrics", *map(str, files), "--at", "2026-11-02T10:00:00Z")
    assert result.exit_code == 0, result.output
    with open_warehouse(wh, read_only=True) as con:
        alloc = con.execute(
            f"SELECT ts, namespace, pod, resource, amount FROM {c.T_POD_ALLOCATIONS} ORDER BY ALL"
        ).fetchall()
        # Running pods only: ctr-batch-9 is Pending; the excerpt has phase rows for no other pod
        # a plain scrape's state stands for the one step that starts at --at (DCGM's, for the one that ends there)
        assert alloc == [
            (datetime(2026, 11, 2, 10, 0), "team-vision", "resnet-train-7d9f8-abcde", "nvidia_com_gpu", 1.0)
        ]
        devices = con.execute(f"SELECT count(*) FROM {c.T_GPUS}").fetchall()[0][0]
        assert devices == 2 + 3 + 1  # two H100s, three MIG instances, one time-sliced A100
        # the time-sliced copies collapse into one device row, whose power is not summed
        power = con.execute(f"SELECT power_w FROM {c.T_GPU_SAMPLES} WHERE gpu_uuid LIKE 'GPU-bbbb%'").fetchall()
        assert power == [(pytest.approx(243.87),)]
        team = con.execute(f"SELECT labels->>'team' FROM {c.T_PODS} WHERE pod = 'resnet-train-7d9f8-abcde'").fetchall()[
            0
        ]
        assert team == ("vision",)


def test_pod_uids_on_every_pod_mapped_series_change_no_device_or_pod_row(tmp_path: Path) -> None:
    dcgm = [FIXTURES / "dcgm-exporter_4.8.2_k8s_h100.prom", FIXTURES / "dcgm-exporter_4.8.2_mig_and_timeslicing.prom"]
    ksm = FIXTURES / "kube-state-metrics_v2.x_gpu_excerpt.prom"
    with_uids = [with_pod_uids(f, tmp_path / f.name) for f in dcgm]
    assert all("pod_uid=" in f.read_text() for f in with_uids)
    tables = (c.T_GPU_SAMPLES, c.T_GPU_POD_SAMPLES, c.T_GPUS)
    found = []
    for name, files in (("plain", dcgm), ("uids", with_uids)):
        wh = tmp_path / f"{name}.duckdb"
        args = ["--warehouse", str(wh), "collect", "openmetrics", *map(str, [*files, ksm])]
        assert run_cli(*args, "--at", "2026-11-02T10:00:00Z").exit_code == 0
        with open_warehouse(wh, read_only=True) as con:
            found.append({t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables})
    assert found[0] == found[1]
    assert len(found[0][c.T_GPU_SAMPLES]) == 6 and len(found[0][c.T_GPU_POD_SAMPLES]) >= 3
