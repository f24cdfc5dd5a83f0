"""promtool unit tests generated with the rules: series that must fire each alert, series that must not.

Each rule file gets `tests/<name>.test.yaml` (next to a plain-rule-file copy, since promtool cannot
read a PrometheusRule). Alerts are asserted through the ALERTS series (promql_expr_test), which
checks labels without depending on the rendered annotations; floats are compared with
`abs(x - v) < bool eps`, because promtool 2.42 compares exactly (no fuzzy_compare).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from alerts import slo_unittests
from alerts import unittests_signals as signals
from alerts.generator import RuleSpec
from alerts.model import RuleFile, promql_string
from alerts.promtool_series import POD, alerts_at, close_to, gpu, node, pending_pod, running_pod
from alerts.promtool_series import series as _series
from core import conventions as c


def cost_tests(spec: RuleSpec) -> list[dict[str, Any]]:
    minutes = 420
    series = [node("n1", "p4d.24xlarge", minutes), node("n8", "p5.48xlarge", minutes)]
    series += running_pod("ml", "idle-nb", "n1", c.RESOURCE_GPU, 1, minutes, 'label_team="vision"')
    series += running_pod("ml", "busy", "n1", c.RESOURCE_GPU, 1, minutes, 'label_team="vision"')
    series += running_pod("ml", "slices", "n1", "nvidia_com_mig_3g_40gb", 2, minutes, 'label_team="nlp"')
    series += running_pod("ml", "big", "n8", c.RESOURCE_GPU, 8, minutes, 'label_team="nlp"')
    series += running_pod("ml", "svc", "n1", c.RESOURCE_GPU, 1, minutes, 'label_team="nlp"')
    series += running_pod("ml", "hot-svc", "n1", c.RESOURCE_GPU, 1, minutes, 'label_team="nlp"')
    series += [
        gpu("n1", "a", c.DCGM_GR_ENGINE_ACTIVE, f"0.05x{minutes}", ("ml", "idle-nb")),
        gpu("n1", "b", c.DCGM_GR_ENGINE_ACTIVE, f"0.9x{minutes}", ("ml", "busy")),
        gpu("n8", "c", c.DCGM_GR_ENGINE_ACTIVE, f"0.8x{minutes}", ("ml", "big")),
        gpu("n1", "d", c.DCGM_GR_ENGINE_ACTIVE, f"0.5x{minutes}", ("ml", "svc")),
        gpu("n1", "e", c.DCGM_GR_ENGINE_ACTIVE, f"0.5x{minutes}", ("ml", "hot-svc")),
        # idle-nb's GPU idles at 150 W (clocks held up), busy's draws 600 W at work, svc's 80 W half-busy
        gpu("n1", "a", c.DCGM_POWER, f"150x{minutes}", ("ml", "idle-nb")),
        gpu("n1", "b", c.DCGM_POWER, f"600x{minutes}", ("ml", "busy")),
        gpu("n1", "d", c.DCGM_POWER, f"80x{minutes}", ("ml", "svc")),
        # 6 req/min = 360 requests per GPU-hour (under the floor); 60 req/min with a counter reset at 3h
        _series(c.VLLM_REQUEST_SUCCESS, 'namespace="ml",pod="svc",model_name="m"', f"0+6x{minutes}"),
        _series(
            c.VLLM_REQUEST_SUCCESS, 'namespace="ml",pod="hot-svc",model_name="m"', f"0+60x180 0+60x{minutes - 181}"
        ),
    ]
    series += [gpu(f"idle-{i}", f"idle{i}", c.DCGM_GPU_TEMP, f"40x{minutes}") for i in range(40)]
    price = spec.prices.get(("p4d.24xlarge", "on_demand"))
    checks = [
        alerts_at("3h", c.ALERT_LOW_GPU_UTILIZATION, ['namespace="ml",pod="idle-nb",severity="warning"']),
        alerts_at("3h", c.ALERT_POOR_INFERENCE_EFFICIENCY, ['namespace="ml",pod="svc",severity="warning"']),
        # pending for its 15m of `for` (quiet at 10m), then firing for idle-nb only
        alerts_at("10m", c.ALERT_IDLE_GPU_POWER_BURN, []),
        alerts_at("3h", c.ALERT_IDLE_GPU_POWER_BURN, ['namespace="ml",pod="idle-nb",severity="warning"']),
        close_to(f'{c.REC_POD_GPU_POWER}{{pod="busy"}}', Decimal(600), "1h", '{namespace="ml",pod="busy"}'),
        alerts_at("5h", c.ALERT_IDLE_GPU_CAPACITY, []),
        alerts_at("6h50m", c.ALERT_IDLE_GPU_CAPACITY, ['severity="info"']),
        close_to(
            f'{c.REC_POD_GPU_SHARE}{{pod="slices"}}',
            f"{Decimal(6) / 7:.12f}",
            "1h",
            '{namespace="ml",node="n1",pod="slices"}',
        ),
    ]
    if price is not None:
        checks.append(
            close_to(f'{c.REC_POD_GPU_COST}{{pod="busy"}}', price, "1h", '{namespace="ml",node="n1",pod="busy"}')
        )
    big = spec.prices.get(("p5.48xlarge", "on_demand"))
    fires = big is not None and big * 8 * 24 > spec.high_job_cost_usd_per_day
    checks.append(
        alerts_at(
            "1h", c.ALERT_HIGH_TRAINING_COST, ['namespace="ml",node="n8",pod="big",severity="info"'] if fires else []
        )
    )
    checks.append(alerts_at("3h", c.ALERT_TEAM_OVER_BUDGET_PACE, []))
    tests = [
        {
            "name": "cost rules fire on idle, wasteful and expensive GPUs and stay quiet on busy ones",
            "interval": "1m",
            "input_series": series,
            "promql_expr_test": checks,
        }
    ]
    if spec.budgets and big is not None:
        tests.append(_budget_test(spec, big))
    return tests


def _budget_test(spec: RuleSpec, gpu_hour: Decimal) -> dict[str, Any]:
    """The first budgeted team runs 8 GPUs for 3 hours: over pace exactly when 8 x price > pace x factor."""
    team = sorted(spec.budgets)[0]
    pace = Decimal(spec.budgets[team]) / 730 * Decimal(str(spec.budget_pace_factor))
    series = [
        node("n8", "p5.48xlarge", 240),
        *running_pod("ml", "spender", "n8", c.RESOURCE_GPU, 8, 240, f"label_team={promql_string(team)}"),
    ]
    expected = [f'label_team={promql_string(team)},severity="warning"'] if gpu_hour * 8 > pace else []
    return {
        "name": f"team {team} against its budget pace",
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            alerts_at("30m", c.ALERT_TEAM_OVER_BUDGET_PACE, []),
            alerts_at("3h", c.ALERT_TEAM_OVER_BUDGET_PACE, expected),
        ],
    }


def compliance_tests(spec: RuleSpec) -> list[dict[str, Any]]:
    series = running_pod("ml", "owned", "n1", c.RESOURCE_GPU, 1, 60, 'label_cost_center="cc-1",label_team="vision"')
    series += running_pod("ml", "orphan", "n1", c.RESOURCE_GPU, 1, 60, "")
    series += running_pod("ml", "team-only", "n1", c.RESOURCE_GPU, 1, 60, 'label_team="nlp"')
    # a Pending pod's request must not count (only Running pods hold GPUs)
    key = POD.format(ns="ml", pod="pending")
    series += [
        _series(
            c.KSM_POD_REQUESTS, f'{key},container="main",node="",resource="{c.RESOURCE_GPU}",unit="integer"', "1x60"
        ),
        _series(c.KSM_POD_PHASE, f'{key},phase="Running"', "0x60"),
    ]
    return [
        {
            "name": "GPU pods must name a team and a cost centre",
            "interval": "1m",
            "input_series": series,
            "promql_expr_test": [
                alerts_at("10m", c.ALERT_GPU_POD_WITHOUT_TEAM, []),
                alerts_at("30m", c.ALERT_GPU_POD_WITHOUT_TEAM, ['namespace="ml",pod="orphan",severity="warning"']),
                alerts_at(
                    "30m",
                    c.ALERT_GPU_POD_WITHOUT_COST_CENTER,
                    [
                        'namespace="ml",pod="orphan",severity="warning"',
                        'namespace="ml",pod="team-only",severity="warning"',
                    ],
                ),
            ],
        }
    ]


def recording_tests(spec: RuleSpec) -> list[dict[str, Any]]:
    series = running_pod("ml", "p", "n1", c.RESOURCE_GPU, 2, 30, 'label_team="vision"')
    # a second kube-state-metrics replica exports the same request: it must not double the GPUs
    key = POD.format(ns="ml", pod="p")
    series.append(
        _series(
            c.KSM_POD_REQUESTS,
            f'{key},container="main",node="n1",resource="{c.RESOURCE_GPU}",unit="integer",instance="ksm-2"',
            "2x30",
        )
    )
    return [
        {
            "name": "allocation counts Running pods once, however many kube-state-metrics replicas report them",
            "interval": "1m",
            "input_series": series,
            "promql_expr_test": [
                {
                    "expr": c.REC_POD_GPU_ALLOCATION,
                    "eval_time": "10m",
                    "exp_samples": [
                        {
                            "labels": f'{c.REC_POD_GPU_ALLOCATION}{{namespace="ml",node="n1",pod="p",resource="{c.RESOURCE_GPU}"}}',
                            "value": 2,
                        }
                    ],
                }
            ],
        }
    ]


def service_tests(spec: RuleSpec) -> list[dict[str, Any]]:
    """gpuledger's own metrics: the rules' thresholds are read from the spec, the series fit them."""
    stale = spec.collection_stale_after_s
    # `fresh` tracks time (value = t in seconds); `stuck` stopped updating at 10m
    sources = [
        _series(c.M_COLLECTION_LAST_SUCCESS, 'source="fresh"', f"0+60x{stale // 60 + 30}"),
        _series(c.M_COLLECTION_LAST_SUCCESS, 'source="stuck"', f"0+60x10 600x{stale // 60 + 20}"),
    ]
    fires_at = 10 + stale // 60 + 5 + 1  # minutes: stale after 10m + threshold, then `for: 5m`
    # the newest exported week ended 30 minutes less than (a week + the grace) before t=0
    week_end = -(7 * 86400 + spec.export_missed_after_s) + 1800
    errors = [
        _series(f"{c.M_ERRORS}_total", 'job="export",kind="terminal"', "0x30 1x30"),
        _series(f"{c.M_ERRORS}_total", 'job="collect",kind="transient"', "0+1x60"),
    ]
    return [
        {
            "name": "a source that stopped collecting alerts; one that keeps collecting does not",
            "interval": "1m",
            "input_series": sources,
            "promql_expr_test": [
                alerts_at(f"{fires_at - 2}m", c.ALERT_COLLECTION_STALE, []),
                alerts_at(f"{fires_at + 1}m", c.ALERT_COLLECTION_STALE, ['severity="warning",source="stuck"']),
            ],
        },
        {
            "name": "a week without its export alerts once the grace has passed",
            "interval": "1m",
            "input_series": [_series(c.M_EXPORT_LATEST_WEEK_END, "", f"{week_end}x60")],
            "promql_expr_test": [
                alerts_at("20m", c.ALERT_EXPORT_MISSED, []),
                alerts_at("50m", c.ALERT_EXPORT_MISSED, ['severity="critical"']),
            ],
        },
        {
            "name": "a week exported on time does not alert",
            "interval": "1m",
            "input_series": [_series(c.M_EXPORT_LATEST_WEEK_END, "", "0x60")],
            "promql_expr_test": [alerts_at("50m", c.ALERT_EXPORT_MISSED, [])],
        },
        {
            "name": "terminal errors alert, transient ones (a source's hiccup) do not",
            "interval": "1m",
            "input_series": errors,
            "promql_expr_test": [
                alerts_at("20m", c.ALERT_JOB_FAILING, []),
                alerts_at("45m", c.ALERT_JOB_FAILING, ['job="export",kind="terminal",severity="warning"']),
            ],
        },
        {
            "name": "a service that stops being scraped alerts after 15 minutes",
            "interval": "1m",
            "input_series": [_series(c.M_START_TIME, "", "1x30")],
            "promql_expr_test": [
                alerts_at("40m", c.ALERT_SERVICE_DOWN, []),
                alerts_at("60m", c.ALERT_SERVICE_DOWN, ['severity="critical"']),
            ],
        },
    ]


def capacity_tests(spec: RuleSpec) -> list[dict[str, Any]]:
    """Two 8-GPU nodes with 6 GPUs held on each (4 free): `big` asks for 4 and pends the whole time, `small` (1) pends
    10 minutes and is gone; Kueue's team-a waits about 1,000 s per admission, team-b under a second."""
    minutes = 90
    series = [
        _series(c.KSM_NODE_ALLOCATABLE, f'node="{n}",resource="{c.RESOURCE_GPU}",unit="integer"', f"8x{minutes}")
        for n in ("n1", "n2")
    ]
    series += running_pod("ml", "r1", "n1", c.RESOURCE_GPU, 6, minutes, None)
    series += running_pod("ml", "r2", "n2", c.RESOURCE_GPU, 6, minutes, None)
    series += pending_pod("ml", "big", c.RESOURCE_GPU, 4, minutes) + pending_pod("ml", "small", c.RESOURCE_GPU, 1, 10)
    for queue, buckets in (("team-a-cq", ("640", "1280")), ("team-b-cq", ("1",))):
        for le in (*buckets, "+Inf"):
            rising = "0x90" if le == "640" else f"0+1x{minutes}"
            series.append(_series(c.KUEUE_ADMISSION_WAIT, f'cluster_queue="{queue}",le="{le}"', rising))
    big = 'namespace="ml",pod="big",severity="warning"'
    return [
        {
            "name": "a GPU pod pending too long, a slow queue, and GPUs free enough for the largest pending pod",
            "interval": "1m",
            "input_series": series,
            "promql_expr_test": [
                alerts_at("10m", c.ALERT_GPUS_FRAGMENTED, []),
                alerts_at("20m", c.ALERT_GPUS_FRAGMENTED, ['severity="warning"']),
                alerts_at("20m", c.ALERT_GPU_POD_PENDING, []),
                alerts_at("40m", c.ALERT_GPU_POD_PENDING, [big]),
                alerts_at("40m", c.ALERT_QUEUE_WAIT_HIGH, ['cluster_queue="team-a-cq",severity="warning"']),
            ],
        }
    ]


