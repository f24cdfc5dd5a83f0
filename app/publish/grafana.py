"""Grafana dashboards for the Prometheus gpuledger's rules feed (`gpuledger dashboards generate`), built with the
Grafana Foundation SDK and shipped as ConfigMaps the kube-prometheus-stack sidecar loads (`grafana_dashboard`).

Three dashboards, every query over series the generated rules record or dcgm-exporter and kube-state-metrics
export (names from core/conventions.py), with template variables for cluster, team and namespace:
- cost by team and namespace: GPUs held, GPU-hours, cost rate, idle share of the fleet's GPUs, engine activity;
- fleet GPU health: Xid events by catalog class (the alert rules' own code sets), ECC and row remapping,
  temperature and thermal throttling, GPUs not reporting;
- SLOs: a row per SLO (repeated over `$slo`): SLI per window, error budget remaining, burn rates.
Each query is checked by the tests on a real Prometheus holding the demo's data.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

from alerts import serialize
from alerts.generator import FLEET_GPUS, silent_gpus
from alerts.health import XID_CLASSES, xid_codes
from analytics.health.xid_catalog import XidCatalog
from core import conventions as c

DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
CLUSTER = f'{c.L_CLUSTER}=~"$cluster"'
GPU = "Hostname, UUID"


def _variables(d: gd.Dashboard, *names: tuple[str, str, str]) -> gd.Dashboard:
    d = d.with_variable(gd.DatasourceVariable("datasource").label("Data source").type("prometheus"))
    for name, label, query in names:
        d = d.with_variable(
            gd.QueryVariable(name).label(label).datasource(DS).query(query).include_all(True).all_value(".*")
            .multi(True).refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        )  # fmt: skip
    return d


CLUSTER_VAR = ("cluster", "Cluster", f"label_values({c.DCGM_GPU_TEMP}, {c.L_CLUSTER})")


def _series(title: str, unit: str, *targets: tuple[str, str]) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DS).height(8).span(12)
    for expr, legend in targets:
        panel = panel.with_target(prometheus.Dataquery().expr(expr).legend_format(legend))
    return panel


def _stat(title: str, unit: str, expr: str) -> stat.Panel:
    target = prometheus.Dataquery().expr(expr).instant()
    return stat.Panel().title(title).unit(unit).datasource(DS).height(4).span(6).with_target(target)


def cost() -> gd.Dashboard:
    team = f'{c.L_KSM_TEAM}=~"$team"'
    pods = f'namespace=~"$namespace",{CLUSTER}'
    d = gd.Dashboard("gpuledger / Cost by team and namespace").uid("gpuledger-cost").tags(["gpuledger", "cost"])
    d = _variables(d, CLUSTER_VAR, ("team", "Team", f"label_values({c.REC_TEAM_GPU_COST}, {c.L_KSM_TEAM})"),
                   ("namespace", "Namespace", f"label_values({c.REC_POD_GPU_COST}, namespace)"))  # fmt: skip
    held = f"sum({c.REC_POD_GPU_SHARE}{{{pods}}})"
    return (
        d.with_row(gd.Row("Fleet"))
        .with_panel(_stat("GPU-hours held in the range", "h", f"sum_over_time({held}[$__range:1m]) / 60"))
        .with_panel(
            _stat(
                "Cost in the range (USD)",
                "currencyUSD",
                f"sum_over_time(sum({c.REC_POD_GPU_COST}{{{pods}}})[$__range:1m]) / 60",
            )
        )  # fmt: skip
        .with_panel(_stat("Idle share of the GPUs", "percentunit", f"1 - sum({c.REC_POD_GPU_SHARE}) / {FLEET_GPUS}"))
        .with_panel(
            _stat(
                "GPU engine activity of held GPUs",
                "percentunit",
                f'avg({c.REC_POD_GPU_ACTIVE}{{namespace=~"$namespace"}})',
            )
        )  # fmt: skip
        .with_row(gd.Row("By team"))
        .with_panel(
            _series(
                "GPUs held by team",
                "none",
                (f"sum by ({c.L_KSM_TEAM}) ({c.REC_TEAM_GPU_ALLOCATION}{{{team}}})", f"{{{{{c.L_KSM_TEAM}}}}}"),
            )
        )
        .with_panel(
            _series(
                "Cost rate by team (USD/h)",
                "currencyUSD",
                (f"sum by ({c.L_KSM_TEAM}) ({c.REC_TEAM_GPU_COST}{{{team}}})", f"{{{{{c.L_KSM_TEAM}}}}}"),
            )
        )  # fmt: skip
        .with_row(gd.Row("By namespace"))
        .with_panel(
            _series(
                "Cost rate by namespace (USD/h)",
                "currencyUSD",
                (f"sum by (namespace) ({c.REC_POD_GPU_COST}{{{pods}}})", "{{namespace}}"),
            )
        )  # fmt: skip
        .with_panel(
            _series(
                "Efficiency: GPU engine activity by namespace",
                "percentunit",
                (f'avg by (namespace) ({c.REC_POD_GPU_ACTIVE}{{namespace=~"$namespace"}})', "{{namespace}}"),
            )
        )  # fmt: skip
    )


def health(catalog: XidCatalog) -> gd.Dashboard:
    d = gd.Dashboard("gpuledger / Fleet GPU health").uid("gpuledger-health").tags(["gpuledger", "health"])
    d = _variables(d, CLUSTER_VAR)
    # one series per catalog class a GPU's Xid codes fall in (the alert rules' own code sets)
    xid = " or ".join(
        f'label_replace({c.DCGM_XID}{{{c.L_ERR_CODE}=~"{xid_codes(catalog, sev)}",{CLUSTER}}}, "class", '
        f'"{name.removeprefix("GpuledgerGPUXid").lower()}", "", "")'
        for sev, name, _ in XID_CLASSES
    )
    return (
        d.with_row(gd.Row("Errors"))
        .with_panel(
            _series(
                "GPUs showing an Xid, by catalog class",
                "none",
                (f"count by (class) (count by ({GPU}, {c.L_ERR_CODE}, class) ({xid}))", "{{class}}"),
            )
        )  # fmt: skip
        .with_panel(
            _series(
                "Double-bit ECC errors (increase over 1h)",
                "none",
                (f"sum by ({GPU}) (increase({c.DCGM_ECC_DBE_VOL}{{{CLUSTER}}}[1h]))", "{{Hostname}} {{UUID}}"),
            )
        )  # fmt: skip
        .with_panel(
            _series(
                "Row remapping: failed and pending",
                "none",
                (f"max by ({GPU}) ({c.DCGM_ROW_REMAP_FAILURE}{{{CLUSTER}}})", "failed {{Hostname}} {{UUID}}"),
                (f"max by ({GPU}) ({c.DCGM_ROW_REMAP_PENDING}{{{CLUSTER}}})", "pending {{Hostname}} {{UUID}}"),
            )
        )  # fmt: skip
        .with_row(gd.Row("Heat and reporting"))
        .with_panel(
            _series(
                "Temperature (hottest GPUs)",
                "celsius",
                (f"topk(10, max by ({GPU}) ({c.DCGM_GPU_TEMP}{{{CLUSTER}}}))", "{{Hostname}} {{UUID}}"),
            )
        )  # fmt: skip
        .with_panel(
            _series(
                "Thermal throttling (share of the time)",
                "percentunit",
                (
                    f"max by ({GPU}) (rate({c.DCGM_THERMAL_VIOLATION}{{{CLUSTER}}}[$__rate_interval])) / 1e9",
                    "{{Hostname}} {{UUID}}",
                ),
            )
        )  # fmt: skip
        .with_panel(
            _series(
                "GPUs not reporting for 10 minutes",
                "none",
                (f"count({silent_gpus('10m')})", "silent GPUs"),
            )
        )  # fmt: skip
    )


def slos() -> gd.Dashboard:
    ids = f'{c.L_SLO_SERVICE}=~"$service",{c.L_SLO_NAME}=~"$slo"'
    d = gd.Dashboard("gpuledger / SLOs").uid("gpuledger-slo").tags(["gpuledger", "slo"])
    d = _variables(d, ("service", "Service", f"label_values({c.REC_SLO_OBJECTIVE}, {c.L_SLO_SERVICE})"),
                   ("slo", "SLO", f'label_values({c.REC_SLO_OBJECTIVE}{{{c.L_SLO_SERVICE}=~"$service"}}, {c.L_SLO_NAME})'))  # fmt: skip
    legend = f"{{{{{c.L_SLO_SERVICE}}}}} {{{{{c.L_SLO_NAME}}}}}"
    sli = [(f"1 - {c.REC_SLO_ERROR_RATIO}{w}{{{ids}}}", f"{w} {legend}") for w in ("1h", "6h", "1d", "3d")]
    objective = f"{c.REC_SLO_OBJECTIVE}{{{ids}}}"
    burn = [(f"{c.REC_SLO_ERROR_RATIO}{long}{{{ids}}} / on ({c.L_SLO_SERVICE}, {c.L_SLO_NAME}) (1 - {objective})",
             f"{long} {legend}") for long, _, _, _ in c.BURN_RATE_WINDOWS]  # fmt: skip
    return (
        d.with_row(gd.Row("$slo").repeat("slo"))
        .with_panel(_series("SLI per window", "percentunit", *sli))
        .with_panel(
            _series(
                "Error budget remaining (period)", "percentunit", (f"{c.REC_SLO_BUDGET_REMAINING}{{{ids}}}", legend)
            )
        )  # fmt: skip
        .with_panel(_series("Burn rate per alert window (1 = on budget)", "none", *burn))
    )


def dashboards(catalog: XidCatalog) -> dict[str, dict[str, Any]]:
    """uid -> the dashboard's JSON model (a dict, as the SDK encodes it)."""
    out = {}
    for builder in (cost(), health(catalog), slos()):
        model = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
        _number(model["panels"])
        out[model["uid"]] = model
    return out


def _number(panels: list[dict[str, Any]], start: int = 1) -> int:
    """Give every panel (rows' panels too) its own id, as Grafana expects."""
    for panel in panels:
        panel["id"] = start
        start = _number(panel.get("panels", []), start + 1)
    return start


def configmaps(models: dict[str, dict[str, Any]], namespace: str | None = None) -> str:
    """One ConfigMap per dashboard, labelled for the kube-prometheus-stack Grafana sidecar (no namespace: the
    kustomization's)."""
    docs = []
    for uid, model in sorted(models.items()):
        metadata: dict[str, Any] = {"name": f"{uid}-dashboard", "labels": {"grafana_dashboard": "1"}}
        if namespace:
            metadata["namespace"] = namespace
        data = {f"{uid}.json": json.dumps(model, indent=2, sort_keys=True) + "\n"}
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    return "# Generated by `gpuledger dashboards generate`. DO NOT EDIT.\n" + serialize.documents(docs)
