"""The health policy: thresholds (typed, from settings), state severity, and what each signal asks for.

Thresholds come from ONE place, the `health` settings section (plus `rules.not_reporting_for`, the
offline threshold the GPU-stopped-reporting alert already uses), turned into a HealthThresholds by
`from_settings`. The alert-rule generator reads the same object, so a report and an alert can never
disagree on what "too many PCIe replays" means.

Signal -> state (defaults from NVIDIA's and DCGM's limits; see README "Fleet health"):

| signal                       | condition                                         | state             |
|------------------------------|---------------------------------------------------|-------------------|
| ecc_dbe_volatile             | volatile DBE count > 0 (cleared by a GPU reset)   | drain_recommended |
| xid                          | catalog severity of the new Xid                   | per catalog       |
| row_remap_failure            | DCGM_FI_DEV_ROW_REMAP_FAILURE = 1 (sticky)        | rma_recommended   |
| retired_pages_limit          | retired SBE + DBE pages >= retired_pages_rma      | rma_recommended   |
| retired_dbe_rate             | DBE pages > soft limit and > N new in 7 days      | rma_recommended   |
| row_remap_pending            | DCGM_FI_DEV_ROW_REMAP_PENDING = 1                 | watch             |
| retired_pages_pending        | DCGM_FI_DEV_RETIRED_PENDING > 0                   | watch             |
| uncorrectable_remapped_rows  | any increase within rate_window                   | watch             |
| pcie_replay_rate             | replays per minute > pcie_replay_per_minute       | watch             |
| thermal_violation            | throttled share of rate_window > ratio            | watch             |
| temperature                  | GPU temperature > the model's limit               | watch             |
| stopped_reporting            | silent for >= offline_after while its node is up  | offline           |
| recurring_failure            | rma_after_failures hardware drains in lookbehind  | rma_recommended   |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core import conventions as c
from core.settings import HealthSettings, Settings
from core.timeutil import parse_duration

RANK: dict[str, int] = {state: i for i, state in enumerate(c.HEALTH_STATES)}
SEVERITY_STATE = {"watch": c.STATE_WATCH, "drain": c.STATE_DRAIN, "rma": c.STATE_RMA}

# What to do, per signal (Xid findings take the catalog's action instead).
ACTION_TEXT: dict[str, str] = {
    c.SIG_ECC_DBE: "Drain the GPU's workloads and reset it (nvidia-smi -r); if DBEs recur, run field "
    "diagnostics (dcgmi diag -r 3) and RMA (NVIDIA's Xid 48 workflow).",
    c.SIG_ROW_REMAP_FAILURE: "Drain, run field diagnostics (dcgmi diag -r 3) and open an RMA when they confirm the "
    "row-remap failure.",
    c.SIG_RETIRED_PAGES: "Drain and RMA: retired pages reached NVIDIA's limit.",
    c.SIG_RETIRED_DBE: "Drain and RMA: DBE page retirements keep growing past the soft limit.",
    c.SIG_ROW_REMAP_PENDING: "Reset the GPU when it is idle to complete the pending row remap.",
    c.SIG_RETIRED_PENDING: "Reboot or reload the driver at the next maintenance window to retire the pending pages.",
    c.SIG_UNCORRECTABLE_REMAP: "Open a ticket; correlate with Xid 48/94/95 and DBE counts.",
    c.SIG_PCIE_REPLAY: "Check the PCIe riser, slot and cabling: the replay rate is above DCGM's limit.",
    c.SIG_THERMAL_VIOLATION: "Check cooling (fans, airflow, inlet temperature): the GPU throttled for heat.",
    c.SIG_TEMPERATURE: "Check cooling (fans, airflow, inlet temperature): the GPU runs above its limit.",
    c.SIG_OFFLINE: "Check nvidia-smi on the node: if the GPU fell off the bus (Xid 79), drain and reboot the node; "
    "RMA if it recurs. (A dcgm-exporter outage looks the same: check the exporter pod too.)",
    c.SIG_PROBATION: "Keep watching: the GPU was recently remediated; recurrence means RMA.",
    c.SIG_RECURRENCE: "Drain, run field diagnostics (dcgmi diag -r 3) and RMA: the hardware fault came back after "
    "remediation (NVIDIA: RMA if a DBE or Xid 79 recurs).",
}
XID_ACTION_TEXT: dict[str, str] = {
    "restart_app": "Restart the application; the GPU itself is fine.",
    "reset_gpu": "Drain the GPU, then reset it (nvidia-smi -r); reboot the node if the error persists, replace the "
    "GPU if it still persists.",
    "reboot_node": "Drain and reboot the node; RMA the GPU if it recurs.",
    "drain_and_rma": "Drain, run field diagnostics and open an RMA.",
    "ignore": "No immediate action; watch for repeats.",
}


@dataclass(frozen=True)
class HealthThresholds:
    """Every health threshold, parsed (seconds, counts, ratios). Build it with `from_settings`."""

    offline_after_s: int
    watch_hold_s: int
    rate_window_s: int
    pcie_replay_per_minute: float
    thermal_violation_ratio: float
    max_gpu_temp_c: float
    retired_pages_rma: int
    retired_dbe_soft_limit: int
    retired_dbe_per_week: int
    lookbehind_s: int
    rma_after_failures: int = 2
    max_gpu_temp_c_by_model: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, health: HealthSettings, not_reporting_for: str) -> HealthThresholds:
        return cls(
            offline_after_s=parse_duration(not_reporting_for),
            watch_hold_s=parse_duration(health.watch_hold),
            rate_window_s=parse_duration(health.rate_window),
            pcie_replay_per_minute=health.pcie_replay_per_minute,
            thermal_violation_ratio=health.thermal_violation_ratio,
            max_gpu_temp_c=health.max_gpu_temp_c,
            retired_pages_rma=health.retired_pages_rma,
            retired_dbe_soft_limit=health.retired_dbe_soft_limit,
            retired_dbe_per_week=health.retired_dbe_per_week,
            lookbehind_s=parse_duration(health.lookbehind),
            rma_after_failures=health.rma_after_failures,
            max_gpu_temp_c_by_model=dict(health.max_gpu_temp_c_by_model),
        )

    @classmethod
    def from_all(cls, settings: Settings) -> HealthThresholds:
        return cls.from_settings(settings.health, settings.rules.not_reporting_for)


def worst(states: list[str]) -> str:
    return max(states, key=RANK.__getitem__) if states else c.STATE_HEALTHY


def normalise_states(text: str) -> tuple[str, ...]:
    """`drain,rma` -> the full state names; raise ValueError naming an unknown one."""
    short = {s.split("_")[0]: s for s in c.HEALTH_STATES}
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        state = part if part in RANK else short.get(part)
        if state is None:
            raise ValueError(f"unknown state {part!r}; choose from {', '.join(short)}")
        out.append(state)
    return tuple(out)
