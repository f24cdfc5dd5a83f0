"""Chargeback options: attribution, MIG/HAMi shares, idle and shared-cost distribution, groupings.

Fixture topology (builders), one hour at 60 s steps, $8/GPU-hour unless a test says otherwise:

    node n1 (8 x A100 40GB, pool-a)      node n2 (8 x A100 40GB, pool-b)
      vision  4 GPUs                        nlp      2 GPUs
      nlp     2 GPUs                        platform 2 GPUs (shared namespace `monitoring`)
      idle    2 GPUs  ($16)                 idle     4 GPUs ($32)
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from analytics.cost.attribution import Attribution
from analytics.cost.chargeback import ChargebackOptions, chargeback
from analytics.cost.cost_rows import SHARED
from core import conventions as c
from core.timeutil import Window
from tests.builders import T0, add_gpu_usage, add_namespace, add_node, add_pod, add_price, fresh_db

HOUR = Window(T0, T0 + timedelta(hours=1))


def fleet():  # type: ignore[no-untyped-def]
    con = fresh_db()
    add_node(con, "n1", 8, pool="pool-a")
    add_node(con, "n2", 8, pool="pool-b")
    add_price(con, "64")  # p4d: $64/h for 8 GPUs = $8/GPU-hour
    add_pod(con, "train", "n1", team="vision", amount=4, steps=60)
    add_pod(con, "serve", "n1", team="nlp", amount=2, steps=60)
    add_pod(con, "serve2", "n2", team="nlp", amount=2, steps=60)
    add_pod(con, "prom", "n2", team="platform", namespace="monitoring", amount=2, steps=60)
    return con


def costs(report, key: str = "team") -> dict[str, Decimal]:  # type: ignore[no-untyped-def]
    return {r.keys[key]: r.cost_usd for r in report.rows}


def test_by_default_idle_is_its_own_row_and_nothing_is_shared() -> None:
    report = chargeback(fleet(), HOUR)
    assert costs(report) == {
        "vision": Decimal("32.00"),
        "nlp": Decimal("32.00"),
        "platform": Decimal("16.00"),
        c.IDLE: Decimal("48.00"),
    }


@pytest.mark.parametrize(
    ("idle", "scope", "expected"),
    [
        # cluster scope: $48 idle over allocated $80 -> vision 32/80, nlp 32/80, platform 16/80
        ("weighted", "cluster", {"vision": "51.20", "nlp": "51.20", "platform": "25.60", c.IDLE: "0.00"}),
        # node scope: n1 idle $16 -> vision 2/3, nlp 1/3; n2 idle $32 -> nlp 1/2, platform 1/2
        ("weighted", "node", {"vision": "42.67", "nlp": "53.33", "platform": "32.00", c.IDLE: "0.00"}),
        ("even", "cluster", {"vision": "48.00", "nlp": "48.00", "platform": "32.00", c.IDLE: "0.00"}),
    ],
    ids=["idle shared weighted within the cluster", "idle shared weighted within each node", "idle shared evenly"],
)
def test_idle_can_be_shared_and_still_sums_to_capacity(idle: str, scope: str, expected: dict[str, str]) -> None:
    report = chargeback(fleet(), HOUR, ChargebackOptions(idle=idle, idle_scope=scope))  # type: ignore[arg-type]
    assert costs(report) == {k: Decimal(v) for k, v in expected.items()}
    idle_row = next(r for r in report.rows if r.kind == c.IDLE)
    assert idle_row.cents["allocated_cost_usd"] == Decimal("48.00") and idle_row.cents["idle_share_usd"] == Decimal(
        "-48.00"
    )
    assert report.total() == report.node_cost_usd == Decimal("128.00")


def test_a_node_whose_gpus_are_all_idle_keeps_its_idle_when_sharing_by_node() -> None:
    con = fleet()
    add_node(con, "n3", 8, pool="pool-c")
    report = chargeback(con, HOUR, ChargebackOptions(idle="weighted", idle_scope="node"))
    assert costs(report)[c.IDLE] == Decimal("64.00") and report.total() == report.node_cost_usd


def test_shared_namespaces_and_overhead_are_split_over_the_other_rows() -> None:
    opts = ChargebackOptions(shared_namespaces=("monitoring",), shared_overhead_usd_per_hour=Decimal("10"))
    report = chargeback(fleet(), HOUR, opts)
    # pool = platform's $16 + $10 overhead, weighted by allocated cost 32:32 -> +13 each
    assert costs(report) == {
        "vision": Decimal("45.00"),
        "nlp": Decimal("45.00"),
        SHARED: Decimal("0.00"),
        c.IDLE: Decimal("48.00"),
    }
    assert report.total() == report.node_cost_usd + report.overhead_usd == Decimal("138.00")
    assert next(r for r in report.rows if r.keys["team"] == "vision").cents["shared_share_usd"] == Decimal("13.00")


def test_shared_label_selectors_mark_pods_as_shared() -> None:
    con = fleet()
    add_pod(con, "exporter", "n2", team="nlp", amount=1, steps=60, labels={"app.kubernetes.io/part-of": "platform"})
    report = chargeback(
        con, HOUR, ChargebackOptions(shared_labels=("app.kubernetes.io/part-of=platform",), shared_split="even")
    )
    # the exporter's $8 goes evenly to vision, nlp and platform
    shares = {r.keys["team"]: r.cents["shared_share_usd"] for r in report.rows if r.kind == "allocated"}
    assert sum(shares.values()) == Decimal("8.00") and set(shares.values()) <= {Decimal("2.66"), Decimal("2.67")}
    assert report.total() == report.node_cost_usd


ATTRIBUTION = [
    ("a pod's team label wins", {"team": "vision", "cost-center": "cc-1"}, {}, {}, "vision"),
    ("the second key is the fallback", {"cost-center": "cc-1"}, {}, {}, "cc-1"),
    ("kube-state-metrics' snake-case key works too", {"cost_center": "cc-2"}, {}, {}, "cc-2"),
    ("the namespace's label comes next", {}, {"team": "research"}, {}, "research"),
    ("then the namespace map", {}, {}, {"ns": "ads"}, "ads"),
    ("else the pod is unallocated", {}, {}, {}, c.UNALLOCATED),
]


@pytest.mark.parametrize(("case", "pod", "ns", "mapping", "team"), ATTRIBUTION, ids=[a[0] for a in ATTRIBUTION])
def test_attribution_order(
    case: str, pod: dict[str, str], ns: dict[str, str], mapping: dict[str, str], team: str
) -> None:
    con = fresh_db()
    add_node(con, "n1", 1)
    add_price(con, "8", gpus=1)
    add_pod(con, "p", "n1", team=None, labels=pod, steps=60)
    if ns:
        add_namespace(con, "ns", ns)
    report = chargeback(con, HOUR, ChargebackOptions(attribution=Attribution(namespace_teams=mapping)))
    assert costs(report)[team] == Decimal("8.00")


@pytest.mark.parametrize(
    ("mig_share", "resource", "model", "gpus"),
    [
        ("compute", "nvidia_com_mig_1g_10gb", "NVIDIA-A100-SXM4-80GB", 1 / 7),
        ("memory", "nvidia_com_mig_1g_10gb", "NVIDIA-A100-SXM4-80GB", 1 / 8),
        ("memory", "nvidia_com_mig_3g_40gb", "NVIDIA-A100-SXM4-80GB", 1 / 2),
        ("compute", "nvidia_com_mig_1g_6gb", "NVIDIA-A30", 1 / 4),
    ],
    ids=["1g.10gb is 1/7 by compute", "1g.10gb is 1/8 by memory", "3g.40gb is 1/2 by memory", "A30 1g.6gb is 1/4"],
)
def test_mig_slice_shares(mig_share: str, resource: str, model: str, gpus: float) -> None:
    con = fresh_db()
    add_node(con, "n1", 1, model=model)
    add_price(con, "8", gpus=1)
    add_pod(con, "p", "n1", resource=resource, steps=60)
    report = chargeback(con, HOUR, ChargebackOptions(mig_share=mig_share))  # type: ignore[arg-type]
    vision = next(r for r in report.rows if r.keys["team"] == "vision")
    assert vision.gpu_hours == pytest.approx(gpus, abs=1e-9)


def test_hami_gpucores_scale_a_pods_gpus_and_gpumem_adds_nothing() -> None:
    con = fresh_db()
    add_node(con, "n1", 1)
    add_price(con, "8", gpus=1)
    add_pod(con, "p", "n1", resource="nvidia_com_gpu", steps=60)
    add_pod(con, "p", "n1", resource="nvidia_com_gpucores", amount=30, steps=60)
    add_pod(con, "p", "n1", resource="nvidia_com_gpumem", amount=8000, steps=60)
    report = chargeback(con, HOUR)
    assert costs(report) == {"vision": Decimal("2.40"), c.IDLE: Decimal("5.60")}


def test_efficiency_sums_a_multi_gpu_pods_gpus_instead_of_dividing_by_their_count() -> None:
    con = fresh_db()
    add_node(con, "n1", 4)
    add_price(con, "32", gpus=4)
    add_pod(con, "train", "n1", amount=4, steps=60)
    for i in range(4):
        add_gpu_usage(con, "n1", f"GPU-{i}", 0.9, pod="train")
    vision = next(r for r in chargeback(con, HOUR).rows if r.keys["team"] == "vision")
    assert vision.efficiency == pytest.approx(0.9)  # OpenCost: 0.9 / 4 = 22.5%
    assert vision.as_dict()["unused_cost_usd"] == "3.20"  # 10% of $32 allocated but unused


def test_usage_is_read_over_the_reports_window_not_at_now() -> None:
    con = fresh_db()
    add_node(con, "n1", 1, steps=120)
    add_price(con, "8", gpus=1)
    add_pod(con, "p", "n1", steps=120)
    add_gpu_usage(con, "n1", "GPU-0", 0.8, pod="p", steps=60)
    add_gpu_usage(con, "n1", "GPU-0", 0.1, pod="p", offset=60, steps=60)
    first = next(r for r in chargeback(con, HOUR).rows if r.keys["team"] == "vision")
    later = next(
        r
        for r in chargeback(con, Window(T0 + timedelta(hours=1), T0 + timedelta(hours=2))).rows
        if r.keys["team"] == "vision"
    )
    assert (first.efficiency, later.efficiency) == (pytest.approx(0.8), pytest.approx(0.1))


def test_mig_usage_counts_at_the_instances_share_of_the_card() -> None:
    con = fresh_db()
    add_node(con, "n1", 1, model="NVIDIA-A100-SXM4-80GB")
    add_price(con, "8", gpus=1)
    add_pod(con, "p", "n1", resource="nvidia_com_mig_3g_40gb", steps=60)
    add_gpu_usage(con, "n1", "GPU-0", 0.5, pod="p", instance="1", mig_profile="3g.40gb", model="NVIDIA A100-SXM4-80GB")
    vision = next(r for r in chargeback(con, HOUR).rows if r.keys["team"] == "vision")
    assert vision.used_gpu_hours == pytest.approx(0.5 * 3 / 7) and vision.efficiency == pytest.approx(0.5)


@pytest.mark.parametrize(
    "by",
    [("label:app",), ("team", "day"), ("workload",), ("node_pool",), ("team", "namespace", "workload")],
    ids=["any pod label", "team per day", "workload", "node pool only", "team, namespace and workload"],
)
def test_every_grouping_conserves_the_total(by: tuple[str, ...]) -> None:
    con = fleet()
    add_pod(con, "web-7d9f8c6b5-x2k9p", "n1", team="ads", labels={"app": "web"}, steps=30)
    report = chargeback(con, Window(T0, T0 + timedelta(hours=2)), ChargebackOptions(by=by, idle="weighted"))
    assert report.total() == report.node_cost_usd
    assert sum(r.gpu_hours for r in report.rows) == pytest.approx(report.capacity_gpu_hours)


def test_workloads_strip_replicaset_hashes() -> None:
    con = fleet()
    add_pod(con, "web-7d9f8c6b5-x2k9p", "n1", team="ads", steps=30)
    names = {r.keys["workload"] for r in chargeback(con, HOUR, ChargebackOptions(by=("workload",))).rows}
    assert "web" in names and "train" in names


def test_long_steps_and_big_nodes_do_not_overflow() -> None:
    con = fresh_db()
    add_node(con, "n1", 1024, steps=4, step_s=900)
    add_price(con, "1024", gpus=1024)
    add_pod(con, "p", "n1", amount=1000, steps=4, step_s=900)
    report = chargeback(con, HOUR)
    assert costs(report) == {"vision": Decimal("1000.00"), c.IDLE: Decimal("24.00")}
