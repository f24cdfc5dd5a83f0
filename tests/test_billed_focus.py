"""The weekly files at billed cost: FOCUS carries the invoice's BilledCost, EffectiveCost and ListCost and its
InvoiceId, and every row states how much of it the invoice priced (issue 23, Deliver 3).

The hand-built fleet and bill of tests/test_billing.py at `pricing.source: auto`, week 2026-W45:
- p5-sp: two hours under a Savings Plan, 60.00 effective and 0 billed an hour (the plan's fee is billed on its
  own line, not the instance's), less a 5.00 credit billed in the first hour: effective 115.00, billed -5.00,
  list 2 x 98.32;
- g5-spot: 2.10 + 2.30, billed as charged; g5-lost: no line, list 2 x 5.672 = 11.344;
- ten minutes past the bill's two hours, every node at list: 98.32 / 6 + 2 x 5.672 / 6 = 18.27733.
So EffectiveCost sums to 115.00 + 4.40 + 11.344 + 18.27733 = 149.02, BilledCost to 149.02 - 120.00 = 29.02, the
invoice-priced part to 119.40, and ListCost to the week at list prices (the invoice's list equals the table's).
"""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest

from app.publish import focus
from tests.conftest import run_cli
from tests.test_billing import CHARGES, fleet, focus_rows, wh, write_csv  # noqa: F401 (fixtures)
from tests.test_focus import CONTRADICTORY, _validate

WEEK = "2026-W45"


def _cli(config: Path, store: Path, *args: str) -> str:
    result = run_cli("--config", str(config), "--warehouse", str(store), *args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def billed(wh: Path, tmp_path: Path) -> tuple[Path, Path]:  # noqa: F811 (the fixture imported above)
    """(the week's folder exported at billed cost, the warehouse)."""
    config = tmp_path / "auto.yaml"
    config.write_text(f"pricing:\n  source: auto\nexport:\n  directory: {tmp_path / 'exports'}\n")
    _cli(config, wh, "billing", "import", str(write_csv(tmp_path / "bill.csv", focus_rows(CHARGES))))
    _cli(config, wh, "export", "weekly", "--week", WEEK)
    return tmp_path / "exports" / WEEK, wh


def _focus(folder: Path) -> list[dict[str, str]]:
    with open(folder / f"focus-{focus.FOCUS_VERSION}.csv") as fh:
        return list(csv.DictReader(fh))


def _sum(rows: list[dict[str, str]], column: str) -> Decimal:
    return sum((Decimal(r[column]) for r in rows), Decimal(0))


def test_focus_at_billed_cost_carries_the_invoices_billed_effective_and_list_cost(
    billed: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, store = billed
    rows = _focus(folder)
    assert _sum(rows, "EffectiveCost") == Decimal("149.02")
    assert _sum(rows, "BilledCost") == Decimal("29.02")
    assert _sum(rows, "x_InvoicePricedCost") == Decimal("119.40")
    window = ("--start", "2026-11-02T00:00:00Z", "--end", "2026-11-09T00:00:00Z", "--format", "json")
    at_list = tmp_path / "list.yaml"
    at_list.write_text("")
    listed = json.loads(_cli(at_list, store, "report", "chargeback", *window))
    auto = json.loads(_cli(folder.parent.parent / "auto.yaml", store, "report", "chargeback", *window))
    # ListCost is each row's own GPU-hours at list: the report's allocated column, to the cent; and the same hours
    # the list-priced report bills, whose total is rounded once where these are rounded per team (a cent per team)
    assert _sum(rows, "ListCost") == sum(Decimal(r["allocated_cost_usd"]) for r in auto["rows"])
    assert abs(_sum(rows, "ListCost") - Decimal(listed["totals"]["node_cost_usd"])) <= Decimal("0.01") * len(
        auto["rows"]
    )
    assert {r["InvoiceId"] for r in rows} == {"INV-2026-11-1"}  # every row holds some invoiced node-hours
    assert {r["ProviderName"] for r in rows} == {"AWS"}


def test_every_surface_states_the_same_invoice_priced_part_per_team(billed: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = billed
    with open(folder / "chargeback.csv") as fh:
        weekly = {r["team"]: (Decimal(r["cost_usd"]), Decimal(r["from_bill_usd"])) for r in csv.DictReader(fh)}
    from_focus: dict[str, tuple[Decimal, Decimal]] = {}
    for r in _focus(folder):
        cost, part = from_focus.get(r["x_Team"], (Decimal(0), Decimal(0)))
        from_focus[r["x_Team"]] = (cost + Decimal(r["EffectiveCost"]), part + Decimal(r["x_InvoicePricedCost"]))
    assert weekly == from_focus
    # the pod's 4 of p5-sp's 8 GPUs: half of the invoice's 115.00; the rest of its 65.69 is its ten minutes at list
    assert weekly["__unallocated__"] == (Decimal("65.69"), Decimal("57.50"))


def test_the_focus_file_at_billed_cost_passes_the_focus_validator(billed: tuple[Path, Path]) -> None:
    folder, _ = billed
    output = _validate(folder / f"focus-{focus.FOCUS_VERSION}.csv")
    failed = {line.split()[1].rstrip(":") for line in output.splitlines() if line.startswith("❌")}
    assert "Total:" in output and failed <= CONTRADICTORY, output[-3000:]
