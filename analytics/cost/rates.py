"""What a GPU-unit-second of each price row costs in a cluster: the one statement every per-row figure reads.

The chargeback (analytics/cost/chargeback.py) and the per-pod bill (analytics/cost/pod_bill.py) price their facts
here, so a pod's allocated cost is the same number in both. On-prem rows that charge measured energy by the kWh
(`pricing.on_prem` energy: measured) are *metered* in the clusters whose GPUs reported energy in the window: their
GPU-hours then cost the price without its nameplate power, and the energy is charged as measured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from analytics.cost.prices import PriceInfo
from core import conventions as c

ZERO = Decimal(0)
UNIT_HOURS = c.GPU_UNITS * 3600
J_PER_KWH = Decimal(3_600_000)


class Rates:
    """Per (price row, cluster): ($ per unit-second at list, the discount per unit-second (<= 0), provenance or None),
    worked out once (Decimal divisions: a per-pod report asks twice per pod)."""

    def __init__(self, infos: Mapping[str, PriceInfo], fallback_gpu_hour_usd: Decimal | None) -> None:
        self.infos, self.fallback = infos, fallback_gpu_hour_usd
        # (cluster, price_id) -> the price without its nameplate power, where measured energy is charged
        self.metered: dict[tuple[str, str], PriceInfo] = {}
        self._rates: dict[tuple[str | None, str], tuple[Decimal, Decimal, str | None]] = {}

    def energy_priced(self) -> bool:
        """Whether any price row charges by the kWh (else nothing is metered, whatever the GPUs reported)."""
        return any(i.energy_usd_per_kwh is not None for i in self.infos.values())

    def meter(self, drawn: Iterable[tuple[str, str | None]]) -> None:
        """Note the (cluster, price row) pairs under which GPUs drew energy in the window: those whose row charges
        by the kWh are metered. Before any `rate` is read."""
        for cluster, price_id in drawn:
            info = self.infos.get(price_id) if price_id is not None else None
            if price_id is not None and info is not None and info.energy_usd_per_kwh is not None:
                self.metered.setdefault((cluster, price_id), info.metered())

    def rate(self, price_id: str | None, cluster: str) -> tuple[Decimal, Decimal, str | None]:
        found = self._rates.get((price_id, cluster))
        if found is None:
            found = self._rates[(price_id, cluster)] = self._work_out(price_id, cluster)
        return found

    def _work_out(self, price_id: str | None, cluster: str) -> tuple[Decimal, Decimal, str | None]:
        info = self.metered.get((cluster, price_id)) if price_id is not None else None
        info = info or (self.infos.get(price_id) if price_id is not None else None)
        if info is None:
            return (self.fallback or ZERO) / UNIT_HOURS, ZERO, None
        return info.list_rate / UNIT_HOURS, info.discount_gpu_hour_usd / UNIT_HOURS, info.source

    def energy_cost(self, joules: Decimal, cluster: str, price_id: str | None) -> Decimal | None:
        """The measured energy's cost where its price row is metered in the cluster, else None."""
        info = self.metered.get((cluster, price_id)) if price_id is not None else None
        if info is None or info.energy_usd_per_kwh is None:
            return None
        return joules * info.energy_usd_per_kwh / J_PER_KWH
