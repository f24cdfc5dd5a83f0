"""The cost of unreliability: who ran on unhealthy GPUs, GPU-hours and money lost, failure rates.

"Unhealthy" is drain_recommended, offline or rma_recommended: a GPU that is (or should be) out of
service while its node is still paid for. Pods that ran on it then are the jobs that may have
computed on corrupt memory (a DBE) or hung on a dead card (Xid 79). A GPU that stopped reporting
has no DCGM pod mapping any more, so its impacted pods are those mapped to it just before it went
silent that stayed Running on the node (kube-state-metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb

from analytics.cost.allocation import pod_labels_sql, team_sql
from analytics.cost.attribution import Attribution
from analytics.cost.prices import PriceInfo, load_prices, priced_sql
from analytics.health.report import HealthResult, Period
from analytics.health.signals import GpuKey
from core import conventions as c
from core.money import allocate_cents, in_money_context, to_cents
from core.timeutil import iso

HOURS_PER_YEAR = 8766  # 365.25 days
ZERO = Decimal(0)


@dataclass(frozen=True)
class Impact:
    key: GpuKey
    namespace: str
    pod: str
    team: str
    states: tuple[str, ...]
    start: datetime
    end: datetime
    hours: float  # time the pod spent on the GPU while it was unhealthy

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.key.cluster,
            "node": self.key.node,
            "gpu_uuid": self.key.gpu_uuid,
            "namespace": self.namespace,
            "pod": self.pod,
            "team": self.team,
            "states": list(self.states),
            "start": iso(self.start),
            "end": iso(self.end),
            "hours": round(self.hours, 6),
        }


def unhealthy(result: HealthResult) -> list[Period]:
    return [p for p in result.periods if p.state in c.UNHEALTHY_STATES]


def impacted_pods(
    con: duckdb.DuckDBPyConnection, result: HealthResult, attribution: Attribution | None = None
) -> list[Impact]:
    """Pods (and their teams) that ran on a GPU while it was unhealthy, one row per GPU and pod; teams
    by `attribution`, the chargeback's (settings.chargeback), so both name the same team."""
    periods = unhealthy(result)
    if not periods:
        return []
    values = ", ".join("(?, ?, ?, ?, ?::TIMESTAMP, ?::TIMESTAMP)" for _ in periods)
    params: list[object] = []
    for p in periods:
        params += [p.key.cluster, p.key.node, p.key.gpu_uuid, p.state, p.start, p.end]
    team = team_sql("pd.labels", "ns.labels", "b.namespace", attribution or Attribution())
    sql = f"""WITH p(cluster, node, gpu_uuid, state, lo, hi) AS (VALUES {values}),
    seen AS (
        SELECT p.cluster, p.node, p.gpu_uuid, p.state, m.namespace, m.pod, m.ts, m.step_s
        FROM p JOIN {c.T_GPU_POD_SAMPLES} m ON m.cluster = p.cluster AND m.node = p.node
            AND m.gpu_uuid = p.gpu_uuid AND m.ts >= p.lo AND m.ts < p.hi),
    last_seen AS (
        SELECT p.*, (SELECT max(x.ts) FROM {c.T_GPU_POD_SAMPLES} x WHERE x.cluster = p.cluster AND x.node = p.node
            AND x.gpu_uuid = p.gpu_uuid AND x.ts < p.lo) AS at
        FROM p WHERE p.state = '{c.STATE_OFFLINE}'),
    stayed AS (
        -- a silent GPU maps no pod: keep the pods it served last while they stay Running on the node
        SELECT DISTINCT l.cluster, l.node, l.gpu_uuid, l.state, a.namespace, a.pod, a.ts, a.step_s
        FROM last_seen l
        JOIN {c.T_GPU_POD_SAMPLES} m ON m.cluster = l.cluster AND m.node = l.node AND m.gpu_uuid = l.gpu_uuid AND m.ts = l.at
        JOIN {c.T_POD_ALLOCATIONS} a ON a.cluster = l.cluster AND a.node = l.node AND a.namespace = m.namespace
            AND a.pod = m.pod AND a.ts >= l.lo AND a.ts < l.hi),
    both_ AS (SELECT * FROM seen UNION SELECT * FROM stayed),
    pods_ AS ({pod_labels_sql("both_")})
    SELECT b.cluster, b.node, b.gpu_uuid, b.namespace, b.pod, {team} AS team, list(DISTINCT b.state ORDER BY b.state),
        min(b.ts), max(b.ts + to_seconds(b.step_s)), count(DISTINCT b.ts) * max(b.step_s) / 3600.0
    FROM both_ b
    LEFT JOIN pods_ pd ON pd.cluster = b.cluster AND pd.namespace = b.namespace AND pd.pod = b.pod
    LEFT JOIN {c.T_NAMESPACES} ns ON ns.cluster = b.cluster AND ns.namespace = b.namespace
    GROUP BY b.cluster, b.node, b.gpu_uuid, b.namespace, b.pod, pd.labels, ns.labels ORDER BY ALL"""
    return [
        Impact(GpuKey(cl, n, u), ns, pod, team_, tuple(states), lo, hi, float(h))
        for cl, n, u, ns, pod, team_, states, lo, hi, h in con.execute(sql, params).fetchall()
    ]