def _builders() -> dict[str, Any]:
    return {
        "recording": recording_tests,
        "cost": cost_tests,
        "capacity": capacity_tests,
        "health": signals.health_tests,
        "drift": signals.drift_tests,
        "compliance": compliance_tests,
        "service": service_tests,
        "slo": slo_unittests.slo_tests,
    }


def test_document(rule_file: RuleFile, spec: RuleSpec, rules_path: str) -> dict[str, Any] | None:
    domain = rule_file.name.removeprefix(f"{c.RULE_GROUP_PREFIX}-")
    builder = _builders().get(domain)
    if builder is None:
        return None
    # the drift tests span two days (offset 1d): evaluating their rules every 5 minutes instead of every
    # minute keeps promtool's run short, and every `for:` of those rules is a multiple of 5 minutes
    interval = "5m" if domain == "drift" else "1m"
    tests = builder(spec)
    if not tests:
        return None
    doc = {"rule_files": [rules_path, *_dependencies(domain)], "evaluation_interval": interval, "tests": tests}
    if domain == "slo":  # an SLO's recordings before its alerts at each step, as the file orders them
        doc["group_eval_order"] = [g.name for g in rule_file.groups]
    return doc


def _dependencies(domain: str) -> list[str]:
    # cost and compliance rules read the recording file's series
    return [f"{c.RULE_GROUP_PREFIX}-recording.rules.yaml"] if domain in ("cost", "compliance") else []


def all_tests(files: list[RuleFile], spec: RuleSpec) -> dict[str, dict[str, Any]]:
    """name -> promtool test document, for every rule file that has tests."""
    docs = {}
    for rule_file in files:
        doc = test_document(rule_file, spec, f"{rule_file.name}.rules.yaml")
        if doc is not None:
            docs[rule_file.name] = doc
    return docs
