"""Seeded per-sample signals: GPU activity by workload kind, memory, power, temperature, traffic.

Only uniform draws from numpy's PCG64 bit stream are used (normals come from Box-Muller here),
because numpy keeps the raw stream stable across releases but not every distribution method:
the same seed gives the same bytes.
"""

from __future__ import annotations

import math

import numpy as np

from collectors.simulator.fleet import Pod


class Stream:
    def __init__(self, seed: int) -> None:
        self._gen = np.random.Generator(np.random.PCG64(seed))

    def uniform(self, n: int) -> np.ndarray:
        return self._gen.random(n)

    def normal(self, n: int) -> np.ndarray:
        u1 = np.maximum(self._gen.random(n), 1e-12)
        u2 = self._gen.random(n)
        return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)


def clock(start_hour: float, start_weekday: int, n: int, interval_s: int) -> tuple[np.ndarray, np.ndarray]:
    """Hour of day (UTC) and weekday (0 = Monday) of every sample index."""
    hours = start_hour + np.arange(n) * interval_s / 3600.0
    return hours % 24.0, (start_weekday + (hours // 24).astype(int)) % 7


def diurnal(hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """0..1 load curve peaking at 15:00 UTC (10:00 in New York), 40% lower at weekends."""
    curve = 0.5 + 0.5 * np.sin(2 * math.pi * (hour - 9.0) / 24.0)
    return curve * np.where(weekday >= 5, 0.6, 1.0)


def activity(stream: Stream, pod: Pod, hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """Graphics-engine activity (0..1) of a pod over its Running samples."""
    sl = slice(pod.start, pod.end)
    n = pod.end - pod.start
    z = stream.normal(n)
    if pod.kind == "training":
        act = 0.88 + 0.04 * z
        act = np.where(stream.uniform(n) < 0.03, 0.2, act)  # data-loader stalls
    elif pod.kind == "inference":
        act = 0.12 + 0.65 * diurnal(hour[sl], weekday[sl]) + 0.03 * z
    elif pod.kind == "notebook":
        act = 0.01 + 0.15 * stream.uniform(n) ** 3  # mostly idle: a notebook holding a GPU
    else:
        act = 0.55 + 0.12 * z
    return np.clip(act, 0.0, 1.0)


def memory_share(kind: str) -> float:
    return {"training": 0.82, "inference": 0.71, "notebook": 0.27}.get(kind, 0.45)


IDLE_W = 72.0  # an idle data-centre GPU draws 60-90 W (A100/H100 at P0 with nothing running)


def power(act: np.ndarray, tdp_w: float, noise: np.ndarray) -> np.ndarray:
    """Board power: idle draw plus activity's share of the rest of the TDP, never above the TDP."""
    return np.clip(IDLE_W + act * (tdp_w - IDLE_W) + 4.0 * noise, 60.0, tdp_w)


def temperature(act: np.ndarray) -> np.ndarray:
    return np.round(31.0 + 42.0 * act)


def requests_per_interval(stream: Stream, act: np.ndarray, interval_s: int) -> np.ndarray:
    """Served requests per scrape interval: ~4 req/s at full activity, Poisson-like noise."""
    mean = 4.0 * act * interval_s
    return np.maximum(0, np.round(mean + np.sqrt(mean) * stream.normal(len(act)))).astype(np.int64)


def lognormal_cdf(edges: list[float], median: float, sigma: float) -> np.ndarray:
    mu = math.log(median)
    return np.array([0.5 * (1 + math.erf((math.log(e) - mu) / (sigma * math.sqrt(2)))) for e in edges])
