"""Generated PrometheusRules: golden files in rules/, promtool-valid, CRD-valid."""

from __future__ import annotations

import filecmp
from pathlib import Path

import jsonschema
import yaml

from alerts import generator, serialize
from tests.conftest import FIXTURES, require_binary, run_cli

ROOT = Path(__file__).resolve().parents[1]


def test_rules_directory_matches_a_fresh_generation_for_the_default_settings(tmp_path: Path) -> None:
    assert run_cli("rules", "generate", "--out", str(tmp_path)).exit_code == 0
    for sub in ("", "tests"):
        ours = sorted(p.name for p in (ROOT / "rules" / sub).glob("*.yaml"))
        fresh = sorted(p.name for p in (tmp_path / sub).glob("*.yaml"))
        assert ours == fresh
        match, mismatch, errors = filecmp.cmpfiles(ROOT / "rules" / sub, tmp_path / sub, fresh, shallow=False)
        assert not mismatch and not errors, f"rules/{sub} is stale: run `make golden` ({mismatch})"


def test_the_generated_unit_tests_pass_on_promtool() -> None:
    require_binary("promtool")
    result = run_cli("rules", "test", str(ROOT / "rules"))
    assert result.exit_code == 0, result.output
    assert result.output.count("SUCCESS") == len(list((ROOT / "rules" / "tests").glob("*.test.yaml")))


def test_a_team_spending_faster_than_its_budget_pace_alerts(tmp_path: Path) -> None:
    require_binary("promtool")
    config = tmp_path / "s.yaml"
    config.write_text('budgets:\n  monthly_usd:\n    vision: "20000"\n')  # pace 27.40 $/h; 8 x p5 = 55.04 $/h
    from click.testing import CliRunner

    from app.cli import main

    out = tmp_path / "rules"
    assert CliRunner().invoke(main, ["--config", str(config), "rules", "generate", "--out", str(out)]).exit_code == 0
    test_doc = (out / "tests" / "gpuledger-cost.test.yaml").read_text()
    assert 'label_team="vision",severity="warning"' in test_doc
    result = run_cli("rules", "test", str(out))
    assert result.exit_code == 0, result.output


def test_a_rule_that_no_longer_matches_its_tests_fails_them(tmp_path: Path) -> None:
    require_binary("promtool")
    assert run_cli("rules", "generate", "--out", str(tmp_path)).exit_code == 0
    rules = tmp_path / "tests" / "gpuledger-cost.rules.yaml"
    rules.write_text(rules.read_text().replace("[2h]) < 0.1", "[2h]) < 0.01"))
    result = run_cli("rules", "test", str(tmp_path))
    assert result.exit_code == 2 and "FAILED" in result.output


def test_promtool_accepts_every_generated_rule_file() -> None:
    promtool = require_binary("promtool")
    ok, output = serialize.promtool_check(sorted((ROOT / "rules").glob("*.yaml")), promtool)
    assert ok, output
    assert output.count("SUCCESS") == len(list((ROOT / "rules").glob("*.yaml")))


def test_every_rule_file_validates_against_the_prometheusrule_crd_schema() -> None:
    crd = yaml.safe_load((FIXTURES / "prometheusrule-crd.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    # Draft 7 without the meta-schema check: the CRD's Go regex '^(?i)(abort|warn)?$' is not a Python regex
    validator = jsonschema.Draft7Validator(schema)
    for path in (ROOT / "rules").glob("*.yaml"):
        spec_part = {"spec": yaml.safe_load(path.read_text())["spec"]}
        errors = list(validator.iter_errors(spec_part))
        assert not errors, f"{path.name}: {errors[0].message}"


def test_alerts_carry_severity_summary_description_and_runbook() -> None:
    for rule_file in generator.generate(generator.RuleSpec()):
        for group in rule_file.groups:
            for rule in group.rules:
                if rule.alert:
                    assert rule.alert[0].isupper() and rule.labels["severity"] in ("critical", "warning", "info")
                    assert {"summary", "description", "runbook_url"} <= set(rule.annotations)
                else:
                    assert rule.record and rule.record.count(":") == 2


def test_the_exported_label_style_maps_exported_pod_onto_pod() -> None:
    rec = generator.recording(generator.RuleSpec(workload_label_style="exported"))
    active = next(r for r in rec.groups[0].rules if r.record and "engine_active" in r.record)
    assert 'exported_pod!=""' in active.expr and '"pod", "$1", "exported_pod"' in active.expr


def test_rules_check_fails_cleanly_on_an_invalid_rule(tmp_path: Path) -> None:
    require_binary("promtool")
    (tmp_path / "bad.yaml").write_text("groups:\n- name: x\n  rules:\n  - alert: Bad\n    expr: rate((\n")
    result = run_cli("rules", "check", str(tmp_path))
    assert result.exit_code == 2 and "promtool rejected" in result.output
