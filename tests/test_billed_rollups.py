"""The ledger at billed cost read from the rollups (issue 23, Deliver 7): the same rows as from the steps, a price
per what it is (not per node-hour), and the bill's spreading and splitting rules checked by hand.

Hand-built: an AKS scale set `gpu` of two 1-GPU nodes (Standard_NC24ads_A100_v4); vmss-0 runs two hours,
vmss-1 only the first. The invoice charges the scale set, not its instances: 6.00 for hour 0 (both), 3.00 for
hour 1, and a daily line of 2.40 (0.10 an hour). Split by the nodes' GPU capacity in the hour:
- hour 0: (6.00 + 0.10) / 2 = 3.05 each; hour 1: vmss-0 alone, 3.00 + 0.10 = 3.10;
- so vmss-0 6.15, vmss-1 3.05, 9.20 in all; the daily line's other 22 hours (2.20) are invoice lines outside
  the ledger's hours.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from analytics.cost import fact_plan
from analytics.cost.chargeback import ChargebackOptions, chargeback
from core.store.warehouse import open_warehouse
from core.timeutil import Window
from tests.conftest import run_cli
from tests.test_billing import billing, write_csv

T0 = datetime(2026, 11, 2)
SET = "/subscriptions/0000-1111/resourceGroups/mc_rg/providers/Microsoft.Compute/virtualMachineScaleSets/gpu"
ITYPE = "Standard_NC24ads_A100_v4"
RUNS = {"vmss-0": 2 * 3600, "vmss-1": 3600}  # node -> seconds it runs from T0


def _scrape(t: int) -> Iterator[str]:
    for n, (node, until) in enumerate(RUNS.items()):
        if t < until:
            yield (f'kube_node_labels{{node="{node}",label_node_kubernetes_io_instance_type="{ITYPE}",'
                   f'label_topology_kubernetes_io_region="eastus",label_nvidia_com_gpu_count="1"}} 1')  # fmt: skip
            yield f'kube_node_info{{node="{node}",provider_id="azure://{SET}/virtualMachines/{n}"}} 1'


def _line(start: int, hours: int, effective: str) -> dict[str, str]:
    iso = [f"{T0 + timedelta(hours=h):%Y-%m-%dT%H:%M:%SZ}" for h in (start, start + hours)]
    return {
        "ProviderName": "Microsoft", "BillingAccountId": "ea-1", "SubAccountId": "0000-1111", "InvoiceId": "AZ-11",
        "BillingCurrency": "USD", "BillingPeriodStart": "2026-11-01T00:00:00Z",
        "BillingPeriodEnd": "2026-12-01T00:00:00Z", "ChargePeriodStart": iso[0], "ChargePeriodEnd": iso[1],
        "ChargeCategory": "Usage", "ChargeClass": "", "BilledCost": effective, "EffectiveCost": effective,
        "ListCost": effective, "PricingCategory": "Standard", "ResourceId": SET, "RegionId": "eastus",
        "SkuPriceDetails": json.dumps({"VMSize": ITYPE}), "x_SkuMeterName": ITYPE,
    }  # fmt: skip


@pytest.fixture(scope="module")
def scale_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("scale-set")
    epoch = int((T0 - datetime(1970, 1, 1)).total_seconds())
    lines = [f"{line} {epoch + t}" for t in range(0, 2 * 3600, 60) for line in _scrape(t)]
    om = base / "ksm.om"
    om.write_text("\n".join(sorted(lines, key=lambda x: x.split("{", 1)[0])) + "\n# EOF\n")
    wh = base / "wh.duckdb"
    assert run_cli("--warehouse", str(wh), "collect", "openmetrics", str(om)).exit_code == 0
    bill = write_csv(base / "bill.csv", [_line(0, 1, "6.00"), _line(1, 1, "3.00"), _line(0, 24, "2.40")])
    code, out = billing(wh, str(bill), "--provider", "azure")
    assert code == 0, out
    return wh


def _json(wh: Path, *args: str, end: str = "2026-11-02T02:00:00Z") -> dict:
    config = wh.parent / "billing.yaml"
    config.write_text("pricing:\n  source: billing\n")
    window = ("--start", "2026-11-02T00:00:00Z", "--end", end, "--format", "json")
    result = run_cli("--config", str(config), "--warehouse", str(wh), "report", *args, *window)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_scale_sets_lines_are_split_over_its_nodes_by_their_capacity_hour_by_hour(scale_set: Path) -> None:
    report = _json(scale_set, "chargeback", "--by", "node")
    assert {r["node"]: r["cost_usd"] for r in report["rows"]} == {"vmss-0": "6.15", "vmss-1": "3.05"}
    assert {r["node"]: r["from_bill_usd"] for r in report["rows"]} == {"vmss-0": "6.15", "vmss-1": "3.05"}


def test_the_reconciliation_splits_the_scale_set_as_the_ledger_does_and_lists_the_daily_lines_other_hours(
    scale_set: Path,
) -> None:
    report = _json(scale_set, "reconcile", "--source", "billing", "--by", "node", end="2026-11-03T00:00:00Z")
    rows = {r["node"]: r for r in report["rows"]}
    assert {n: (r["invoice_effective_usd"], r["unexplained_usd"]) for n, r in rows.items()} == {
        "default/vmss-0": ("6.15", "0.00"),
        "default/vmss-1": ("3.05", "0.00"),
    }
    outside = report["outside_kubernetes"]
    assert [(o["hours"], o["effective_usd"], o["node_at_other_hours"]) for o in outside] == [(22, "2.20", True)]


BYS = {
    "team": ("team",),
    "node and day": ("cluster", "node", "day"),
    "team and workload": ("team", "workload"),
}
WINDOWS = {
    "the whole day": (datetime(2026, 11, 2), datetime(2026, 11, 3)),
    "edges mid-hour": (datetime(2026, 11, 2, 3, 20), datetime(2026, 11, 2, 21, 40)),
}


@pytest.fixture(scope="module")
def billed_sim(sim_warehouse: Path, sim_day: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    wh = tmp_path_factory.mktemp("billed-sim") / "sim.duckdb"
    wh.write_bytes(sim_warehouse.read_bytes())
    for folder in ("bill", "bill-restated"):
        assert billing(wh, str(sim_day / folder))[0] == 0
    return wh


@pytest.mark.parametrize("source", ["billing", "auto"])
@pytest.mark.parametrize("window", list(WINDOWS), ids=list(WINDOWS))
@pytest.mark.parametrize("by", list(BYS), ids=list(BYS))
def test_the_billed_ledger_from_the_rollups_is_the_one_from_the_steps(
    billed_sim: Path, by: str, window: str, source: str
) -> None:
    span = Window(*WINDOWS[window])
    opts = ChargebackOptions(by=BYS[by], price_source=source)  # type: ignore[arg-type]
    with open_warehouse(billed_sim, read_only=True) as con:
        assert fact_plan.plan(con, span, days=False).hours, "the rollups serve the whole hours"
        fast = chargeback(con, span, opts)
        mixed, nodes = con.execute(
            "SELECT (SELECT count(*) FROM billed_mixed_days), (SELECT count(DISTINCT node) FROM billed_node_hours)"
        ).fetchone()
        slow = chargeback(con, span, opts, use_rollups=False)
        node_hours = con.execute("SELECT count(*) FROM billed_node_hours").fetchone()[0]
    assert fast.as_dict() == slow.as_dict()
    if window == "the whole day":  # both kinds of node-day: one price all day (daily rollups), or several (hourly)
        assert 0 < mixed < nodes
    assert Decimal(fast.totals()["total_usd"]) > 0 and any(Decimal(r.cents["from_bill_usd"]) for r in fast.rows)
    # a price is what it is: node-hours with the same invoice amounts share one (a reserved pool's full hours)
    assert len(slow.bill_prices) < node_hours / 2
