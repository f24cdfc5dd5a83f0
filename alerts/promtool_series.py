"""Input series and expectations for promtool unit tests (shared by every domain's test builders)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from core import conventions as c

POD = 'namespace="{ns}",pod="{pod}",uid="u-{pod}"'
GPU = 'gpu="0",UUID="GPU-{uuid}",device="nvidia0",modelName="NVIDIA A100-SXM4-40GB",Hostname="{node}"'


def series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": values}


def running_pod(
    ns: str, pod: str, node: str, resource: str, amount: int, minutes: int, labels: str | None = ""
) -> list[dict[str, str]]:
    key = POD.format(ns=ns, pod=pod)
    out = [
        series(
            c.KSM_POD_REQUESTS,
            f'{key},container="main",node="{node}",resource="{resource}",unit="integer"',
            f"{amount}x{minutes}",
        ),
        series(c.KSM_POD_PHASE, f'{key},phase="Running"', f"1x{minutes}"),
    ]
    if labels is not None:
        out.append(series(c.KSM_POD_LABELS, key + (f",{labels}" if labels else ""), f"1x{minutes}"))
    return out


def pending_pod(ns: str, pod: str, resource: str, amount: int, minutes: int) -> list[dict[str, str]]:
    """A pod Pending for `minutes`, asking for `amount` of `resource` (no node yet)."""
    key = POD.format(ns=ns, pod=pod)
    return [
        series(c.KSM_POD_REQUESTS, f'{key},container="main",node="",resource="{resource}",unit="integer"',
               f"{amount}x{minutes}"),
        series(c.KSM_POD_PHASE, f'{key},phase="Pending"', f"1x{minutes}"),
    ]  # fmt: skip


def gpu(node: str, uuid: str, metric: str, values: str, pod: tuple[str, str] | None = None) -> dict[str, str]:
    labels = GPU.format(uuid=uuid, node=node)
    if pod:
        labels += f',container="main",namespace="{pod[0]}",pod="{pod[1]}"'
    return series(metric, labels, values)


def node(name: str, instance_type: str, minutes: int) -> dict[str, str]:
    return series(
        c.KSM_NODE_LABELS, f'node="{name}",label_node_kubernetes_io_instance_type="{instance_type}"', f"1x{minutes}"
    )


def alerts_at(eval_time: str, alertname: str, expected: list[str]) -> dict[str, Any]:
    """Firing ALERTS{alertname} at eval_time must be exactly `expected` (label strings)."""
    return {
        "expr": f'ALERTS{{alertname="{alertname}",alertstate="firing"}}',
        "eval_time": eval_time,
        "exp_samples": [
            {"labels": f'ALERTS{{alertname="{alertname}",alertstate="firing",{lbl}}}', "value": 1} for lbl in expected
        ],
    }


def close_to(expr: str, value: float | Decimal | str, eval_time: str, labels: str) -> dict[str, Any]:
    return {
        "expr": f"abs({expr} - {value}) < bool 1e-9",
        "eval_time": eval_time,
        "exp_samples": [{"labels": labels, "value": 1}],
    }
