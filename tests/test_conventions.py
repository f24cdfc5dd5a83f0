"""Every real exporter convention, each checked on inputs derived from the format-exact fixtures.

A plain scrape ingested with --at stands for the one step ending at --at, so each case compares
single warehouse rows with what the fixture says.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from analytics.cost.chargeback import chargeback
from collectors.metrics.prometheus import answers
from collectors.metrics.series import SeriesContext
from core import conventions as c
from core.store.warehouse import open_warehouse
from core.timeutil import Window
from tests import counters
from tests.builders import describe_series
from tests.conftest import FIXTURES, backfill_command

AT = "2026-11-02T10:00:00Z"
STEP = Window(datetime(2026, 11, 2, 9, 59), datetime(2026, 11, 2, 10, 0))
H100 = FIXTURES / "dcgm-exporter_4.8.2_k8s_h100.prom"
SHARED = FIXTURES / "dcgm-exporter_4.8.2_mig_and_timeslicing.prom"
KSM = FIXTURES / "kube-state-metrics_v2.x_gpu_excerpt.prom"


def _ingest(tmp_path: Path, texts: dict[str, str], *options: str, config: str = "") -> tuple[Path, str]:
    """Write derived fixtures, ingest them as one plain scrape; return (warehouse, CLI output)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    settings = tmp_path / "settings.yaml"
    settings.write_text(config or "collect: {}\n")
    wh = tmp_path / "wh.duckdb"
    result = run_cli_with(settings, "--warehouse", str(wh), "collect", "openmetrics", *paths, "--at", AT, *options)
    assert result.exit_code == 0, result.output
    return wh, result.output


def run_cli_with(settings: Path, *args: str):  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from app.cli import main

    return CliRunner().invoke(main, ["--config", str(settings), *args])


def _query(wh: Path, sql: str) -> list[tuple]:
    with open_warehouse(wh, read_only=True) as con:
        return sorted(con.execute(sql).fetchall(), key=repr)


def _with_label(text: str, family_prefix: str, label: str) -> str:
    """Add label="..." to every sample line of families starting with family_prefix."""
    return re.sub(rf"^({family_prefix}[A-Za-z_:]*\{{)", rf"\1{label},", text, flags=re.M)


# ---- dcgm-exporter ---------------------------------------------------------------------------


def test_hostname_is_read_in_both_spellings(tmp_path: Path) -> None:
    upper, _ = _ingest(tmp_path / "a", {"h100.prom": H100.read_text()})
    lower, _ = _ingest(tmp_path / "b", {"h100.prom": H100.read_text().replace('Hostname="', 'hostname="')})
    sql = f"SELECT node, gpu_uuid, power_w, temp_c FROM {c.T_GPU_SAMPLES}"
    assert _query(upper, sql) == _query(lower, sql) != []
    assert {row[0] for row in _query(lower, sql)} == {"gpu-node-a1"}


def _as_scraped_by_a_service_monitor(text: str) -> str:
    """What Prometheus stores with honorLabels: false: workload labels renamed exported_*, and the
    target labels of the dcgm-exporter pod itself added (the fixture's API answer shows them)."""
    text = re.sub(r'([,{])(container|namespace|pod)="', r'\1exported_\2="', text)
    target = 'container="exporter",namespace="gpu-monitoring",pod="dcgm-exporter-7xk2q",instance="10.42.3.17:9400"'
    return re.sub(r"^(DCGM_[A-Z_]+\{)", rf"\1{target},", text, flags=re.M)


