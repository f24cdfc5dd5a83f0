"""Which price applies to a node at a step, and what one GPU-hour costs under it.

The chargeback calls two things here and nothing else:
  priced_sql(facts_cte)  SQL adding `price_id` (NULL = unpriced) to per-node-step facts
  load_prices(con)       price_id -> PriceInfo (list and effective Decimal $/GPU-hour, provenance)
so price matching (history, zones, capacity types, discounts) evolves without touching the allocation
arithmetic.

Matching a node (from its kube_node_labels: instance type, capacity type, region, zone):
- same instance type, capacity type and region; a row for the node's zone wins over a region-wide one
  (spot prices are per availability zone); the region falls back to the zone's region when the node has
  no region label (us-east-1a -> us-east-1, us-central1-a -> us-central1, eastus-1 -> eastus);
- a node labelled neither spot nor reserved whose instance type and region match an `on_prem` row is an
  on-prem node (owned servers carry no cloud capacity-type label);
- the row in force: the latest effective_from at or before the step (ASOF), so a mid-window change bills
  each step at its own price. Spot steps take the price in force at the start of their hour, as AWS bills
  a spot instance-hour at the price in effect when it began;
- discounts in force at the step that match the row's provider, region, capacity type and instance type
  (glob) multiply the price: effective = list x (1 - p1/100) x (1 - p2/100) ...; the price_id then names
  them, so each combination of row and discounts is its own PriceInfo.
GPU-hour price = the row's GPU part (the node price x the GPU share given at import, or the provider's
own GPU price, e.g. GCP's GPU SKU) / the row's GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import duckdb

from core import conventions as c
from core.store import read_memo


def price_id_sql(p: str) -> str:
    return (
        f"{p}.provider || '|' || {p}.region || '|' || {p}.zone || '|' || {p}.instance_type || '|' || "
        f"{p}.capacity_type || '|' || strftime({p}.effective_from, '%Y-%m-%dT%H:%M:%S.%f')"
    )


PRICE_ID_SQL = price_id_sql("p")
DISCOUNT_SEPARATOR = "|-"  # price_id = <row id>|-<discount>+<discount>...


@dataclass(frozen=True)
class PriceInfo:
    price_id: str
    gpu_hour_usd: Decimal  # what one GPU-hour costs under this row, after discounts (effective)
    source: str  # provenance shown in reports and exports
    list_gpu_hour_usd: Decimal | None = None  # before discounts (None: same as gpu_hour_usd)
    discounts: tuple[str, ...] = ()  # names of the discounts applied
    gpus: int = 0  # the GPUs of the instance the row prices (the node price is gpu_hour_usd x gpus)
    # from the invoice (analytics/cost/bill_prices.py): what it billed per GPU-hour (FOCUS BilledCost: zero for
    # usage a commitment covers, negative for a credit; None: the effective rate), its invoices and provider
    from_bill: bool = False
    billed_gpu_hour_usd: Decimal | None = None
    invoices: tuple[str, ...] = ()
    provider: str = ""
    # an on-prem row charging measured energy (collectors/pricing/from_settings.py): $ per kWh (PUE included), and
    # the nameplate power in one GPU-hour's list price, which a GPU's measured kWh replace (`metered`)
    energy_usd_per_kwh: Decimal | None = None
    energy_gpu_hour_usd: Decimal = Decimal(0)

    @property
    def list_rate(self) -> Decimal:
        return self.gpu_hour_usd if self.list_gpu_hour_usd is None else self.list_gpu_hour_usd

    @property
    def billed_rate(self) -> Decimal:
        return self.gpu_hour_usd if self.billed_gpu_hour_usd is None else self.billed_gpu_hour_usd

    @property
    def provider_name(self) -> str:
        """gpuledger's name of the provider (aws, gcp, azure, on_prem, ...): the bill's, else the price row's."""
        return self.provider or self.price_id.split("|", 1)[0]

    def metered(self) -> PriceInfo:
        """This price where its GPUs' measured energy is charged by the kWh: the GPU-hour without its nameplate power
        (list, and effective with the same discounts), the energy at `energy_usd_per_kwh` besides."""
        fixed = self.list_rate - self.energy_gpu_hour_usd
        effective = self.gpu_hour_usd * fixed / self.list_rate if self.list_rate else fixed
        return replace(
            self,
            gpu_hour_usd=effective,
            list_gpu_hour_usd=fixed,
            source=f"{self.source}, its GPUs' energy as measured at ${(self.energy_usd_per_kwh or Decimal(0)).normalize():f}/kWh",
        )

    @property
    def discount_gpu_hour_usd(self) -> Decimal:
        """Effective minus list (zero or negative): what a chargeback shows as an adjustment."""
        return self.gpu_hour_usd - self.list_rate


