"""Sloth specs checked as Sloth checks them (pkg/common/validation in Sloth's source): each mistake is refused with
exit 2 and one line naming the file and the SLO, and nothing is written. What Sloth accepts (a 100% objective, a
7-day period with its own burn windows) is accepted, and the spec's labels reach every rule."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts import serialize
from core import conventions as c
from tests.conftest import require_binary, run_cli

ERRORS = 'sum(rate(http_requests_total{job="api",code=~"5.."}[{{.window}}]))'
TOTAL = 'sum(rate(http_requests_total{job="api"}[{{.window}}]))'


def spec(**slo: Any) -> dict[str, Any]:
    """A one-SLO spec that Sloth accepts, with `slo`'s keys replacing the SLO's own (None: removed)."""
    base = {"name": "availability", "objective": 99.9, "sli": {"events": {"error_query": ERRORS, "total_query": TOTAL}}}
    merged = {k: v for k, v in {**base, **slo}.items() if v is not None}
    return {"version": "prometheus/v1", "service": "api", "labels": {"owner": "web"}, "slos": [merged]}


def twice() -> dict[str, Any]:
    doc = spec()
    doc["slos"].append(copy.deepcopy(doc["slos"][0]))
    return doc


def with_spec(**top: Any) -> dict[str, Any]:
    return {**spec(), **top}


def _import(tmp_path: Path, doc: dict[str, Any], *args: str) -> tuple[Any, Path, Path]:
    path, out = tmp_path / "slos.yaml", tmp_path / "out"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return run_cli("rules", "import-sloth", str(path), "--out", str(out), *args), path, out


@pytest.mark.parametrize(
    ("doc", "args", "why"),
    [
        (twice(), (), "'availability' of service 'api' is declared twice"),
        (
            spec(sli={"events": {"error_query": TOTAL, "total_query": TOTAL}}),
            (),
            "error and total queries are the same",
        ),
        (
            spec(sli={"events": {"error_query": ERRORS, "total_query": TOTAL}, "raw": {"error_ratio_query": ERRORS}}),
            (),
            "only one SLI type is allowed, not events and raw",
        ),
        (spec(sli={"plugin": {"id": "sloth-common/availability"}}), (), "SLI plugins run inside Sloth"),
        (spec(sli=None), (), "needs an events or raw SLI"),
        (spec(name="-availability"), (), "invalid SLO name"),
        (spec(name="a"), (), "invalid SLO name"),
        (spec(name="avail ability"), (), "invalid SLO name"),
        (with_spec(service="api_"), (), "service 'api_': invalid service name"),
        (spec(labels={"2xx": "yes"}), (), "invalid label key '2xx'"),
        (spec(labels={"__name__": "x"}), (), "invalid label key '__name__'"),
        (with_spec(labels={"tier-1": "gold"}), (), "invalid label key 'tier-1'"),
        (spec(objective=0), (), "objective must be a number in (0, 100], not 0"),
        (spec(objective=100.5), (), "objective must be a number in (0, 100], not 100.5"),
        (spec(objective="99"), (), "objective must be a number in (0, 100], not '99'"),
        (spec(alerting={"name": "api availability"}), (), "invalid alert name 'api availability'"),
        (spec(alerting={"annotations": {"run-book": "x"}}), (), "invalid annotation key 'run-book'"),
        (spec(alerting={"page_alert": {"labels": {"team-name": "web"}}}), (), "invalid label key 'team-name'"),
        (spec(alerting={"ticket_alert": {"disable": "yes"}}), (), "disable: must be true or false"),
        (
            spec(sli={"events": {"error_query": 'sum(rollup_rate(x{a="1"}[{{.window}}]))', "total_query": TOTAL}}),
            (),
            "Prometheus cannot parse its PromQL (a MetricsQL-only query?)",
        ),
        (spec(), ("--window", "0d"), "SLO period 0d: an SLO period must be longer than the longest burn-rate window"),
        (spec(), ("--window", "1h"), "SLO period 1h: an SLO period must be longer than the longest burn-rate window"),
        (spec(), ("--window", "3d"), "SLO period 3d: an SLO period must be longer than the longest burn-rate window"),
    ],
    ids=[
        "the same SLO name twice",
        "identical error and total queries",
        "both events and raw",
        "a plugin SLI",
        "no SLI at all",
        "a name starting with a dash",
        "a one-character name",
        "a name with a space",
        "a service name ending with an underscore",
        "a label key starting with a digit",
        "the __name__ label",
        "a spec label key with a dash",
        "objective 0",
        "objective over 100",
        "objective as text",
        "an alert name with a space",
        "an annotation key with a dash",
        "a page alert label key with a dash",
        "disable as text",
        "a MetricsQL-only function",
        "a period of 0d (once a ZeroDivisionError)",
        "a period of 1h (once a duplicate rule)",
        "a period as long as the longest burn window",
    ],
)
def test_a_spec_sloth_refuses_exits_2_naming_the_file_and_the_slo_and_writes_nothing(
    tmp_path: Path, doc: dict[str, Any], args: tuple[str, ...], why: str
) -> None:
    result, path, out = _import(tmp_path, doc, *args)
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and str(path) in line and why in line, line
    if not args:  # a spec mistake names its SLO (a period mistake is the command's)
        assert "SLO '" in line or "service '" in line
    assert not out.exists()


def _rules(out: Path) -> list[dict[str, Any]]:
    doc = yaml.safe_load((out / f"{c.RULE_GROUP_PREFIX}-slo.yaml").read_text())
    return [r for g in doc["spec"]["groups"] for r in g["rules"]]


def test_a_100_percent_objective_is_accepted_and_alerts_on_the_first_bad_event(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    result, _, out = _import(tmp_path, spec(objective=100))
    assert result.exit_code == 0, result.output
    ok, output = serialize.promtool_check([out / f"{c.RULE_GROUP_PREFIX}-slo.yaml"], promtool)
    assert ok, output
    thresholds = {r["expr"].split(" > ")[1].split("\n")[0] for r in _rules(out) if "alert" in r}
    assert thresholds == {"0"}  # no budget: any bad event burns it (Sloth: `> (14.4 * 0)`)


@pytest.mark.parametrize(
    ("window", "factors"),
    [
        ("30d", {"1h": 14.4, "6h": 6, "1d": 3, "3d": 1}),
        ("28d", {"1h": 13.44, "6h": 5.6, "1d": 2.8, "3d": 0.9333333333}),
        # Sloth's 7-day catalog spends 8, 12.5, 20 and 42% of the week's budget
        ("7d", {"1h": 13.44, "6h": 3.5, "1d": 1.4, "3d": 0.98}),
    ],
)
def test_each_period_alerts_at_sloths_burn_factors(tmp_path: Path, window: str, factors: dict[str, float]) -> None:
    result, _, out = _import(tmp_path, spec(objective=99), "--window", window)
    assert result.exit_code == 0, result.output
    got = {r["labels"]["long"]: float(r["expr"].split(" > ")[1].split("\n")[0]) for r in _rules(out) if "alert" in r}
    # thresholds are written to 10 decimals
    assert got == {k: pytest.approx(v * 0.01, abs=1e-10) for k, v in factors.items()}


def test_the_specs_and_the_slos_labels_are_on_every_recording_and_alert(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    two = spec(labels={"tier": "gold"})
    two["slos"].append({**copy.deepcopy(two["slos"][0]), "name": "availability-strict", "objective": 99.99})
    result, _, out = _import(tmp_path, two)
    assert result.exit_code == 0, result.output
    rules = _rules(out)
    assert len(rules) == 2 * (len(c.BURN_RATE_WINDOWS) + 8 + 2)  # 7 windows + the period, objective, budget
    for rule in rules:
        assert {"owner": "web", c.L_SLO_SERVICE: "api"}.items() <= rule["labels"].items(), rule
    assert all(r["labels"].get("tier") == "gold" for r in rules if r["labels"][c.L_SLO_NAME] == "availability")
    # two SLOs of a service no longer make duplicate alerts (promtool's lint, now fatal)
    ok, output = serialize.promtool_check([out / f"{c.RULE_GROUP_PREFIX}-slo.yaml"], promtool)
    assert ok, output


def test_rules_check_fails_when_promtool_finds_duplicate_rules(tmp_path: Path) -> None:
    require_binary("promtool")
    rule = {"record": "job:up:sum", "expr": "sum(up)"}
    (tmp_path / "dup.yaml").write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [rule, rule]}]}))
    result = run_cli("rules", "check", str(tmp_path))
    assert result.exit_code == 2 and "duplicate rule" in result.output and "promtool rejected" in result.output


def test_an_slo_period_shorter_than_the_burn_windows_is_refused_in_the_settings_too(tmp_path: Path) -> None:
    config = tmp_path / "gpuledger.yaml"
    config.write_text(yaml.safe_dump({"serving": {"sloth_window": "1h"}}))
    from click.testing import CliRunner

    from app.cli import main

    result = CliRunner().invoke(main, ["--config", str(config), "rules", "generate", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "sloth_window" in result.output and "longer than the longest" in result.output


ALERTING = {
    "name": "ApiAvailabilityBurn",
    "labels": {"team": "web", "severity": "sev2"},
    "annotations": {"runbook": "https://runbooks.example/api"},
    "page_alert": {"labels": {"route": "pager"}, "annotations": {"summary": "API burns its budget"}},
    "ticket_alert": {"labels": {"route": "jira"}},
}


def _alerts_of(rules: list[dict[str, Any]], slo: str) -> list[dict[str, Any]]:
    return [r for r in rules if "alert" in r and r["labels"][c.L_SLO_NAME] == slo]


def test_alerting_metadata_names_labels_and_annotates_each_alert_and_disabled_kinds_are_not_written(
    tmp_path: Path,
) -> None:
    promtool = require_binary("promtool")
    doc = spec(alerting=ALERTING)
    quiet = {"page_alert": {"disable": True}, "ticket_alert": {"disable": True}}
    doc["slos"] += [{**spec()["slos"][0], "name": "latency", "alerting": quiet},
                    {**spec()["slos"][0], "name": "errors", "alerting": {"page_alert": {"disable": True}}}]  # fmt: skip
    result, _, out = _import(tmp_path, doc)
    assert result.exit_code == 0, result.output
    rules = _rules(out)
    alerts = _alerts_of(rules, "availability")
    assert [a["alert"] for a in alerts] == ["ApiAvailabilityBurn"] * 4
    for a in alerts:
        kind = a["labels"]["burn"]
        route = {"page": "pager", "ticket": "jira"}[kind]
        # the spec's severity replaces gpuledger's; the pair labels stay
        assert {"team": "web", "severity": "sev2", "route": route, "owner": "web"}.items() <= a["labels"].items()
        assert a["annotations"]["runbook"] == "https://runbooks.example/api"
        assert (a["annotations"]["summary"] == "API burns its budget") == (kind == "page")
        assert a["annotations"]["runbook_url"]  # gpuledger's own annotations stay beside the spec's
    assert _alerts_of(rules, "latency") == []  # Sloth's no-alerts example: recordings only
    assert {a["labels"]["burn"] for a in _alerts_of(rules, "errors")} == {"ticket"}
    assert len(_alerts_of(rules, "errors")) == 2 and all(
        a["alert"] == c.ALERT_SLO_BURN for a in _alerts_of(rules, "errors")
    )
    assert sum(1 for r in rules if "record" in r and r["labels"][c.L_SLO_NAME] == "latency") == 10
    ok, output = serialize.promtool_check([out / f"{c.RULE_GROUP_PREFIX}-slo.yaml"], promtool)
    assert ok, output


def test_the_severity_label_values_come_from_the_settings(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from app.cli import main

    config = tmp_path / "gpuledger.yaml"
    config.write_text(yaml.safe_dump({"rules": {"slo_page_severity": "P1", "slo_ticket_severity": "P3"}}))
    path, out = tmp_path / "slos.yaml", tmp_path / "out"
    path.write_text(yaml.safe_dump(spec()))
    args = ["--config", str(config), "rules", "import-sloth", str(path), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    got = {(r["labels"]["burn"], r["labels"]["severity"]) for r in _rules(out) if "alert" in r}
    assert got == {("page", "P1"), ("ticket", "P3")}


def _crd(doc: dict[str, Any]) -> dict[str, Any]:
    """The same spec as Sloth's Kubernetes resource: camelCase keys, the SLOs under `spec`."""
    slos = []
    for slo in doc["slos"]:
        events = slo["sli"]["events"]
        alerting = {{"page_alert": "pageAlert", "ticket_alert": "ticketAlert"}.get(k, k): v
                    for k, v in slo.get("alerting", {}).items()}  # fmt: skip
        sli = {"events": {"errorQuery": events["error_query"], "totalQuery": events["total_query"]}}
        slos.append({**slo, "sli": sli, "alerting": alerting})
    return {"apiVersion": "sloth.slok.dev/v1", "kind": "PrometheusServiceLevel",
            "metadata": {"name": "api", "namespace": "monitoring"},
            "spec": {"service": doc["service"], "labels": doc["labels"], "slos": slos}}  # fmt: skip