@pytest.mark.parametrize("style", ["exported", "plain"])
def test_the_workload_label_style_is_a_switch_that_decides_which_pod_a_gpu_serves(style: str, tmp_path: Path) -> None:
    scraped = _as_scraped_by_a_service_monitor(H100.read_text() + SHARED.read_text())
    config = f"collect:\n  workload_label_style: {style}\n"
    wh, _ = _ingest(tmp_path, {"dcgm.prom": scraped}, config=config)
    pods = {row[0] for row in _query(wh, f"SELECT DISTINCT pod FROM {c.T_GPU_POD_SAMPLES}")}
    if style == "exported":
        assert pods == {
            "resnet-train-7d9f8-abcde",
            "llm-infer-5c7d-x2k9p",
            "jupyter-alice",
            "ctr-batch-0",
            "ctr-batch-1",
        }
    else:  # the wrong switch attributes every GPU, idle ones included, to the exporter pod
        assert pods == {"dcgm-exporter-7xk2q"}


def test_an_api_answer_with_exported_labels_maps_onto_the_workload_and_leaves_idle_gpus_unmapped() -> None:
    vector = json.loads((FIXTURES / "prometheus_api_dcgm_vector.json").read_text())
    for series in vector["data"]["result"]:  # as a one-point range answer
        series["values"] = [series.pop("value")]
    vector["data"]["resultType"] = "matrix"
    matrix = answers.decode_matrix(json.dumps(vector).encode(), "http://prometheus", "query 'x'")
    ctx = SeriesContext("c1", "exported")
    rows = describe_series([(c.DCGM_GPU_UTIL, labels) for labels in matrix.labels], ctx)
    assert [(r["node"], r["namespace"], r["pod"], r["container"]) for r in rows] == [
        ("gpu-node-a1", "team-vision", "resnet-train-7d9f8-abcde", "trainer"),
        ("gpu-node-a1", "", "", ""),
    ]
    assert [list(matrix.points(i)[1]) for i in range(2)] == [[97.0], [0.0]]


def test_mig_instances_keep_their_card_power_without_summing_it(tmp_path: Path) -> None:
    wh, _ = _ingest(tmp_path, {"shared.prom": SHARED.read_text()})
    rows = _query(wh, f"SELECT gpu_instance, power_w, gpu_util FROM {c.T_GPU_SAMPLES} WHERE gpu_uuid LIKE 'GPU-aaaa%'")
    assert rows == [(gi, pytest.approx(187.112), None) for gi in ("1", "13", "5")]  # GPU_UTIL: not on MIG


def test_time_slicing_copies_are_one_device_with_per_pod_utilisation(tmp_path: Path) -> None:
    wh, _ = _ingest(tmp_path, {"shared.prom": SHARED.read_text()})
    device = _query(wh, f"SELECT power_w, gpu_util FROM {c.T_GPU_SAMPLES} WHERE gpu_uuid LIKE 'GPU-bbbb%'")
    assert device == [(pytest.approx(243.87), 88.0)]  # the device series, not 2 x 243.87
    pods = _query(wh, f"SELECT vgpu, pod, gpu_util FROM {c.T_GPU_POD_SAMPLES} WHERE gpu_uuid LIKE 'GPU-bbbb%'")
    assert pods == [("0", "ctr-batch-0", 61.0), ("1", "ctr-batch-1", 24.0)]


def test_an_idle_gpu_has_samples_but_serves_no_pod(tmp_path: Path) -> None:
    wh, _ = _ingest(tmp_path, {"h100.prom": H100.read_text()})
    idle = "GPU-5e6f7a8b-9999-8888-7777-666655554444"
    assert _query(wh, f"SELECT count(*) FROM {c.T_GPU_SAMPLES} WHERE gpu_uuid = '{idle}'") == [(1,)]
    assert _query(wh, f"SELECT count(*) FROM {c.T_GPU_POD_SAMPLES} WHERE gpu_uuid = '{idle}'") == [(0,)]


def _without(text: str, family: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith(family)) + "\n"


USAGE = {
    "graphics-engine activity is preferred": (lambda t: t, 0.812345),
    "GPU_UTIL / 100 when the exporter has no profiling metrics": (lambda t: _without(t, c.DCGM_GR_ENGINE_ACTIVE), 0.97),
}


