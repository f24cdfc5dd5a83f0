"""Embedding drift (issue 29): a Parquet list column of vectors is tested by the maximum mean discrepancy with a
permutation p-value, beside the distance between the means; the statistic is checked against a direct computation."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.serving.drift_embeddings import gaussian_kernel, mmd2_unbiased
from tests.conftest import run_cli


def _direct_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Gretton et al.'s unbiased MMD^2 with a Gaussian kernel at the median heuristic, term by term."""
    pooled = np.vstack([x, y])
    d2 = [float(np.sum((a - b) ** 2)) for (i, a), (j, b) in product(enumerate(pooled), repeat=2) if i != j]
    s2 = float(np.median(d2))

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-np.sum((a - b) ** 2) / (2 * s2)))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(a, b) for a in x for b in y) / (n * m)
    return xx + yy - 2 * xy


def test_the_mmd_statistic_is_the_direct_computation() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(0, 1, (20, 3)), rng.normal(0.4, 1.2, (15, 3))
    got = mmd2_unbiased(gaussian_kernel(np.vstack([x, y])), len(x))
    assert got == pytest.approx(_direct_mmd2(x, y), rel=1e-12, abs=1e-15)


def _check(tmp_path: Path, ref: list, cur: list) -> dict:
    paths = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    pd.DataFrame({"embedding": ref}).to_parquet(paths[0])
    pd.DataFrame({"embedding": cur}).to_parquet(paths[1])
    result = run_cli("drift", "check", "--reference", str(paths[0]), "--current", str(paths[1]), "--format", "json")
    assert result.exit_code in (0, 2), result.output
    return json.loads(result.output.split("gpuledger: error:")[0])["features"]["embedding"]


SHIFT = np.array([0.5, 0, 0, 0, 0, 0, 0, 0])  # half a standard deviation along one of 8 dimensions


@pytest.mark.parametrize(
    ("shift", "status"), [(np.zeros(8), "no_drift"), (SHIFT, "drift")], ids=["one distribution", "a shifted mean"]
)
def test_a_list_column_is_tested_as_embeddings(shift: np.ndarray, status: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    ref = list(rng.normal(0, 1, (300, 8)))
    cur = list(rng.normal(0, 1, (300, 8)) + shift)
    got = _check(tmp_path, ref, cur)
    assert (got["kind"], got["method"], got["status"], got["dimensions"]) == ("embedding", "mmd", status, 8.0)
    # the distance between the means, computed directly
    assert got["mean_distance"] == pytest.approx(float(np.linalg.norm(np.mean(ref, axis=0) - np.mean(cur, axis=0))))
    if status == "drift":
        assert got["mmd_p_value"] == pytest.approx(1 / 201)  # no permutation reached it: the smallest p it can give


def test_vectors_of_other_dimensions_cannot_be_judged(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    got = _check(tmp_path, list(rng.normal(0, 1, (50, 4))), list(rng.normal(0, 1, (50, 6))))
    assert got["status"] == "insufficient" and got["reason"] == "the vectors' dimensions differ"
