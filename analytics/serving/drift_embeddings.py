"""Drift of model inputs held as vectors (a Parquet list column of embeddings).

- MMD: the unbiased squared maximum mean discrepancy (Gretton et al. 2012) with a Gaussian kernel
  k(x, y) = exp(-|x - y|^2 / (2 s^2)), s the median distance between the pooled vectors (the median heuristic);
  its p-value by permutation: (1 + the permutations whose MMD reaches the observed one) / (1 + permutations).
  Drift when p < the policy's p-value.
- The distance between the two means (Euclidean), beside it, and the vectors' dimension.

Each side is cut to `max_rows` vectors (a seeded sample: the kernel matrix is quadratic) and vectors that are
not finite are dropped like NaN; fewer than two vectors a side, or sides of different dimensions, cannot be
judged (`insufficient`, with the reason). Seeded: the same files give the same p-value.
"""

from __future__ import annotations

import numpy as np

from analytics.serving.drift import DriftPolicy, FeatureDrift, decide, insufficient

PERMUTATIONS = 200
MAX_ROWS = 1000


def mmd2_unbiased(k: np.ndarray, n: int) -> float:
    """MMD^2 (unbiased) from the pooled kernel matrix `k`, its first `n` rows the reference."""
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    m = k.shape[0] - n
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    )


def gaussian_kernel(x: np.ndarray) -> np.ndarray:
    """exp(-|xi - xj|^2 / (2 s^2)) over the rows of `x`, s the median of their pairwise distances."""
    sq = np.sum(x * x, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    off = d2[~np.eye(len(x), dtype=bool)]
    s2 = float(np.median(off)) or 1.0  # the median distance squared; all vectors equal: any bandwidth
    return np.asarray(np.exp(-d2 / (2 * s2)))


def embedding_drift(
    feature: str,
    reference: np.ndarray,
    current: np.ndarray,
    policy: DriftPolicy,
    permutations: int = PERMUTATIONS,
    max_rows: int = MAX_ROWS,
) -> FeatureDrift:
    """`reference` and `current`: one vector a row."""
    rng = np.random.default_rng(0)
    sides = []
    for side in (reference, current):
        side = side[np.isfinite(side).all(axis=1)] if side.ndim == 2 else side
        sides.append(side[rng.choice(len(side), max_rows, replace=False)] if len(side) > max_rows else side)
    ref, cur = sides
    if ref.ndim != 2 or cur.ndim != 2 or ref.shape[1] != cur.shape[1]:
        return insufficient(feature, "embedding", float(len(ref)), float(len(cur)), "the vectors' dimensions differ")
    if len(ref) < 2 or len(cur) < 2:
        which = "reference" if len(ref) < 2 else "current"
        return insufficient(feature, "embedding", float(len(ref)), float(len(cur)), f"the {which} has under 2 vectors")
    k = gaussian_kernel(np.vstack([ref, cur]))
    n = len(ref)
    observed = mmd2_unbiased(k, n)
    reached = 0
    for _ in range(permutations):
        order = rng.permutation(len(k))
        reached += mmd2_unbiased(k[np.ix_(order, order)], n) >= observed
    out = FeatureDrift(feature, "embedding", "", float(len(ref)), float(len(cur)))
    out.statistics = {
        "mmd2": observed,
        "mmd_p_value": (1 + reached) / (1 + permutations),
        "mean_distance": float(np.linalg.norm(ref.mean(axis=0) - cur.mean(axis=0))),
        "dimensions": float(ref.shape[1]),
    }
    return decide(out, policy)
