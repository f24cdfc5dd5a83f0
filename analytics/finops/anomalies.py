"""Daily-spend anomalies per team: robust, explainable, with the workloads that drove them.

For each team and day, the expected spend is the median of the previous `lookback` days and the
spread is their median absolute deviation (MAD, scaled by 1.4826 to match a standard deviation
for normal data). A day is an anomaly when |actual - expected| / spread >= threshold AND the
difference is at least `min_usd` (so a $0.02 team can't page anyone). When the history is flat
(MAD = 0), any difference above `min_usd` counts. Drivers: the workloads whose spend moved most
against their own median, in the direction of the anomaly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from statistics import median
from typing import Any

MAD_SCALE = Decimal("1.4826")


@dataclass(frozen=True)
class Driver:
    workload: str
    expected_usd: Decimal
    actual_usd: Decimal


@dataclass(frozen=True)
class Anomaly:
    team: str
    day: date
    expected_usd: Decimal
    actual_usd: Decimal
    score: float | None  # robust z; None when the history is flat
    drivers: tuple[Driver, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "team": self.team,
            "day": self.day.isoformat(),
            "expected_usd": str(self.expected_usd),
            "actual_usd": str(self.actual_usd),
            "difference_usd": str(self.actual_usd - self.expected_usd),
            "robust_z": round(self.score, 2) if self.score is not None else None,
            "drivers": "; ".join(f"{d.workload} {d.expected_usd}->{d.actual_usd}" for d in self.drivers),
        }


def _med(values: list[Decimal]) -> Decimal:
    return Decimal(median(values)) if values else Decimal(0)


def detect(
    daily: dict[str, dict[date, Decimal]],
    workloads: dict[tuple[str, str], dict[date, Decimal]],
    days: list[date],
    threshold: float,
    min_usd: Decimal,
    lookback: int = 14,
    min_history: int = 5,
) -> list[Anomaly]:
    """daily: team -> day -> spend; workloads: (team, workload) -> day -> spend; days: all days, in order."""
    out = []
    for team in sorted(daily):
        series = [daily[team].get(d, Decimal(0)) for d in days]
        for i in range(min_history, len(days)):
            history = series[max(0, i - lookback) : i]
            expected = _med(history)
            spread = _med([abs(v - expected) for v in history]) * MAD_SCALE
            diff = series[i] - expected
            if abs(diff) < min_usd:
                continue
            score = float(diff / spread) if spread > 0 else None
            if score is not None and abs(score) < threshold:
                continue
            drivers = _drivers(team, workloads, days, i, lookback, diff > 0)
            out.append(
                Anomaly(
                    team,
                    days[i],
                    expected.quantize(Decimal("0.01")),
                    series[i].quantize(Decimal("0.01")),
                    score,
                    drivers,
                )
            )
    return out


def _drivers(
    team: str, workloads: dict[tuple[str, str], dict[date, Decimal]], days: list[date], i: int, lookback: int, up: bool
) -> tuple[Driver, ...]:
    moves = []
    for (t, name), by_day in workloads.items():
        if t != team:
            continue
        history = [by_day.get(d, Decimal(0)) for d in days[max(0, i - lookback) : i]]
        expected, actual = _med(history), by_day.get(days[i], Decimal(0))
        moves.append((actual - expected, name, expected, actual))
    moves.sort(key=lambda m: (-m[0] if up else m[0], m[1]))
    top = [m for m in moves if (m[0] > 0 if up else m[0] < 0)][:3]
    return tuple(Driver(name, e.quantize(Decimal("0.01")), a.quantize(Decimal("0.01"))) for _, name, e, a in top)
