"""The bill's prices stored per node-hour (core/store/rollups/bills.py, issue 23 Deliver 7): a chargeback at billed
cost reads them instead of working each node-hour out from the bill lines, and gets the same ledger.

Three oracles: the prices worked out from the lines by the report itself (the same warehouse with the stored rows
marked stale), the hand-computed scale-set hours of tests/test_billed_rollups.py, and a full recomputation of the
stored rows after every incremental update (a commit, a re-import, a node's new provider ID).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from analytics.cost.chargeback import ChargebackOptions, chargeback
from core import conventions as c
from core.store.rollups import bills
from core.store.warehouse import open_warehouse, transaction
from core.timeutil import Window
from tests.conftest import run_cli
from tests.test_billed_rollups import ITYPE, SET, T0, _line
from tests.test_billing import billing, write_csv

UNITS_PER_GPU_HOUR = c.GPU_UNITS * 3600
STORED = (c.T_BILL_HOURS, c.T_BILL_DAYS, c.T_BILL_PRICES)


# ------------------------------------------------------------------------ the simulated day: stored vs from the lines


@pytest.fixture(scope="module")
def billed(sim_warehouse: Path, sim_day: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The simulated day with its bill and restatement imported; and a copy whose stored prices are stale."""
    base = tmp_path_factory.mktemp("billed-store")
    wh, stale = base / "stored.duckdb", base / "stale.duckdb"
    shutil.copy(sim_warehouse, wh)
    for folder in ("bill", "bill-restated"):
        assert billing(wh, str(sim_day / folder))[0] == 0
    shutil.copy(wh, stale)
    with open_warehouse(stale) as con:
        con.execute(f"DELETE FROM {c.T_ROLLUP_STATE} WHERE source LIKE '{bills.PREFIX}%'")
    return wh, stale


WINDOWS = {
    "the whole day": (datetime(2026, 11, 2), datetime(2026, 11, 3)),
    "edges mid-hour": (datetime(2026, 11, 2, 3, 20), datetime(2026, 11, 2, 21, 40)),
    "whole hours": (datetime(2026, 11, 2, 6), datetime(2026, 11, 2, 18)),
    "two days, the first whole": (datetime(2026, 11, 2), datetime(2026, 11, 3, 12, 30)),
}
BYS = {"team": ("team",), "node and day": ("cluster", "node", "day"), "team and workload": ("team", "workload")}


def _ledger(wh: Path, span: Window, opts: ChargebackOptions) -> tuple[dict, int]:
    with open_warehouse(wh, read_only=True) as con:
        report = chargeback(con, span, opts)
        rows = con.execute("SELECT count(*) FROM billed_node_hours").fetchone()
    assert rows is not None
    return report.as_dict(), int(rows[0])


@pytest.mark.parametrize("share", ["compute", "memory"])
@pytest.mark.parametrize("source", ["billing", "auto"])
@pytest.mark.parametrize("window", list(WINDOWS), ids=list(WINDOWS))
@pytest.mark.parametrize("by", list(BYS), ids=list(BYS))
def test_the_stored_prices_give_the_ledger_the_bill_lines_give(
    billed: tuple[Path, Path], by: str, window: str, source: str, share: str
) -> None:
    wh, stale = billed
    opts = ChargebackOptions(by=BYS[by], price_source=source, mig_share=share)  # type: ignore[arg-type]
    span = Window(*WINDOWS[window])
    with open_warehouse(wh, read_only=True) as con:
        assert bills.current(con)
    with open_warehouse(stale, read_only=True) as con:
        assert not bills.current(con)
    stored, stored_rows = _ledger(wh, span, opts)
    lines, line_rows = _ledger(stale, span, opts)
    assert stored == lines
    assert sum(Decimal(r["from_bill_usd"]) for r in stored["rows"]) > 0
    # read from the store, a whole node-day with one price is one row, not an hour each
    assert stored_rows < line_rows if "whole day" in window or "first whole" in window else stored_rows <= line_rows


def test_every_stored_node_hour_is_a_capacity_hour_and_every_bill_line_hour_of_a_node_is_stored(
    billed: tuple[Path, Path],
) -> None:
    with open_warehouse(billed[0], read_only=True) as con:
        extra = con.execute(
            f"""SELECT count(*) FROM {c.T_BILL_HOURS} b ANTI JOIN {c.T_CAPACITY_ROLLUP}_hourly r
            USING (cluster, node, hour)"""
        ).fetchone()
        days = con.execute(
            f"""SELECT count(*) FROM {c.T_BILL_DAYS} d WHERE prices <> (SELECT count(DISTINCT coalesce(bill_id, ''))
                FROM {c.T_BILL_HOURS} h WHERE h.cluster = d.cluster AND h.node = d.node AND h.mig_share = d.mig_share
                AND date_trunc('day', h.hour) = d.day)"""
        ).fetchone()
    assert extra == (0,) and days == (0,)


