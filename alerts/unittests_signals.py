"""promtool unit tests for the health and drift rules: a series that must fire each alert, one that
must not (a counter reset, a sticky Xid, a steady service, a service without traffic).

The health tests scrape every minute and the thresholds come from the spec, so the tests follow a
changed setting; the drift tests span two days at five-minute scrapes (the rules compare with
`offset 1d`).
"""

from __future__ import annotations

from typing import Any

from alerts.generator import RuleSpec
from alerts.promtool_series import GPU, alerts_at, gpu
from alerts.promtool_series import series as _series
from analytics.serving.sli import model_label
from core import conventions as c

LAB = 'Hostname="n1",UUID="GPU-{uuid}"'


def _at(uuid: str, severity: str, extra: str = "") -> str:
    return LAB.format(uuid=uuid) + extra + f',severity="{severity}"'


def _counter_test(spec: RuleSpec) -> dict[str, Any]:
    t = spec.health
    retired = t.retired_pages_rma
    limit = t.max_gpu_temp_c_by_model.get("NVIDIA A100-SXM4-40GB", t.max_gpu_temp_c)
    return {
        "name": "each device signal alerts on the GPU that shows it and on no other; a counter reset is not an error",
        "interval": "1m",
        "input_series": [
            # 1 DBE at 21m, then a driver reload resets the counter to 0 at 42m
            gpu("n1", "dbe", c.DCGM_ECC_DBE_VOL, "0x20 1x20 0x20"),
            gpu("n1", "remap", c.DCGM_ROW_REMAP_FAILURE, "0x10 1x50"),
            gpu("n1", "pending", c.DCGM_ROW_REMAP_PENDING, "0x10 1x50"),
            gpu("n1", "pages", c.DCGM_RETIRED_SBE, f"{retired // 2}x60"),
            gpu("n1", "pages", c.DCGM_RETIRED_DBE, f"{retired - retired // 2 - 1}x10 {retired - retired // 2}x50"),
            gpu("n1", "hot", c.DCGM_THERMAL_VIOLATION, "0x10 0+60000000000x50"),  # throttled all the time
            gpu("n1", "replays", c.DCGM_PCIE_REPLAY, f"0+{int(t.pcie_replay_per_minute * 3)}x60"),
            gpu("n1", "calm", c.DCGM_PCIE_REPLAY, f"0+{max(int(t.pcie_replay_per_minute / 2), 0)}x60"),
            gpu("n1", "warm", c.DCGM_GPU_TEMP, f"{limit - 5:g}x10 {limit + 5:g}x50"),
            gpu("n1", "calm", c.DCGM_GPU_TEMP, f"{limit - 5:g}x60"),
        ],
        "promql_expr_test": [
            alerts_at("23m", c.ALERT_NEW_DBE, [_at("dbe", "critical")]),
            alerts_at("35m", c.ALERT_NEW_DBE, []),
            alerts_at("44m", c.ALERT_NEW_DBE, []),
            alerts_at("5m", c.ALERT_ROW_REMAP_FAILURE, []),
            alerts_at("15m", c.ALERT_ROW_REMAP_FAILURE, [_at("remap", "critical")]),
            alerts_at("13m", c.ALERT_ROW_REMAP_PENDING, []),
            alerts_at("20m", c.ALERT_ROW_REMAP_PENDING, [_at("pending", "warning")]),
            alerts_at("5m", c.ALERT_RETIRED_PAGES, []),
            alerts_at("15m", c.ALERT_RETIRED_PAGES, [_at("pages", "critical")]),
            alerts_at("8m", c.ALERT_THERMAL_THROTTLING, []),
            alerts_at("30m", c.ALERT_THERMAL_THROTTLING, [_at("hot", "warning")]),
            alerts_at("30m", c.ALERT_PCIE_REPLAYS, [_at("replays", "warning")]),
            alerts_at("8m", c.ALERT_GPU_TEMPERATURE, []),
            alerts_at("30m", c.ALERT_GPU_TEMPERATURE, [_at("warm", "warning", ',modelName="NVIDIA A100-SXM4-40GB"')]),
        ],
    }


