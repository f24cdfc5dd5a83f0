"""Drift statistics between a reference and a current sample: raw values or binned counts.

Methods (natural logarithms throughout):
- PSI = sum (c - r) ln(c / r) over the reference's quantile bins (deciles by default; with
  histogram input, the exported bucket edges closest to the reference deciles). An empty bin gets
  the share `epsilon` (default 1e-4) on either side so the log stays finite. Bands: < 0.1 stable,
  < 0.25 moderate, else major.
- Kolmogorov-Smirnov: D = max |F_r - F_c|; on raw values scipy's ks_2samp (exact for small samples,
  asymptotic otherwise); on histograms D is taken at the bucket edges and p = kstwo.sf(D, round(mn/(m+n))).
- Normed Wasserstein: W1(ref, cur) / max(std(ref), 0.001) (Evidently's wasserstein_distance_norm).
  Histogram mass is placed at each bucket's upper edge (the +Inf bucket at the last finite edge).
- Jensen-Shannon distance: sqrt(KL(r||m)/2 + KL(c||m)/2), m = (r + c)/2, on the PSI bins (numeric)
  or categories; at most sqrt(ln 2) ~ 0.833 (scipy.spatial.distance.jensenshannon, base e).
- Chi-square for categories: the 2 x k contingency test of independence, without Yates' correction.

Categories whose expected count (under no drift) is under 5 on either side are pooled into one, `__other__`, before
the chi-square (its p-value means nothing below that), under 100 before Jensen-Shannon (over sparse categories it
calls two samples of one distribution drifted: JS_MIN_EXPECTED); a pool still under the floor merges with the
smallest category left. A column of more than 1,000 categories is reported as high-cardinality, with its number of categories and
the share of current rows in categories the reference never saw. Counting is by hashing (pandas value_counts): O(n).

Values that are not finite (±inf) are counted, reported and left out like NaN; a side with no value left (empty,
all missing) cannot be judged: the feature's status is `insufficient`, with the reason, and its drift None.

Default method (comparable to Evidently's registry): a numeric feature with more than 5 distinct
values uses KS when the reference has at most 1,000 rows, normed Wasserstein above; otherwise the
feature is treated as categorical: chi-square up to 1,000 reference rows, Jensen-Shannon above.
p-value tests flag drift below `p_value` (0.05), distances at or above `threshold` (0.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from types import ModuleType

EPSILON = 1e-4
PSI_BANDS = (0.1, 0.25)
N_BINS = 10
SMALL_REFERENCE = 1000  # Evidently: at most this many reference rows -> p-value tests
MAX_CATEGORICAL_UNIQUE = 5
MIN_EXPECTED = 5  # a category expected fewer times than this (under no drift) on either side is pooled
# ... before Jensen-Shannon (references over SMALL_REFERENCE rows), fewer than this: under no drift its divergence is
# about (k - 1) / 4n for k categories of n rows a side, so categories averaging 100 a side keep the distance's
# noise near 0.05, half the threshold (10,000 categories of 20 rows each once read 0.11: "drift")
JS_MIN_EXPECTED = 100
HIGH_CARDINALITY = 1000  # more categories than this: reported as high-cardinality
OTHER = "__other__"
MISSING_SHARE = 0.1  # a change of the missing share (NaN, None, ±inf) by this much is drift


@dataclass(frozen=True)
class DriftPolicy:
    epsilon: float = EPSILON
    psi_bands: tuple[float, float] = PSI_BANDS
    p_value: float = 0.05
    threshold: float = 0.1
    missing_share: float = MISSING_SHARE
    drift_share: float = 0.5  # the dataset drifts when this share of its judged columns did (Evidently's default)
    methods: dict[str, str] = field(default_factory=dict)  # column -> the method that decides it
    thresholds: dict[str, float] = field(default_factory=dict)  # column -> its p-value, distance or PSI threshold


# method -> (the statistic that decides it, a p-value: drift below the threshold; else at or above it)
METHODS = {
    "ks": ("ks_p_value", True),
    "chi_square": ("chi_square_p_value", True),
    "wasserstein_normed": ("wasserstein_normed", False),
    "jensen_shannon": ("jensen_shannon", False),
    "psi": ("psi", False),
    "mmd": ("mmd_p_value", True),
}
FOR_KIND = {"numeric": ("ks", "wasserstein_normed", "jensen_shannon", "psi"),
            "categorical": ("chi_square", "jensen_shannon", "psi"), "embedding": ("mmd",)}  # fmt: skip


class MethodError(ValueError):
    """A method asked for a column it cannot test."""


@dataclass
class FeatureDrift:
    feature: str
    kind: str  # numeric | categorical
    method: str  # the default method that decides `drift`
    n_reference: float
    n_current: float
    statistics: dict[str, float | None] = field(default_factory=dict)
    drift: bool | None = False  # None: not judged (status insufficient)
    psi_band: str | None = None
    reason: str | None = None  # why it is insufficient, or which check found drift beyond the distribution's

    @property
    def status(self) -> str:
        return "insufficient" if self.drift is None else "drift" if self.drift else "no_drift"

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "method": self.method,
            "status": self.status,
            "drift": self.drift,
            "reason": self.reason,
            "psi_band": self.psi_band,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            **self.statistics,
        }


def _stats() -> ModuleType:
    """scipy.stats, imported on first use: it takes about a second, and most commands never test drift."""
    from scipy import stats

    return stats


def psi(reference_share: np.ndarray, current_share: np.ndarray, epsilon: float = EPSILON) -> float:
    r = np.where(reference_share == 0, epsilon, reference_share)
    c = np.where(current_share == 0, epsilon, current_share)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_band(value: float, bands: tuple[float, float] = PSI_BANDS) -> str:
    return "major" if value >= bands[1] else "moderate" if value >= bands[0] else "stable"


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base e) of two count vectors: scipy's, normalising them itself."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(p, q))


def chi_square(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float, int]:
    """Statistic, p-value and degrees of freedom of the 2 x k test of independence (scipy's chi2_contingency,
    without Yates' correction). Categories neither side has are left out; with fewer than two left, or an
    empty side, there is nothing to test: (0, 1, 0)."""
    table = np.vstack([reference_counts, current_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    result = _stats().chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue), int(result.dof)


def wasserstein(
    u: np.ndarray, v: np.ndarray, u_weights: np.ndarray | None = None, v_weights: np.ndarray | None = None
) -> float:
    """W1 between two samples, or two weighted supports (histogram counts): scipy's wasserstein_distance."""
    return float(_stats().wasserstein_distance(u, v, u_weights, v_weights))


def quantile_edges(reference: np.ndarray, bins: int = N_BINS) -> np.ndarray:
    """Inner cut points at the reference's quantiles (duplicates merged)."""
    return np.unique(np.quantile(reference, np.arange(1, bins) / bins))


def _binned(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    # Bins (-inf, q1], (q1, q2], ..., (q_last, inf): a value equal to a cut falls in the lower bin.
    return np.bincount(np.searchsorted(cuts, values, side="left"), minlength=len(cuts) + 1).astype(float)


def insufficient(feature: str, kind: str, n_reference: float, n_current: float, reason: str) -> FeatureDrift:
    return FeatureDrift(feature, kind, "none", n_reference, n_current, drift=None, reason=reason)


def empty_side(n_reference: float, n_current: float, what: str) -> str | None:
    sides = [name for name, n in (("reference", n_reference), ("current", n_current)) if not n]
    return f"the {' and the '.join(sides)} sample{'s have' if len(sides) == 2 else ' has'} no {what}" if sides else None


def numeric_drift(feature: str, reference: np.ndarray, current: np.ndarray, policy: DriftPolicy) -> FeatureDrift:
    """Every numeric statistic on the finite values, and the verdict of the default method."""
    infinite = {
        "infinite_reference": float(np.isinf(reference).sum()),
        "infinite_current": float(np.isinf(current).sum()),
    }
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    empty = empty_side(len(reference), len(current), "finite value")
    if empty:
        out = insufficient(feature, "numeric", float(len(reference)), float(len(current)), empty)
        out.statistics = {**infinite}
        return out
    # a few thousand values with more than 5 distinct ones settle it; only a column that could be categorical is
    # counted whole
    head = np.concatenate([reference[:2000], current[:2000]])
    if (
        _distinct(head) <= MAX_CATEGORICAL_UNIQUE
        and _distinct(np.concatenate([reference, current])) <= MAX_CATEGORICAL_UNIQUE
    ):
        out = categorical_drift(feature, reference, current, policy)  # counted as text: "1.0"
        out.statistics.update(infinite)
        return out
    cuts = quantile_edges(reference)
    r_counts, c_counts = _binned(reference, cuts), _binned(current, cuts)
    ks = _stats().ks_2samp(reference, current)
    value = psi(r_counts / r_counts.sum(), c_counts / c_counts.sum(), policy.epsilon)
    out = FeatureDrift(feature, "numeric", "", float(len(reference)), float(len(current)))
    out.statistics = {
        "psi": value,
        "ks_statistic": float(ks.statistic),
        "ks_p_value": float(ks.pvalue),
        "wasserstein_normed": wasserstein(reference, current) / max(float(np.std(reference)), 0.001),
        "jensen_shannon": jensen_shannon(r_counts, c_counts),
        **infinite,
    }
    return decide(out, policy)


def categorical_drift(feature: str, reference: np.ndarray, current: np.ndarray, policy: DriftPolicy) -> FeatureDrift:
    """Counts per category by sorting (O(n log n) at any number of categories), rare ones pooled."""
    empty = empty_side(len(reference), len(current), "value")
    if empty:
        return insufficient(feature, "categorical", float(len(reference)), float(len(current)), empty)
    r_cats, r_n = _counted(reference)
    c_cats, c_n = _counted(current)
    categories = np.union1d(r_cats, c_cats)
    r = np.zeros(len(categories))
    c = np.zeros(len(categories))
    r[np.searchsorted(categories, r_cats)] = r_n
    c[np.searchsorted(categories, c_cats)] = c_n
    unseen = float(c[r == 0].sum() / c.sum())
    floor = MIN_EXPECTED if len(reference) <= SMALL_REFERENCE else JS_MIN_EXPECTED
    names, r_pooled, c_pooled = pooled([str(k) for k in categories], r, c, floor)
    out = counts_drift(feature, names, r_pooled, c_pooled, policy)
    out.statistics["categories"] = float(len(categories))
    out.statistics["unseen_share_current"] = unseen
    if len(categories) > HIGH_CARDINALITY:
        out.kind = "categorical (high cardinality)"
    return out


def _distinct(values: np.ndarray) -> int:
    """How many distinct values (hashing, O(n): sorting 2 million floats took a fifth of a column's time)."""
    import pandas as pd

    return len(pd.unique(values))


def _counted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (sorted, as text) and their counts, by hashing (pandas value_counts: O(n); sorting a million
    strings took a second)."""
    import pandas as pd

    counts = pd.Series(values).value_counts(sort=False)
    keys = np.array([str(k) for k in counts.index], dtype=object)
    order = np.argsort(keys, kind="stable")
    return keys[order], counts.to_numpy()[order]


def pooled(
    categories: list[str], r: np.ndarray, c: np.ndarray, floor: float = MIN_EXPECTED
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Categories expected fewer than `floor` times on either side (under no drift) pooled into OTHER; a pool still
    under it merged with the smallest category left, until every one is at least that or one is left."""
    n_r, n_c = r.sum(), c.sum()
    if not n_r or not n_c:
        return categories, r, c
    total = r + c
    rare = np.minimum(total * n_r, total * n_c) / (n_r + n_c) < floor
    if not rare.any():
        return categories, r, c
    keep = np.flatnonzero(~rare)
    order = keep[np.argsort(total[keep], kind="stable")]  # smallest first: the next to join the pool
    pool_r, pool_c, i = r[rare].sum(), c[rare].sum(), 0
    while i < len(order) and (pool_r + pool_c) * min(n_r, n_c) / (n_r + n_c) < floor:
        pool_r, pool_c, i = pool_r + r[order[i]], pool_c + c[order[i]], i + 1
    left = np.sort(order[i:])
    return ([categories[j] for j in left] + [OTHER], np.append(r[left], pool_r), np.append(c[left], pool_c))


def counts_drift(
    feature: str, categories: list[str], reference: np.ndarray, current: np.ndarray, policy: DriftPolicy
) -> FeatureDrift:
    """Categorical drift from counts per category (e.g. requests per finished_reason)."""
    empty = empty_side(float(reference.sum()), float(current.sum()), "count")
    if empty:
        return insufficient(feature, "categorical", float(reference.sum()), float(current.sum()), empty)
    statistic, p, dof = chi_square(reference, current)
    out = FeatureDrift(feature, "categorical", "", float(reference.sum()), float(current.sum()))
    out.statistics = {
        "chi_square": statistic,
        "chi_square_p_value": p,
        "chi_square_dof": float(dof),
        "jensen_shannon": jensen_shannon(reference, current),
        "psi": psi(reference / reference.sum(), current / current.sum(), policy.epsilon),
        **{f"share_reference[{k}]": float(v / reference.sum()) for k, v in zip(categories, reference, strict=True)},
        **{f"share_current[{k}]": float(v / current.sum()) for k, v in zip(categories, current, strict=True)},
    }
    return decide(out, policy)


def decide(out: FeatureDrift, policy: DriftPolicy) -> FeatureDrift:
    """The verdict of the column's method (its own, where the policy names one, else the default for its kind and
    size) against its threshold (its own, else the policy's p-value, distance or first PSI band)."""
    s = out.statistics
    small = out.n_reference <= SMALL_REFERENCE
    kind = "numeric" if out.kind in ("numeric", "datetime") else out.kind if out.kind == "embedding" else "categorical"
    default = {
        "numeric": "ks" if small else "wasserstein_normed",
        "categorical": "chi_square" if small else "jensen_shannon",
        "embedding": "mmd",
    }[kind]
    out.method = policy.methods.get(out.feature, default)
    if out.method not in FOR_KIND[kind]:
        raise MethodError(
            f"column {out.feature!r} is {kind}: method {out.method!r} does not apply (choose {', '.join(FOR_KIND[kind])})"
        )
    statistic, is_p = METHODS[out.method]
    fallback = policy.p_value if is_p else policy.psi_bands[0] if out.method == "psi" else policy.threshold
    threshold = policy.thresholds.get(out.feature, fallback)
    deciding = s.get(statistic)
    if deciding is None or not math.isfinite(deciding):
        out.drift, out.reason = None, f"{out.method} is not a number on these samples"
        return out
    out.drift = deciding < threshold if is_p else deciding >= threshold
    value = s.get("psi")
    if value is not None and math.isfinite(value):
        out.psi_band = psi_band(value, policy.psi_bands)
    return out


def histogram_cuts(edges: np.ndarray, reference_counts: np.ndarray, bins: int = N_BINS) -> np.ndarray:
    """Indices of the bucket edges closest to the reference's quantiles: the PSI bins a histogram
    allows (bucket j holds values in (edge[j-1], edge[j]])."""
    cdf = np.cumsum(reference_counts) / reference_counts.sum()
    finite = np.isfinite(edges)
    cuts = {int(np.argmax(cdf >= q - 1e-12)) for q in np.arange(1, bins) / bins}
    return np.array(sorted(j for j in cuts if finite[j] and j < len(edges) - 1), dtype=int)


def _merge(counts: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    bounds = np.concatenate([[0], cuts + 1, [len(counts)]])
    return np.array([counts[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:], strict=True)], dtype=float)


def histogram_drift(
    feature: str, edges: np.ndarray, reference: np.ndarray, current: np.ndarray, policy: DriftPolicy
) -> FeatureDrift:
    """Numeric drift from bucket counts (non-cumulative, one per `le` edge, +Inf last)."""
    empty = empty_side(float(reference.sum()), float(current.sum()), "observation in its window")
    if empty:
        return insufficient(feature, "numeric", float(reference.sum()), float(current.sum()), empty)
    out = FeatureDrift(feature, "numeric", "", float(reference.sum()), float(current.sum()))
    cuts = histogram_cuts(edges, reference)
    r_bins, c_bins = _merge(reference, cuts), _merge(current, cuts)
    f_r, f_c = np.cumsum(reference) / reference.sum(), np.cumsum(current) / current.sum()
    d = float(np.max(np.abs(f_r - f_c)))
    n, m = reference.sum(), current.sum()
    last_finite = edges[np.isfinite(edges)][-1]
    points = np.where(np.isfinite(edges), edges, last_finite)
    mean = np.average(points, weights=reference)
    std = math.sqrt(float(np.average((points - mean) ** 2, weights=reference)))
    out.statistics = {
        "psi": psi(r_bins / r_bins.sum(), c_bins / c_bins.sum(), policy.epsilon),
        "ks_statistic": d,
        "ks_p_value": float(_stats().kstwo.sf(d, round(n * m / (n + m)))),
        "wasserstein_normed": wasserstein(points, points, reference, current) / max(std, 0.001),
        "jensen_shannon": jensen_shannon(r_bins, c_bins),
        "psi_bins": float(len(r_bins)),
    }
    return decide(out, policy)