@pytest.mark.parametrize("case", list(USAGE), ids=list(USAGE))
def test_used_gpu_hours_come_from_engine_activity_else_gpu_util(case: str, tmp_path: Path) -> None:
    derive, activity = USAGE[case]
    h100 = H100.read_text()
    h100 = re.sub(r"^(DCGM_FI_PROF_GR_ENGINE_ACTIVE\{gpu=\"0\".*\}) \S+$", r"\1 0.812345", h100, flags=re.M)
    wh, _ = _ingest(tmp_path, {"h100.prom": derive(h100), "ksm.prom": KSM.read_text()})
    with open_warehouse(wh, read_only=True) as con:
        used = {r.keys["team"]: r.used_gpu_hours for r in chargeback(con, STEP).rows}
    assert used["vision"] == pytest.approx(activity / 60)  # one 60-s step


# ---- kube-state-metrics ----------------------------------------------------------------------


def test_without_kube_pod_labels_the_run_warns_once_and_gpu_pods_are_unallocated(tmp_path: Path) -> None:
    ksm = _without(KSM.read_text(), c.KSM_POD_LABELS)
    wh, output = _ingest(tmp_path, {"ksm.prom": ksm, "ksm2.prom": ksm.replace("gpu-node-a1", "gpu-node-a2")})
    assert output.count("--metric-labels-allowlist") == 1
    assert _query(wh, f"SELECT count(*) FROM {c.T_PODS} WHERE labels IS NOT NULL") == [(0,)]


def _running(text: str, *pods: str) -> str:
    """Make the named pods Running (the excerpt has phase rows for two pods only)."""
    lines = []
    for pod in pods:
        uid = re.search(rf'pod="{pod}",uid="([^"]+)"', text).group(1)  # type: ignore[union-attr]
        ns = re.search(rf'namespace="([^"]+)",pod="{pod}"', text).group(1)  # type: ignore[union-attr]
        lines.append(f'{c.KSM_POD_PHASE}{{namespace="{ns}",pod="{pod}",uid="{uid}",phase="Running"}} 1')
    return text + "\n".join(lines) + "\n"


def test_gpu_mig_and_shared_requests_of_running_pods_are_allocations_and_others_are_not(tmp_path: Path) -> None:
    ksm = _running(KSM.read_text(), "llm-infer-5c7d-x2k9p", "ctr-batch-0")
    wh, _ = _ingest(tmp_path, {"ksm.prom": ksm})
    rows = _query(wh, f"SELECT pod, node, resource, amount FROM {c.T_POD_ALLOCATIONS}")
    assert rows == [  # cpu/memory rows ignored; ctr-batch-9 is Pending
        ("ctr-batch-0", "gpu-node-b2", "nvidia_com_gpu_shared", 1.0),
        ("llm-infer-5c7d-x2k9p", "gpu-node-b2", "nvidia_com_mig_3g_40gb", 1.0),
        ("resnet-train-7d9f8-abcde", "gpu-node-a1", "nvidia_com_gpu", 1.0),
    ]


def test_a_pod_that_stopped_running_keeps_its_request_rows_but_is_not_allocated(tmp_path: Path) -> None:
    text = KSM.read_text()
    finished = re.sub(r'(pod="resnet-train-7d9f8-abcde".*phase="Succeeded"\}) 0', r"\1 1", text)
    finished = re.sub(r'(pod="resnet-train-7d9f8-abcde".*phase="Running"\}) 1', r"\1 0", finished)
    wh, _ = _ingest(tmp_path, {"ksm.prom": finished})
    assert _query(wh, f"SELECT count(*) FROM {c.T_POD_ALLOCATIONS}") == [(0,)]