@pytest.mark.parametrize("naming", ["gpuledger", "sloth"])
def test_sloths_kubernetes_resource_gives_the_same_rules_as_the_prometheus_v1_spec(tmp_path: Path, naming: str) -> None:
    doc = spec(alerting=ALERTING)
    outputs = []
    for i, form in enumerate((doc, _crd(doc))):
        result, _, out = _import_in(tmp_path / str(i), form, "--naming", naming)
        assert result.exit_code == 0, result.output
        outputs.append(_rules(out))
    assert outputs[0] == outputs[1] and len(outputs[0]) > 10


def _import_in(folder: Path, doc: dict[str, Any], *args: str) -> tuple[Any, Path, Path]:
    folder.mkdir()
    return _import(folder, doc, *args)


# a bad probe failed or was slow: `or` in a subquery, which the warehouse does not read
SUBQUERY = {
    "error_query": 'sum(count_over_time((probe_duration_seconds{job="api"} > 0.5 or probe_success{job="api"} == 0)'
    "[{{.window}}:5m]))",
    "total_query": 'sum(count_over_time(probe_success{job="api"}[{{.window}}:5m]))',
}


def test_promql_the_warehouse_cannot_read_is_written_as_rules_only_and_its_alert_fires(tmp_path: Path) -> None:
    """A probe SLO over subqueries (Sloth accepts any PromQL): exit 0, the SLO named as rules only, its
    recordings made of its own queries, and the page alert firing on promtool when every probe fails."""
    promtool = require_binary("promtool")
    result, _, out = _import(tmp_path, spec(objective=99, sli={"events": SUBQUERY}))
    assert result.exit_code == 0, result.output
    assert "api availability: rules only, the warehouse reports cannot evaluate it" in result.output
    rules = _rules(out)
    one_hour = next(r for r in rules if r.get("record") == "slo:gpuledger_sli_error:ratio_rate1h")
    assert SUBQUERY["error_query"].replace("{{.window}}", "1h") in one_hour["expr"]
    ok, output = serialize.promtool_check([out / f"{c.RULE_GROUP_PREFIX}-slo.yaml"], promtool)
    assert ok, output
    plain = yaml.safe_load((out / f"{c.RULE_GROUP_PREFIX}-slo.yaml").read_text())["spec"]
    (out / "plain.yaml").write_text(yaml.safe_dump(plain))
    # all four pairs burn: every probe fails from the start (the annotations are the rules' own, as written)
    expected = [{"exp_labels": {**_slo_labels(), **r["labels"]}, "exp_annotations": r["annotations"]}
                for r in rules if "alert" in r]  # fmt: skip
    assert len(expected) == 4
    test = {"rule_files": ["plain.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": 'probe_success{job="api"}', "values": "0x120"}],
        "alert_rule_test": [{"eval_time": "70m", "alertname": c.ALERT_SLO_BURN, "exp_alerts": expected}]}]}  # fmt: skip
    (out / "t.test.yaml").write_text(yaml.safe_dump(test))
    proc = subprocess.run([promtool, "test", "rules", "t.test.yaml"], cwd=out, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _slo_labels() -> dict[str, str]:
    return {"owner": "web", c.L_SLO_SERVICE: "api", c.L_SLO_NAME: "availability"}


def test_a_one_minus_good_over_total_ratio_is_read_as_total_less_good() -> None:
    from analytics.serving.sloth import slos_from_spec

    good = 'sum(rate(http_requests_total{job="api",code!~"5.."}[{{.window}}]))'
    total = 'sum(rate(http_requests_total{job="api"}[{{.window}}]))'
    for query in (f"1 - ({good} / {total})", f"1 - {good} / {total}"):
        (slo,) = slos_from_spec(spec(sli={"raw": {"error_ratio_query": query}}), "s.yaml", 30 * 86400)
        assert slo.rules_only is None, slo.rules_only
        assert [(t.sign, t.selector.promql()) for t in slo.sli.bad] == [
            (1, 'http_requests_total{job="api"}'), (-1, 'http_requests_total{job="api",code!~"5.."}')]  # fmt: skip
        assert [t.selector.promql() for t in slo.sli.total] == ['http_requests_total{job="api"}']
