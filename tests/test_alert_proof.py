"""The generated alerts, evaluated over the simulated day on a real Prometheus, fire exactly where the
simulator's own schedule says they must, and the healthy rest of the fleet raises nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from core import conventions as c
from core.timeutil import parse_ts
from tests.alert_eval import Firing, fired

ROOT = Path(__file__).resolve().parents[1]
START = parse_ts("2026-11-02T00:00:00Z")


@pytest.fixture(scope="module")
def firings(prometheus_url: str) -> list[Firing]:
    # stop 15 minutes before the data ends: every series stops there, which is not an outage
    return fired(prometheus_url, ROOT / "rules", START, START + timedelta(hours=23, minutes=45), step_s=300)


def _pods(firings: list[Firing], alert: str) -> set[tuple[str, str]]:
    return {(f.label("namespace"), f.label("pod")) for f in firings if f.alert == alert}


def _ran(pod: dict, minutes: int) -> bool:
    end = min(parse_ts(pod["end"]), START + timedelta(hours=23, minutes=45))
    return (end - parse_ts(pod["start"])) >= timedelta(minutes=minutes)


def test_every_gpu_pod_without_a_team_or_cost_centre_alerts_and_no_labelled_pod_does(
    firings: list[Firing], truth: dict
) -> None:
    unowned = {(p["namespace"], p["pod"]) for p in truth["pods"] if p["team"] is None}
    must = {(p["namespace"], p["pod"]) for p in truth["pods"] if p["team"] is None and _ran(p, 20)}
    for alert in (c.ALERT_GPU_POD_WITHOUT_TEAM, c.ALERT_GPU_POD_WITHOUT_COST_CENTER):
        got = _pods(firings, alert)
        assert must and must <= got <= unowned, alert


def test_idle_notebooks_raise_low_utilisation_and_busy_pods_never_do(firings: list[Firing], truth: dict) -> None:
    got = _pods(firings, c.ALERT_LOW_GPU_UTILIZATION)
    idle = {(p["namespace"], p["pod"]) for p in truth["pods"] if p["mean_activity"] < 0.06 and _ran(p, 180)}
    busy = {(p["namespace"], p["pod"]) for p in truth["pods"] if p["mean_activity"] > 0.3}
    assert idle and idle <= got
    assert not got & busy


def test_exactly_the_gpu_that_fell_off_the_bus_is_reported_offline(firings: list[Firing], truth: dict) -> None:
    offline = {
        uuid
        for uuid, gpu in truth["health"]["gpus"].items()
        if any(t["to"] == c.STATE_OFFLINE for t in gpu["transitions"])
    }
    got = {f.label("UUID") for f in firings if f.alert == c.ALERT_GPU_NOT_REPORTING}
    assert offline and got == offline


def test_the_healthy_rest_of_the_fleet_raises_nothing(firings: list[Firing]) -> None:
    quiet = (c.ALERT_HIGH_TRAINING_COST, c.ALERT_POOR_INFERENCE_EFFICIENCY, c.ALERT_TEAM_OVER_BUDGET_PACE)
    assert [f for f in firings if f.alert in quiet] == []
