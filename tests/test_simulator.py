"""The simulator writes exporter-exact OpenMetrics, deterministically, with its own truth."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tests.conftest import FIXTURES, run_cli


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path: Path, sim_day: Path) -> None:
    again = tmp_path / "again"
    other = tmp_path / "other"
    assert run_cli("simulate", "--days", "1", "--seed", "7", "--out", str(again)).exit_code == 0
    assert run_cli("simulate", "--days", "1", "--seed", "8", "--out", str(other)).exit_code == 0
    assert _digest(again) == _digest(sim_day)
    assert _digest(other)["dcgm-exporter.om"] != _digest(sim_day)["dcgm-exporter.om"]


def test_every_file_is_openmetrics_with_timestamps_ending_in_eof(sim_day: Path) -> None:
    for path in sim_day.glob("*.om"):
        lines = path.read_text().splitlines()
        assert lines[-1] == "# EOF", path.name
        samples = [line for line in lines if not line.startswith("#")]
        assert samples and all(re.search(r"\} \S+ \d{10}$", s) for s in samples[:2000]), path.name


def _label_names(line: str) -> list[str]:
    return re.findall(r'(\w+)="', line.split("{", 1)[1].rsplit("}", 1)[0])


def test_dcgm_series_use_the_exporters_label_order(sim_day: Path) -> None:
    fixture = next(
        line
        for line in (FIXTURES / "dcgm-exporter_4.8.2_k8s_h100.prom").read_text().splitlines()
        if line.startswith("DCGM_FI_DEV_GPU_TEMP") and "pod=" in line
    )
    ours = next(
        line
        for line in (sim_day / "dcgm-exporter.om").read_text().splitlines()
        if line.startswith("DCGM_FI_DEV_GPU_TEMP") and "pod=" in line and "GPU_I_ID" not in line and "vgpu" not in line
    )
    assert _label_names(ours) == _label_names(fixture)


def test_fleet_has_idle_gpus_mig_instances_time_slicing_and_spot(sim_day: Path) -> None:
    dcgm = (sim_day / "dcgm-exporter.om").read_text()
    ksm = (sim_day / "kube-state-metrics.om").read_text()
    idle = [line for line in dcgm.splitlines() if line.startswith("DCGM_FI_DEV_GPU_TEMP") and "pod=" not in line]
    assert idle, "idle GPUs carry no pod labels"
    assert 'GPU_I_PROFILE="3g.40gb"' in dcgm and 'GPU_I_PROFILE="1g.10gb"' in dcgm
    assert not re.search(r"^DCGM_FI_DEV_GPU_UTIL\{[^}]*GPU_I_PROFILE", dcgm, re.M), "GPU_UTIL is not exported for MIG"
    assert re.search(r'vgpu="3"', dcgm) and 'pod_uid="' in dcgm
    assert 'resource="nvidia_com_gpu_shared"' in ksm and 'resource="nvidia_com_mig_1g_10gb"' in ksm
    assert 'label_karpenter_sh_capacity_type="spot"' in ksm and 'label_karpenter_sh_capacity_type="on-demand"' in ksm
    assert 'label_nvidia_com_gpu_replicas="4"' in ksm and 'label_nvidia_com_gpu_sharing_strategy="time-slicing"' in ksm
    # and a pool as most clusters export it: no replicas label, the shared capacity (16 on 4 GPUs) states them
    ts2 = re.search(r'kube_node_labels\{node="gpu-ts-2",[^}]*\}', ksm).group(0)  # type: ignore[union-attr]
    assert "replicas" not in ts2 and 'label_nvidia_com_gpu_count="4"' in ts2
    assert 'kube_node_status_capacity{node="gpu-ts-2",resource="nvidia_com_gpu_shared",unit="integer"} 16' in ksm
    assert re.search(r'kube_pod_labels\{namespace="sandbox",[^}]*\}', ksm) and "label_team=" not in re.search(
        r'kube_pod_labels\{namespace="sandbox",[^}]*\}', ksm
    ).group(0)


def test_pods_start_and_stop_inside_the_window(sim_day: Path, truth: dict) -> None:
    ksm = (sim_day / "kube-state-metrics.om").read_text()
    assert 'phase="Succeeded"} 1 ' in ksm, "some pods finish"
    assert re.search(r'phase="Pending"\} 1 ', ksm), "some pods start"
    assert set(truth["allocated_gpu_hours"]) == {"__unallocated__", "ads", "nlp", "research", "vision"}


def test_inference_histograms_are_cumulative_and_consistent(sim_day: Path) -> None:
    lines = [
        line
        for line in (sim_day / "vllm.om").read_text().splitlines()
        if line.startswith("vllm:e2e_request_latency_seconds_bucket") and 'le="+Inf"' in line
    ]
    pods = {re.search(r'pod="([^"]+)"', line).group(1) for line in lines}
    for pod in pods:
        counts = [float(line.split()[-2]) for line in lines if f'pod="{pod}"' in line]
        assert counts == sorted(counts) and counts[-1] > 0
