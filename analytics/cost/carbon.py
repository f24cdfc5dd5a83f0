"""Carbon of the GPU energy the ledger measures: kgCO2e = kWh x PUE x the grid's carbon intensity in the node's region.

A pure lookup the chargeback applies to each usage fact (its energy, its node's region and cluster, its price row's
provider), so carbon is additive like energy and is split by the same rules. The intensity is an annual average per
region (a table passed in: collectors/carbon/intensity.py ships Cloud Carbon Footprint's), or, for the regions `zones`
maps to a grid zone, that zone's imported intensity in each hour (the chargeback joins it per usage hour and hands
the sums here: `hourly_grams`); PUE comes from the
settings, by cluster (an on-prem site) first, then by provider, else a default. A region the table does not know
has no carbon figure: its energy is counted as unpriced carbon and the region named, never taken as zero.

Embodied emissions (the Green Software Foundation's SCI term M), off unless configured: a GPU model's manufacturing
footprint amortised evenly over its stated lifetime, so each GPU-hour a row holds (allocated, idle or unhealthy)
carries grams per GPU-hour of its model. A model is matched by the longest configured name it contains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class CarbonTable:
    intensity: Mapping[str, Decimal] = field(default_factory=dict)  # region -> gCO2e per kWh
    pue_by_key: Mapping[str, Decimal] = field(default_factory=dict)  # cluster or provider -> PUE
    pue_default: Decimal = Decimal("1.5")
    embodied: Mapping[str, Decimal] = field(default_factory=dict)  # GPU model (part of its name) -> gCO2e per GPU-hour
    # region (or cluster) -> grid zone whose hourly intensity (the warehouse's imports) prices its energy hour by hour
    zones: Mapping[str, str] = field(default_factory=dict)

    def pue(self, cluster: str, provider: str) -> Decimal:
        """The facility's overhead: the cluster's (an on-prem site), else its provider's, else the default."""
        return self.pue_by_key.get(cluster) or self.pue_by_key.get(provider) or self.pue_default

    def grams(self, joules: Decimal, region: str | None, cluster: str, provider: str) -> Decimal | None:
        """gCO2e of `joules` drawn at the GPUs in `region` (None: the region has no intensity)."""
        g = self.intensity.get(region or "")
        if g is None:
            return None
        return joules / Decimal(3_600_000) * self.pue(cluster, provider) * g

    def hourly_grams(self, joule_g_per_kwh: Decimal, cluster: str, provider: str) -> Decimal:
        """gCO2e of energy priced hour by hour: the sum of each hour's joules x its gCO2e/kWh, with the facility's PUE."""
        return joule_g_per_kwh / Decimal(3_600_000) * self.pue(cluster, provider)

    def embodied_per_gpu_hour(self, gpu_model: str | None) -> Decimal | None:
        """gCO2e per GPU-hour of the model's amortised manufacturing (None: not configured for it)."""
        name = (gpu_model or "").lower()
        found = [k for k in self.embodied if k.lower() in name]
        return self.embodied[max(found, key=len)] if found and name else None
