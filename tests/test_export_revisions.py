"""A restated bill re-issues the weekly exports it changes as a new revision; nothing is overwritten silently
(issue 23, Deliver 5).

The hand-built fleet and bill of tests/test_billing.py, at `pricing.source: auto`, exported for 2026-W45:
- first bill: p5-sp 115.00 (Savings Plan 2 x 60.00, less a 5.00 credit), g5-spot 4.40, g5-lost at list 11.344;
  the pod (no team label: the unallocated row) holds 4 of p5-sp's 8 GPUs for the two hours: 57.50;
- restated bill: every line 1.00, so p5-sp 3.00 (two hours and the credit line), g5-spot 2.00, g5-lost still
  11.344 at list; the pod's half of p5-sp: 1.50;
- the fleet runs 10 minutes past the bill's two hours, at list either way: 98.32 / 6 + 2 x 5.672 / 6 = 18.27733
  for the nodes, 4 x 12.29 / 6 = 8.19333 for the pod.
The week's node cost goes from 149.02 (115.00 + 4.40 + 11.344 + 18.27733) to 34.62 (3.00 + 2.00 + 11.344 +
18.27733); the pod's from 65.69 to 9.69.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from core import conventions as c
from tests.conftest import run_cli
from tests.test_billing import CHARGES, Charge, fleet, focus_rows, wh, write_csv  # noqa: F401 (fixtures)

WEEK = "2026-W45"
RESTATED = [Charge(ch.instance, ch.instance_type, ch.hour, ch.category, "1.00", "1.00", ch.list_) for ch in CHARGES]


def _run(config: Path, store: Path, *args: str) -> str:
    result = run_cli("--config", str(config), "--warehouse", str(store), *args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def setup(wh: Path, tmp_path: Path) -> tuple[Path, Path, Path]:  # noqa: F811 (the fixture imported above)
    """(config at billed cost, warehouse, the week's folder) after the first bill and the week's first export."""
    out = tmp_path / "exports"
    config = tmp_path / "gpuledger.yaml"
    config.write_text(f"pricing:\n  source: auto\nexport:\n  directory: {out}\n")
    _run(config, wh, "billing", "import", str(write_csv(tmp_path / "first.csv", focus_rows(CHARGES))))
    assert "revision 1 written" in _run(config, wh, "export", "weekly", "--week", WEEK)
    return config, wh, out / WEEK


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_a_restated_bill_reissues_the_week_as_revision_2_and_says_what_changed(
    setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    config, store, folder = setup
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert _manifest(folder)["revision"] == 1 and _manifest(folder)["totals"]["node_cost_usd"] == "149.02"
    out = _run(config, store, "billing", "import", str(write_csv(tmp_path / "restated.csv", focus_rows(RESTATED))))
    assert f"export {WEEK}: revision 2 written" in out and "revision 1 kept in revisions/1/" in out
    manifest = _manifest(folder)
    changes = manifest["changes"]
    assert manifest["revision"] == 2 and manifest["totals"]["node_cost_usd"] == "34.62"
    assert changes["from_revision"] == 1
    assert changes["from_manifest_sha256"] == hashlib.sha256(first["manifest.json"]).hexdigest()
    assert changes["totals"]["node_cost_usd"] == {"before": "149.02", "after": "34.62", "difference": "-114.40"}
    pod = next(t for t in changes["teams"] if t["team"] == c.UNALLOCATED)
    assert pod == {"team": c.UNALLOCATED, "before": "65.69", "after": "9.69", "difference": "-56.00"}
    assert {"chargeback.csv", "chargeback.parquet", "focus-1.2.csv", "workloads.csv"} <= set(changes["files"])
    assert [b["source_file"] for b in manifest["bills"]] == [str(tmp_path / "restated.csv")]
    assert len(changes["bills_added"]) == 1 and len(changes["bills_removed"]) == 1
    # revision 1 is kept byte for byte, its own manifest included
    assert {p.name: p.read_bytes() for p in (folder / "revisions" / "1").iterdir()} == first


def test_exporting_an_unchanged_week_again_writes_nothing_and_keeps_its_revision(
    setup: tuple[Path, Path, Path],
) -> None:
    config, store, folder = setup
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    assert "unchanged, revision 1 stands" in _run(config, store, "export", "weekly", "--week", WEEK)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()} == before


def test_a_third_revision_keeps_both_earlier_ones(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    config, store, folder = setup
    _run(config, store, "billing", "import", str(write_csv(tmp_path / "restated.csv", focus_rows(RESTATED))))
    second = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    _run(config, store, "billing", "import", str(write_csv(tmp_path / "again.csv", focus_rows(CHARGES))))
    assert _manifest(folder)["revision"] == 3 and _manifest(folder)["totals"]["node_cost_usd"] == "149.02"
    assert sorted(p.name for p in (folder / "revisions").iterdir()) == ["1", "2"]
    assert {p.name: p.read_bytes() for p in (folder / "revisions" / "2").iterdir()} == second


def test_at_list_prices_a_bill_import_leaves_published_weeks_alone(
    wh: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "exports"
    config = tmp_path / "list.yaml"
    config.write_text(f"export:\n  directory: {out}\n")
    _run(config, wh, "export", "weekly", "--week", WEEK)
    before = (out / WEEK / "manifest.json").read_bytes()
    said = _run(config, wh, "billing", "import", str(write_csv(tmp_path / "bill.csv", focus_rows(CHARGES))))
    assert "export" not in said and (out / WEEK / "manifest.json").read_bytes() == before
    assert "bills" not in json.loads(before)