@dataclass
class LostGpu:
    key: GpuKey
    model: str
    node_pool: str
    hours: float
    cost_usd: Decimal
    unpriced_hours: float
    by_period: dict[datetime, Decimal]  # period start -> its cost, in cents that add up to cost_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.key.cluster,
            "node": self.key.node,
            "gpu_uuid": self.key.gpu_uuid,
            "model": self.model,
            "node_pool": self.node_pool,
            "lost_gpu_hours": round(self.hours, 6),
            "lost_cost_usd": str(self.cost_usd),
            "unpriced_hours": round(self.unpriced_hours, 6),
        }


@in_money_context
def lost_capacity(
    con: duckdb.DuckDBPyConnection, result: HealthResult, fallback_gpu_hour_usd: Decimal | None = None
) -> list[LostGpu]:
    """GPU-hours spent unhealthy per GPU and what they cost at the chargeback's price (analytics/cost/
    prices.py: zone rows, on-prem, discounts, the GPU part), in Decimal, rounded once with the
    largest-remainder method so periods, GPUs and the total agree to the cent. Time no price row
    covers is `unpriced_hours`, valued at `fallback_gpu_hour_usd` (else 0), as the chargeback does."""
    periods = unhealthy(result)
    segments = _priced_segments(con, periods)
    infos = load_prices(con) if periods else {}
    exact: dict[str, Decimal] = {}
    lost: dict[GpuKey, LostGpu] = {}
    for i, p in enumerate(periods):
        info = result.gpus[p.key]
        row = lost.setdefault(p.key, LostGpu(p.key, info.model, info.node_pool, 0.0, ZERO, 0.0, {}))
        exact[str(i)], unpriced = _cost(segments.get(i, []), infos, fallback_gpu_hour_usd)
        row.hours += p.hours
        row.unpriced_hours += unpriced
    cents = allocate_cents(exact)
    for i, p in enumerate(periods):
        row = lost[p.key]
        row.by_period[p.start] = cents[str(i)]
        row.cost_usd += cents[str(i)]
    return sorted(lost.values(), key=lambda r: (-r.cost_usd, -r.hours, r.key))


def _priced_segments(con: duckdb.DuckDBPyConnection, periods: list[Period]) -> dict[int, list[tuple[str | None, int]]]:
    """Per period (by index): (price_id, microseconds) through the chargeback's priced_sql.

    A period is cut where its node's price can change (a row of its instance type taking effect, and
    the next hour's start, since spot steps take the price in force at their hour's start; a discount
    starting or ending), and each segment priced at its start: one ASOF lookup per segment, not per
    step (a month of 10,000 GPUs has ~10,000 unhealthy periods of up to 43,200 one-minute steps)."""
    if not periods:
        return {}
    # lists unnested side by side: binding 50,000 VALUES parameters took 0.9 s at 10,000 periods, this 0.04 s
    params = {
        "i": list(range(len(periods))),
        "cl": [p.key.cluster for p in periods],
        "n": [p.key.node for p in periods],
        "lo": [p.start for p in periods],
        "hi": [p.end for p in periods],
    }
    sql = f"SELECT i, price_id, sum(us)::BIGINT FROM ({priced_sql(_segments_sql())}) GROUP BY ALL ORDER BY ALL"
    out: dict[int, list[tuple[str | None, int]]] = {}
    for i, price_id, us in con.execute(sql, params).fetchall():
        out.setdefault(int(i), []).append((price_id, int(us)))
    return out


