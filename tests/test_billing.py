"""The provider's bill: import (FOCUS, AWS CUR 2.0; CSV, gzip, Parquet folders), refusals, and the
reconciliation of the list-priced ledger with the invoice (issue 23, first part).

A hand-built fleet over two hours (kube-state-metrics once a minute, with kube_node_info's provider IDs):
- `p5-sp` p5.48xlarge ($98.32 an hour at list) under a Savings Plan: $60.00 effective an hour, and a $5.00
  credit on the instance in the first hour;
- `g5-spot` g5.12xlarge ($5.672 at list) on spot: $2.10 and $2.30;
- `g5-lost` g5.12xlarge that no invoice line names.
The bill also charges `i-0ddd…`, a p4d.24xlarge no node runs on: $20.00 an hour.
Every expected figure below is that arithmetic, done by hand.
"""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analytics.cost.chargeback import ChargebackOptions
from analytics.cost.pod_bill import pod_bill
from core import conventions as c
from core.store.warehouse import open_warehouse
from core.timeutil import Window, parse_ts
from tests.conftest import run_cli
from tests.test_pod_bill import assert_bill_is_the_per_pod_chargeback

T0 = datetime(2026, 11, 2)
START, END = "2026-11-02T00:00:00Z", "2026-11-02T02:00:00Z"
ACCOUNT = "123456789012"
NODES = {  # node -> (instance type, provider ID)
    "p5-sp": ("p5.48xlarge", "aws:///us-east-1a/i-0aaaaaaaaaaaaaaa1"),
    "g5-spot": ("g5.12xlarge", "aws:///us-east-1b/i-0bbbbbbbbbbbbbbb2"),
    "g5-lost": ("g5.12xlarge", "aws:///us-east-1c/i-0ccccccccccccccc3"),
}
OUTSIDE = "i-0ddddddddddddddd4"


@dataclass(frozen=True)
class Charge:
    """One invoice line, in FOCUS's terms."""

    instance: str  # EC2 instance ID
    instance_type: str
    hour: int  # hours from T0
    category: str  # Usage | Credit
    effective: str
    billed: str
    list_: str
    pricing: str = "Standard"  # Standard | Committed | Dynamic
    cur_type: str = "Usage"  # CUR 2.0 line_item_line_item_type


CHARGES = [
    *(Charge("i-0aaaaaaaaaaaaaaa1", "p5.48xlarge", h, "Usage", "60.00", "0", "98.32", "Committed",
             "SavingsPlanCoveredUsage") for h in (0, 1)),
    Charge("i-0aaaaaaaaaaaaaaa1", "", 0, "Credit", "-5.00", "-5.00", "0", "Standard", "Credit"),
    Charge("i-0bbbbbbbbbbbbbbb2", "g5.12xlarge", 0, "Usage", "2.10", "2.10", "5.672", "Dynamic"),
    Charge("i-0bbbbbbbbbbbbbbb2", "g5.12xlarge", 1, "Usage", "2.30", "2.30", "5.672", "Dynamic"),
    *(Charge(OUTSIDE, "p4d.24xlarge", h, "Usage", "20.00", "20.00", "32.77") for h in (0, 1)),
]  # fmt: skip


def _iso(hour: int) -> str:
    return f"{T0 + timedelta(hours=hour):%Y-%m-%dT%H:%M:%SZ}"


def focus_rows(charges: list[Charge], currency: str = "USD") -> list[dict[str, str]]:
    """AWS Data Exports' FOCUS 1.2 columns (the ones a line needs; the rest empty)."""
    rows = []
    for ch in charges:
        usage = f"USE1-{'SpotUsage' if ch.pricing == 'Dynamic' else 'BoxUsage'}:{ch.instance_type}"
        rows.append({
            "ProviderName": "AWS", "PublisherName": "AWS", "InvoiceIssuerName": "AWS", "InvoiceId": "INV-2026-11-1",
            "BillingAccountId": ACCOUNT, "SubAccountId": ACCOUNT, "BillingCurrency": currency,
            "BillingPeriodStart": "2026-11-01T00:00:00Z", "BillingPeriodEnd": "2026-12-01T00:00:00Z",
            "ChargePeriodStart": _iso(ch.hour), "ChargePeriodEnd": _iso(ch.hour + 1), "ChargeCategory": ch.category,
            "ChargeClass": "", "BilledCost": ch.billed, "EffectiveCost": ch.effective, "ListCost": ch.list_,
            "ContractedCost": ch.billed, "PricingCategory": ch.pricing if ch.category == "Usage" else "",
            "PricingQuantity": "1", "PricingUnit": "Hours", "ConsumedQuantity": "1" if ch.category == "Usage" else "",
            "ConsumedUnit": "Hours" if ch.category == "Usage" else "", "ServiceName": "Amazon Elastic Compute Cloud",
            "ServiceCategory": "Compute", "RegionId": "us-east-1",
            "ResourceId": f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{ch.instance}",
            "SkuPriceDetails": json.dumps({"InstanceType": ch.instance_type}) if ch.instance_type else "",
            "x_UsageType": usage if ch.instance_type else "",
        })  # fmt: skip
    return rows


