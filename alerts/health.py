"""Health rules from the same thresholds and Xid catalog the health analytics use.

Device-level signals are aggregated per physical GPU (`max by (Hostname, UUID)`) because MIG instances
and time-slicing copies repeat them. The last-Xid gauge is sticky and each new code is a new series
(its `err_code` label), so an Xid alert fires on a change of value or on a code that was not there ten
minutes ago, per GPU and code, never on the value being non-zero forever (a pod starting on a GPU
that still shows an old Xid is not a new error). A code first seen after a Prometheus restart or
on a new exporter looks new: such an alert clears after the hold (an hour).
"""

from __future__ import annotations

from alerts.model import Rule, alert
from analytics.health.policy import ACTION_TEXT, XID_ACTION_TEXT, HealthThresholds
from analytics.health.xid_catalog import XidCatalog
from core import conventions as c

GPU = "Hostname, UUID"
XID_CLASSES = (  # catalog severities -> alert, alert severity
    (("rma", "drain"), c.ALERT_XID_HARDWARE, "critical"),
    (("watch",), c.ALERT_XID_WATCH, "warning"),
    (("none",), c.ALERT_XID_APPLICATION, "info"),
)


def _alert(
    name: str, expr: str, severity: str, summary: str, description: str, for_: str | None = None, **labels: str
) -> Rule:
    return alert(name, expr, severity, summary, description, f"{c.RUNBOOK_BASE_URL}#fleet-health", for_, **labels)


def _num(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def counter_rules(t: HealthThresholds, rate_window: str) -> list[Rule]:
    """rate_window: the thresholds' window, widened to four scrape intervals by the caller (a rate needs
    two samples in its window even when a scrape is missed)."""
    where = "GPU {{ $labels.UUID }} on {{ $labels.Hostname }}"
    return [
        _alert(
            c.ALERT_NEW_DBE,
            f"max by ({GPU}) (increase({c.DCGM_ECC_DBE_VOL}[{rate_window}])) > 0",
            "critical",
            f"{where} had a double-bit ECC error",
            ACTION_TEXT[c.SIG_ECC_DBE],
        ),
        _alert(
            c.ALERT_ROW_REMAP_FAILURE,
            f"max by ({GPU}) ({c.DCGM_ROW_REMAP_FAILURE}) == 1",
            "critical",
            f"{where} failed to remap a row",
            ACTION_TEXT[c.SIG_ROW_REMAP_FAILURE],
        ),
        _alert(
            c.ALERT_ROW_REMAP_PENDING,
            f"max by ({GPU}) ({c.DCGM_ROW_REMAP_PENDING}) == 1",
            "warning",
            f"{where} has a row remap pending",
            ACTION_TEXT[c.SIG_ROW_REMAP_PENDING],
            "5m",
        ),
        _alert(
            c.ALERT_RETIRED_PAGES,
            f"max by ({GPU}) ({c.DCGM_RETIRED_SBE}) + max by ({GPU}) ({c.DCGM_RETIRED_DBE}) >= {t.retired_pages_rma}",
            "critical",
            f"{where} retired {{{{ $value }}}} memory pages",
            ACTION_TEXT[c.SIG_RETIRED_PAGES],
        ),
        _alert(
            c.ALERT_THERMAL_THROTTLING,
            f"max by ({GPU}) (rate({c.DCGM_THERMAL_VIOLATION}[{rate_window}])) / 1e9 > {_num(t.thermal_violation_ratio)}",
            "warning",
            f"{where} is throttling for heat",
            ACTION_TEXT[c.SIG_THERMAL_VIOLATION],
            "10m",
        ),
        _alert(
            c.ALERT_PCIE_REPLAYS,
            f"max by ({GPU}) (rate({c.DCGM_PCIE_REPLAY}[{rate_window}])) * 60 > {_num(t.pcie_replay_per_minute)}",
            "warning",
            f'{where} replays PCIe transfers {{{{ $value | printf "%.1f" }}}} times a minute',
            ACTION_TEXT[c.SIG_PCIE_REPLAY],
            "5m",
        ),
        _alert(
            c.ALERT_GPU_TEMPERATURE,
            _temperature(t),
            "warning",
            f"{where} runs at {{{{ $value }}}} C",
            ACTION_TEXT[c.SIG_TEMPERATURE],
            "5m",
        ),
    ]


def _temperature(t: HealthThresholds) -> str:
    models = sorted(t.max_gpu_temp_c_by_model)
    others = "|".join(m.replace('"', '\\"') for m in models)
    base = f'{c.DCGM_GPU_TEMP}{{modelName!~"{others}"}}' if models else c.DCGM_GPU_TEMP
    terms = [f"max by ({GPU}, modelName) ({base}) > {_num(t.max_gpu_temp_c)}"]
    terms += [
        f'max by ({GPU}, modelName) ({c.DCGM_GPU_TEMP}{{modelName="{m}"}}) > {_num(t.max_gpu_temp_c_by_model[m])}'
        for m in models
    ]
    return "\nor ".join(terms)


def xid_codes(catalog: XidCatalog, severities: tuple[str, ...], action: str | None = None) -> str:
    """The catalog's codes of these severities (and action), as an `err_code` regex: 13|31|43."""
    codes = sorted(x for x, e in catalog.entries.items() if e.severity in severities and action in (None, e.action))
    return "|".join(str(x) for x in codes)


def xid_rules(catalog: XidCatalog, hold: str) -> list[Rule]:
    """One rule per catalog class and action, so each alert carries the action its codes call for;
    `hold`: how long a new code keeps its alert firing (an event, not a state: `gpuledger report
    health` keeps the GPU's state)."""
    out = []
    by = f"{GPU}, {c.L_ERR_CODE}, {c.L_ERR_MSG}"
    for severities, name, severity in XID_CLASSES:
        actions = sorted({e.action for e in catalog.entries.values() if e.severity in severities})
        for action in actions:
            sel = f'{c.DCGM_XID}{{{c.L_ERR_CODE}=~"{xid_codes(catalog, severities, action)}"}}'
            expr = (
                f"max by ({by}) (changes({sel}[{hold}]) > 0)\n"
                f"or (max by ({by}) ({sel}) unless max by ({by}) ({sel} offset {hold}))"
            )
            out.append(
                _alert(
                    name,
                    expr,
                    severity,
                    "Xid {{ $labels.err_code }} ({{ $labels.err_msg }}) on GPU {{ $labels.UUID }} on {{ $labels.Hostname }}",
                    f"{XID_ACTION_TEXT[action]} (Xid catalog {catalog.version}; `gpuledger report health` has the evidence.)",
                    action=action,
                )
            )
    return out
