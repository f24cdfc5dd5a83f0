"""The ledger on clusters as they are really configured (issue 22, cases 1 and 2).

Hand-built kube-state-metrics 2.x and dcgm-exporter 4.x scrapes, once a minute, collected at 60 s steps;
every expected figure is computed by hand here, not by the simulator.

Case 1: a g5.12xlarge (4 A10G, $5.672 an hour) time-sliced x4, three pods each requesting one replica for
the 2-hour window: 3 x 1/4 x 2 h = 1.5 GPU-hours allocated, and the node's 4 GPUs x 2 h = 8 GPU-hours
billed ($11.344), whichever way the cluster states its replicas.

Case 2: a p5.48xlarge (8 H100, $98.32 an hour) whose GPU 7 stops reporting after its sample at 00:35. A
sample is read for the lookback (5 minutes) after it, so the GPU is silent from 00:40: 80 minutes. One pod
holds GPUs 0-3 all along. Billed: 8 GPUs x 2 h = 16 GPU-hours ($196.64), of which 8 allocated, 80/60 unhealthy
and the rest idle, whichever source states the node's 8 GPUs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from analytics.cost import fact_plan
from analytics.cost.chargeback import ChargebackOptions, chargeback
from analytics.cost.reconcile import reconcile
from analytics.health import impact
from app.jobs import evaluate_health
from core import conventions as c
from core.settings import Settings
from core.store.rollups import coverage, hourly
from core.store.status import data_status, replicas_sources
from core.store.warehouse import open_warehouse, transaction
from core.timeutil import Window
from tests import builders
from tests.conftest import run_cli, serve_prometheus

T0 = datetime(2026, 11, 2)
WINDOW = Window(T0, T0 + timedelta(hours=2))
FIRST, LAST = -10, 130  # scrapes (minutes from T0): data around the window, so neither edge is cut
G5_HOUR, P5_HOUR = Decimal("5.672"), Decimal("98.32")
SILENT_FROM = 36  # GPU 7's first missing scrape (its last sample is at 00:35)
LOOKBACK_MIN = 5


@dataclass
class Node:
    name: str
    instance_type: str
    labels: dict[str, str]  # Kubernetes node labels kube-state-metrics exports (allowlisted)
    capacity: dict[str, int]  # kube_node_status_capacity by resource
    dcgm_gpus: int = 0  # GPUs dcgm-exporter reports
    resource: str = c.RESOURCE_GPU_SHARED  # what its pods request
    pods: list[tuple[str, int, list[int]]] = field(default_factory=list)  # (pod, amount, GPU indexes)
    silent_gpu: int | None = None


def _ts_node(name: str, labels: dict[str, str], capacity: dict[str, int], dcgm: int = 0, resource: str = "") -> Node:
    pods = [(f"{name}-job-{i}", 1, [i]) for i in range(3)]
    return Node(name, "g5.12xlarge", labels, capacity, dcgm, resource or c.RESOURCE_GPU_SHARED, pods)


SHARED16 = {c.RESOURCE_GPU_SHARED: 16, c.RESOURCE_GPU: 0}
# (node, where its replicas come from)
TIME_SLICED = [
    (_ts_node("ts-label", {"nvidia.com/gpu.count": "4", "nvidia.com/gpu.replicas": "4"}, SHARED16), "label"),
    (_ts_node("ts-gfd-count", {"nvidia.com/gpu.count": "4"}, SHARED16), "capacity"),
    (_ts_node("ts-dcgm-devices", {}, SHARED16, dcgm=4), "capacity"),
    (
        _ts_node(
            "ts-unrenamed-product",
            {"nvidia.com/gpu.count": "4", "nvidia.com/gpu.product": "NVIDIA-A10G-SHARED"},
            {c.RESOURCE_GPU: 16},
            resource=c.RESOURCE_GPU,
        ),
        "capacity",
    ),
    (
        _ts_node(
            "ts-unrenamed-strategy",
            {"nvidia.com/gpu.sharing-strategy": "time-slicing", "nvidia.com/gpu.product": "NVIDIA-A10G"},
            {c.RESOURCE_GPU: 16},
            dcgm=4,
            resource=c.RESOURCE_GPU,
        ),
        "capacity",
    ),
    (_ts_node("ts-mps", {"nvidia.com/gpu.count": "4", "nvidia.com/gpu.sharing-strategy": "mps"}, SHARED16), "capacity"),
]


def _p5(name: str, labels: dict[str, str], capacity: dict[str, int]) -> Node:
    return Node(name, "p5.48xlarge", labels, capacity, 8, c.RESOURCE_GPU, [(f"{name}-train", 4, [0, 1, 2, 3])], 7)


SILENT = [
    _p5("p5-gfd-count", {"nvidia.com/gpu.count": "8"}, {c.RESOURCE_GPU: 8}),
    _p5("p5-ksm-capacity", {}, {c.RESOURCE_GPU: 8}),
    _p5("p5-dcgm-only", {}, {}),
]
NODES = [n for n, _ in TIME_SLICED] + SILENT


def _label(key: str) -> str:
    return "label_" + "".join(ch if ch.isalnum() else "_" for ch in key)


def _node_lines(n: Node) -> Iterator[str]:
    labels = {
        "node.kubernetes.io/instance-type": n.instance_type,
        "topology.kubernetes.io/region": "us-east-1",
        **n.labels,
    }
    pairs = ",".join(f'{_label(k)}="{v}"' for k, v in sorted(labels.items()))
    yield f'kube_node_labels{{node="{n.name}",{pairs}}} 1'
    for resource, count in n.capacity.items():
        yield f'kube_node_status_capacity{{node="{n.name}",resource="{resource}",unit="integer"}} {count}'


def _pod_lines(n: Node) -> Iterator[str]:
    for pod, amount, _ in n.pods:
        ids = f'namespace="team-a",pod="{pod}",uid="uid-{pod}"'
        yield f'kube_pod_info{{{ids},node="{n.name}"}} 1'
        yield f'kube_pod_labels{{{ids},label_team="a"}} 1'
        yield f'kube_pod_status_phase{{{ids},phase="Running"}} 1'
        yield (
            f'kube_pod_container_resource_requests{{{ids},container="main",node="{n.name}",'
            f'resource="{n.resource}",unit="integer"}} {amount}'
        )


def _dcgm_lines(n: Node, minute: int, style: str) -> Iterator[str]:
    ns_label, pod_label, container_label = c.WORKLOAD_LABELS[style]
    on_gpu = {i: pod for pod, _, gpus in n.pods for i in gpus}
    for i in range(n.dcgm_gpus):
        if i == n.silent_gpu and minute >= SILENT_FROM:
            continue  # fell off the bus: dcgm-exporter stops exporting it
        pod = on_gpu.get(i, "")
        workload = f',{container_label}="main",{ns_label}="team-a",{pod_label}="{pod}"' if pod else ""
        device = f'gpu="{i}",UUID="GPU-{n.name}-{i}",device="nvidia{i}",modelName="NVIDIA A10G",Hostname="{n.name}"'
        yield f"DCGM_FI_DEV_GPU_UTIL{{{device}{workload}}} {50 if pod else 0}"


def write_scrapes(out: Path, style: str) -> list[Path]:
    """kube-state-metrics' and dcgm-exporter's scrapes, once a minute, as two timestamped OpenMetrics files."""
    ksm, dcgm = [], []
    for minute in range(FIRST, LAST):
        t = int((T0 - datetime(1970, 1, 1)).total_seconds()) + 60 * minute
        for n in NODES:
            ksm += [f"{line} {t}" for line in (*_node_lines(n), *_pod_lines(n))]
            dcgm += [f"{line} {t}" for line in _dcgm_lines(n, minute, style)]
    paths = []
    for name, lines in (("ksm.om", ksm), ("dcgm.om", dcgm)):
        path = out / name
        path.write_text("\n".join(_grouped(lines)) + "\n# EOF\n")
        paths.append(path)
    return paths


def _grouped(lines: list[str]) -> list[str]:
    """OpenMetrics wants a family's samples together: order by family, keeping time order within one."""
    return sorted(lines, key=lambda line: line.split("{", 1)[0])