def _segments_sql() -> str:
    """(i, cluster, node, ts, us): the periods of $i, $cl, $n, $lo, $hi cut where a price can change. Cuts of
    other instance types and zones are left out: a spot history holds thousands of rows per month."""
    return f"""WITH p AS (
        SELECT unnest($i) AS i, unnest($cl) AS cluster, unnest($n) AS node,
            unnest($lo::TIMESTAMP[]) AS lo, unnest($hi::TIMESTAMP[]) AS hi),
    cuts AS (
        SELECT instance_type, zone, effective_from AS t FROM {c.T_PRICES}
        UNION SELECT instance_type, zone, date_trunc('hour', effective_from) + INTERVAL 1 HOUR FROM {c.T_PRICES}
        UNION SELECT NULL, NULL, effective_from FROM {c.T_PRICE_DISCOUNTS}
        UNION SELECT NULL, NULL, effective_to FROM {c.T_PRICE_DISCOUNTS} WHERE effective_to IS NOT NULL),
    edges AS (
        SELECT i, cluster, node, lo AS ts, hi FROM p
        UNION ALL
        SELECT DISTINCT p.i, p.cluster, p.node, k.t, p.hi
        FROM p LEFT JOIN {c.T_NODES} n USING (cluster, node)
        JOIN cuts k ON (k.instance_type IS NULL
                OR (k.instance_type = coalesce(n.instance_type, '') AND k.zone IN ('', coalesce(n.zone, ''))))
            AND k.t > p.lo AND k.t < p.hi)
    SELECT i, cluster, node, ts, epoch_us(lead(ts, 1, hi) OVER (PARTITION BY i ORDER BY ts)) - epoch_us(ts) AS us
    FROM edges"""


def _cost(
    segments: list[tuple[str | None, int]], infos: dict[str, PriceInfo], fallback: Decimal | None
) -> tuple[Decimal, float]:
    """Exact cost and unpriced hours of a period's (price_id, microseconds): the chargeback's _rate rule."""
    total, unpriced = ZERO, 0.0
    for price_id, us in segments:
        info = infos.get(price_id) if price_id is not None else None
        if info is None:
            unpriced += us / 3_600_000_000
        rate = info.gpu_hour_usd if info is not None else fallback or ZERO
        total += Decimal(us) * rate / 3_600_000_000
    return total, unpriced


@in_money_context
def total_cost(lost: list[LostGpu]) -> Decimal:
    return to_cents(sum((r.cost_usd for r in lost), ZERO))


@dataclass
class Reliability:
    group: dict[str, str]
    gpus: int
    observed_gpu_hours: float
    unhealthy_gpu_hours: float
    failures: int  # entries into drain_recommended, offline or rma_recommended from healthy or watch

    @property
    def mtbf_hours(self) -> float | None:
        """In-service GPU-hours per failure (None without failures)."""
        in_service = self.observed_gpu_hours - self.unhealthy_gpu_hours
        return in_service / self.failures if self.failures else None

    @property
    def annualized_failure_rate(self) -> float:
        """Failures per GPU-year observed (a 1-day window extrapolates wildly: read it with the hours)."""
        years = self.observed_gpu_hours / HOURS_PER_YEAR
        return self.failures / years if years > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        mtbf = self.mtbf_hours
        return {
            **self.group,
            "gpus": self.gpus,
            "observed_gpu_hours": round(self.observed_gpu_hours, 6),
            "unhealthy_gpu_hours": round(self.unhealthy_gpu_hours, 6),
            "failures": self.failures,
            "mtbf_hours": round(mtbf, 6) if mtbf is not None else None,
            "annualized_failure_rate": round(self.annualized_failure_rate, 6),
        }


def reliability(result: HealthResult, by: str = "gpu_model") -> list[Reliability]:
    """Failures and MTBF per GPU model (`by="gpu_model"`) or node pool (`by="node_pool"`)."""
    if by not in ("gpu_model", "node_pool"):
        raise ValueError(f"cannot group reliability by {by!r}; choose gpu_model or node_pool")
    groups: dict[str, Reliability] = {}
    periods: dict[GpuKey, list[Period]] = {}
    for p in result.periods:  # one pass, not one per GPU: a month of 10,000 GPUs has ~10,000 periods
        periods.setdefault(p.key, []).append(p)
    for key, info in result.gpus.items():
        name = info.model if by == "gpu_model" else info.node_pool
        row = groups.setdefault(name, Reliability({by: name}, 0, 0.0, 0.0, 0))
        row.gpus += 1
        for p in periods.get(key, []):
            row.observed_gpu_hours += p.hours
            row.unhealthy_gpu_hours += p.hours if p.state in c.UNHEALTHY_STATES else 0.0
    for p in result.transitions():
        info = result.gpus[p.key]
        if p.from_state in (c.STATE_HEALTHY, c.STATE_WATCH) and p.state in c.UNHEALTHY_STATES:
            groups[info.model if by == "gpu_model" else info.node_pool].failures += 1
    return sorted(groups.values(), key=lambda r: (-r.failures, tuple(r.group.values())))