def cur2_rows(charges: list[Charge]) -> list[dict[str, str]]:
    """AWS CUR 2.0 columns; Savings Plan usage carries its negation line, as CUR writes it."""
    rows = []
    for ch in charges:
        usage = f"USE1-{'SpotUsage' if ch.pricing == 'Dynamic' else 'BoxUsage'}:{ch.instance_type}"
        base = {
            "identity_line_item_id": f"{ch.instance}-{ch.hour}-{ch.cur_type}", "identity_time_interval": "",
            "bill_payer_account_id": ACCOUNT, "bill_invoice_id": "INV-2026-11-1",
            "bill_billing_period_start_date": "2026-11-01T00:00:00Z", "line_item_usage_account_id": ACCOUNT,
            "line_item_line_item_type": ch.cur_type, "line_item_usage_start_date": _iso(ch.hour),
            "line_item_usage_end_date": _iso(ch.hour + 1), "line_item_resource_id": ch.instance,
            "line_item_usage_type": usage if ch.instance_type else "", "line_item_usage_amount": "1",
            "line_item_currency_code": "USD", "line_item_unblended_cost": ch.list_ if ch.cur_type.startswith("Savings")
            else ch.billed, "pricing_public_on_demand_cost": ch.list_, "pricing_unit": "Hrs",
            "product_instance_type": ch.instance_type, "product_region_code": "us-east-1",
            "savings_plan_savings_plan_effective_cost": ch.effective if ch.cur_type.startswith("Savings") else "",
        }  # fmt: skip
        rows.append(base)
        if ch.cur_type == "SavingsPlanCoveredUsage":
            negation = {**base, "identity_line_item_id": base["identity_line_item_id"] + "-neg",
                        "line_item_line_item_type": "SavingsPlanNegation", "line_item_unblended_cost": f"-{ch.list_}",
                        "savings_plan_savings_plan_effective_cost": ""}  # fmt: skip
            rows.append(negation)
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="") as fh:  # type: ignore[operator]
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _scrape(t: int) -> Iterator[str]:
    for node, (itype, provider_id) in NODES.items():
        yield (
            f'kube_node_labels{{node="{node}",label_node_kubernetes_io_instance_type="{itype}",'
            f'label_topology_kubernetes_io_region="us-east-1",label_nvidia_com_gpu_count="{8 if "p5" in itype else 4}"}} 1'
        )
        yield f'kube_node_info{{node="{node}",provider_id="{provider_id}",kernel_version="6.8.0"}} 1'
    ids = 'namespace="ml",pod="train",uid="uid-train"'  # one pod: the bill is the node's, whatever runs on it
    yield f'kube_pod_status_phase{{{ids},phase="Running"}} 1'
    yield f'kube_pod_container_resource_requests{{{ids},container="main",node="p5-sp",resource="nvidia_com_gpu",unit="integer"}} 4'


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collected fleet with list prices, copied by each test that imports a bill."""
    base = tmp_path_factory.mktemp("bill-fleet")
    epoch = int((T0 - datetime(1970, 1, 1)).total_seconds())
    lines = [f"{line} {epoch + t}" for t in range(-600, 2 * 3600 + 600, 60) for line in _scrape(t)]
    om = base / "ksm.om"
    om.write_text("\n".join(sorted(lines, key=lambda x: x.split("{", 1)[0])) + "\n# EOF\n")
    wh = base / "fleet.duckdb"
    assert run_cli("--warehouse", str(wh), "collect", "openmetrics", str(om)).exit_code == 0
    prices = base / "prices.csv"
    prices.write_text(
        "provider,region,instance_type,capacity_type,gpu_model,gpus,price_per_hour_usd,effective_from\n"
        "aws,us-east-1,p5.48xlarge,on_demand,H100,8,98.32,2026-01-01T00:00:00Z\n"
        "aws,us-east-1,g5.12xlarge,on_demand,A10G,4,5.672,2026-01-01T00:00:00Z\n"
    )
    assert run_cli("--warehouse", str(wh), "pricing", "import", str(prices)).exit_code == 0
    return wh


@pytest.fixture
def wh(fleet: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "wh.duckdb"
    copy.write_bytes(fleet.read_bytes())
    return copy


def billing(wh: Path, *args: str, config: Path | None = None) -> tuple[int, str]:
    pre = ["--config", str(config)] if config else []
    result = run_cli(*pre, "--warehouse", str(wh), "billing", "import", *args)
    return result.exit_code, result.output


def reconciled(wh: Path, by: str) -> dict:
    result = run_cli("--warehouse", str(wh), "report", "reconcile", "--source", "billing", "--by", by,
                     "--start", START, "--end", END, "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def bill_focus_csv(base: Path) -> list[str]:
    return [str(write_csv(base / "focus.csv", focus_rows(CHARGES)))]


def bill_cur2_gzip(base: Path) -> list[str]:
    return [str(write_csv(base / "cur2.csv.gz", cur2_rows(CHARGES))), "--format", "aws-cur2"]


def bill_focus_parquet_folder(base: Path) -> list[str]:
    """AWS Data Exports' layout: <export>/data/BILLING_PERIOD=2026-11/<file>.parquet"""
    folder = base / "export" / "data" / "BILLING_PERIOD=2026-11"
    folder.mkdir(parents=True)
    rows = focus_rows(CHARGES)
    table = pa.table({k: [r[k] for r in rows] for k in rows[0]})
    table = table.set_column(table.schema.get_field_index("EffectiveCost"), "EffectiveCost",
                             pa.array([Decimal(r["EffectiveCost"]) for r in rows], pa.decimal128(20, 10)))  # fmt: skip
    pq.write_table(table, folder / "part-00000.snappy.parquet")
    return [str(base / "export")]