def test_ha_kube_state_metrics_replicas_are_deduplicated(tmp_path: Path) -> None:
    ksm = _running(KSM.read_text(), "llm-infer-5c7d-x2k9p")
    single, _ = _ingest(tmp_path / "one", {"ksm.prom": ksm})
    replicas = {
        "ksm-0.prom": _with_label(ksm, "kube_", 'instance="10.0.0.1:8080"'),
        "ksm-1.prom": _with_label(ksm, "kube_", 'instance="10.0.0.2:8080"'),
    }
    double, _ = _ingest(tmp_path / "two", replicas)
    for table in (c.T_POD_ALLOCATIONS, c.T_NODE_SAMPLES, c.T_PODS, c.T_NODES):
        sql = f"SELECT * FROM {table}"
        assert _query(double, sql) == _query(single, sql), table


NODE_LABELS = {
    "karpenter spot": ('label_karpenter_sh_capacity_type="spot"', "spot"),
    "karpenter on-demand": ('label_karpenter_sh_capacity_type="on-demand"', "on_demand"),
    "EKS managed node group SPOT": ('label_eks_amazonaws_com_capacity_type="SPOT"', "spot"),
    "GKE spot": ('label_cloud_google_com_gke_spot="true"', "spot"),
    "GKE preemptible": ('label_cloud_google_com_gke_preemptible="true"', "spot"),
    "AKS spot scale set": ('label_kubernetes_azure_com_scalesetpriority="spot"', "spot"),
    "no capacity label": ("", "on_demand"),
}


@pytest.mark.parametrize("case", list(NODE_LABELS), ids=list(NODE_LABELS))
def test_node_labels_give_instance_type_capacity_type_and_region(case: str, tmp_path: Path) -> None:
    label, capacity = NODE_LABELS[case]
    extra = f'{label},label_topology_kubernetes_io_region="eu-west-1"'.lstrip(",")
    ksm = re.sub(r'^(kube_node_labels\{node="gpu-node-a1",)', rf"\1{extra},", KSM.read_text(), flags=re.M)
    wh, _ = _ingest(tmp_path, {"ksm.prom": ksm})
    rows = _query(
        wh, f"SELECT instance_type, capacity_type, region, gpu_count FROM {c.T_NODES} WHERE node = 'gpu-node-a1'"
    )
    assert rows == [("p5.48xlarge", capacity, "eu-west-1", 8)]


def test_a_cluster_label_keeps_two_clusters_apart_in_one_store(tmp_path: Path) -> None:
    ksm = _running(KSM.read_text(), "llm-infer-5c7d-x2k9p")
    dcgm = H100.read_text()
    texts = {
        "a.prom": _with_label(ksm, "kube_", 'cluster="east"') + _with_label(dcgm, "DCGM_", 'cluster="east"'),
        "b.prom": _with_label(ksm, "kube_", 'cluster="west"') + _with_label(dcgm, "DCGM_", 'cluster="west"'),
    }
    wh, _ = _ingest(tmp_path, {k: v.replace("# EOF", "") for k, v in texts.items()})
    per_cluster = _query(wh, f"SELECT cluster, count(*) FROM {c.T_POD_ALLOCATIONS} GROUP BY cluster")
    assert per_cluster == [("east", 2), ("west", 2)]
    assert _query(wh, f"SELECT cluster, count(*) FROM {c.T_GPUS} GROUP BY cluster") == [("east", 2), ("west", 2)]


# ---- counters and Xid, over a day (tests/counters.py), against Prometheus' own increase() --------


def test_counter_increases_handle_resets_exactly_as_prometheus_increase_does(
    direct_warehouse: Path, prometheus_url: str, sim_files: list[Path]
) -> None:
    import requests

    first = 1793577600 + counters.OFFSET_S
    last = first + (counters.SCRAPES - 1) * counters.INTERVAL_S
    for metric in ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", c.DCGM_ENERGY, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"):
        answer = requests.get(
            f"{prometheus_url}/api/v1/query",
            params={"query": f"increase({metric}[{last - first}s])", "time": last},
            timeout=30,
        ).json()["data"]["result"]
        expected = {s["metric"]["UUID"]: float(s["value"][1]) for s in answer}
        got = dict(
            _query(
                direct_warehouse,
                f"SELECT gpu_uuid, sum(delta) FROM {c.T_HEALTH_SAMPLES} WHERE metric = '{metric}' GROUP BY ALL",
            )
        )
        # tests/counters.py's two GPUs, whose series span the whole evaluated range (no extrapolation)
        lab = {u: v for u, v in expected.items() if u.startswith("GPU-1ab0000")}
        assert len(lab) == 2 and {u: got[u] for u in lab} == pytest.approx(lab, rel=1e-12), metric


