"""Savings recommendations: each fires on the situation it targets, with the right dollar figure."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from analytics.chargeback import ChargebackOptions
from analytics.recommend import recommendations
from analytics.savings import SavingsOptions
from core.facts import HAMI_CORES
from core.timeutil import Window
from tests.builders import T0, add_gpu_usage, add_node, add_pod, add_price, fresh_db

DAY = Window(T0, T0 + timedelta(days=1))
STEPS = 24 * 60


def _recs(con, **opts):  # type: ignore[no-untyped-def]
    return recommendations(con, DAY, ChargebackOptions(), SavingsOptions(**opts))


def test_a_pool_with_a_whole_node_never_needed_gets_a_release_recommendation() -> None:
    con = fresh_db()
    for n in ("n1", "n2"):
        add_node(con, n, 8, steps=STEPS, pool="od")
    add_price(con, "64")  # $8/GPU-hour
    add_pod(con, "p", "n1", amount=6, steps=STEPS)
    release = [r for r in _recs(con) if r.kind == "release idle capacity"]
    assert len(release) == 1 and release[0].target == "od"
    assert release[0].monthly_savings_usd == Decimal(8 * 8 * 730)


def test_a_whole_gpu_pod_at_low_activity_fits_a_mig_slice() -> None:
    con = fresh_db()
    add_node(con, "n1", 1, steps=STEPS, model="NVIDIA-A100-SXM4-80GB")
    add_price(con, "8", gpus=1)
    add_pod(con, "notebook", "n1", steps=STEPS)
    add_gpu_usage(con, "n1", "GPU-0", 0.08, pod="notebook", steps=STEPS, model="NVIDIA A100-SXM4-80GB")
    recs = [r for r in _recs(con) if r.kind == "right-size low-utilisation pod"]
    assert len(recs) == 1 and "1g slice" in recs[0].action
    # a day at $8/h = $192; a 1g slice is 1/7 of it: save 6/7, scaled to 730 h
    assert recs[0].monthly_savings_usd == (Decimal(192) * 6 / 7 * Decimal(730) / 24).quantize(Decimal("0.01"))


def test_busy_long_running_on_demand_work_is_priced_at_the_spot_price_when_known() -> None:
    con = fresh_db()
    add_node(con, "n1", 1, steps=STEPS, instance_type="p3.2xlarge")
    add_price(con, "3.06", gpus=1, instance_type="p3.2xlarge")
    add_price(con, "0.918", gpus=1, instance_type="p3.2xlarge", capacity_type="spot")
    add_pod(con, "train-abcde", "n1", steps=STEPS)
    add_gpu_usage(con, "n1", "GPU-0", 0.9, pod="train-abcde", steps=STEPS)
    spot = [r for r in _recs(con) if r.kind == "move to spot"]
    assert len(spot) == 1 and "ratio 0.30" in spot[0].evidence
    assert spot[0].monthly_savings_usd == (Decimal("3.06") * Decimal("0.7") * 730).quantize(Decimal("0.01"))


def test_short_or_idle_work_is_not_sent_to_spot_and_results_are_ranked() -> None:
    con = fresh_db()
    add_node(con, "n1", 2, steps=STEPS)
    add_price(con, "16", gpus=2)
    add_pod(con, "short", "n1", steps=120)
    add_gpu_usage(con, "n1", "GPU-0", 0.9, pod="short", steps=120)
    recs = _recs(con)
    assert not [r for r in recs if r.kind == "move to spot"]
    assert [r.monthly_savings_usd for r in recs] == sorted((r.monthly_savings_usd for r in recs), reverse=True)


def test_a_pod_asking_for_a_gpu_and_hami_cores_runs_as_long_as_it_ran_not_twice_as_long() -> None:
    con = fresh_db()
    add_node(con, "n1", 1, steps=STEPS, instance_type="p3.2xlarge")
    add_price(con, "3.06", gpus=1, instance_type="p3.2xlarge")
    add_price(con, "0.918", gpus=1, instance_type="p3.2xlarge", capacity_type="spot")
    add_pod(con, "train-abcde", "n1", steps=4 * 60)  # 4 h: under the 6 h a move to spot needs
    add_pod(con, "train-abcde", "n1", steps=4 * 60, resource=HAMI_CORES, amount=100)
    add_gpu_usage(con, "n1", "GPU-0", 0.9, pod="train-abcde", steps=4 * 60)
    assert not [r for r in _recs(con) if r.kind == "move to spot"]
    assert [r for r in _recs(con, min_run_hours=3.5) if r.kind == "move to spot"]