def region_of_zone_sql(zone: str) -> str:
    return f"""nullif(coalesce(nullif(regexp_extract({zone}, '^(.+[0-9])[a-z]$', 1), ''),
        regexp_extract({zone}, '^(.+)-[a-z0-9]$', 1)), '')"""


BILLED_HOURS = "billed_node_hours"  # temp (cluster, node, hour, bill_id): a chargeback at billed cost makes it
BILLED_MIXED = "billed_mixed_days"  # temp (cluster, node, day): node-days whose hours the bill prices differently
PriceSource = Literal["list", "billing", "auto"]


def priced_sql(facts: str, source: PriceSource = "list") -> str:
    """SELECT facts.* plus `price_id`: the row (and discounts) in force at each fact's ts for its node; with the
    bill as the source (analytics/cost/bill_prices.py), the node-hour's bill where it has one (`auto`: else the
    row in force; `billing`: else unpriced)."""
    listed = _list_priced_sql(facts)
    if source == "list":
        return listed
    fallback = "l_.price_id" if source == "auto" else "NULL"
    return f"""SELECT l_.* EXCLUDE (price_id), coalesce(b_.bill_id, {fallback}) AS price_id
        FROM ({listed}) l_ LEFT JOIN {BILLED_HOURS} b_
            ON b_.cluster = l_.cluster AND b_.node = l_.node AND b_.hour = date_trunc('hour', l_.ts)"""


def _list_priced_sql(facts: str) -> str:
    match = "p.instance_type = {f}.n_it AND p.capacity_type = {f}.n_ct AND p.region = {f}.n_rg"
    return f"""
    WITH n_ AS (
        SELECT cluster, node, coalesce(instance_type, '') AS n_it,
            coalesce(nullif(capacity_type, ''), 'on_demand') AS n_ct0,
            coalesce(nullif(region, ''), {region_of_zone_sql("zone")}, '') AS n_rg, coalesce(zone, '') AS n_zn
        FROM {c.T_NODES}),
    n2 AS (
        SELECT n_.* EXCLUDE (n_ct0),
            CASE WHEN n_ct0 = 'on_demand' AND op.instance_type IS NOT NULL THEN 'on_prem' ELSE n_ct0 END AS n_ct
        FROM n_ LEFT JOIN (SELECT DISTINCT instance_type, region FROM {c.T_PRICES} WHERE capacity_type = 'on_prem') op
            ON op.instance_type = n_.n_it AND op.region = n_.n_rg),
    f_n AS (
        SELECT f.*, n2.n_it, n2.n_ct, n2.n_rg, n2.n_zn,
            CASE WHEN n2.n_ct = 'spot' THEN date_trunc('hour', f.ts) ELSE f.ts END AS n_at
        FROM ({facts}) f LEFT JOIN n2 USING (cluster, node)),
    by_zone AS (
        SELECT f_n.*, {price_id_sql("p")} AS zone_id, p.provider AS zone_provider
        FROM f_n ASOF LEFT JOIN (SELECT * FROM {c.T_PRICES} WHERE zone <> '') p
            ON {match.format(f="f_n")} AND p.zone = f_n.n_zn AND f_n.n_at >= p.effective_from),
    both_ AS (
        SELECT by_zone.*, coalesce(zone_id, {price_id_sql("p")}) AS base_id,
            coalesce(zone_provider, p.provider) AS p_provider
        FROM by_zone ASOF LEFT JOIN (SELECT * FROM {c.T_PRICES} WHERE zone = '') p
            ON {match.format(f="by_zone")} AND by_zone.n_at >= p.effective_from),
    keys_ AS (SELECT DISTINCT ts, base_id, p_provider, n_rg, n_it, n_ct FROM both_ WHERE base_id IS NOT NULL),
    disc AS (
        SELECT k.ts, k.base_id, string_agg(d.name, '+' ORDER BY d.name) AS names
        FROM keys_ k JOIN {c.T_PRICE_DISCOUNTS} d
            ON (d.provider = '' OR d.provider = k.p_provider) AND (d.region = '' OR d.region = k.n_rg)
            AND (d.capacity_type = '' OR d.capacity_type = k.n_ct) AND k.n_it GLOB d.instance_types
            AND k.ts >= d.effective_from AND (d.effective_to IS NULL OR k.ts < d.effective_to)
        GROUP BY ALL)
    SELECT both_.* EXCLUDE (n_it, n_ct, n_rg, n_zn, n_at, zone_id, zone_provider, base_id, p_provider),
        CASE WHEN disc.names IS NULL THEN both_.base_id
            ELSE both_.base_id || '{DISCOUNT_SEPARATOR}' || disc.names END AS price_id
    FROM both_ LEFT JOIN disc USING (ts, base_id)
    """


