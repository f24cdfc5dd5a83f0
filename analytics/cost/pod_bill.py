"""The bills the savings pass reads, column-wise, without a chargeback report: per pod, its GPU-hours, used GPU-hours
and allocated cost; per node pool, what its GPU-hour cost.

The savings pass (analytics/finops/recommend.py) needs these figures for every pod of a window: at 10,000 GPUs a
week holds about 190,000 pods, and a per-pod chargeback builds, shares and rounds a report row for each (at 1,000
GPUs: 3.6 s of its 4.5 s was Python: attribution, Decimal sums per fact, sharing weights and the cent rounding of
19,000 rows). Here DuckDB sums each pod's integer GPU-unit-seconds per price row and its used GPU-seconds, from the
sources the chargeback reads (analytics/cost/fact_plan.py), priced by the same rule (analytics/cost/prices.py
`priced_sql`, analytics/cost/rates.py); Python then multiplies a pod's units by its rows' rates, exactly.

A pod's `allocated_usd` is the exact (unrounded) allocated component of its row in a per-pod chargeback with idle
kept: its GPU-unit-seconds at the list price in force, plus, where on-prem rows charge measured energy, the energy it
drew at the kWh price. Unlike a report row it is not rounded to the cent (a figure derived from it is rounded once,
at the end) and pods are kept apart by uid: a StatefulSet's `web-0` recreated in the window is two pods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import duckdb
import pyarrow as pa

from analytics.cost import fact_plan, prices
from analytics.cost.attribution import workload
from analytics.cost.chargeback import ChargebackOptions, attribute, labels_of, namespace_labels, priced_plan
from analytics.cost.cost_rows import JOULE_QUANTUM
from analytics.cost.rates import UNIT_HOURS, Rates
from core import conventions as c
from core.money import in_money_context
from core.store.step_sql import labelled_sql
from core.timeutil import Window

ZERO = Decimal(0)
POD_KEY = ("cluster", "namespace", "pod", "uid")


@dataclass(frozen=True, slots=True)
class PodFigures:
    cluster: str
    namespace: str
    pod: str
    uid: str
    team: str
    workload: str
    shared: bool  # a shared namespace or label selector: its cost is everyone's, not the pod's
    units: int  # GPU-unit-seconds allocated
    used_s: float | None  # used GPU-seconds (None: stored usage no GPU can report)
    allocated_usd: Decimal  # exact

    @property
    def gpu_hours(self) -> float:
        return self.units / UNIT_HOURS

    @property
    def used_gpu_hours(self) -> float:
        return (self.used_s or 0.0) / 3600.0

    @property
    def efficiency(self) -> float | None:
        if self.units <= 0 or self.used_s is None:
            return None
        return self.used_gpu_hours / self.gpu_hours


# The window's bill, held by the connection as temp tables (the savings pass joins them with its own evidence in
# SQL, and prices in Python only the pods a recommendation can use): per pod, its labels, GPU-unit-seconds and used
# GPU-seconds; per pod and price row, its GPU-unit-seconds; per label set, the team and whether the cost is shared.
T_POD_BILL = "pod_bill_pods"
T_POD_PRICED = "pod_bill_priced"
T_POD_CLASSES = "pod_bill_classes"


@dataclass
class Bill:
    """What prices the pods of the temp tables `bill` wrote: the rates in force, each pod's energy per price row (only
    where a row charges the kWh), and per (cluster, namespace, labels) the team, the shared flag and the labels."""

    rates: Rates
    energy: dict[tuple[str, ...], list[tuple[str | None, Decimal]]]
    classes: dict[tuple[str, str, str], tuple[str, bool, dict[str, str]]]

    def figures(self, con: duckdb.DuckDBPyConnection, keys: str | None = None) -> list[PodFigures]:
        """The bill of the pods `keys` selects (a SELECT of cluster, namespace, pod, uid; None: every pod), sorted by
        (cluster, namespace, pod, uid)."""
        on = _semi(keys)
        priced: dict[tuple[str, ...], list[tuple[str | None, int]]] = {}
        for *key, price_id, units in con.execute(
            f"SELECT {_KEY}, price_id, units FROM {T_POD_PRICED} b {on} ORDER BY {_KEY}, price_id"
        ).fetchall():
            priced.setdefault(tuple(key), []).append((price_id, int(units)))
        out = []
        for cl, ns, pod, uid, labels, units, used_s in con.execute(
            f"SELECT {_KEY}, labels, units, used_s FROM {T_POD_BILL} b {on} ORDER BY {_KEY}"
        ).fetchall():
            team, shared, parsed = self.classes[(cl, ns, labels)]
            cost = sum(
                (u * self.rates.rate(price_id, cl)[0] for price_id, u in priced.get((cl, ns, pod, uid), ())), ZERO
            )
            for price_id, joules in self.energy.get((cl, ns, pod, uid), ()):
                cost += self.rates.energy_cost(joules, cl, price_id) or ZERO
            used = used_s if math.isfinite(used_s) else None
            out.append(PodFigures(cl, ns, pod, uid or "", team, workload(pod, parsed), shared, int(units), used, cost))
        return out


_KEY = ", ".join(f"b.{k}" for k in POD_KEY)


def _semi(keys: str | None) -> str:
    if keys is None:
        return ""
    return f"""SEMI JOIN ({keys}) k ON k.cluster = b.cluster AND k.namespace = b.namespace AND k.pod = b.pod
        AND k.uid IS NOT DISTINCT FROM b.uid"""


@in_money_context
def bill(con: duckdb.DuckDBPyConnection, window: Window, opts: ChargebackOptions, use_rollups: bool = True) -> Bill:
    """Write the bill of every pod allocated GPU time in `window` (by cluster, namespace, pod, uid) into the temp
    tables T_POD_BILL, T_POD_PRICED and T_POD_CLASSES of `con`; `use_rollups=False` reads the step tables only (the
    same figures, slower)."""
    plan, infos, _ = priced_plan(con, window, opts, use_rollups)
    src = fact_plan.sources_sql(plan, opts.mig_share)
    rates = Rates(infos, opts.fallback_gpu_hour_usd)
    energy: dict[tuple[str, ...], list[tuple[str | None, Decimal]]] = {}
    if rates.energy_priced():  # on-prem rows charging the kWh: which are metered, and what each pod drew under them
        drawn, energy = _energy(con, src, opts)
        rates.meter(drawn)
    # a pod's units per price row stay rows: a list aggregate per pod cost 1.4 s of 2.6 s at 190,000 pods
    con.execute(f"CREATE OR REPLACE TEMP TABLE {T_POD_PRICED} AS {_priced_sql(src, opts)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {T_POD_BILL} AS {_pods_sql(src)}")
    namespaces = namespace_labels(con)
    classes = {}
    for cl, ns, labels in con.execute(f"SELECT DISTINCT cluster, namespace, labels FROM {T_POD_BILL}").fetchall():
        # pods share few label sets: the team and the shared flag are worked out once per set
        parsed = labels_of(labels)
        values, shared = attribute(opts, namespaces.get((cl, ns), {}), ns, None, parsed)
        classes[(cl, ns, labels)] = (values["team"], shared, parsed)
    rows = sorted(classes.items())
    con.register(
        T_POD_CLASSES,
        pa.table(
            {
                "cluster": pa.array([k[0] for k, _ in rows], pa.string()),
                "namespace": pa.array([k[1] for k, _ in rows], pa.string()),
                "labels": pa.array([k[2] for k, _ in rows], pa.string()),
                "team": pa.array([v[0] for _, v in rows], pa.string()),
                "shared": pa.array([v[1] for _, v in rows], pa.bool_()),
            }
        ),
    )
    return Bill(rates, energy, classes)


@in_money_context
def pod_bill(
    con: duckdb.DuckDBPyConnection, window: Window, opts: ChargebackOptions, use_rollups: bool = True
) -> list[PodFigures]:
    """Every pod allocated GPU time in `window` (by cluster, namespace, pod, uid), sorted by that key; `use_rollups=False`
    reads the step tables only (the same figures, slower)."""
    return bill(con, window, opts, use_rollups).figures(con)


def _priced_sql(src: dict[str, str], opts: ChargebackOptions) -> str:
    """Per pod and price row in force: its GPU-unit-seconds, and the labels the attribution reads."""
    return f"""
    WITH a AS ({src["alloc"]}),
    k AS (SELECT DISTINCT ts, cluster, node FROM a),
    x AS ({prices.priced_sql("SELECT * FROM k", opts.price_source)}),
    per AS (SELECT a.cluster, a.namespace, a.pod, a.uid, a.pod AS a_pod, x.price_id, sum(a.units) AS units
            FROM a JOIN x USING (ts, cluster, node) GROUP BY ALL),
    {labelled_sql("per").strip()}
    SELECT {", ".join(POD_KEY)}, price_id, units, coalesce(labels, '') AS labels FROM lab"""


def _pods_sql(src: dict[str, str]) -> str:
    """Per pod: labels, units, used GPU-seconds (a Kahan sum: DuckDB sums in parallel, in no fixed order; NaN or
    infinite where a fact holds usage no GPU can report)."""
    key = ", ".join(POD_KEY)
    return f"""
    WITH pods AS (SELECT {key}, any_value(labels) AS labels, sum(units) AS units FROM {T_POD_PRICED} GROUP BY ALL),
    u AS (SELECT {key}, fsum(used_s) AS used_s FROM ({src["usage"]}) WHERE pod IS NOT NULL GROUP BY ALL)
    SELECT pods.*, coalesce(u.used_s, 0.0) AS used_s
    FROM pods LEFT JOIN u ON u.cluster = pods.cluster AND u.namespace = pods.namespace AND u.pod = pods.pod
        AND u.uid IS NOT DISTINCT FROM pods.uid"""


def _energy(
    con: duckdb.DuckDBPyConnection, src: dict[str, str], opts: ChargebackOptions
) -> tuple[list[tuple[str, str | None]], dict[tuple[str, ...], list[tuple[str | None, Decimal]]]]:
    """(the (cluster, price row) pairs under which GPUs drew energy, each pod's joules per price row). Only read where
    a price row charges the kWh."""
    rows = con.execute(f"""
    WITH u AS ({src["usage"]}),
    k AS (SELECT DISTINCT ts, cluster, node FROM u),
    x AS ({prices.priced_sql("SELECT * FROM k", opts.price_source)})
    SELECT u.cluster, u.namespace, u.pod, u.uid, x.price_id, sum(u.energy_j) AS energy_j
    FROM u JOIN x USING (ts, cluster, node) WHERE isfinite(u.energy_j) GROUP BY ALL ORDER BY ALL""").fetchall()
    drawn: set[tuple[str, str | None]] = set()
    per_pod: dict[tuple[str, ...], list[tuple[str | None, Decimal]]] = {}
    for cl, ns, pod, uid, price_id, joules in rows:
        j = Decimal(repr(joules)).quantize(JOULE_QUANTUM)
        if not j:
            continue
        drawn.add((cl, price_id))
        if pod is not None:
            per_pod.setdefault((cl, ns, pod, uid), []).append((price_id, j))
    return sorted(drawn, key=repr), per_pod


@in_money_context
def pool_rates(
    con: duckdb.DuckDBPyConnection, window: Window, opts: ChargebackOptions, use_rollups: bool = True
) -> dict[str, Decimal]:
    """Per node pool: what one of its GPU-hours cost in `window` (its nodes' billable GPU-hours at the effective price
    in force, plus metered energy), exact: a by-pool chargeback's cost over its GPU-hours, without the report (its
    allocations, usage and rounding; the usage only where a price row charges the kWh)."""
    plan, infos, _ = priced_plan(con, window, opts, use_rollups)
    src = fact_plan.sources_sql(plan, opts.mig_share)
    rates = Rates(infos, opts.fallback_gpu_hour_usd)
    cost: dict[str, Decimal] = {}
    if rates.energy_priced():
        drawn, _ = _energy(con, src, opts)
        rates.meter(drawn)
        for pool, cl, price_id, joules in con.execute(_by_pool_sql(src["usage"], "energy_j", opts)).fetchall():
            j = Decimal(repr(joules)).quantize(JOULE_QUANTUM) if joules is not None and math.isfinite(joules) else ZERO
            cost[pool] = cost.get(pool, ZERO) + (rates.energy_cost(j, cl, price_id) or ZERO)
    units: dict[str, int] = {}
    for pool, cl, price_id, u in con.execute(_by_pool_sql(src["capacity"], "units", opts)).fetchall():
        rate, discount, _ = rates.rate(price_id, cl)
        cost[pool] = cost.get(pool, ZERO) + int(u) * (rate + discount)
        units[pool] = units.get(pool, 0) + int(u)
    return {p: cost[p] / Decimal(repr(units[p] / UNIT_HOURS)) for p in sorted(units) if units[p] > 0}


def _by_pool_sql(facts: str, value: str, opts: ChargebackOptions) -> str:
    """`facts` (ts, cluster, node, `value`, ...) summed per node pool, cluster and the price row in force."""
    return f"""
    WITH f AS ({facts}),
    k AS (SELECT DISTINCT ts, cluster, node FROM f),
    x AS ({prices.priced_sql("SELECT * FROM k", opts.price_source)})
    SELECT coalesce(n.node_pool, '') AS node_pool, f.cluster, x.price_id, sum(f.{value}) AS v
    FROM f JOIN x USING (ts, cluster, node) LEFT JOIN {c.T_NODES} n USING (cluster, node)
    GROUP BY ALL ORDER BY ALL"""
