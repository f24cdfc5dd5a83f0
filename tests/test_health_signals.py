"""Each health signal moves one hand-built GPU through the states the policy documents.

One GPU on a 60 s grid for 10 hours (600 steps); times are minutes after the start. Default
thresholds unless a case sets some: watch_hold 6h (360 min), rate_window 5m, offline after 10m.
"""

from __future__ import annotations

from typing import Any

import pytest

from analytics.health.policy import HealthThresholds
from core import conventions as c
from core.settings import Settings
from tests.builders import add_node, fresh_db
from tests.health_builders import A100, add_gpu, add_health, ramp, run, steps_of, timeline

H, W, D, OFF, R = c.STATE_HEALTHY, c.STATE_WATCH, c.STATE_DRAIN, c.STATE_OFFLINE, c.STATE_RMA
PULSE = steps_of((100, 0), (100, 1), (400, 0))  # a flag raised from minute 100 to 200

CASES: list[tuple[str, dict[str, list[Any]], list[tuple[float, str]], dict[str, Any], dict[str, Any]]] = [
    (
        "a volatile DBE drains the GPU until a reset, then leaves it on probation",
        {c.DCGM_ECC_DBE_VOL: steps_of((60, 0), (120, 2), (420, 0))},
        [(0, H), (60, D), (180, W), (540, H)],
        {},
        {},
    ),
    (
        "a DBE that comes back after the GPU reset recommends RMA",
        {c.DCGM_ECC_DBE_VOL: steps_of((60, 0), (60, 1), (180, 0), (300, 1))},
        [(0, H), (60, D), (120, W), (300, R)],
        {},
        {},
    ),
    (
        "a recurring DBE is only drained again when recurrence is not an RMA criterion",
        {c.DCGM_ECC_DBE_VOL: steps_of((60, 0), (60, 1), (180, 0), (300, 1))},
        [(0, H), (60, D), (120, W), (300, D)],
        {"rma_after_failures": 0},
        {},
    ),
    (
        "a counter reset after a driver reload is not an error burst",
        {
            c.DCGM_PCIE_REPLAY: ramp(48_000, 0.1, 300) + ramp(0, 0.1, 300),
            c.DCGM_ECC_SBE_VOL: ramp(3_000, 0.2, 300) + ramp(0, 0.2, 300),
            c.DCGM_THERMAL_VIOLATION: ramp(9e12, 0, 300) + ramp(0, 0, 300),
            c.DCGM_UNCORRECTABLE_REMAPPED_ROWS: steps_of((300, 4), (300, 0)),
        },
        [(0, H)],
        {},
        {},
    ),
    (
        "PCIe replays above 8 per minute are watched",
        {c.DCGM_PCIE_REPLAY: ramp(0, 1, 100) + ramp(150, 50, 50) + ramp(2_651, 1, 450)},
        [(0, H), (100, W), (515, H)],
        {},
        {},
    ),
    ("PCIe replays at 7 per minute stay healthy", {c.DCGM_PCIE_REPLAY: ramp(0, 7, 600)}, [(0, H)], {}, {}),
    (
        "a lower PCIe threshold in the settings watches 7 replays per minute once its window fills",
        {c.DCGM_PCIE_REPLAY: ramp(0, 7, 600)},
        [(0, H), (4, W)],
        {"pcie_replay_per_minute": 5},
        {},
    ),
    (
        "60 retired pages recommend RMA",
        {c.DCGM_RETIRED_SBE: steps_of((600, 40)), c.DCGM_RETIRED_DBE: steps_of((200, 19), (400, 20))},
        [(0, H), (200, R)],
        {},
        {},
    ),
    (
        "59 retired pages stay healthy",
        {c.DCGM_RETIRED_SBE: steps_of((600, 40)), c.DCGM_RETIRED_DBE: steps_of((600, 19))},
        [(0, H)],
        {},
        {},
    ),
    (
        "two new DBE retirements past the soft limit within a week recommend RMA",
        {c.DCGM_RETIRED_SBE: steps_of((600, 0)), c.DCGM_RETIRED_DBE: steps_of((100, 16), (100, 17), (400, 18))},
        [(0, H), (200, R)],
        {},
        {},
    ),
    ("pages pending retirement are watched", {c.DCGM_RETIRED_PENDING: PULSE}, [(0, H), (100, W), (560, H)], {}, {}),
    ("a pending row remap is watched", {c.DCGM_ROW_REMAP_PENDING: PULSE}, [(0, H), (100, W), (560, H)], {}, {}),
    ("a row-remap failure recommends RMA for good", {c.DCGM_ROW_REMAP_FAILURE: PULSE}, [(0, H), (100, R)], {}, {}),
    (
        "new uncorrectable remapped rows are watched",
        {c.DCGM_UNCORRECTABLE_REMAPPED_ROWS: steps_of((100, 3), (500, 4))},
        [(0, H), (100, W), (465, H)],
        {},
        {},
    ),
    (
        "thermal throttling is watched",
        {c.DCGM_THERMAL_VIOLATION: ramp(0, 0, 100) + ramp(30e9, 30e9, 20) + ramp(600e9, 0, 480)},
        [(0, H), (100, W), (484, H)],
        {},
        {},
    ),
    ("an application Xid leaves the GPU healthy", {c.DCGM_XID: steps_of((100, 0), (500, 31))}, [(0, H)], {}, {}),
    (
        "a DBE Xid drains the GPU until the driver reloads",
        {c.DCGM_XID: steps_of((100, 0), (100, 48), (400, 0))},
        [(0, H), (100, D), (200, W), (560, H)],
        {},
        {},
    ),
    (
        "a watch-level Xid is watched for the rate window plus the hold",
        {c.DCGM_XID: steps_of((100, 0), (500, 92))},
        [(0, H), (100, W), (465, H)],
        {},
        {},
    ),
    (
        "an Xid outside the catalog is watched",
        {c.DCGM_XID: steps_of((100, 0), (500, 250))},
        [(0, H), (100, W), (465, H)],
        {},
        {},
    ),
    (
        "a settings override turns an application Xid into a drain",
        {c.DCGM_XID: steps_of((100, 0), (500, 13))},
        [(0, H), (100, D)],
        {"xid_overrides": {13: {"severity": "drain"}}},
        {},
    ),
    (
        "an Xid of unknown age, already shown when the data starts, is watched until remediated",
        {c.DCGM_XID: steps_of((600, 48)), c.DCGM_ECC_SBE_VOL: steps_of((200, 7), (400, 0))},
        [(0, W), (560, H)],
        {},
        {},
    ),
    (
        "a GPU reset clears an Xid drain even when the gauge keeps showing the Xid",
        {c.DCGM_XID: steps_of((100, 0), (500, 48)), c.DCGM_ECC_SBE_VOL: steps_of((200, 7), (400, 0))},
        [(0, H), (100, D), (200, W), (560, H)],
        {},
        {},
    ),
    (
        "a GPU above its model's temperature limit is watched",
        {},
        [(0, H), (100, W), (510, H)],
        {},
        {"temps": steps_of((100, 40), (50, 90), (450, 40))},
    ),
    (
        "a per-model temperature limit overrides the default",
        {},
        [(0, H)],
        {"max_gpu_temp_c_by_model": {A100: 95}},
        {"temps": steps_of((100, 40), (50, 90), (450, 40))},
    ),
    (
        "a GPU silent for 15 minutes while its node is up goes offline, then on probation",
        {},
        [(0, H), (100, OFF), (115, W), (475, H)],
        {},
        {"silent": (100, 115)},
    ),
    ("a 5-minute gap is not offline", {}, [(0, H)], {}, {"silent": (100, 105)}),
]


