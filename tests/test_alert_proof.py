"""The generated alerts, evaluated over the simulated day on a real Prometheus, fire exactly where the
simulator's own schedule says they must, and the healthy rest of the fleet raises nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from analytics.health.xid_catalog import load_catalog
from app.cli import main
from core import conventions as c
from core.timeutil import parse_ts
from tests import counters
from tests.alert_eval import Firing, fired

ROOT = Path(__file__).resolve().parents[1]
START = parse_ts("2026-11-02T00:00:00Z")


@pytest.fixture(scope="module")
def firings(prometheus_url: str, tmp_path_factory: pytest.TempPathFactory) -> list[Firing]:
    """The rules generated for the simulator's 5-minute scrapes, evaluated every 5 minutes."""
    out = tmp_path_factory.mktemp("proof-rules")
    (out / "settings.yaml").write_text("rules:\n  scrape_interval: 5m\n")
    args = ["--config", str(out / "settings.yaml"), "rules", "generate", "--out", str(out / "rules")]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # stop 15 minutes before the data ends: every series stops there, which is not an outage
    return fired(prometheus_url, out / "rules", START, START + timedelta(hours=23, minutes=45), step_s=300)


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


LAB = ("GPU-1ab00000", "GPU-1ab00001")  # tests/counters.py: DBE at scrapes 100, 120, 250, reset at 150


def _gpu(uuid: str) -> str:
    return next((lab for lab in LAB if uuid.startswith(lab)), uuid)


def _uuids(firings: list[Firing], alert: str) -> set[str]:
    return {_gpu(f.label("UUID")) for f in firings if f.alert == alert}


def _incident_gpus(truth: dict, *kinds: str) -> set[str]:
    return {uuid for uuid, gpu in truth["health"]["gpus"].items() if gpu.get("incident") in kinds}


def test_new_double_bit_errors_alert_on_exactly_the_gpus_whose_counter_rose(firings: list[Firing], truth: dict) -> None:
    rose = {u for u, g in truth["health"]["gpus"].items() if g["counter_increases"][c.DCGM_ECC_DBE_VOL] > 0}
    assert rose and _uuids(firings, c.ALERT_NEW_DBE) == rose | set(LAB)


def test_a_driver_reload_resetting_the_dbe_counter_raises_nothing(firings: list[Firing]) -> None:
    t0 = START + timedelta(seconds=counters.OFFSET_S)
    expected = [t0 + timedelta(seconds=counters.INTERVAL_S * k) for k in (100, 120, 250)]
    for lab in LAB:
        starts = sorted(f.since for f in firings if f.alert == c.ALERT_NEW_DBE and _gpu(f.label("UUID")) == lab)
        assert len(starts) == len(expected), (lab, starts)
        assert all(timedelta(0) < s - e <= timedelta(minutes=5) for s, e in zip(starts, expected, strict=True))


def test_row_remapping_alerts_name_the_failed_and_the_pending_gpu(firings: list[Firing], truth: dict) -> None:
    assert _uuids(firings, c.ALERT_ROW_REMAP_FAILURE) == _incident_gpus(truth, "row_remap_failure")
    assert _uuids(firings, c.ALERT_ROW_REMAP_PENDING) == _incident_gpus(truth, "dbe_burst")


def test_thermal_throttling_alerts_on_the_throttled_gpu_only(firings: list[Firing], truth: dict) -> None:
    hot = _incident_gpus(truth, "thermal_throttling")
    assert hot and _uuids(firings, c.ALERT_THERMAL_THROTTLING) == hot
    assert _uuids(firings, c.ALERT_GPU_TEMPERATURE) <= hot


def _xid_alert(code: int) -> str:
    severity = load_catalog().entries[code].severity
    return {"none": c.ALERT_XID_APPLICATION, "watch": c.ALERT_XID_WATCH}.get(severity, c.ALERT_XID_HARDWARE)


def test_every_xid_event_alerts_once_with_its_catalog_class(firings: list[Firing], truth: dict) -> None:
    expected = [(_xid_alert(e["xid"]), e["gpu_uuid"], str(e["xid"])) for e in truth["health"]["xid_events"]]
    expected += [(_xid_alert(code), lab, str(code)) for lab in LAB for _, code in counters.XID_SEQUENCE if code]
    xid_alerts = (c.ALERT_XID_HARDWARE, c.ALERT_XID_WATCH, c.ALERT_XID_APPLICATION)
    got = [(f.alert, _gpu(f.label("UUID")), f.label(c.L_ERR_CODE)) for f in firings if f.alert in xid_alerts]
    assert sorted(got) == sorted(expected)  # once each: a sticky code does not fire again


def test_no_health_alert_names_a_gpu_without_an_incident(firings: list[Firing], truth: dict) -> None:
    troubled = {u for u, g in truth["health"]["gpus"].items() if g.get("incident")} | set(LAB)
    health = {c.ALERT_PCIE_REPLAYS, c.ALERT_RETIRED_PAGES}
    assert not [f for f in firings if f.alert in health]
    assert {_gpu(f.label("UUID")) for f in firings if f.label("UUID")} <= troubled