BILLS = {
    "FOCUS CSV": bill_focus_csv,
    "CUR 2.0 gzip CSV": bill_cur2_gzip,
    "FOCUS Parquet folder": bill_focus_parquet_folder,
}


@pytest.mark.parametrize("bill", list(BILLS), ids=list(BILLS))
def test_every_bill_format_reconciles_to_the_hand_computed_invoice(bill: str, wh: Path, tmp_path: Path) -> None:
    code, out = billing(wh, *BILLS[bill](tmp_path))
    assert code == 0, out
    by_type = {r["instance_type"]: r for r in reconciled(wh, "instance_type")["rows"]}
    p5, g5 = by_type["p5.48xlarge"], by_type["g5.12xlarge"]
    assert (p5["node_hours"], p5["ledger_list_usd"], p5["invoice_effective_usd"]) == (2, "196.64", "115.00")
    assert p5["difference_usd"] == "-81.64"
    assert p5["effective_discount_pct"] == 41.52  # 1 - 115 / (2 x 98.32)
    assert (g5["node_hours"], g5["ledger_list_usd"], g5["invoice_effective_usd"]) == (4, "22.69", "4.40")
    assert g5["effective_discount_pct"] == 61.21  # 1 - 4.40 / (2 x 5.672): the bill's own list, g5-spot only
    # the ledger at billed cost bills what the invoice charged for every node-hour it prices: nothing unexplained
    assert [(p5["ledger_billed_usd"], p5["unexplained_usd"]), (g5["ledger_billed_usd"], g5["unexplained_usd"])] == [
        ("115.00", "0.00"),
        ("4.40", "0.00"),
    ]
    report = reconciled(wh, "node")
    assert report["coverage_pct"] == 66.67  # p5-sp and g5-spot: 4 of 6 node-hours
    assert {r["unexplained_usd"] for r in report["rows"]} == {"0.00"}
    assert report["nodes_without_invoice"] == [
        {"cluster": "default", "node": "g5-lost", "node_hours": 2.0, "ledger_list_usd": "11.34"}
    ]
    assert [(o["resource_id"], o["instance_type"], o["hours"], o["effective_usd"]) for o in report["outside_kubernetes"]] == [
        (o, "p4d.24xlarge", 2, "40.00") for o in ([OUTSIDE] if "CUR" in bill else [f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{OUTSIDE}"])
    ]  # fmt: skip
    assert {r["account"]: r["invoice_effective_usd"] for r in reconciled(wh, "account")["rows"]} == {
        ACCOUNT: "119.40",
        "(no invoice line)": "0.00",
    }
    days = reconciled(wh, "day")["rows"]
    assert [(d["day"], d["invoice_effective_usd"]) for d in days] == [("2026-11-02", "119.40")]


def _lines(wh: Path) -> list[tuple]:
    with duckdb.connect(str(wh), read_only=True) as con:
        return con.execute(f"SELECT * FROM {c.T_BILLING_LINES} ORDER BY ALL").fetchall()


def test_a_line_given_twice_is_refused_naming_both_rows_and_nothing_is_imported(wh: Path, tmp_path: Path) -> None:
    rows = focus_rows(CHARGES)
    path = write_csv(tmp_path / "twice.csv", [*rows, rows[3]])
    code, out = billing(wh, str(path))
    assert code == 2
    assert f"{path}:5: refused: the same line again at {path}:{len(rows) + 2}" in out
    assert _lines(wh) == []


def test_a_foreign_currency_is_refused_unless_a_rate_is_stated_then_converted_and_kept(
    wh: Path, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "eur.csv", focus_rows(CHARGES, currency="EUR"))
    code, out = billing(wh, str(path))
    assert code == 2 and f"{path}:2: refused: billed in EUR" in out and "billing.rates" in out
    assert _lines(wh) == []
    config = tmp_path / "rates.yaml"
    config.write_text("billing:\n  rates:\n    EUR: 1.25\n")
    code, out = billing(wh, str(path), config=config)
    assert code == 0, out
    with duckdb.connect(str(wh), read_only=True) as con:
        got = con.execute(
            f"SELECT sum(effective_cost), min(currency), min(original_currency), min(fx_rate) FROM {c.T_BILLING_LINES}"
        ).fetchone()
    assert got == (Decimal("199.25"), "USD", "EUR", Decimal("1.25"))  # (119.40 + the outside p4d's 40.00) x 1.25


def test_a_restated_bill_replaces_its_billing_period_and_keeps_its_provenance(wh: Path, tmp_path: Path) -> None:
    first = write_csv(tmp_path / "first.csv", focus_rows(CHARGES))
    assert billing(wh, str(first))[0] == 0
    restated = [Charge(ch.instance, ch.instance_type, ch.hour, ch.category, "1.00", "1.00", ch.list_) for ch in CHARGES]
    second = write_csv(tmp_path / "restated.csv", focus_rows(restated))
    code, out = billing(wh, str(second))
    assert code == 0 and "aws/123456789012/2026-11: replaced" in out
    with duckdb.connect(str(wh), read_only=True) as con:
        got = con.execute(
            f"SELECT count(*), sum(effective_cost), min(source_file), max(source_file) FROM {c.T_BILLING_LINES}"
        ).fetchone()
    assert got == (len(CHARGES), Decimal(len(CHARGES)), str(second), str(second))


BAD_LINES = {
    "a time that is not one": ("ChargePeriodStart", "yesterday", "its charge period start is not a time"),
    "an amount that is not one": ("EffectiveCost", "12,5", "its effective cost is not a number"),
    "no currency": ("BillingCurrency", "", "it names no currency"),
    "an unknown provider": ("ProviderName", "Acme Cloud", "provider 'acme cloud' is not one gpuledger knows"),
}


@pytest.mark.parametrize("case", list(BAD_LINES), ids=list(BAD_LINES))
def test_a_line_that_cannot_be_read_is_refused_naming_its_file_and_row(case: str, wh: Path, tmp_path: Path) -> None:
    column, value, message = BAD_LINES[case]
    rows = focus_rows(CHARGES)
    rows[2] = {**rows[2], column: value}
    path = write_csv(tmp_path / "bad.csv", rows)
    code, out = billing(wh, str(path))
    assert code == 2
    assert out.strip().endswith("nothing was imported") or "pass --provider" in out
    assert f"{path}:4: refused: {message}" in out
    assert _lines(wh) == []


GENERATED = [("aws", "1.2"), ("azure", "1.2"), ("gcp", "1.2"), ("aws", "1.3"), ("azure", "1.3"), ("gcp", "1.3")]


@pytest.mark.parametrize(("provider", "version"), GENERATED, ids=[f"{p}-focus-{v}" for p, v in GENERATED])
def test_provider_realistic_focus_bills_cut_to_gpu_instances_import_every_gpu_line(
    provider: str, version: str, wh: Path, tmp_path: Path
) -> None:
    """focus-data-toolkit writes each provider's FOCUS as it exports it; its VM usage lines become GPU ones."""
    toolkit = Path(sys.executable).parent / "focus-toolkit"
    args = ["generate", "--provider", provider, "--focus-version", version, "--rows", "400", "--seed", "7"]
    subprocess.run([str(toolkit), *args, "--out", str(tmp_path / "gen")], check=True, capture_output=True)
    source = next((tmp_path / "gen").glob("*cost_and_usage*.csv"))
    gpu_type = {"aws": "p5.48xlarge", "azure": "Standard_ND96isr_H100_v5", "gcp": "a3-highgpu-8g"}[provider]
    with open(source, newline="") as fh:
        rows = list(csv.DictReader(fh))
    expected = Decimal(0)
    for row in rows:
        details = json.loads(row["SkuPriceDetails"] or "{}")
        if "InstanceType" in details and row["ResourceId"]:
            details["InstanceType"] = gpu_type
            row["SkuPriceDetails"] = json.dumps(details)
            expected += Decimal(row["EffectiveCost"])
    gpu_lines = sum(1 for r in rows if gpu_type in (r["SkuPriceDetails"] or ""))
    assert gpu_lines > 0
    path = write_csv(tmp_path / "gpu.csv", rows)
    code, out = billing(wh, str(path))
    assert code == 0, out
    assert f"imported {gpu_lines} of {len(rows)} lines" in out
    with duckdb.connect(str(wh), read_only=True) as con:
        got = con.execute(f"SELECT sum(effective_cost), min(provider) FROM {c.T_BILLING_LINES}").fetchone()
    assert got == (expected, provider)


def test_the_data_status_pages_invoice_vs_ledger_shows_what_report_reconcile_prints(
    monkeypatch: pytest.MonkeyPatch, wh: Path, tmp_path: Path
) -> None:
    from tests.test_dashboard import status_page

    assert billing(wh, *bill_focus_csv(tmp_path))[0] == 0
    at = status_page(monkeypatch, wh)
    shown = {m.label: m.value for m in at.metric}
    caption = next(x.value for x in at.caption if "imported bill's effective cost" in x.value)
    start, end = caption.split(": the imported")[0].split(" to ")
    assert (start, end) == (START.removesuffix("Z"), END.removesuffix("Z")) or (start, end) == (START, END)
    expected = reconciled(wh, "instance_type")
    assert shown["Invoice (effective)"] == f"${expected['totals']['invoice_effective_usd']}" == "$119.40"
    assert shown["Ledger at list"] == f"${expected['totals']['ledger_list_usd']}"
    assert shown["GPU node-hours priced by the bill"] == "66.67%"
    table = next(d.value for d in at.dataframe if "invoice_effective_usd" in d.value.columns)
    assert table.to_dict("records") == expected["rows"]


def test_the_simulated_days_bill_and_its_restatement_reconcile_to_the_simulators_invoice(
    sim_warehouse: Path, sim_day: Path, truth: dict, tmp_path: Path
) -> None:
    """Every node of the simulated fleet is billed every hour; the VM outside Kubernetes is listed apart."""
    from collectors.simulator import bill

    wh = tmp_path / "sim.duckdb"
    wh.write_bytes(sim_warehouse.read_bytes())
    assert billing(wh, str(sim_day / "bill"))[0] == 0
    code, out = billing(wh, str(sim_day / "bill-restated"))
    assert code == 0 and "aws/111122223333/2026-11: replaced" in out
    report = json.loads(
        run_cli("--warehouse", str(wh), "report", "reconcile", "--source", "billing", "--by", "instance_type",
                "--start", "2026-11-02T00:00:00Z", "--end", "2026-11-03T00:00:00Z", "--format", "json").output
    )  # fmt: skip
    invoice = {k: Decimal(v) for k, v in truth["billing"]["invoice_effective_usd"].items()}
    outside = [o for o in report["outside_kubernetes"] if not o["node_at_other_hours"]]
    assert [(o["resource_id"].rsplit("/", 1)[1], o["hours"]) for o in outside] == [(bill.OUTSIDE[0], 24)]
    got = {r["instance_type"]: Decimal(r["invoice_effective_usd"]) for r in report["rows"]}
    for itype in ("g5.12xlarge", "g5.xlarge", "p3.2xlarge", "p4de.24xlarge"):
        assert got[itype] == round(invoice[itype], 2), itype
    # the p4d nodes' lines, with the restatement's credit on gpu-od-2, less the outside VM's
    assert got["p4d.24xlarge"] == round(invoice["p4d.24xlarge"] + invoice["credit"], 2) - Decimal(
        outside[0]["effective_usd"]
    )
    assert report["coverage_pct"] == 100.0 and report["nodes_without_invoice"] == []
    assert report["totals"]["unexplained_usd"] == "0.00"  # every node-hour billed is one the ledger bills at that cost


def _chargeback(wh: Path, source: str, by: str) -> dict:
    config = wh.parent / f"source-{source}.yaml"
    config.write_text(f"pricing:\n  source: {source}\n")
    result = run_cli("--config", str(config), "--warehouse", str(wh), "report", "chargeback", "--by", by,
                     "--start", START, "--end", END, "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_chargeback_at_billed_cost_sums_to_the_invoice_node_by_node_and_team_by_team(
    wh: Path, tmp_path: Path
) -> None:
    """p5-sp: the bill's 115.00 (Savings Plan 2 x 60.00, less the 5.00 credit); its pod holds 4 of its 8 GPUs all along,
    so 57.50 allocated and 57.50 idle. g5-spot: 4.40. g5-lost: no line, so list (auto: 2 x 5.672) or unpriced."""
    assert billing(wh, *bill_focus_csv(tmp_path))[0] == 0
    auto = _chargeback(wh, "auto", "node")
    by_node: dict[str, Decimal] = {}
    for row in auto["rows"]:
        by_node[row["node"]] = by_node.get(row["node"], Decimal(0)) + Decimal(row["cost_usd"])
    assert by_node == {"p5-sp": Decimal("115.00"), "g5-spot": Decimal("4.40"), "g5-lost": Decimal("11.34")}
    assert auto["totals"]["node_cost_usd"] == "130.74"  # 115.00 + 4.40 + 11.344, to the cent
    team = {r["team"]: r for r in _chargeback(wh, "billing", "team")["rows"]}
    assert team[c.UNALLOCATED]["cost_usd"] == "57.50"  # the pod's 4 GPUs x 2 h at 115.00 / 16 GPU-hours
    assert Decimal(team[c.UNALLOCATED]["adjustment_usd"]) == Decimal("57.50") - Decimal("98.32")  # list 4 x 2 x 12.29
    billed_only = _chargeback(wh, "billing", "node")
    assert billed_only["totals"]["node_cost_usd"] == "119.40"  # g5-lost unpriced
    assert _chargeback(wh, "list", "node")["totals"]["node_cost_usd"] == "219.33"  # 2 x (98.32 + 2 x 5.672)


def test_a_pods_bill_at_billed_cost_is_its_per_pod_chargeback_row_at_the_list_price_in_force(
    wh: Path, tmp_path: Path
) -> None:
    """The savings read a pod's allocated component (analytics/cost/pod_bill.py): at billed cost as at list, its
    GPU-hours at the list price (4 GPUs x 2 h x 98.32 / 8), the bill's discount being the row's adjustment."""
    assert billing(wh, *bill_focus_csv(tmp_path))[0] == 0
    window = Window(parse_ts(START), parse_ts(END))
    with open_warehouse(wh, read_only=True) as con:
        for source in ("auto", "billing"):
            opts = ChargebackOptions(price_source=source)  # type: ignore[arg-type]
            [pod] = pod_bill(con, window, opts)
            assert (pod.pod, pod.gpu_hours, pod.allocated_usd) == ("train", 8.0, Decimal("98.32")), source
            assert assert_bill_is_the_per_pod_chargeback(con, window, opts) == 1