@pytest.mark.parametrize(("name", "series", "expected", "health", "gpu"), CASES, ids=[c[0] for c in CASES])
def test_each_signal_moves_the_gpu_through_the_documented_states(
    name: str,
    series: dict[str, list[Any]],
    expected: list[tuple[float, str]],
    health: dict[str, Any],
    gpu: dict[str, Any],
) -> None:
    con = fresh_db()
    add_gpu(con, **gpu)
    for metric, values in series.items():
        add_health(con, metric, values)
    result = run(con, settings=Settings.model_validate({"health": health}))
    assert timeline(result) == expected
    assert result.periods[-1].end == result.window.end
    for period in result.periods[1:]:
        assert period.evidence and period.from_state is not None, "every transition carries its evidence"


def test_a_gpu_whose_node_went_away_is_gone_not_offline() -> None:
    con = fresh_db()
    add_node(con, "n1", 1, model=A100, steps=300)  # scaled down after 5 hours
    add_gpu(con, steps=300, with_node=False)
    result = run(con)
    assert timeline(result) == [(0, H)]
    assert (result.periods[-1].end - result.window.start).total_seconds() == 300 * 60


def test_evidence_names_the_counter_its_values_and_the_xid() -> None:
    con = fresh_db()
    add_gpu(con)
    add_health(con, c.DCGM_ECC_DBE_VOL, steps_of((60, 0), (540, 2)))
    add_health(con, c.DCGM_XID, steps_of((60, 0), (540, 48)))
    drain = run(con).periods[1]
    first, second = drain.evidence
    assert (first.signal, first.metric, first.value, first.previous) == (c.SIG_ECC_DBE, c.DCGM_ECC_DBE_VOL, 2, 0)
    assert (second.signal, second.xid) == (c.SIG_XID, 48) and "Double Bit ECC" in second.detail
    assert "reset" in (drain.action or "")


def test_the_thresholds_are_read_from_one_settings_section() -> None:
    settings = Settings.model_validate(
        {"health": {"watch_hold": "1h", "pcie_replay_per_minute": 3}, "rules": {"not_reporting_for": "15m"}}
    )
    t = HealthThresholds.from_all(settings)
    assert (t.watch_hold_s, t.pcie_replay_per_minute, t.offline_after_s, t.rate_window_s) == (3600, 3, 900, 300)