def test_an_xid_event_is_a_change_of_the_last_xid_value(direct_warehouse: Path) -> None:
    events = _query(
        direct_warehouse,
        f"SELECT gpu_uuid, sum(delta), max(value) FROM {c.T_HEALTH_SAMPLES} WHERE metric = '{c.DCGM_XID}'"
        f" AND node = '{counters.LAB_NODE}' GROUP BY ALL",
    )
    assert [(e[1], e[2]) for e in events] == [(counters.EXPECTED_XID_EVENTS, 79.0)] * 2


# ---- exported_* labels and HA replicas through a real Prometheus, aggregated in the query or not ----


def _timestamped(text: str, start: int, scrapes: int) -> str:
    """A plain scrape repeated every 5 minutes as OpenMetrics with timestamps."""
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    out = [f"{line} {start + i * 300}" for line in samples for i in range(scrapes)]
    return "\n".join(out) + "\n# EOF\n"


def _ha_ksm() -> str:
    ksm = _running(KSM.read_text(), "llm-infer-5c7d-x2k9p", "ctr-batch-0")
    return _with_label(ksm, "kube_", 'instance="10.0.0.1:8080"') + _with_label(ksm, "kube_", 'instance="10.0.0.2:8080"')


THROUGH_PROMETHEUS = {
    "dcgm-exporter scraped with honorLabels false": (
        lambda: _as_scraped_by_a_service_monitor(H100.read_text() + SHARED.read_text()),
        "exported",
        (c.T_GPU_SAMPLES, c.T_GPU_POD_SAMPLES, c.T_GPUS),
    ),
    "two kube-state-metrics replicas": (_ha_ksm, "plain", (c.T_POD_ALLOCATIONS, c.T_NODE_SAMPLES, c.T_NODES)),
}


@pytest.mark.parametrize("pushdown", ["query", "raw"])
@pytest.mark.parametrize("case", list(THROUGH_PROMETHEUS), ids=list(THROUGH_PROMETHEUS))
def test_conventions_read_through_a_real_prometheus_equal_direct_ingestion(
    case: str, pushdown: str, tmp_path: Path
) -> None:
    import subprocess

    from tests import servers
    from tests.conftest import require_binary

    make, style, tables = THROUGH_PROMETHEUS[case]
    om = tmp_path / "input.om"
    om.write_text(_timestamped(make(), 1793613607, 4))  # 2026-11-02T10:00:07Z, four scrapes
    tsdb = tmp_path / "tsdb"
    subprocess.run(
        [*backfill_command(require_binary("promtool")), str(om), str(tsdb)],
        check=True,
        capture_output=True,
    )
    window = ("--start", "2026-11-02T10:00:00Z", "--end", "2026-11-02T10:30:00Z")
    config = tmp_path / "settings.yaml"
    config.write_text(f"collect:\n  workload_label_style: {style}\n  pushdown: {pushdown}\n")
    direct, via = tmp_path / "direct.duckdb", tmp_path / "via.duckdb"
    assert run_cli_with(config, "--warehouse", str(direct), "collect", "openmetrics", str(om), *window).exit_code == 0
    with servers.prometheus(require_binary("prometheus"), tsdb, tmp_path) as url:
        result = run_cli_with(config, "--warehouse", str(via), "collect", "prometheus", "--url", url, *window)
    assert result.exit_code == 0, result.output
    for table in tables:
        sql = f"SELECT * FROM {table}"
        assert _query(via, sql) == _query(direct, sql) != [], table