# ------------------------------------------------------------------ by hand: the scale set, and keeping them current

RUNS = {"vmss-0": 4 * 3600, "vmss-1": 3600}  # node -> seconds it runs from T0 (collected in parts)


def _scrape(t: int, provider: dict[str, str]) -> Iterator[str]:
    for node, until in RUNS.items():
        if t < until:
            yield (f'kube_node_labels{{node="{node}",label_node_kubernetes_io_instance_type="{ITYPE}",'
                   f'label_topology_kubernetes_io_region="eastus",label_nvidia_com_gpu_count="1"}} 1')  # fmt: skip
            yield f'kube_node_info{{node="{node}",provider_id="{provider[node]}"}} 1'


def _collect(wh: Path, first_s: int, last_s: int, provider: dict[str, str]) -> None:
    epoch = int((T0 - datetime(1970, 1, 1)).total_seconds())
    lines = [f"{line} {epoch + t}" for t in range(first_s, last_s, 60) for line in _scrape(t, provider)]
    om = wh.parent / f"ksm-{first_s}.om"
    om.write_text("\n".join(sorted(lines, key=lambda x: x.split("{", 1)[0])) + "\n# EOF\n")
    assert run_cli("--warehouse", str(wh), "collect", "openmetrics", str(om)).exit_code == 0


def _in_set(n: int) -> str:
    return f"azure://{SET}/virtualMachines/{n}"


def _stored(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in STORED}


def _recomputed(wh: Path) -> dict[str, list[tuple]]:
    """The stored rows recomputed from scratch, on a copy."""
    copy = wh.parent / "recomputed.duckdb"
    shutil.copy(wh, copy)
    with open_warehouse(copy) as con, transaction(con):
        bills.update(con)
        out = _stored(con)
    copy.unlink()
    return out


def _hours(con: duckdb.DuckDBPyConnection, node: str) -> list[tuple]:
    return con.execute(
        f"""SELECT h.hour - TIMESTAMP '{T0}', p.key_units / {UNITS_PER_GPU_HOUR}, p.effective
        FROM {c.T_BILL_HOURS} h JOIN {c.T_BILL_PRICES} p USING (bill_id)
        WHERE h.node = ? AND h.mig_share = 'compute' ORDER BY 1""",
        [node],
    ).fetchall()


def test_the_stored_prices_are_the_hand_computed_split_and_stay_current_through_commits_imports_and_new_ids(
    tmp_path: Path,
) -> None:
    wh = tmp_path / "wh.duckdb"
    ids = {"vmss-0": _in_set(0), "vmss-1": _in_set(1)}
    _collect(wh, 0, 2 * 3600, ids)
    bill = [_line(0, 1, "6.00"), _line(1, 1, "3.00"), _line(2, 1, "3.00"), _line(0, 24, "2.40")]
    assert billing(wh, str(write_csv(tmp_path / "bill.csv", bill)), "--provider", "azure")[0] == 0
    with open_warehouse(wh, read_only=True) as con:
        assert bills.current(con)
        # hour 0: 6.00 + 0.10 over both nodes' 2 GPU-hours; hour 1: 3.00 + 0.10 on vmss-0 alone
        assert _hours(con, "vmss-0") == [
            (timedelta(0), 2, Decimal("6.1")),
            (timedelta(hours=1), 1, Decimal("3.1")),
        ]
        assert _hours(con, "vmss-1") == [(timedelta(0), 2, Decimal("6.1"))]
        days = dict(con.execute(f"SELECT node, prices FROM {c.T_BILL_DAYS} WHERE mig_share = 'compute'").fetchall())
        assert days == {"vmss-0": 2, "vmss-1": 1}
        assert _stored(con) == _recomputed(wh)

    _collect(wh, 2 * 3600, 3 * 3600, ids)  # a commit adds hour 2, which the bill already charges
    with open_warehouse(wh, read_only=True) as con:
        assert bills.current(con)
        assert _hours(con, "vmss-0")[-1] == (timedelta(hours=2), 1, Decimal("3.1"))
        assert _stored(con) == _recomputed(wh)

    restated = [_line(0, 1, "5.00"), *bill[1:]]  # the period re-imported: hour 0 now 5.10 over both
    assert billing(wh, str(write_csv(tmp_path / "restated.csv", restated)), "--provider", "azure")[0] == 0
    with open_warehouse(wh, read_only=True) as con:
        assert bills.current(con)
        assert _hours(con, "vmss-1") == [(timedelta(0), 2, Decimal("5.1"))]
        assert _stored(con) == _recomputed(wh)

    _collect(wh, 3 * 3600, 3 * 3600 + 120, {"vmss-0": "azure:///subscriptions/x/virtualMachines/other"})
    with open_warehouse(wh, read_only=True) as con:  # a new provider ID: no node has the set's key any more
        assert bills.current(con)
        assert _hours(con, "vmss-0") == [] and _stored(con) == _recomputed(wh)
