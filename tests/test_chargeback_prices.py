"""The chargeback under real price behaviour: spot step functions per zone, reservations, price history,
discounts, GPU shares, on-prem servers and label-based matching, every cent conserved."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from analytics.cost import node_facts, prices
from analytics.cost.chargeback import ChargebackOptions, chargeback
from analytics.cost.cost_rows import ChargebackReport
from collectors.metrics.series import SeriesContext
from collectors.pricing import aws, from_settings, price_table
from collectors.pricing.importer import import_file
from collectors.pricing.price_table import ImportOptions
from core import conventions as c
from core.settings import DiscountSettings, OnPremSettings, PricingSettings
from core.store.warehouse import migrate
from core.timeutil import Window
from tests.builders import T0, add_node, add_pod, add_price, describe_series, fresh_db
from tests.conftest import FIXTURES, run_cli

D = Decimal
HOUR = timedelta(hours=1)


def _hours(n: float, start: datetime = T0) -> Window:
    return Window(start, start + timedelta(hours=n))


def _conserved(report: ChargebackReport) -> ChargebackReport:
    assert sum(r.cost_usd for r in report.rows) == report.node_cost_usd
    assert all(r.cost_usd >= 0 for r in report.rows)
    return report


def _node_costs(con: duckdb.DuckDBPyConnection, window: Window) -> dict[str, Decimal]:
    report = _conserved(chargeback(con, window, ChargebackOptions(by=("node",))))
    out: dict[str, Decimal] = {}
    for row in report.rows:
        out[row.keys["node"]] = out.get(row.keys["node"], D(0)) + row.cost_usd
    return out


def _spot_history(changes: list[tuple[str, str, timedelta]]) -> dict[str, object]:
    return {
        "SpotPriceHistory": [
            {
                "AvailabilityZone": zone,
                "InstanceType": "p3.2xlarge",
                "ProductDescription": "Linux/UNIX",
                "SpotPrice": price,
                "Timestamp": (T0 + at).isoformat() + "Z",
            }
            for zone, price, at in changes
        ]
    }


def test_spot_nodes_pay_their_zones_step_function_price_at_each_hours_start_else_the_regions() -> None:
    con = fresh_db()
    for node, zone in [("s-1a", "us-east-1a"), ("s-1b", "us-east-1b"), ("s-1c", "us-east-1c")]:
        add_node(con, node, 1, instance_type="p3.2xlarge", capacity_type="spot", zone=zone, steps=180)
    history = _spot_history(
        [
            ("us-east-1a", "0.600000", -timedelta(days=1)),
            ("us-east-1a", "0.900000", HOUR),
            ("us-east-1a", "1.200000", timedelta(minutes=90)),  # mid-hour: bills from the next hour
            ("us-east-1b", "0.500000", -timedelta(days=1)),
        ]
    )
    price_table.store(con, aws.parse_spot_history(history, "spot.json", ImportOptions()).rows)
    add_price(con, "0.70", gpus=1, instance_type="p3.2xlarge", capacity_type="spot")  # region-wide
    add_price(con, "3.06", gpus=1, instance_type="p3.2xlarge")  # on-demand: never used by spot nodes
    assert _node_costs(con, _hours(3)) == {
        "s-1a": D("2.70"),  # 0.60 + 0.90 + 1.20
        "s-1b": D("1.50"),
        "s-1c": D("2.10"),  # no zone row: the region's spot price
    }


def test_a_price_change_mid_week_bills_each_hour_of_the_week_at_its_own_price() -> None:
    con = fresh_db()
    week = _hours(168)  # Monday 2026-11-02 00:00 to the next Monday
    add_node(con, "n1", 8, steps=168 * 12, step_s=300)
    add_pod(con, "p1", "n1", amount=4, steps=168 * 12, step_s=300)
    add_price(con, "8", gpus=8)
    add_price(con, "6", gpus=8, effective_from=T0 + timedelta(days=2, hours=12))  # Wednesday noon
    report = _conserved(chargeback(con, week))
    assert report.node_cost_usd == D("1128.00")  # 60 h x 8 + 108 h x 6
    teams = {r.keys["team"]: r for r in report.rows}
    assert teams["vision"].cost_usd == D("564.00") and teams[c.IDLE].cost_usd == D("564.00")
    assert len(teams["vision"].sources) == 2


def test_reserved_nodes_pay_the_effective_reserved_rate_and_on_demand_nodes_the_list_price() -> None:
    con = fresh_db()
    offer = import_file(
        FIXTURES / "aws-pricelist-ec2-gpu-DERIVED.json",
        "aws",
        ImportOptions(reserved_purchase_option="Partial Upfront"),
    )
    price_table.store(con, offer.rows)
    for node, capacity in [("ri", "reserved"), ("od", "on_demand")]:
        add_node(con, node, 4, instance_type="p3.8xlarge", capacity_type=capacity, region="us-east-2", steps=600)
    costs = _node_costs(con, _hours(10))
    assert costs == {"ri": D("79.91"), "od": D("122.40")}  # 10 x (3.996 + 35000 / 8760); 10 x 12.24


def _discounted(con: duckdb.DuckDBPyConnection, *discounts: DiscountSettings) -> None:
    from_settings.store_discounts(con, PricingSettings(discounts=discounts))


def test_discounts_in_force_multiply_gpu_prices_and_keep_the_list_price_beside_them() -> None:
    con = fresh_db()
    add_node(con, "n1", 8, steps=60)
    add_pod(con, "p1", "n1", amount=8, steps=60)
    add_node(con, "spot", 8, capacity_type="spot", steps=60)
    add_price(con, "8", gpus=8)
    add_price(con, "4", gpus=8, capacity_type="spot")
    _discounted(
        con,
        DiscountSettings(name="SP p4d", percent=D(20), instance_types="p4d.*", capacity_type="on_demand"),
        DiscountSettings(name="EDP", percent=D(10), provider="aws", effective_from=date(2026, 11, 2)),
        DiscountSettings(name="gcp only", percent=D(50), provider="gcp"),
    )
    con.execute(f"UPDATE {c.T_PRICE_DISCOUNTS} SET effective_from = ? WHERE name = 'EDP'", [T0 + timedelta(minutes=30)])
    report = _conserved(chargeback(con, _hours(1), ChargebackOptions(by=("team", "node"))))
    vision = next(r for r in report.rows if r.keys["team"] == "vision")
    assert vision.cost_usd == D("6.08")  # 30 min x 8 x 0.8 + 30 min x 8 x 0.8 x 0.9
    # the discount is an explicit adjustment beside the list-price allocation (OpenCost skips GPUs)
    assert (vision.cents["allocated_cost_usd"], vision.cents["adjustment_usd"]) == (D("8.00"), D("-1.92"))
    assert any(s.endswith("less EDP 10% less SP p4d 20%") for s in vision.sources)
    spot_idle = next(r for r in report.rows if r.keys["node"] == "spot")
    assert spot_idle.cost_usd == D("3.80")  # 30 min x 4 + 30 min x 4 x 0.9: the plan covers on-demand only
    info = next(i for i in prices.load_prices(con).values() if i.discounts == ("EDP", "SP p4d"))
    assert (info.list_rate, info.gpu_hour_usd, info.discount_gpu_hour_usd) == (D(1), D("0.72"), D("-0.28"))


def test_the_gpu_share_bills_part_of_a_node_price_and_a_gpu_sku_is_billed_as_is(tmp_path: Path) -> None:
    con = fresh_db()
    table = tmp_path / "prices.csv"
    table.write_text(
        "provider,region,instance_type,capacity_type,gpu_model,gpus,price_per_hour_usd,effective_from\n"
        "aws,us-east-1,p4d.24xlarge,on_demand,A100,8,10,2026-01-01\n"
    )
    price_table.store(con, price_table.read_file(table, ImportOptions(gpu_share=D("0.95"))))
    price_table.store(con, import_file(FIXTURES / "gcp-billing-catalog-skus-sample.json", "gcp", ImportOptions()).rows)
    add_node(con, "aws", 8, steps=60)
    add_node(con, "gcp", 1, instance_type="a2-highgpu-1g", region="us-central1", steps=60)
    assert _node_costs(con, _hours(1)) == {"aws": D("9.50"), "gcp": D("2.93")}  # not 3.67: the GPU SKU


ON_PREM = OnPremSettings(
    instance_type="dgx-h100",
    gpu_model="H100 80GB",
    gpus_per_node=8,
    effective_from=date(2026, 1, 1),
    capex_usd=D(300000),
    amortization_years=D(4),
    opex_fraction_per_year=D("0.15"),
    power_kw=D(8),
    pue=D("1.4"),
    usd_per_kwh=D("0.10"),
)


@pytest.mark.parametrize(
    ("years", "per_gpu_hour"),
    [(4, D("1.852328767123287671232876712")), (3, D("2.209063926940639269406392695")), (5, D("1.638287671232876712"))],
    ids=["4 years", "3 years", "5 years"],
)
def test_the_on_prem_gpu_hour_is_depreciation_plus_opex_plus_power_over_gpus(years: int, per_gpu_hour: Decimal) -> None:
    cost = from_settings.on_prem_cost(ON_PREM.model_copy(update={"amortization_years": D(years)}))
    assert abs(cost.node_hour / 8 - per_gpu_hour) < D("1e-15")
    if years == 4:
        assert (round(cost.depreciation, 4), round(cost.opex, 4), cost.power) == (D("8.5616"), D("5.1370"), D("1.120"))


def test_on_prem_nodes_without_cloud_labels_are_billed_from_the_configured_servers() -> None:
    con = fresh_db()
    settings = PricingSettings(on_prem=(ON_PREM, ON_PREM.model_copy(update={"instance_type": "l4-box", "gpus_per_node": 4,
                                                                           "capex_usd": D(0), "gpu_hour_usd": D("0.40")})))  # fmt: skip
    price_table.store(con, from_settings.on_prem_rows(settings, ImportOptions()).rows)
    add_node(con, "dgx-1", 8, instance_type="dgx-h100", region="", steps=600)
    add_node(con, "l4-1", 4, instance_type="l4-box", region="", steps=600)
    assert _node_costs(con, _hours(10)) == {"dgx-1": D("148.19"), "l4-1": D("16.00")}  # 10 h x 14.8186..; 10 x 4 x 0.40


def test_a_node_without_a_region_label_is_matched_through_its_zones_region() -> None:
    con = fresh_db()
    add_node(con, "n1", 8, region="", zone="us-east-1a")
    add_price(con, "8", gpus=8)
    assert _node_costs(con, _hours(1)) == {"n1": D("8.00")}


LABELS = [
    (
        "karpenter spot on EKS",
        {"label_node_kubernetes_io_instance_type": "p3.2xlarge", "label_karpenter_sh_capacity_type": "spot",
         "label_topology_kubernetes_io_region": "us-east-1", "label_topology_kubernetes_io_zone": "us-east-1b"},
        D("0.50"),
    ),
    (
        "EKS managed node group on demand",
        {"label_node_kubernetes_io_instance_type": "p3.2xlarge", "label_eks_amazonaws_com_capacity_type": "ON_DEMAND",
         "label_topology_kubernetes_io_region": "us-east-1"},
        D("3.06"),
    ),
    (
        "GKE spot node pool",
        {"label_node_kubernetes_io_instance_type": "a2-highgpu-1g", "label_cloud_google_com_gke_spot": "true",
         "label_topology_kubernetes_io_region": "us-central1", "label_topology_kubernetes_io_zone": "us-central1-a"},
        D("1.93"),
    ),
    (
        "AKS spot scale set (zone only)",
        {"label_node_kubernetes_io_instance_type": "Standard_NC4as_T4_v3",
         "label_kubernetes_azure_com_scalesetpriority": "spot", "label_topology_kubernetes_io_zone": "eastus-1"},
        D("0.10"),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("labels", "expected"), [x[1:] for x in LABELS], ids=[x[0] for x in LABELS])
def test_nodes_are_matched_to_prices_from_the_cloud_providers_node_labels(
    labels: dict[str, str], expected: Decimal
) -> None:
    con = fresh_db()
    (node,) = describe_series([(c.KSM_NODE_LABELS, {"node": "n1", **labels})], SeriesContext("c1", "plain"))
    add_node(
        con,
        "n1",
        1,
        instance_type=str(node["instance_type"]),
        capacity_type=str(node["capacity_type"]),
        region=str(node["region"]),
        zone=str(node["zone"]),
    )
    add_price(con, "0.50", gpus=1, instance_type="p3.2xlarge", capacity_type="spot", zone="us-east-1b")
    add_price(con, "0.70", gpus=1, instance_type="p3.2xlarge", capacity_type="spot")
    add_price(con, "3.06", gpus=1, instance_type="p3.2xlarge")
    add_price(con, "1.92802", gpus=1, instance_type="a2-highgpu-1g", capacity_type="spot", region="us-central1")
    add_price(con, "0.10", gpus=1, instance_type="Standard_NC4as_T4_v3", capacity_type="spot", region="eastus")
    assert _node_costs(con, _hours(1)) == {"n1": expected}


def test_unpriced_gpu_nodes_are_named_with_their_gpu_hours_and_billed_at_the_fallback(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    migrate(con, 0)
    add_node(con, "mystery-1", 2, instance_type="mystery.large")
    add_node(con, "known", 8)
    add_price(con, "8", gpus=8)
    assert node_facts.unpriced_nodes(con, _hours(1)) == [
        node_facts.UnpricedNode("c1", "mystery-1", "mystery.large", "on_demand", "us-east-1", 2.0)
    ]
    con.close()
    config = tmp_path / "gpuledger.yaml"
    config.write_text('pricing:\n  fallback_gpu_hour_usd: "1.50"\n')
    args = ["--config", str(config), "--warehouse", str(path), "report", "chargeback"]
    result = run_cli(*args, "--start", "2026-11-02T00:00:00Z", "--end", "2026-11-02T01:00:00Z", "--format", "json")
    assert result.exit_code == 0
    assert "2.00 GPU-hours on 1 node(s) matched no price row and were billed at the fallback 1.50" in result.stderr
    assert "c1/mystery-1 (mystery.large, on_demand, us-east-1: 2.00 GPU-h)" in result.stderr
    assert '"node": "mystery-1"' in result.stdout and '"node_cost_usd": "11.00"' in result.stdout
