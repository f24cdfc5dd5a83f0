"""The Dockerfile and deploy/ manifests: valid Kubernetes (kubernetes-validate, offline schemas), the
PrometheusRules valid against the CRD and identical to rules/, and consistent with gpuledger itself
(its settings model, its commands, the paths and ports they use)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from app.cli.serve import check_settings
from core.settings import load_settings
from core.timeutil import parse_duration
from tests.conftest import FIXTURES, run_cli

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30.0"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _all() -> dict[str, dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    return {f"{d['kind']}/{d['metadata']['name']}": d for name in kustomization["resources"] for d in _docs(name)}


BUILTIN = [k for k, d in _all().items() if d["apiVersion"].split("/")[0] in ("v1", "apps")]


@pytest.mark.parametrize("key", BUILTIN)
def test_every_builtin_manifest_validates_against_the_kubernetes_schema(key: str) -> None:
    kubernetes_validate.validate(_all()[key], K8S_VERSION, strict=True)


def test_the_prometheusrules_are_rules_directory_and_valid_against_the_crd() -> None:
    expected = "".join("---\n" + p.read_text() for p in sorted((ROOT / "rules").glob("*.yaml")))
    assert (DEPLOY / "prometheusrules.yaml").read_text() == expected, "stale: run `make golden`"
    crd = yaml.safe_load((FIXTURES / "prometheusrule-crd.yaml").read_text())
    validator = jsonschema.Draft7Validator(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    rules = _docs("prometheusrules.yaml")
    assert {r["metadata"]["name"] for r in rules} >= {"gpuledger-cost", "gpuledger-service"}
    for doc in rules:
        assert doc["kind"] == "PrometheusRule"
        errors = list(validator.iter_errors({"spec": doc["spec"]}))
        assert not errors, f"{doc['metadata']['name']}: {errors[0].message}"


def test_the_servicemonitor_scrapes_the_metrics_port_of_the_service_the_pod_serves() -> None:
    objects = _all()
    monitor, service, deployment = (
        objects["ServiceMonitor/gpuledger"],
        objects["Service/gpuledger"],
        objects["Deployment/gpuledger"],
    )
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    container_ports = {p["name"]: p["containerPort"] for c in _containers(deployment) for p in c["ports"]}
    assert {p["targetPort"] for p in ports.values()} <= set(container_ports)
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def _containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


def test_the_configmaps_settings_are_valid_gpuledger_settings_that_match_the_pod(tmp_path: Path) -> None:
    objects = _all()
    config = tmp_path / "gpuledger.yaml"
    config.write_text(objects["ConfigMap/gpuledger-config"]["data"]["gpuledger.yaml"])
    settings = load_settings(config, env={})
    check_settings(settings)
    pod = objects["Deployment/gpuledger"]["spec"]["template"]["spec"]
    mounts = {
        m["name"]: m["mountPath"] for c in _containers(objects["Deployment/gpuledger"]) for m in c["volumeMounts"]
    }
    assert settings.warehouse.path.parent == Path(mounts["data"]) == settings.export.directory.parent
    assert settings.dashboard.auth == "oidc" and settings.dashboard.secrets_file is not None
    assert settings.dashboard.secrets_file.parent == Path(mounts["oidc"])
    assert settings.service.metrics_host == "0.0.0.0" and settings.service.metrics_port == 9464
    assert pod["terminationGracePeriodSeconds"] > parse_duration(settings.service.stop_timeout)
    assert objects["Deployment/gpuledger"]["spec"]["strategy"]["type"] == "Recreate"  # one writer at a time
    for container in _containers(objects["Deployment/gpuledger"]):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert run_cli(*container["args"], "--help").exit_code == 0  # a real gpuledger command


def test_the_image_installs_every_package_and_the_dashboard_pages(tmp_path: Path) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, flags=re.M))
    assert copied == {"core", "collectors", "analytics", "alerts", "app"}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("gpuledger-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    pages = {f"app/dashboard/pages/{p.name}" for p in (ROOT / "app" / "dashboard" / "pages").glob("*.py")}
    assert pages <= names and "app/dashboard/streamlit_app.py" in names
    assert {"collectors/pricing/data/prices-default.csv", "analytics/health/data/xid-catalog.yaml"} <= names