@dataclass(frozen=True)
class _Discount:
    name: str
    percent: Decimal
    start: datetime
    end: datetime | None

    def active(self, at: datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


def load_prices(con: duckdb.DuckDBPyConnection) -> dict[str, PriceInfo]:
    """Every price_id priced_sql can produce: each row, and each discount combination in its span. Read once per
    warehouse version (core/store/read_memo.py): a dashboard page's reports each price their facts, and the query
    cost 17-19 ms of each at 10,000 GPUs. A new dict each call, of the same frozen PriceInfo."""
    return dict(read_memo.remember(con, "prices.load", lambda: _load_prices(con)))


def _load_prices(con: duckdb.DuckDBPyConnection) -> dict[str, PriceInfo]:
    rows = con.execute(
        f"""SELECT {PRICE_ID_SQL}, p.gpu_price_per_hour_usd, p.gpus, p.effective_from, p.effective_to,
            p.{c.COL_ENERGY_USD_PER_KWH}, p.{c.COL_GPU_ENERGY_USD_PER_HOUR}, {_label_sql("p")}, list(struct_pack(n := d.name, pct := d.percent, s := d.effective_from,
                e := d.effective_to)) FILTER (WHERE d.name IS NOT NULL)
        FROM {c.V_PRICE_HISTORY} p LEFT JOIN {c.T_PRICE_DISCOUNTS} d
            ON {_scope_sql("p", "d")}
            AND (p.effective_to IS NULL OR d.effective_from < p.effective_to + INTERVAL 1 HOUR)
            AND (d.effective_to IS NULL OR d.effective_to > p.effective_from)
        GROUP BY ALL"""
    ).fetchall()
    out: dict[str, PriceInfo] = {}
    for price_id, gpu_part, gpus, start, end, per_kwh, energy_part, label, found in rows:
        gpu_hour = Decimal(gpu_part) / Decimal(gpus)  # in Python: DuckDB would divide a DECIMAL as DOUBLE
        energy = (None, Decimal(0)) if per_kwh is None else (Decimal(per_kwh), Decimal(energy_part) / Decimal(gpus))
        discounts = [_Discount(d["n"], Decimal(d["pct"]), d["s"], d["e"]) for d in found or []]
        # a spot step uses the row in force at its hour's start, so the row can bill up to an hour past its end
        last = end + timedelta(hours=1) if end is not None else None
        for at in _breakpoints(start, last, discounts):
            active = sorted((d for d in discounts if d.active(at)), key=lambda d: d.name)
            info = _info(price_id, gpu_hour, label, active, int(gpus))
            out[info.price_id] = replace(info, energy_usd_per_kwh=energy[0], energy_gpu_hour_usd=energy[1])
    return out


def _scope_sql(p: str, d: str) -> str:
    return (
        f"({d}.provider = '' OR {d}.provider = {p}.provider) AND ({d}.region = '' OR {d}.region = {p}.region) "
        f"AND ({d}.capacity_type = '' OR {d}.capacity_type = {p}.capacity_type) "
        f"AND {p}.instance_type GLOB {d}.instance_types"
    )


def _label_sql(p: str) -> str:
    return f"""{p}.provider || '/' || {p}.region || CASE WHEN {p}.zone = '' THEN '' ELSE '/' || {p}.zone END
        || '/' || {p}.instance_type || '/' || {p}.capacity_type
        || CASE WHEN {p}.term = '' THEN '' ELSE ' ' || {p}.term END || '@' || strftime({p}.effective_from, '%Y-%m-%d')
        || CASE WHEN coalesce({p}.source, '') = '' THEN '' ELSE ' (' || {p}.source || ')' END"""


def _breakpoints(start: datetime, end: datetime | None, discounts: list[_Discount]) -> list[datetime]:
    """Instants in [start, end) where the set of active discounts can change."""
    points = {start}
    for d in discounts:
        for t in (d.start, d.end):
            if t is not None and start < t and (end is None or t < end):
                points.add(t)
    return sorted(points)


def _info(base_id: str, list_rate: Decimal, label: str, active: list[_Discount], gpus: int) -> PriceInfo:
    if not active:
        return PriceInfo(base_id, list_rate, label, list_rate, gpus=gpus)
    rate = list_rate
    for d in active:
        rate *= 1 - d.percent / 100
    names = tuple(d.name for d in active)
    suffix = "".join(f" less {d.name} {d.percent.normalize():f}%" for d in active)
    return PriceInfo(base_id + DISCOUNT_SEPARATOR + "+".join(names), rate, label + suffix, list_rate, names, gpus)


def prices_in_force(
    con: duckdb.DuckDBPyConnection, at: datetime | None, instance_type: str | None = None
) -> list[dict[str, Any]]:
    """Price rows (in force at `at`, or all when None) with list and effective $/GPU-hour and provenance."""
    where = ["(? IS NULL OR p.instance_type = ?)"]
    params: list[Any] = [instance_type, instance_type]
    if at is not None:
        where.append("p.effective_from <= ? AND (p.effective_to IS NULL OR ? < p.effective_to)")
        params += [at, at]
    cur = con.execute(
        f"""SELECT p.provider, p.region, p.zone, p.instance_type, p.capacity_type, p.term, p.gpu_model, p.gpus,
            p.price_per_hour_usd, p.gpu_price_per_hour_usd,
            p.effective_from, p.effective_to, p.sku, p.fetched_at, p.source, {PRICE_ID_SQL} AS price_id
        FROM {c.V_PRICE_HISTORY} p WHERE {" AND ".join(where)} ORDER BY ALL""",
        params,
    )
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    infos = load_prices(con)
    for row in rows:
        row["list_gpu_hour_usd"] = Decimal(row.pop("gpu_price_per_hour_usd")) / row["gpus"]
        candidates = [i for k, i in infos.items() if k.split(DISCOUNT_SEPARATOR)[0] == row["price_id"]]
        applied = _applied_at(con, row, at) if at is not None else ()
        info = next((i for i in candidates if i.discounts == applied), None)
        row["gpu_hour_usd"] = info.gpu_hour_usd if info else row["list_gpu_hour_usd"]
        row["discounts"] = ", ".join(applied)
        del row["price_id"]
    return rows


def _applied_at(con: duckdb.DuckDBPyConnection, row: dict[str, Any], at: datetime) -> tuple[str, ...]:
    found = con.execute(
        f"""SELECT d.name FROM {c.T_PRICE_DISCOUNTS} d,
            (SELECT ? AS provider, ? AS region, ? AS capacity_type, ? AS instance_type) p
        WHERE {_scope_sql("p", "d")} AND d.effective_from <= ? AND (d.effective_to IS NULL OR ? < d.effective_to)
        ORDER BY d.name""",
        [row["provider"], row["region"], row["capacity_type"], row["instance_type"], at, at],
    ).fetchall()
    return tuple(r[0] for r in found)
