"""SLO rules: burn-rate thresholds as the SRE Workbook defines them, each window pair proven on
promtool, and the generated alerts on a real Prometheus firing when and only when gpuledger's own
SLO report says the same pair burns (the week with the day-5 regression)."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from alerts import serialize
from alerts import slo as slo_rules
from alerts.generator import RuleSpec, slo
from alerts.promtool_series import alerts_at, close_to
from alerts.promtool_series import series as promtool_series
from analytics.serving import slo as slo_mod
from app.publish.slo_rules import declared
from core import conventions as c
from core.settings import Settings
from core.store.warehouse import open_warehouse
from core.timeutil import parse_ts, to_epoch
from tests.conftest import require_binary, run_cli, serve_prometheus
from tests.test_slo import SLOTH_SPEC, serving_settings


@pytest.mark.parametrize(
    ("period_days", "expected"),
    [
        (30, (14.4, 6.0, 3.0, 1.0)),
        (28, (13.44, 5.6, 2.8, 0.9333)),
        (7, (13.44, 3.5, 1.4, 0.98)),
        (14, (6.72, 2.8, 1.4, 0.4667)),
    ],
    ids=["30 days: the Workbook's 14.4, 6, 3, 1", "28 days", "7 days: Sloth's 7d catalog", "14 days: scaled"],
)
def test_burn_factors_spend_the_periods_budget_share_in_the_long_window(period_days: int, expected: tuple) -> None:
    windows = c.burn_rate_windows(period_days * 86400)
    got = [slo_rules.burn_factor(pct, long, period_days) for long, _, pct, _ in windows]
    assert got == [pytest.approx(x, abs=1e-4) for x in expected]


# (service, errors per 100 requests each minute or a literal counter, window pairs that must page/ticket)
SCENARIOS = [
    ("s20", "0+20x180", {"1h", "6h", "1d", "3d"}),
    ("s10", "0+10x180", {"6h", "1d", "3d"}),
    ("s5", "0+5x180", {"1d", "3d"}),
    ("s2", "0+2x180", {"3d"}),
    ("s05", "0+0.5x180", set()),
    ("burst", "0+100x20 2000x160", {"1d", "3d"}),  # every request failed for 20 minutes, then none
    ("idle", "0x180", set()),
]


def _reference(service: str) -> slo_rules.SLORule:
    w = slo_rules.WINDOW_MARK
    return slo_rules.SLORule(
        service=service,
        slo="availability",
        objective=99.0,
        period_days=30,
        bad=f'sum(rate(req_errors_total{{svc="{service}"}}[{w}]))',
        total=f'sum(rate(req_total{{svc="{service}"}}[{w}]))',
    )


def _expected(service: str, longs: set[str]) -> list[str]:
    out = []
    for long, short, _, kind in c.BURN_RATE_WINDOWS:
        if long in longs:
            labels = f'burn="{kind}",{c.L_SLO_SERVICE}="{service}",{c.L_SLO_NAME}="availability"'
            out.append(f'{labels},long="{long}",severity="{slo_rules.SEVERITY[kind]}",short="{short}"')
    return out


def _promtool_document(rules_file: str) -> dict[str, Any]:
    inputs = []
    for service, errors, _ in SCENARIOS:
        total = "0x180" if service == "idle" else "0+100x180"
        inputs += [
            promtool_series("req_total", f'svc="{service}"', total),
            promtool_series("req_errors_total", f'svc="{service}"', errors),
        ]
    checks = [alerts_at("60m", c.ALERT_SLO_BURN, [x for s, _, longs in SCENARIOS for x in _expected(s, longs)])]
    s20 = f'{{{c.L_SLO_NAME}="availability",{c.L_SLO_SERVICE}="s20"}}'
    checks += [
        close_to(f"{slo_rules.ratio_record('1h')}{s20}", 0.2, "60m", s20),
        close_to(f"{c.REC_SLO_BUDGET_REMAINING}{s20}", -19, "60m", s20),  # 20% bad against a 1% budget
        {"expr": f'{slo_rules.ratio_record("1h")}{{{c.L_SLO_SERVICE}="idle"}}', "eval_time": "60m", "exp_samples": []},
    ]
    return {
        "rule_files": [rules_file],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "each window pair fires at its burn rate",
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": checks,
            }
        ],
    }


def test_each_window_pair_fires_at_its_burn_rate_and_a_silent_service_records_nothing(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    rule_file = slo(RuleSpec(slos=tuple(_reference(s) for s, _, _ in SCENARIOS)))
    assert rule_file is not None
    (tmp_path / "slo.rules.yaml").write_text(serialize.render(rule_file, "rulefile"))
    (tmp_path / "slo.test.yaml").write_text(serialize.dump(_promtool_document("slo.rules.yaml")))
    proc = subprocess.run(
        [promtool, "test", "rules", "slo.test.yaml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_sloth_spec_imports_as_rules_promtool_accepts_with_the_periods_thresholds(tmp_path: Path) -> None:
    spec = tmp_path / "sloth.yaml"
    spec.write_text(yaml.safe_dump(SLOTH_SPEC))
    result = run_cli("rules", "import-sloth", str(spec), "--out", str(tmp_path / "out"), "--window", "28d")
    assert result.exit_code == 0, result.output
    ok, output = serialize.promtool_check([tmp_path / "out" / f"{c.RULE_GROUP_PREFIX}-slo.yaml"], "promtool")
    assert ok, output
    doc = yaml.safe_load((tmp_path / "out" / f"{c.RULE_GROUP_PREFIX}-slo.yaml").read_text())
    alerts = [r for g in doc["spec"]["groups"] for r in g["rules"] if "alert" in r]
    thresholds = {(r["labels"]["long"], r["expr"].split(" > ")[1].split("\n")[0]) for r in alerts}
    # 97% over 28 days: budget 0.03 x 13.44, 5.6, 2.8, 0.9333...
    assert ("1h", "0.4032") in thresholds and ("6h", "0.168") in thresholds and ("1d", "0.084") in thresholds


def test_a_spec_with_an_unreadable_query_is_refused_naming_the_file(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    bad = {
        **SLOTH_SPEC,
        "slos": [{**SLOTH_SPEC["slos"][0], "sli": {"events": {"error_query": "x", "total_query": "y"}}}],
    }
    spec.write_text(yaml.safe_dump(bad))
    result = run_cli("rules", "import-sloth", str(spec), "--out", str(tmp_path / "out"))
    assert result.exit_code != 0 and str(spec) in result.output
    assert not (tmp_path / "out").exists()


WEEK = parse_ts("2026-11-02T00:00:00Z")
STEP_S = 6 * 3600


@pytest.fixture(scope="module")
def week_slos(week_serving_warehouse: Path) -> tuple[slo_rules.SLORule, ...]:
    """The simulated services' SLOs (30-day period) as gpuledger resolves them against the warehouse."""
    settings = Settings.model_validate(
        {"warehouse": {"path": str(week_serving_warehouse)}, "serving": serving_settings("30d").model_dump()}
    )
    return declared(settings)


