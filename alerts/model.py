"""The rule model: what a PrometheusRule holds, independent of YAML."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from core import conventions as c


@dataclass(frozen=True)
class Rule:
    expr: str
    record: str | None = None
    alert: str | None = None
    for_: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.record is None) == (self.alert is None):
            raise ValueError("a rule is either a recording rule or an alert")


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Rule, ...]
    interval: str | None = None


@dataclass(frozen=True)
class RuleFile:
    """One PrometheusRule object (one domain: recording, cost, health, compliance...)."""

    name: str
    namespace: str
    groups: tuple[Group, ...]


def promql_string(value: str) -> str:
    """A PromQL string literal holding exactly `value` (team names, instance types from price files).

    JSON escapes quotes, backslashes and control characters with a subset of the Go escapes PromQL
    reads, so no value can end the matcher early or change the expression."""
    return json.dumps(value, ensure_ascii=False)


def alert(
    name: str,
    expr: str,
    severity: str,
    summary: str,
    description: str,
    runbook_url: str,
    for_: str | None = None,
    **labels: str,
) -> Rule:
    """An alerting rule with what every gpuledger alert carries: a severity and the three annotations."""
    return Rule(
        alert=name,
        expr=expr,
        for_=for_ or None,
        labels={"severity": severity, **labels},
        annotations={"summary": summary, "description": description, "runbook_url": runbook_url},
    )


def runbook(anchor: str) -> str:
    """The README section an alert's runbook_url points at."""
    return f"{c.RUNBOOK_BASE_URL}#{anchor}"


def gpu_requests(resource: str = c.GPU_RESOURCE_REGEX) -> str:
    """kube-state-metrics' GPU requests (whole GPUs, MIG instances and replicas; or the resources `resource` matches)."""
    return f'{c.KSM_POD_REQUESTS}{{resource=~"{resource}"}}'


def in_phase(phase: str) -> str:
    """1 per pod in `phase` (HA copies of kube-state-metrics max-ed)."""
    return f'max by (namespace, pod) ({c.KSM_POD_PHASE}{{phase="{phase}"}} == 1)'
