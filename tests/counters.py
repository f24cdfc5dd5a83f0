"""DCGM counters with driver-reload resets, and last-Xid changes, on two GPUs of the simulated fleet.

Same scrape times as the simulator (every 5 minutes, 7 s after the boundary). The sequences:
  PCIe replays       +0..3 per scrape, reset at scrape 150
  energy (mJ)        +~120 MJ per scrape (400 W), reset at scrape 200
  volatile DBE ECC   1 at scrape 100, 2 at 120, reset to 0 at 150 (driver reload), 1 at 250
  last Xid           0 until scrape 120, 43 (err_code="43") until 168, then 79 (err_code="79")
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from core import conventions as c
from core.timeutil import to_epoch

SCRAPES, INTERVAL_S, OFFSET_S = 288, 300, 7
XID_SEQUENCE = ((0, 0), (120, 43), (168, 79))  # (first scrape, Xid code)
EXPECTED_XID_EVENTS = 2  # 0 -> 43 and 43 -> 79


LAB_NODE = "gpu-lab-1"  # a node of its own: the simulator already exports health counters for its GPUs


def device_label_sets(dcgm_om: Path, count: int = 2) -> list[str]:
    """Label strings of the first whole (non-MIG, not time-sliced) GPUs, without pod attributes,
    moved to LAB_NODE with their own UUIDs so they never collide with the simulator's series."""
    found: list[str] = []
    for line in dcgm_om.read_text().splitlines():
        if line.startswith(c.DCGM_GPU_TEMP + "{") and "GPU_I_ID" not in line and "vgpu=" not in line:
            labels = re.match(r".*?\{(.*?DCGM_FI_DRIVER_VERSION=\"[^\"]*\")", line)
            if labels:
                moved = re.sub(r'Hostname="[^"]*"', f'Hostname="{LAB_NODE}"', labels.group(1))
                moved = re.sub(r'UUID="GPU-([0-9a-f]{8})', r'UUID="GPU-1ab00000', moved)
                moved = moved.replace('UUID="GPU-1ab00000', f'UUID="GPU-1ab0000{len(found)}')
                moved = re.sub(r'^gpu="\d+"', f'gpu="{len(found)}"', moved)
                moved = re.sub(r'device="nvidia\d+"', f'device="nvidia{len(found)}"', moved)
                if moved not in found:
                    found.append(moved)
        if len(found) == count:
            break
    return found


def _counter_values() -> dict[str, list[float]]:
    replay, energy, dbe = [], [], []
    r = e = d = 0.0
    for i in range(SCRAPES):
        r = (i % 4) if i == 150 else r + i % 4
        e = 120_000_000.0 + i if i == 200 else e + 120_000_000.0 + (i % 7) * 1_000_000
        d = {100: 1.0, 120: 2.0, 150: 0.0, 250: 1.0}.get(i, d)
        replay.append(r)
        energy.append(e)
        dbe.append(d)
    return {
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": replay,
        c.DCGM_ENERGY: energy,
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": dbe,
    }


def openmetrics(dcgm_om: Path, start: datetime) -> str:
    t0 = int(to_epoch(start)) + OFFSET_S
    lines: list[str] = []
    devices = device_label_sets(dcgm_om)
    for metric, values in _counter_values().items():
        lines.append(f"# TYPE {metric} gauge")
        for labels in devices:
            lines += [f"{metric}{{{labels}}} {v:.0f} {t0 + i * INTERVAL_S}" for i, v in enumerate(values)]
    lines.append(f"# TYPE {c.DCGM_XID} gauge")
    bounds = [*(first for first, _ in XID_SEQUENCE[1:]), SCRAPES]
    for labels in devices:
        for (first, code), end in zip(XID_SEQUENCE, bounds, strict=True):
            extra = f',err_code="{code}",err_msg="Xid {code}"' if code else ""
            lines += [f"{c.DCGM_XID}{{{labels}{extra}}} {code} {t0 + i * INTERVAL_S}" for i in range(first, end)]
    return "\n".join(lines) + "\n# EOF\n"
