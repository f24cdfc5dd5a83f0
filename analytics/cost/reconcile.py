"""Reconciliation: what the provider bills for the node-hours in a window, against the ledger's total.

The provider bills a node for every hour it runs, whatever its GPUs do: node-hours x the price in force
(the GPUs' part of the node price, after discounts: the same price path as the chargeback). The ledger
bills the node's billable GPUs (core/store/step_sql.py capacity_steps_sql) at that price per GPU. The two agree
to the cent wherever the node's billable GPUs equal its instance's; a difference names a node whose GPUs the
sources under- or over-state. Besides the difference, the report lists what the ledger cannot price or
place: unpriced nodes, GPU-hours DCGM reported on nodes kube-state-metrics never listed (a Hostname that is
not the node's name), and GPU requests on nodes no source gives GPUs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import duckdb

from analytics.cost import node_facts, prices
from analytics.cost.chargeback import ChargebackOptions, chargeback
from analytics.cost.rates import UNIT_HOURS
from core import conventions as c
from core.money import in_money_context, to_cents
from core.store.rollups import coverage
from core.timeutil import Window

ReconcileBy = Literal["node", "instance_type", "cluster", "region"]
RECONCILE_BY: tuple[ReconcileBy, ...] = ("node", "instance_type", "cluster", "region")
ZERO = Decimal(0)
COLUMNS = ("node_hours", "gpu_hours", "provider_usd", "ledger_usd", "difference_usd", "unpriced_gpu_hours")


@dataclass
class Line:
    key: str  # the group's value (a node is cluster/node)
    node_hours: Decimal = ZERO
    gpu_hours: Decimal = ZERO
    provider: Decimal = ZERO  # exact
    ledger: Decimal = ZERO  # exact
    unpriced_gpu_hours: Decimal = ZERO

    def as_dict(self, by: str) -> dict[str, Any]:
        return {
            by: self.key,
            "node_hours": float(round(self.node_hours, 6)),
            "gpu_hours": float(round(self.gpu_hours, 6)),
            "provider_usd": str(to_cents(self.provider)),
            "ledger_usd": str(to_cents(self.ledger)),
            "difference_usd": str(to_cents(self.ledger) - to_cents(self.provider)),
            "unpriced_gpu_hours": float(round(self.unpriced_gpu_hours, 6)),
        }


@dataclass
class Reconciliation:
    window: Window
    by: str
    lines: list[Line]
    ledger_total_usd: Decimal  # the chargeback's node cost for the window (its rows' sum less the overhead)
    unpriced_nodes: list[node_facts.UnpricedNode] = field(default_factory=list)
    dcgm_without_node: list[dict[str, Any]] = field(default_factory=list)  # (cluster, node, gpu_hours)
    requests_without_gpus: list[dict[str, Any]] = field(default_factory=list)  # (cluster, node, gpu_hours)

    @property
    def provider_total_usd(self) -> Decimal:
        return to_cents(sum((line.provider for line in self.lines), ZERO))

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.as_dict(),
            "by": self.by,
            "rows": [line.as_dict(self.by) for line in self.lines],
            "totals": {
                "provider_usd": str(self.provider_total_usd),
                "ledger_usd": str(self.ledger_total_usd),
                "difference_usd": str(self.ledger_total_usd - self.provider_total_usd),
            },
            "unpriced_nodes": [dataclasses.asdict(u) for u in self.unpriced_nodes],
            "dcgm_without_node": self.dcgm_without_node,
            "requests_without_gpus": self.requests_without_gpus,
        }


@in_money_context
def reconcile(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    options: ChargebackOptions,
    by: ReconcileBy = "node",
    use_rollups: bool = True,
) -> Reconciliation:
    """Provider bill (node-hours x price) vs ledger, per `by`, for `window`; pure over the warehouse."""
    if by not in RECONCILE_BY:
        raise ValueError(f"cannot reconcile by {by!r}; choose from {', '.join(RECONCILE_BY)}")
    infos = prices.load_prices(con)
    keys = ("cluster", "node") if by == "node" else (by,)
    report = chargeback(con, window, _plain(options, keys), use_rollups=use_rollups)
    lines: dict[str, Line] = {}
    no_gpus: dict[tuple[str, str], int] = {}
    facts = node_facts.node_facts(con, window, options.mig_share, use_rollups)
    for f in facts:  # one pass over the node-hours serves the lines, the unpriced nodes and the GPU-less requests
        key = f"{f.cluster}/{f.node}" if by == "node" else getattr(f, by)
        line = lines.setdefault(key, Line(key))
        info = None
        if f.price_id is not None:  # measured energy: billed below, by the kWh
            info = report.metered.get((f.cluster, f.price_id), infos.get(f.price_id))
        hours, gpu_hours = Decimal(f.node_s) / 3600, Decimal(f.units) / UNIT_HOURS
        line.node_hours += hours
        line.gpu_hours += gpu_hours
        if info is None:
            line.unpriced_gpu_hours += gpu_hours
        else:
            line.provider += hours * info.gpu_hour_usd * info.gpus
        if f.no_gpu_units:
            no_gpus[(f.cluster, f.node)] = no_gpus.get((f.cluster, f.node), 0) + f.no_gpu_units
    for row in report.rows:
        line = lines.setdefault("/".join(row.keys[k] for k in keys), Line("/".join(row.keys[k] for k in keys)))
        line.ledger += row.exact_total
        # an on-prem site's electricity is what its GPUs drew (the same meter the ledger reads) at its price per kWh
        line.provider += row.energy_usd
    return Reconciliation(
        window,
        by,
        sorted(lines.values(), key=lambda line: line.key),
        report.node_cost_usd,
        node_facts.unpriced(facts),
        _dcgm_without_node(con, window),
        [
            {"cluster": cl, "node": n, "gpu_hours": round(units / UNIT_HOURS, 6)}
            for (cl, n), units in sorted(no_gpus.items())
        ],
    )


def _plain(options: ChargebackOptions, by: tuple[str, ...]) -> ChargebackOptions:
    """The chargeback with nothing moved between nodes (idle kept, nothing shared): each node's rows are its cost."""
    return dataclasses.replace(
        options, by=by, idle="keep", shared_namespaces=(), shared_labels=(), shared_overhead_usd_per_hour=ZERO
    )


