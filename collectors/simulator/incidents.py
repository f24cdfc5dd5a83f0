"""Health signals of the simulated fleet: every GPU's DCGM health counters, and incidents with known truth.

Each GPU reports the health fields gpuledger's counters CSV enables (section 1.1 of the DCGM
reference): the last Xid, volatile and aggregate ECC counts, PCIe replays, thermal-violation time,
row remapping on Ampere (not on MIG-enabled GPUs: NVML cannot query it there) and retired pages on
Volta. Baselines creep up slowly (a few corrected errors, a few PCIe replays: never actionable).

Incidents (hours after the simulation start; `--no-incidents` turns them all off):

| incident           | GPU            | what the exporter shows                                        | expected state            |
|--------------------|----------------|----------------------------------------------------------------|---------------------------|
| dbe_burst          | gpu-od-1 #2    | 03:00 DBE 0->2->3, Xid 48, remap pending; 15:00 GPU reset       | drain 03-15, watch to 21  |
| xid79_offline      | gpu-od-2 #1    | 07:00 Xid 79, then no series at all                            | drain 07:00, offline 07:05|
| app_xid13          | gpu-od-2 #0    | 05:00 Xid 13 (an application fault)                            | healthy throughout        |
| thermal_throttling | gpu-spot-1 #0  | 04:00-05:00 thermal violation 35% of the time, 88 C            | watch 04:00-11:00         |
| row_remap_failure  | gpu-mig-1 #4   | 10:00 remap failure flag, Xid 64, a DBE (bank already full)    | rma 10:00                 |
| driver_reload      | gpu-od-1 #7    | 12:00 driver reload: PCIe replays 48k->0, SBE 3k->0            | healthy throughout        |

The truth (the `health` section of truth.json) is derived here from these definitions and the
documented policy defaults, never by running gpuledger's analytics.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from collectors.simulator.fleet import NODE_BY_NAME, Device, Pod
from core import conventions as c
from core.settings import HealthSettings, RulesSettings
from core.timeutil import iso, parse_duration

# Exporter metadata. OpenMetrics only allows TYPE counter for samples named *_total, and DCGM's
# counters end in _TOTAL or nothing, so counters are declared `unknown` (promtool accepts it; the
# Prometheus text format dcgm-exporter really serves says `counter`).
HEALTH_FAMILIES: dict[str, tuple[str, str]] = {
    c.DCGM_XID: ("gauge", "Value of the last XID error encountered."),
    c.DCGM_ECC_SBE_VOL: ("unknown", "Total number of single-bit volatile ECC errors."),
    c.DCGM_ECC_DBE_VOL: ("unknown", "Total number of double-bit volatile ECC errors."),
    c.DCGM_ECC_SBE_AGG: ("unknown", "Total number of single-bit persistent ECC errors."),
    c.DCGM_ECC_DBE_AGG: ("unknown", "Total number of double-bit persistent ECC errors."),
    c.DCGM_RETIRED_SBE: ("unknown", "Total number of retired pages due to single-bit errors."),
    c.DCGM_RETIRED_DBE: ("unknown", "Total number of retired pages due to double-bit errors."),
    c.DCGM_RETIRED_PENDING: ("unknown", "Total number of pages pending retirement."),
    c.DCGM_ROW_REMAP_FAILURE: ("gauge", "Whether remapping of rows has failed"),
    c.DCGM_ROW_REMAP_PENDING: ("gauge", "Whether remapping of rows is pending"),
    c.DCGM_UNCORRECTABLE_REMAPPED_ROWS: ("unknown", "Number of remapped rows for uncorrectable errors"),
    c.DCGM_CORRECTABLE_REMAPPED_ROWS: ("unknown", "Number of remapped rows for correctable errors"),
    c.DCGM_PCIE_REPLAY: ("unknown", "Total number of PCIe retries."),
    c.DCGM_THERMAL_VIOLATION: ("unknown", "Throttling duration due to thermal constraints (in ns)."),
}
# Counters whose increase over the window truth.json states for every incident GPU.
COUNTERS = (c.DCGM_ECC_SBE_VOL, c.DCGM_ECC_DBE_VOL, c.DCGM_ECC_SBE_AGG, c.DCGM_ECC_DBE_AGG, c.DCGM_PCIE_REPLAY)
_VOLTA_ONLY = (c.DCGM_RETIRED_SBE, c.DCGM_RETIRED_DBE, c.DCGM_RETIRED_PENDING)
_REMAP = (
    c.DCGM_ROW_REMAP_FAILURE,
    c.DCGM_ROW_REMAP_PENDING,
    c.DCGM_UNCORRECTABLE_REMAPPED_ROWS,
    c.DCGM_CORRECTABLE_REMAPPED_ROWS,
)
# err_msg texts of dcgm-exporter's xid_errors.go for the codes the simulator raises.
XID_MESSAGES = {
    0: "No Error",
    13: "Graphics Engine Exception",
    48: "Double Bit ECC Error",
    64: "ECC page retirement or row remapper recording failure",
    79: "GPU has fallen off the bus",
}
_INCIDENT_XID = {"dbe_burst": 48, "xid79_offline": 79, "app_xid13": 13, "row_remap_failure": 64}
THERMAL_SHARE = 0.35
THROTTLED_TEMP_C = 88


@dataclass(frozen=True)
class Incident:
    kind: str
    node: str
    index: int
    at_h: float
    until_h: float | None = None  # GPU reset / end of the episode


INCIDENTS = (
    Incident("dbe_burst", "gpu-od-1", 2, 3.0, 15.0),
    Incident("xid79_offline", "gpu-od-2", 1, 7.0),
    Incident("app_xid13", "gpu-od-2", 0, 5.0),
    Incident("thermal_throttling", "gpu-spot-1", 0, 4.0, 5.0),
    Incident("row_remap_failure", "gpu-mig-1", 4, 10.0),
    Incident("driver_reload", "gpu-od-1", 7, 12.0),
)


def supported(family: str, device: Device) -> bool:
    """Whether the GPU reports `family` at all (unsupported DCGM fields are blank: no series)."""
    volta = device.model.name.startswith("Tesla V100")
    if family in _VOLTA_ONLY:
        return volta
    if family in _REMAP:
        return not volta and device.index not in NODE_BY_NAME[device.node].mig
    return True


def _reset(values: np.ndarray, k: int) -> None:
    """A driver reload or GPU reset at sample k: a volatile counter restarts from zero."""
    values[k:] = values[k:] - values[k]


class HealthSim:
    """Per physical GPU and sample: every health family's value, silence and temperature overrides."""

    def __init__(self, n: int, interval_s: int, seed: int, incidents: bool) -> None:
        self.n = n
        self.interval_s = interval_s
        self.seed = seed
        self.incidents = [i for i in INCIDENTS if self.k(i.at_h) < n] if incidents else []
        self._cache: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        self._resets: dict[tuple[str, int], dict[str, int]] = {}  # GPU -> counter -> sample it restarted at

    def k(self, hours: float) -> int:
        return int(round(hours * 3600 / self.interval_s))

    def values(self, family: str, device: Device) -> np.ndarray | None:
        if not supported(family, device):
            return None
        return self._gpu(device.node, device.index)[family]

    def silent(self, node: str, index: int) -> np.ndarray:
        return self._gpu(node, index)["silent"].astype(bool)

    def temperature(self, node: str, index: int, temp: np.ndarray) -> np.ndarray:
        hot = self._gpu(node, index)["hot"].astype(bool)
        return np.where(hot, float(THROTTLED_TEMP_C), temp)

    def _gpu(self, node: str, index: int) -> dict[str, np.ndarray]:
        key = (node, index)
        if key not in self._cache:
            series = self._baseline(node, index)
            for incident in self.incidents:
                if (incident.node, incident.index) == key:
                    self._apply(incident, series)
            self._cache[key] = series
        return self._cache[key]

    def _baseline(self, node: str, index: int) -> dict[str, np.ndarray]:
        """Slowly creeping corrected errors and PCIe replays, from a per-GPU seeded stream (the
        fleet's main random stream is left untouched, so every other series keeps its bytes)."""
        digest = hashlib.sha256(f"{self.seed}/{node}/{index}".encode()).digest()
        rng = np.random.Generator(np.random.PCG64(int.from_bytes(digest[:8], "little")))
        sbe_base, pcie_base = int(digest[8]) * 3, int(digest[9])
        sbe = sbe_base + np.cumsum(rng.random(self.n) < 0.02)
        zeros = np.zeros(self.n)
        return {
            c.DCGM_XID: zeros.copy(),
            c.DCGM_ECC_SBE_VOL: sbe.astype(float),
            c.DCGM_ECC_DBE_VOL: zeros.copy(),
            c.DCGM_ECC_SBE_AGG: (sbe + 5 * sbe_base).astype(float),
            c.DCGM_ECC_DBE_AGG: zeros.copy(),
            c.DCGM_RETIRED_SBE: np.full(self.n, float(digest[10] % 4)),
            c.DCGM_RETIRED_DBE: zeros.copy(),
            c.DCGM_RETIRED_PENDING: zeros.copy(),
            c.DCGM_ROW_REMAP_FAILURE: zeros.copy(),
            c.DCGM_ROW_REMAP_PENDING: zeros.copy(),
            c.DCGM_UNCORRECTABLE_REMAPPED_ROWS: zeros.copy(),
            c.DCGM_CORRECTABLE_REMAPPED_ROWS: np.full(self.n, float(digest[11] % 3)),
            c.DCGM_PCIE_REPLAY: (pcie_base + np.cumsum(rng.random(self.n) < 0.01)).astype(float),
            c.DCGM_THERMAL_VIOLATION: zeros.copy(),
            "silent": zeros.copy(),
            "hot": zeros.copy(),
        }

    def _apply(self, incident: Incident, s: dict[str, np.ndarray]) -> None:
        k0 = self.k(incident.at_h)
        k1 = min(self.k(incident.until_h), self.n) if incident.until_h is not None else self.n
        if incident.kind == "dbe_burst":
            s[c.DCGM_ECC_DBE_VOL][k0:] += 2
            s[c.DCGM_ECC_DBE_VOL][k0 + 1 :] += 1
            s[c.DCGM_ECC_DBE_AGG][:] = s[c.DCGM_ECC_DBE_VOL]  # persistent: survives the reset below
            s[c.DCGM_XID][k0:k1] = 48
            s[c.DCGM_ROW_REMAP_PENDING][k0:k1] = 1
            s[c.DCGM_UNCORRECTABLE_REMAPPED_ROWS][k0:] += 1
            if k1 < self.n:  # the GPU reset clears the volatile counters and completes the remap
                self._restart(incident, s, (c.DCGM_ECC_DBE_VOL, c.DCGM_ECC_SBE_VOL), k1)
        elif incident.kind == "xid79_offline":
            s[c.DCGM_XID][k0:] = 79
            s["silent"][k0 + 1 :] = 1
        elif incident.kind == "app_xid13":
            s[c.DCGM_XID][k0:] = 13
        elif incident.kind == "thermal_throttling":
            step_ns = THERMAL_SHARE * self.interval_s * 1e9
            s[c.DCGM_THERMAL_VIOLATION][k0:] += step_ns * np.minimum(np.arange(1, self.n - k0 + 1), k1 - k0)
            s["hot"][k0:k1] = 1
        elif incident.kind == "row_remap_failure":
            s[c.DCGM_UNCORRECTABLE_REMAPPED_ROWS][:] = 8  # a bank already full: the next remap fails
            s[c.DCGM_ROW_REMAP_FAILURE][k0:] = 1
            s[c.DCGM_XID][k0:] = 64
            s[c.DCGM_ECC_DBE_VOL][k0:] += 1
            s[c.DCGM_ECC_DBE_AGG][k0:] += 1
        elif incident.kind == "driver_reload":
            s[c.DCGM_PCIE_REPLAY][:] += 48_000
            s[c.DCGM_ECC_SBE_VOL][:] += 3_000
            self._restart(incident, s, (c.DCGM_PCIE_REPLAY, c.DCGM_ECC_SBE_VOL), k0)

    def _restart(self, incident: Incident, s: dict[str, np.ndarray], families: tuple[str, ...], k: int) -> None:
        for family in families:
            _reset(s[family], k)
            self._resets.setdefault((incident.node, incident.index), {})[family] = k

    def reload_at(self, node: str, index: int) -> int | None:
        """The sample a driver reload restarts this GPU's counters at (None: no reload in the run)."""
        for incident in self.incidents:
            if incident.kind == "driver_reload" and (incident.node, incident.index) == (node, index):
                return self.k(incident.at_h)
        return None

    def increases(self, node: str, index: int) -> dict[str, float]:
        """Each counter's increase over the run, as the exporter's samples show it: the growth up to
        a restart plus everything after it (the restart itself is not a negative jump)."""
        series = self._gpu(node, index)
        seen = np.nonzero(~series["silent"].astype(bool))[0]
        first, last = int(seen[0]), int(seen[-1])
        resets = self._resets.get((node, index), {})
        out = {}
        for family in COUNTERS:
            v = series[family]
            k = resets.get(family)
            out[family] = float(v[last] - v[first]) if k is None else float(v[k - 1] - v[first] + v[last])
        return out

    def truth(self, pods: list[Pod], start: datetime) -> dict[str, object]:
        """Expected transitions, lost GPU-hours, impacted pods and Xid events, from the incidents alone."""
        gpus: dict[str, object] = {}
        events: list[dict[str, object]] = []
        failures: dict[str, dict[str, int]] = {"model": {}, "pool": {}}
        for incident in self.incidents:
            node = NODE_BY_NAME[incident.node]
            uuid = node.uuid(incident.index)
            on_gpu = [p for p in pods if any((d.node, d.index) == (node.name, incident.index) for d in p.devices)]
            gpus[uuid] = self._gpu_truth(incident, on_gpu, start)
            for step in gpus[uuid]["transitions"]:  # type: ignore[index]
                if step["from"] in (c.STATE_HEALTHY, c.STATE_WATCH) and step["to"] in c.UNHEALTHY_STATES:
                    for key, value in (("model", node.model.name), ("pool", node.pool)):
                        failures[key][value] = failures[key].get(value, 0) + 1
            xid = _INCIDENT_XID.get(incident.kind)
            if xid is not None:
                k0 = self.k(incident.at_h)
                running = sorted(f"{p.namespace}/{p.name}" for p in on_gpu if p.start <= k0 < p.end)
                ts = iso(start + timedelta(seconds=k0 * self.interval_s))
                events.append({"gpu_uuid": uuid, "ts": ts, "xid": xid, "pods": running})
        return {"incidents": bool(self.incidents), "gpus": gpus, "xid_events": events, "failures": failures}

    def _gpu_truth(self, incident: Incident, on_gpu: list[Pod], start: datetime) -> dict[str, object]:
        node = NODE_BY_NAME[incident.node]
        k0 = self.k(incident.at_h)
        k1 = min(self.k(incident.until_h), self.n) if incident.until_h is not None else self.n
        hold = parse_duration(HealthSettings().watch_hold)
        offline_after = parse_duration(RulesSettings().not_reporting_for)
        steps, bad = self._expected(incident.kind, k0, k1, hold, offline_after)
        return {
            "node": node.name,
            "index": incident.index,
            "model": node.model.name,
            "pool": node.pool,
            "incident": incident.kind,
            "transitions": [
                {"ts": iso(start + timedelta(seconds=t)), "from": a, "to": b, "signal": sig, "xid": x}
                for t, a, b, sig, x in steps
            ],
            "lost_gpu_hours": round(sum(hi - lo for lo, hi in bad) * self.interval_s / 3600, 9),
            "impacted_pods": sorted(
                f"{p.namespace}/{p.name}" for p in on_gpu if any(p.start < hi and p.end > lo for lo, hi in bad)
            ),
            "counter_increases": self.increases(incident.node, incident.index),
        }

    def _expected(
        self, kind: str, k0: int, k1: int, hold: int, offline_after: int
    ) -> tuple[list[tuple[int, str, str, str, int | None]], list[tuple[int, int]]]:
        """(seconds after start, from, to, signal, xid) per transition, and unhealthy sample ranges."""
        i, end = self.interval_s, self.n * self.interval_s
        h, w, d, o, r = c.STATE_HEALTHY, c.STATE_WATCH, c.STATE_DRAIN, c.STATE_OFFLINE, c.STATE_RMA
        steps: list[tuple[int, str, str, str, int | None]] = []
        bad: list[tuple[int, int]] = []
        if kind == "dbe_burst":
            steps = [(k0 * i, h, d, c.SIG_ECC_DBE, None), (k1 * i, d, w, c.SIG_ECC_DBE, None)]
            steps.append((k1 * i + hold, w, h, c.SIG_PROBATION, None))
            bad = [(k0, k1)]
        elif kind == "xid79_offline":
            steps = [(k0 * i, h, d, c.SIG_XID, 79)]
            if end - (k0 + 1) * i >= offline_after:
                steps.append(((k0 + 1) * i, d, o, c.SIG_OFFLINE, None))
            bad = [(k0, self.n)]
        elif kind == "thermal_throttling":
            steps = [
                (k0 * i, h, w, c.SIG_THERMAL_VIOLATION, None),
                (k1 * i + hold, w, h, c.SIG_THERMAL_VIOLATION, None),
            ]
        elif kind == "row_remap_failure":
            steps = [(k0 * i, h, r, c.SIG_ROW_REMAP_FAILURE, None)]
            bad = [(k0, self.n)]
        return [s for s in steps if s[0] < end], bad