def _prices(wh: Path) -> None:
    csv = wh.parent / "prices.csv"
    csv.write_text(
        "provider,region,instance_type,capacity_type,gpu_model,gpus,price_per_hour_usd,effective_from\n"
        f"aws,us-east-1,g5.12xlarge,on_demand,A10G,4,{G5_HOUR},2026-01-01T00:00:00Z\n"
        f"aws,us-east-1,p5.48xlarge,on_demand,H100,8,{P5_HOUR},2026-01-01T00:00:00Z\n"
    )
    result = run_cli("--warehouse", str(wh), "pricing", "import", str(csv))
    assert result.exit_code == 0, result.output


def _style_config(base: Path, style: str) -> list[str]:
    """--config naming the DCGM workload label style (kube-state-metrics' labels never change)."""
    config = base / "gpuledger.yaml"
    config.write_text(f"collect:\n  workload_label_style: {style}\n")
    return ["--config", str(config)]


@pytest.fixture(scope="module", params=["plain", "exported"])
def file_warehouse(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp(f"ledger-{request.param}")
    files = write_scrapes(base, request.param)
    wh = base / "wh.duckdb"
    style = _style_config(base, request.param)
    result = run_cli(*style, "--warehouse", str(wh), "collect", "openmetrics", *map(str, files), "--step", "60s")
    assert result.exit_code == 0, result.output
    _prices(wh)
    return wh


def by_node(wh: Path) -> dict[str, dict[str, Decimal]]:
    """Per node: GPU-hours and exact dollars (before cent rounding, which is pinned per team, not per node)."""
    with open_warehouse(wh, read_only=True) as con:
        report = chargeback(con, WINDOW, ChargebackOptions(by=("node",), idle="keep"))
    out: dict[str, dict[str, Decimal]] = {}
    for row in report.rows:
        kind = "allocated" if row.kind in ("allocated", c.UNALLOCATED) else row.kind
        got = out.setdefault(row.keys["node"], {})
        got[kind + "_hours"] = got.get(kind + "_hours", Decimal(0)) + Decimal(repr(row.gpu_hours))
        got[kind + "_usd"] = got.get(kind + "_usd", Decimal(0)) + row.exact_total
        got["total_usd"] = got.get("total_usd", Decimal(0)) + row.exact_total
    return out


def _hours(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.000001"))


@pytest.mark.parametrize(("node", "source"), TIME_SLICED, ids=[n.name for n, _ in TIME_SLICED])
def test_a_time_sliced_gpu_is_billed_once_however_the_cluster_states_its_replicas(
    file_warehouse: Path, node: Node, source: str
) -> None:
    got = by_node(file_warehouse)[node.name]
    assert _hours(got["allocated_hours"]) == Decimal("1.5")  # 3 pods x 1/4 GPU x 2 h
    assert _hours(got["allocated_hours"] + got[c.IDLE + "_hours"]) == Decimal(8)  # 4 GPUs x 2 h
    assert got["allocated_usd"] == Decimal("2.127")  # 1.5 x 5.672 / 4
    assert got["total_usd"] == Decimal("11.344")  # 2 h x 5.672
    with open_warehouse(file_warehouse, read_only=True) as con:
        found = {r["node"]: r for r in replicas_sources(con)}
    assert (found[node.name]["replicas"], found[node.name]["source"], found[node.name]["disagree"]) == (
        4,
        source,
        False,
    )


@pytest.mark.parametrize("node", SILENT, ids=[n.name for n in SILENT])
def test_a_gpu_that_falls_silent_stays_billed_as_unhealthy_whichever_source_states_the_nodes_gpus(
    file_warehouse: Path, node: Node
) -> None:
    got = by_node(file_warehouse)[node.name]
    silent_min = 120 - (SILENT_FROM - 1 + LOOKBACK_MIN)  # 80 minutes
    unhealthy = Decimal(silent_min) / 60
    assert _hours(got["allocated_hours"]) == Decimal(8)  # 4 GPUs x 2 h
    assert _hours(got[c.UNHEALTHY + "_hours"]) == _hours(unhealthy)
    assert _hours(got[c.IDLE + "_hours"]) == _hours(16 - 8 - unhealthy)
    gpu_hour = P5_HOUR / 8
    assert got[c.UNHEALTHY + "_usd"].quantize(Decimal("1e-12")) == (unhealthy * gpu_hour).quantize(Decimal("1e-12"))
    assert got["total_usd"] == Decimal("196.64")  # the provider bills 2 h x 98.32 whatever the GPUs do


def test_the_fleets_rows_sum_to_what_the_provider_bills_for_its_node_hours(file_warehouse: Path) -> None:
    with open_warehouse(file_warehouse, read_only=True) as con:
        report = chargeback(con, WINDOW, ChargebackOptions(by=("team",)))
    billed = 2 * (len(TIME_SLICED) * G5_HOUR + len(SILENT) * P5_HOUR)
    assert report.node_cost_usd == billed.quantize(Decimal("0.01"))
    assert sum(r.cost_usd for r in report.rows) == report.node_cost_usd


def test_a_real_prometheus_gives_the_same_ledger_as_the_files(
    file_warehouse: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("ledger-prom")
    style = "exported" if "exported" in str(file_warehouse) else "plain"
    files = write_scrapes(base, style)
    wh = base / "wh.duckdb"
    start, end = (T0 + timedelta(minutes=FIRST)), (T0 + timedelta(minutes=LAST))
    with serve_prometheus(files, base) as url:
        result = run_cli(
            *_style_config(base, style), "--warehouse", str(wh), "collect", "prometheus", "--url", url,
            "--start", f"{start:%Y-%m-%dT%H:%M:%SZ}", "--end", f"{end:%Y-%m-%dT%H:%M:%SZ}", "--step", "60s",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    _prices(wh)
    assert by_node(wh) == by_node(file_warehouse)


def test_the_unhealthy_cost_of_silent_gpus_is_the_health_reports_lost_cost_for_the_same_hours(
    file_warehouse: Path,
) -> None:
    """Both price the same GPU-hours through one price path; both round once over their whole (largest
    remainder), so the totals agree to the cent and each GPU to within the cent that rounding moves."""
    with open_warehouse(file_warehouse, read_only=True) as con:
        result = evaluate_health(con, Settings(), WINDOW)
        lost = {r.key.node: r for r in impact.lost_capacity(con, result)}
        report = chargeback(con, WINDOW, ChargebackOptions(by=("team",)))
    ledger = by_node(file_warehouse)
    for node in SILENT:
        assert lost[node.name].key.gpu_uuid == f"GPU-{node.name}-{node.silent_gpu}"
        assert lost[node.name].hours == pytest.approx((120 - (SILENT_FROM - 1 + LOOKBACK_MIN)) / 60)  # 80 minutes
        assert abs(lost[node.name].cost_usd - ledger[node.name][c.UNHEALTHY + "_usd"]) < Decimal("0.01")
    assert set(lost) == {n.name for n in SILENT}
    assert impact.total_cost(list(lost.values())) == report.total(c.UNHEALTHY)  # 3 x 80/60 x 98.32/8 = 49.16


def test_reconciliation_finds_no_difference_where_every_node_is_priced_and_its_gpus_are_known(
    file_warehouse: Path,
) -> None:
    result = run_cli("--warehouse", str(file_warehouse), "report", "reconcile", *_window_args(), "--format", "json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert {r["node"]: r["difference_usd"] for r in got["rows"]} == {f"default/{n.name}": "0.00" for n in NODES}
    assert {r["node"]: r["node_hours"] for r in got["rows"]} == {f"default/{n.name}": 2.0 for n in NODES}
    billed = 2 * (len(TIME_SLICED) * G5_HOUR + len(SILENT) * P5_HOUR)  # node-hours x list price, by hand
    assert got["totals"] == {"provider_usd": f"{billed:.2f}", "ledger_usd": f"{billed:.2f}", "difference_usd": "0.00"}
    assert (got["unpriced_nodes"], got["dcgm_without_node"], got["requests_without_gpus"]) == ([], [], [])
    by_type = run_cli(
        "--warehouse", str(file_warehouse), "report", "reconcile", *_window_args(), "--by", "instance_type"
    )
    assert "g5.12xlarge" in by_type.output and "difference 0.00 USD" in by_type.output


def _window_args() -> list[str]:
    return ["--start", f"{WINDOW.start:%Y-%m-%dT%H:%M:%SZ}", "--end", f"{WINDOW.end:%Y-%m-%dT%H:%M:%SZ}"]


@pytest.mark.parametrize("rolled", [False, True], ids=["from the steps", "from the rollups"])
def test_reconciliation_lists_what_the_ledger_cannot_price_or_place(rolled: bool) -> None:
    """A node with no price (billed at $0), DCGM under a hostname no node has, and a GPU request on a node
    without GPUs (billed the GPU it asked for): each named with its GPU-hours; priced nodes still agree. The same
    from the steps and from the hourly rollups a commit keeps."""
    con = builders.fresh_db()
    builders.add_node(con, "priced", 8)
    builders.add_price(con, "32.77")  # p4d.24xlarge: 8 GPUs
    builders.add_node(con, "unpriced", 4, instance_type="x9.weird")
    builders.add_node(con, "cpu-only", 0, instance_type="p4d.24xlarge")
    builders.add_pod(con, "lost-pod", "cpu-only", steps=30)  # 1 GPU for 30 minutes on a node without GPUs
    builders.add_gpu_usage(con, "ip-10-0-0-1.ec2.internal", "GPU-ghost", 0.5, steps=45)
    window = Window(builders.T0, builders.T0 + timedelta(hours=1))
    if rolled:
        with transaction(con):
            hourly.refresh(con, None, full=True)
        assert fact_plan.plan(con, window).hours == [(window.start, window.end)] and coverage.in_sync(con)
    result = reconcile(con, window, ChargebackOptions())
    lines = {line.key: line.as_dict("node") for line in result.lines}
    assert lines["c1/priced"]["difference_usd"] == "0.00" and lines["c1/priced"]["provider_usd"] == "32.77"
    assert lines["c1/unpriced"]["unpriced_gpu_hours"] == 4.0
    # the hostname no node has matched no price either (no instance type): listed in both
    assert [(u.node, u.gpu_hours) for u in result.unpriced_nodes] == [
        ("ip-10-0-0-1.ec2.internal", 0.75),
        ("unpriced", 4.0),
    ]
    # a p4d that states no GPUs: the provider bills its hour (32.77), the ledger the half GPU-hour it was asked for
    assert lines["c1/cpu-only"]["difference_usd"] == str(Decimal("2.05") - Decimal("32.77"))  # 0.5 x 32.77 / 8 = 2.048
    assert result.dcgm_without_node == [{"cluster": "c1", "node": "ip-10-0-0-1.ec2.internal", "gpu_hours": 0.75}]
    assert result.requests_without_gpus == [{"cluster": "c1", "node": "cpu-only", "gpu_hours": 0.5}]


def test_a_replicas_label_that_disagrees_with_the_capacity_is_used_and_flagged_on_the_data_status() -> None:
    con = builders.fresh_db()
    builders.add_node(con, "ts-stale-label", 4, instance_type="g5.12xlarge", replicas=2)
    con.execute(f"UPDATE {c.T_NODES} SET ksm_shared = 16 WHERE node = 'ts-stale-label'")  # 16 / 4 GPUs = 4
    [found] = replicas_sources(con)
    assert (found["replicas"], found["source"], found["capacity_says"], found["disagree"]) == (2, "label", 4, True)
    [warning] = [w for w in data_status(con)["warnings"] if "ts-stale-label" in w]
    assert "label says 2" in warning and "capacity says 4" in warning


def test_the_rollups_bill_capacity_and_unhealthy_time_exactly_as_the_step_tables(file_warehouse: Path) -> None:
    with open_warehouse(file_warehouse, read_only=True) as con:
        assert fact_plan.plan(con, WINDOW).hours == [(WINDOW.start, WINDOW.end)]  # both hours from the rollups
        options = ChargebackOptions(by=("node",))
        rolled, steps = chargeback(con, WINDOW, options), chargeback(con, WINDOW, options, use_rollups=False)
    assert [r.as_dict() for r in rolled.rows] == [r.as_dict() for r in steps.rows]
    assert rolled.totals() == steps.totals() and Decimal(rolled.totals()["unhealthy_cost_usd"]) > 0