def _xid(uuid: str, code: int, msg: str, values: str, pod: str = "") -> dict[str, str]:
    labels = GPU.format(uuid=uuid, node="n1") + f',{c.L_ERR_CODE}="{code}",{c.L_ERR_MSG}="{msg}"'
    if pod:
        labels += f',namespace="ml",pod="{pod}"'
    return _series(c.DCGM_XID, labels, values)


def _xid_expect(spec: RuleSpec, uuid: str, code: int, msg: str, severity: str) -> str:
    action = spec.xid_catalog.entries[code].action
    return _at(uuid, severity, f',action="{action}",{c.L_ERR_CODE}="{code}",{c.L_ERR_MSG}="{msg}"')


def _code(spec: RuleSpec, severities: tuple[str, ...]) -> int:
    return min(x for x, e in spec.xid_catalog.entries.items() if e.severity in severities)


def _xid_test(spec: RuleSpec) -> dict[str, Any]:
    """One code of each catalog class: hardware (drain or RMA), application (none), watch."""
    hardware, app, watch = _code(spec, ("rma", "drain")), _code(spec, ("none",)), _code(spec, ("watch",))
    return {
        "name": "a new Xid alerts for an hour with its catalog class; a sticky Xid on a new pod does not alert again",
        "interval": "1m",
        "input_series": [
            _xid("dbe", 0, "No Error", "0x10 _x90"),
            _xid("dbe", hardware, "DBE", f"_x10 {hardware}x90"),
            # a code shown since long before; a new pod on the GPU starts a new series at 90m
            _xid("app", app, "Graphics Engine Exception", f"{app}x90 _x70", pod="old"),
            _xid("app", app, "Graphics Engine Exception", f"_x90 {app}x70", pod="new"),
            _xid("ecc", 0, "No Error", "0x40 _x120"),
            _xid("ecc", watch, "Contained ECC", f"_x40 {watch}x120"),
        ],
        "promql_expr_test": [
            alerts_at("13m", c.ALERT_XID_HARDWARE, [_xid_expect(spec, "dbe", hardware, "DBE", "critical")]),
            alerts_at("65m", c.ALERT_XID_HARDWARE, [_xid_expect(spec, "dbe", hardware, "DBE", "critical")]),
            alerts_at("75m", c.ALERT_XID_HARDWARE, []),
            alerts_at("85m", c.ALERT_XID_APPLICATION, []),
            alerts_at("95m", c.ALERT_XID_APPLICATION, []),
            alerts_at("125m", c.ALERT_XID_APPLICATION, []),
            alerts_at("42m", c.ALERT_XID_WATCH, [_xid_expect(spec, "ecc", watch, "Contained ECC", "warning")]),
            alerts_at("105m", c.ALERT_XID_WATCH, []),
        ],
    }


def health_tests(spec: RuleSpec) -> list[dict[str, Any]]:
    stopped = {
        "name": "a GPU that stops reporting alerts; one that keeps reporting does not",
        "interval": "1m",
        "input_series": [
            gpu("n1", "alive", c.DCGM_GPU_TEMP, "40x90"),
            gpu("n1", "gone", c.DCGM_GPU_TEMP, "40x40 _x50"),
        ],
        "promql_expr_test": [
            alerts_at("30m", c.ALERT_GPU_NOT_REPORTING, []),
            alerts_at("65m", c.ALERT_GPU_NOT_REPORTING, ['Hostname="n1",UUID="GPU-gone",severity="critical"']),
        ],
    }
    return [stopped, _counter_test(spec), _xid_test(spec)]


DAY = 288  # five-minute scrapes a day


def _hist(family: str, model: str, le: str, values: str) -> dict[str, str]:
    by = model_label(family) or "namespace"
    return _series(f"{family}_bucket", f'{by}="{model}",le="{le}"', values)


def _latency_series(family: str) -> list[dict[str, str]]:
    """regress: yesterday every request under 0.5 s, today every one between 0.5 and 2 s;
    steady: the same both days; idle: no traffic today."""
    grow, stop = f"0+10x{2 * DAY}", f"0+10x{DAY} {10 * DAY}x{DAY - 1}"
    out = []
    for model, fast, rest in (("regress", stop, grow), ("steady", grow, grow), ("idle", stop, stop)):
        out += [_hist(family, model, "0.5", fast), _hist(family, model, "2", rest), _hist(family, model, "+Inf", rest)]
    return out


