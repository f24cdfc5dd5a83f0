"""Prices that come from the settings file: on-prem GPU servers and discounts.

On-prem / colo cost of one server-hour (straight-line depreciation, standard TCO):
    capex x (1 - residual) / (years x 8760)      depreciation
  + capex x opex_fraction_per_year / 8760        support, space, staff
  + power_kw x PUE x usd_per_kwh                 energy, cooling included through PUE
and one GPU-hour is that / GPUs per server (times pricing.gpu_share). Example: $300k, 4 years, no
residual, 15% opex, 8 kW, PUE 1.4, $0.10/kWh, 8 GPUs: 8.5616 + 5.1370 + 1.12 = 14.8186 $/h, 1.8523
$/GPU-h. Idle owned GPUs cost the same; the chargeback shows that cost on `__idle__`. A configured
`gpu_hour_usd` (an internal per-GPU rate) is used directly instead.

Measured energy (`energy: measured`, the default): the row also stores the electricity price per kWh with PUE
(1.4 x $0.10 = $0.14 above) and the power in its GPU part (power x pricing.gpu_share per node-hour). Where a
report's window has the servers' GPUs reporting energy in a cluster, the chargeback bills those GPU-hours at the GPU
part less that power, and every kWh they drew at the price per kWh, to whoever drew it (analytics/cost/chargeback.py).
The GPUs' power then costs what they drew, not the nameplate: a fleet idling at 70 W is not billed for 700.

Discounts (negotiated %, savings plans, committed use) are stored with their dates and scope; the
analytics apply them to every matching price in force, GPUs included (OpenCost discounts CPU and RAM
only), and keep the list price beside the effective one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import duckdb

from collectors.pricing.price_table import ImportOptions, Parsed, PriceRow, finish
from core import conventions as c
from core.errors import ConfigError
from core.settings import OnPremSettings, PricingSettings
from core.store.warehouse import transaction

SOURCE = "settings pricing.on_prem"


@dataclass(frozen=True)
class OnPremCost:
    depreciation: Decimal
    opex: Decimal
    power: Decimal

    @property
    def node_hour(self) -> Decimal:
        return self.depreciation + self.opex + self.power


def on_prem_cost(server: OnPremSettings) -> OnPremCost:
    hours = Decimal(c.HOURS_PER_YEAR)
    return OnPremCost(
        depreciation=server.capex_usd * (1 - server.residual_fraction) / (server.amortization_years * hours),
        opex=server.capex_usd * server.opex_fraction_per_year / hours,
        power=server.power_kw * server.pue * server.usd_per_kwh,
    )


def on_prem_rows(pricing: PricingSettings, options: ImportOptions) -> Parsed:
    """One on_prem price row per configured server type."""
    if not pricing.on_prem:
        raise ConfigError("no on-prem servers configured (settings pricing.on_prem)")
    rows = []
    for i, server in enumerate(pricing.on_prem):
        where = f"{SOURCE}[{i}]"
        energy: tuple[Decimal | None, Decimal | None] = (None, None)
        gpu_part: Decimal | None
        if server.gpu_hour_usd is not None:
            node_hour = gpu_part = server.gpu_hour_usd * server.gpus_per_node
            how = f"{server.gpu_hour_usd}/GPU-h x {server.gpus_per_node} GPUs"
        elif server.capex_usd > 0:
            node_hour, gpu_part, energy, how = _capex_model(server, options.gpu_share)
        else:
            raise ConfigError(f"{where}: set capex_usd (and the other cost inputs) or gpu_hour_usd")
        rows.append(
            PriceRow(
                provider=c.PROVIDER_ON_PREM,
                region=server.region,
                instance_type=server.instance_type,
                capacity_type="on_prem",
                gpu_model=server.gpu_model,
                gpus=server.gpus_per_node,
                price_per_hour_usd=node_hour,
                effective_from=_midnight(server.effective_from),
                source=f"{where}: {how}",
                gpu_price_per_hour_usd=gpu_part,
                energy_usd_per_kwh=energy[0],
                gpu_energy_usd_per_hour=energy[1],
            )
        )
    return finish(rows, SOURCE, options)


def _capex_model(
    server: OnPremSettings, gpu_share: Decimal
) -> tuple[Decimal, Decimal | None, tuple[Decimal | None, Decimal | None], str]:
    """(node-hour price, its GPU part or None for price x GPU share, (price per kWh, GPU part's power) when the
    GPUs' power is charged as measured, how it was computed)."""
    cost = on_prem_cost(server)
    how = (
        f"capex {server.capex_usd} x (1 - {server.residual_fraction}) / ({server.amortization_years} y x "
        f"{c.HOURS_PER_YEAR} h) + {server.opex_fraction_per_year} x capex / {c.HOURS_PER_YEAR} h + "
        f"{server.power_kw} kW x PUE {server.pue} x {server.usd_per_kwh}/kWh"
    )
    if server.energy != "measured" or cost.power <= 0:
        return cost.node_hour, None, (None, None), how
    per_kwh = server.pue * server.usd_per_kwh
    how += f"; the GPUs' power as measured, at {per_kwh.normalize():f}/kWh with PUE"
    return cost.node_hour, cost.node_hour * gpu_share, (per_kwh, cost.power * gpu_share), how


def store_discounts(con: duckdb.DuckDBPyConnection, pricing: PricingSettings) -> int:
    """Replace the stored discounts with the configured ones (the settings file is their record)."""
    names = [d.name for d in pricing.discounts]
    if len(set(names)) != len(names):
        raise ConfigError("settings pricing.discounts: two discounts have the same name")
    with transaction(con):
        con.execute(f"DELETE FROM {c.T_PRICE_DISCOUNTS}")
        for i, d in enumerate(pricing.discounts):
            if d.effective_to is not None and d.effective_to <= d.effective_from:
                raise ConfigError(f"settings pricing.discounts[{i}]: effective_to is not after effective_from")
            con.execute(
                f"INSERT INTO {c.T_PRICE_DISCOUNTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    d.name,
                    d.percent,
                    d.provider,
                    d.region,
                    d.instance_types,
                    d.capacity_type,
                    _midnight(d.effective_from),
                    _midnight(d.effective_to) if d.effective_to else None,
                    f"settings pricing.discounts[{i}]",
                ],
            )
    return len(names)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())