def _dcgm_without_node(con: duckdb.DuckDBPyConnection, window: Window) -> list[dict[str, Any]]:
    """GPU-hours DCGM reported under a node name kube-state-metrics never listed."""
    reporting = f"SELECT cluster, node FROM {c.T_GPU_SAMPLES} WHERE ts >= $start AND ts < $end"
    if coverage.in_sync(con):  # the hourly coverage names each reporting GPU's node: ~10^4 rows a day, not ~10^7
        reporting = f"""SELECT cluster, node FROM {c.T_COVERAGE_ROLLUP}
            WHERE gpu_uuid IS NOT NULL AND {coverage.HOURS_TOUCHED}"""
    rows = con.execute(
        f"""WITH unknown AS (SELECT DISTINCT cluster, node FROM ({reporting}) ANTI JOIN {c.T_NODES} USING (cluster, node))
        SELECT s.cluster, s.node, sum(s.step_s) / 3600.0 AS gpu_hours
        FROM (SELECT DISTINCT ts, step_s, cluster, node, gpu_uuid FROM {c.T_GPU_SAMPLES} g
              SEMI JOIN unknown USING (cluster, node) WHERE ts >= $start AND ts < $end) s
        GROUP BY ALL ORDER BY ALL""",
        {"start": window.start, "end": window.end},
    ).fetchall()
    return [{"cluster": cl, "node": n, "gpu_hours": round(float(h), 6)} for cl, n, h in rows]