def _inlined(s: slo_rules.SLORule, expr: str) -> str:
    """The alert with the SLO's recorded ratios replaced by their expressions (what the recording
    rules hold at each evaluation)."""
    for w in slo_rules.WINDOWS:
        expr = expr.replace(s.selector(slo_rules.ratio_record(w)), f"({s.ratio(w)})")
    return expr


def _prometheus_firing(url: str, slos: tuple[slo_rules.SLORule, ...], times: list[int]) -> set:
    out = set()
    for s in slos:
        group = slo_rules.alerts(s)
        assert group is not None
        for rule in group.rules:
            assert rule.alert is not None
            params = {"query": _inlined(s, rule.expr), "start": times[0], "end": times[-1], "step": STEP_S}
            answer = requests.get(f"{url}/api/v1/query_range", params=params, timeout=300).json()
            assert answer["status"] == "success", answer
            for series in answer["data"]["result"]:
                out |= {(s.service, s.slo, rule.labels["long"], int(float(t))) for t, _ in series["values"]}
    return out


def _report_firing(warehouse: Path, times: list[int]) -> tuple[set, set]:
    """(firing, too close to call): a burn rate within 3% of its threshold may round either way
    between Prometheus's extrapolated rate() and the warehouse's exact increases."""
    firing, close = set(), set()
    with open_warehouse(warehouse, read_only=True) as con:
        defs = slo_mod.build_slos(con, serving_settings("30d"), [], WEEK + timedelta(days=7))
        for t in times:
            now = WEEK + timedelta(seconds=t - to_epoch(WEEK))
            for d in defs:
                for b in slo_mod.evaluate(con, d, now).burn:
                    key = (d.service, d.name, b.long, t)
                    if b.firing:
                        firing.add(key)
                    rates = [r for r in (b.long_rate, b.short_rate) if r is not None]
                    if any(abs(r - b.factor) <= 0.03 * b.factor for r in rates):
                        close.add(key)
    return firing, close


def test_burn_alerts_fire_on_prometheus_exactly_when_the_slo_report_says_they_burn(
    sim_week: Path, week_serving_warehouse: Path, week_slos: tuple, tmp_path: Path
) -> None:
    times = [int(to_epoch(WEEK)) + k * STEP_S for k in range(2, 7 * 24 * 3600 // STEP_S + 1)]
    with serve_prometheus([sim_week / "vllm.om"], tmp_path) as url:
        prom = _prometheus_firing(url, week_slos, times)
    report, close = _report_firing(week_serving_warehouse, times)
    assert prom - close == report - close
    days = {(svc, name, parse_ts("1970-01-01T00:00:00Z") + timedelta(seconds=t)) for svc, name, _, t in prom}
    assert {(svc, name) for svc, name, _ in days} == {("llm-infer", "e2e-latency"), ("llm-infer", "ttft")}
    assert {day.date().isoformat() for _, _, day in days} <= {"2026-11-06", "2026-11-07", "2026-11-08"}
