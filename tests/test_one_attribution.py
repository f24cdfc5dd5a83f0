"""One attribution function and one price path serve the chargeback and the health report (issue 22, case 5).

A hand-built GPU drained by a DBE Xid from minute 100 to minute 200 (tests/health_builders.py): the health
report names the team the chargeback bills for the pods that ran on it, and values its 100 lost minutes at
the GPU-hour price the chargeback bills for the same minutes. Expected numbers are computed by hand here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from analytics.cost.chargeback import chargeback
from analytics.health import impact
from app.jobs import evaluate_health, run_health
from app.stage_options import chargeback_options
from core import conventions as c
from core.money import to_cents
from core.settings import Settings
from core.store.warehouse import open_warehouse
from core.timeutil import Window
from tests.builders import T0, add_namespace, add_node, add_pod, add_price, fresh_db
from tests.health_builders import STEP, add_gpu, add_health, at, steps_of

D = Decimal
STEPS = 600
DRAIN = (100, 200)  # minutes: Xid 48 (double-bit ECC) drains the GPU until the driver reloads
LOST_MINUTES = DRAIN[1] - DRAIN[0]
UNHEALTHY = (c.STATE_DRAIN, c.STATE_OFFLINE, c.STATE_RMA)


def _drained_gpu(con: duckdb.DuckDBPyConnection, **node: Any) -> None:
    """Node n1 with one GPU, GPU-1, that an Xid 48 drains over DRAIN."""
    add_node(con, "n1", 1, steps=STEPS, **node)
    add_gpu(con, steps=STEPS, with_node=False)
    add_health(con, c.DCGM_XID, steps_of((DRAIN[0], 0), (DRAIN[1] - DRAIN[0], 48), (STEPS - DRAIN[1], 0)))


def _on_gpu(con: duckdb.DuckDBPyConnection, pod: str, namespace: str) -> None:
    """DCGM maps `pod` to GPU-1 at every step (what dcgm-exporter's pod labels say)."""
    con.execute(
        f"""INSERT INTO {c.T_GPU_POD_SAMPLES}
        SELECT ? + to_seconds(i * {STEP}), {STEP}, 'c1', 'n1', 'GPU-1', '', '', ?, ?, NULL FROM range(?) t(i)""",
        [T0, namespace, pod, STEPS],
    )


def _usd(minutes: int, gpu_part: str, factor: str = "1", gpus: int = 8) -> Decimal:
    """Exact cost of `minutes` of one GPU of a row whose GPU part is `gpu_part` $/h over `gpus` GPUs, times
    a discount `factor`, dividing last so a terminating amount stays exact."""
    return D(minutes) * D(gpu_part) * D(factor) / (gpus * 60)


def _discount(con: duckdb.DuckDBPyConnection, name: str, percent: str, start: datetime) -> None:
    con.execute(
        f"INSERT INTO {c.T_PRICE_DISCOUNTS} VALUES (?, ?, '', '', 'p4d.*', '', ?, NULL, 'test')",
        [name, D(percent), start],
    )


# -- (a) the team ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    name: str
    pod_labels: dict[str, str]
    namespace_labels: dict[str, str]
    namespace_teams: dict[str, str]
    team: str  # what the chargeback's attribution chain gives, by hand


OWNERS = [
    Owner(
        "a pod without a team label in a namespace the map names", {}, {}, {"research": "ml-platform"}, "ml-platform"
    ),
    Owner("the pod's own team label wins over the map", {"team": "vision"}, {}, {"research": "ml-platform"}, "vision"),
    Owner(
        "the namespace's cost-center label wins over the map", {}, {"cost-center": "cc-7"}, {"research": "x"}, "cc-7"
    ),
    Owner("a kube-state-metrics cost_center label is read", {"cost_center": "cc-9"}, {}, {}, "cc-9"),
    Owner("a namespace the map does not name stays unallocated", {}, {}, {"other": "nlp"}, c.UNALLOCATED),
]


def _owned_warehouse(path: Path, owner: Owner) -> None:
    with open_warehouse(path) as con:
        _drained_gpu(con)
        add_pod(con, "train-0", "n1", team=None, namespace="research", steps=STEPS, labels=owner.pod_labels)
        add_namespace(con, "research", owner.namespace_labels)
        _on_gpu(con, "train-0", "research")


@pytest.mark.parametrize("owner", OWNERS, ids=[o.name for o in OWNERS])
def test_the_health_report_names_the_team_the_chargeback_bills_for_pods_on_an_unhealthy_gpu(
    tmp_path: Path, owner: Owner
) -> None:
    path = tmp_path / "w.duckdb"
    _owned_warehouse(path, owner)
    settings = Settings.model_validate(
        {"warehouse": {"path": str(path)}, "chargeback": {"namespace_teams": owner.namespace_teams}}
    )
    report = run_health(settings, Window(T0, at(STEPS)), UNHEALTHY)
    assert [(i.pod, i.team) for i in report.impacts] == [("train-0", owner.team)]
    assert [(e.xid, e.teams) for e in report.result.events] == [(48, (owner.team,))]
    with open_warehouse(path, read_only=True) as con:
        billed = chargeback(con, Window(T0, at(STEPS)), chargeback_options(settings))
    assert [r.keys["team"] for r in billed.rows if r.gpu_hours and r.kind != c.IDLE] == [owner.team]


# -- (b) the price -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Priced:
    name: str
    node: dict[str, Any]
    prices: list[dict[str, Any]]
    expected: Decimal  # the exact cost of the 100 lost GPU-minutes, by hand
    discounts: list[tuple[str, str, datetime]] = field(default_factory=list)
    fallback: Decimal | None = None
    unpriced_hours: Decimal = D(0)


ZONE = {"zone": "us-east-1a"}
REGION_ROW = {"price": "32.77", "gpus": 8}  # region-wide: a zone row for the node's zone wins over it
ZONE_ROW = {"price": "40", "gpu_price": "30", "gpus": 8, **ZONE}  # a GPU share of 0.75: 40 x 0.75 = 30
PRICED = [
    Priced(
        "a zone row's GPU part less a discount",
        ZONE,
        [REGION_ROW, ZONE_ROW],
        _usd(LOST_MINUTES, "30", "0.85"),  # 100/60 h x 30/8 x 0.85 = 5.3125
        [("EDP", "15", T0 - timedelta(days=1))],
    ),
    Priced(
        "a zone price change and a discount starting mid-period bill each part at its own price",
        ZONE,
        [REGION_ROW, ZONE_ROW, {**ZONE_ROW, "price": "48", "gpu_price": "36", "effective_from": at(150)}],
        _usd(30, "30") + _usd(20, "30", "0.875") + _usd(50, "36", "0.875"),  # 1.875 + 1.09375 + 3.28125
        [("SP", "12.5", at(130))],
    ),
    Priced(
        "a spot price set at minute 130 is billed from the next hour's start",
        {"capacity_type": "spot", **ZONE},
        [
            {"price": "12", "gpus": 8, "capacity_type": "spot", **ZONE},
            {"price": "16", "gpus": 8, "capacity_type": "spot", "effective_from": at(130), **ZONE},
        ],
        _usd(80, "12") + _usd(20, "16"),  # 2 + 0.666...
    ),
    Priced(
        "a node without a capacity-type label matching an on-prem row is on-prem",
        {},
        [REGION_ROW, {"price": "16", "gpus": 8, "capacity_type": "on_prem", "provider": "on_prem"}],
        _usd(LOST_MINUTES, "16"),
    ),
    Priced(
        "time no row prices is valued at the fallback and counted unpriced",
        {"instance_type": "x9.unknown"},
        [REGION_ROW],
        _usd(LOST_MINUTES, "2.5", gpus=1),
        fallback=D("2.5"),
        unpriced_hours=D(LOST_MINUTES) / 60,
    ),
]


def _priced_warehouse(case: Priced) -> duckdb.DuckDBPyConnection:
    con = fresh_db()
    _drained_gpu(con, **case.node)
    for row in case.prices:
        add_price(con, **row)
    for name, percent, start in case.discounts:
        _discount(con, name, percent, start)
    return con


@pytest.mark.parametrize("case", PRICED, ids=[p.name for p in PRICED])
def test_the_lost_cost_of_a_gpu_is_the_chargebacks_cost_of_the_same_gpu_hours_to_the_cent(case: Priced) -> None:
    con = _priced_warehouse(case)
    settings = Settings.model_validate({"pricing": {"fallback_gpu_hour_usd": case.fallback}})
    result = evaluate_health(con, settings, Window(T0, at(STEPS)))
    [lost] = impact.lost_capacity(con, result, case.fallback)
    assert (lost.key.gpu_uuid, lost.hours) == ("GPU-1", pytest.approx(LOST_MINUTES / 60))
    assert lost.unpriced_hours == pytest.approx(float(case.unpriced_hours))
    assert lost.cost_usd == to_cents(case.expected)
    # the same GPU-hours in the chargeback: a window holding only this GPU's drained time, idle kept as a row
    billed = chargeback(con, Window(at(DRAIN[0]), at(DRAIN[1])), chargeback_options(settings))
    assert billed.node_cost_usd == lost.cost_usd
    assert [(r.kind, r.cost_usd) for r in billed.rows] == [(c.IDLE, lost.cost_usd)]

    assert sum(lost.by_period.values()) == lost.cost_usd == impact.total_cost([lost])