def _error_series() -> list[dict[str, str]]:
    """svc-a: 1% failures yesterday, 9% today; svc-b: 2% both days; svc-c: no traffic today;
    Triton model t: no failures yesterday, 5% today."""

    def http(ns: str, status: str, values: str) -> dict[str, str]:
        return _series("http_requests_total", f'namespace="{ns}",status="{status}"', values)

    def rising(per_step: int, then: int) -> str:
        return f"0+{per_step}x{DAY} {per_step * DAY}+{then}x{DAY - 1}"

    return [
        http("svc-a", "2xx", f"0+99x{2 * DAY}"),
        http("svc-a", "5xx", rising(1, 10)),
        http("svc-b", "2xx", f"0+98x{2 * DAY}"),
        http("svc-b", "5xx", f"0+2x{2 * DAY}"),
        http("svc-c", "2xx", rising(99, 0)),
        http("svc-c", "5xx", rising(1, 0)),
        _series("nv_inference_request_success", 'model="t",version="1"', f"0+100x{2 * DAY}"),
        _series("nv_inference_request_failure", 'model="t",version="1"', rising(0, 5)),
    ]


def _reported(metric: str, labels: str, value: float) -> dict[str, str]:
    return _series(metric, labels, f"{value:g}x30")


def _reported_test(spec: RuleSpec) -> dict[str, Any]:
    major = spec.psi_major
    return {
        "name": "the drift report's major PSI, categorical drift and accuracy verdict alert; the rest does not",
        "interval": "1m",
        "input_series": [
            _reported(c.METRIC_DRIFT_PSI, 'model="a",feature="prompt_tokens"', major),
            _reported(c.METRIC_DRIFT_PSI, 'model="a",feature="e2e_latency"', major * 0.99),
            _reported(c.METRIC_DRIFT_DETECTED, 'model="a",feature="e2e_latency",kind="numeric",method="ks"', 1),
            _reported(c.METRIC_DRIFT_DETECTED, 'model="a",feature="finish_reason",kind="categorical",method="x"', 1),
            _reported(c.METRIC_DRIFT_DETECTED, 'model="b",feature="finish_reason",kind="categorical",method="x"', 0),
            _reported(c.METRIC_ACCURACY_DEGRADED, 'model="a"', 1),
            _reported(c.METRIC_ACCURACY_DEGRADED, 'model="b"', 0),
        ],
        "promql_expr_test": [
            alerts_at(
                "10m",
                c.ALERT_DISTRIBUTION_DRIFT,
                [
                    'feature="finish_reason",model="a",severity="warning"',
                    'feature="prompt_tokens",model="a",severity="warning"',
                ],
            ),
            alerts_at("10m", c.ALERT_ACCURACY_DRIFT, ['model="a",severity="warning"']),
        ],
    }


def drift_tests(spec: RuleSpec) -> list[dict[str, Any]]:
    family = "vllm:e2e_request_latency_seconds"
    return [
        _reported_test(spec),
        {
            "name": "p95 latency rising against the same hour yesterday alerts; steady and idle models do not",
            "interval": "5m",
            "input_series": _latency_series(family),
            "promql_expr_test": [
                alerts_at("20h", c.ALERT_LATENCY_REGRESSION, []),
                alerts_at(
                    "27h",
                    c.ALERT_LATENCY_REGRESSION,
                    [f'histogram="{family}",model_name="regress",severity="warning"'],
                ),
            ],
        },
        {
            "name": "a failure share spiking against yesterday alerts; a steady share and a silent service do not",
            "interval": "5m",
            "input_series": _error_series(),
            "promql_expr_test": [
                alerts_at("20h", c.ALERT_ERROR_SPIKE, []),
                alerts_at(
                    "27h",
                    c.ALERT_ERROR_SPIKE,
                    [
                        'counter="http_requests_total",namespace="svc-a",severity="critical"',
                        'counter="nv_inference_request_failure",model="t",severity="critical"',
                    ],
                ),
            ],
        },
    ]
