"""Drift statistics agree with scipy on the same data (to 1e-9), PSI uses reference deciles with a
documented epsilon, and the default method follows Evidently's choice."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from analytics.serving import drift as d

POLICY = d.DriftPolicy()


def _datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(20261102)
    return {
        "same distribution, 50 rows each (exact KS)": (rng.normal(0, 1, 50), rng.normal(0, 1, 50)),
        "a shifted mean, 800 vs 600 rows": (rng.normal(10, 2, 800), rng.normal(11, 2, 600)),
        "a wider lognormal, 3000 rows (Wasserstein by default)": (
            rng.lognormal(6, 0.6, 3000),
            rng.lognormal(6, 0.9, 2500),
        ),
        "integers with many ties": (rng.poisson(30, 1500).astype(float), rng.poisson(33, 1200).astype(float)),
        "12,000 rows (asymptotic KS)": (rng.gamma(2, 3, 12000), rng.gamma(2.2, 3, 11000)),
    }


DATA = _datasets()


@pytest.mark.parametrize("name", list(DATA))
def test_numeric_statistics_equal_scipys(name: str) -> None:
    ref, cur = DATA[name]
    result = d.numeric_drift("x", ref, cur, POLICY).statistics
    ks = stats.ks_2samp(ref, cur)
    assert result["ks_statistic"] == pytest.approx(ks.statistic, abs=1e-9)
    assert result["ks_p_value"] == pytest.approx(ks.pvalue, abs=1e-9)
    normed = stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
    assert result["wasserstein_normed"] == pytest.approx(normed, rel=1e-9, abs=1e-12)
    cuts = np.unique(np.quantile(ref, np.arange(1, 10) / 10))  # reference deciles; bins closed on the right
    bounds = [-np.inf, *cuts, np.inf]
    r, c = (
        np.array([np.sum((x > lo) & (x <= hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)], dtype=float)
        for x in (ref, cur)
    )
    assert result["jensen_shannon"] == pytest.approx(distance.jensenshannon(r, c), abs=1e-9)
    r_share = np.where(r == 0, 1e-4, r / r.sum())
    c_share = np.where(c == 0, 1e-4, c / c.sum())
    # PSI is the symmetrised Kullback-Leibler divergence: KL(c || r) + KL(r || c), scipy's entropy.
    expected_psi = float(np.sum((c_share - r_share) * np.log(c_share / r_share)))
    assert result["psi"] == pytest.approx(expected_psi, abs=1e-9)
    if not (r == 0).any() and not (c == 0).any():
        assert result["psi"] == pytest.approx(
            stats.entropy(c_share, r_share) + stats.entropy(r_share, c_share), abs=1e-9
        )


CATEGORICAL = {
    "a shifted finish-reason mix": (
        ["stop"] * 930 + ["length"] * 65 + ["abort"] * 5,
        ["stop"] * 780 + ["length"] * 210 + ["abort"] * 10,
    ),
    "the same mix": (["a"] * 500 + ["b"] * 300 + ["c"] * 200, ["a"] * 250 + ["b"] * 150 + ["c"] * 100),
    "a category only in the current data": (["a"] * 600 + ["b"] * 400, ["a"] * 500 + ["b"] * 400 + ["new"] * 100),
}


@pytest.mark.parametrize("name", list(CATEGORICAL))
def test_categorical_statistics_equal_scipys(name: str) -> None:
    ref, cur = (np.array(v) for v in CATEGORICAL[name])
    result = d.categorical_drift("reason", ref, cur, POLICY).statistics
    categories = sorted(set(ref) | set(cur))
    table = np.array([[np.sum(ref == k) for k in categories], [np.sum(cur == k) for k in categories]])
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    assert (result["chi_square"], result["chi_square_p_value"], result["chi_square_dof"]) == (
        pytest.approx(chi2, abs=1e-9), pytest.approx(p, abs=1e-9), dof,
    )  # fmt: skip
    assert result["jensen_shannon"] == pytest.approx(distance.jensenshannon(table[0], table[1]), abs=1e-9)


def test_histogram_statistics_equal_scipys_on_the_values_the_buckets_hold() -> None:
    # Token counts that sit exactly on bucket edges: the histogram loses nothing, so KS and
    # Wasserstein on bucket counts must equal scipy's on the raw values.
    rng = np.random.default_rng(7)
    edges = np.array([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, np.inf])
    ref = rng.choice(edges[:-1], 4000, p=[0.01, 0.02, 0.04, 0.08, 0.1, 0.15, 0.2, 0.2, 0.12, 0.05, 0.02, 0.01])
    cur = rng.choice(edges[:-1], 3000, p=[0.01, 0.01, 0.02, 0.04, 0.08, 0.1, 0.15, 0.2, 0.2, 0.12, 0.05, 0.02])
    r = np.array([np.sum(ref == e) for e in edges], dtype=float)
    c = np.array([np.sum(cur == e) for e in edges], dtype=float)
    result = d.histogram_drift("prompt_tokens", edges, r, c, POLICY).statistics
    ks = stats.ks_2samp(ref, cur)
    assert result["ks_statistic"] == pytest.approx(ks.statistic, abs=1e-9)
    assert result["ks_p_value"] == pytest.approx(stats.kstwo.sf(ks.statistic, round(4000 * 3000 / 7000)), abs=1e-9)
    normed = stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
    assert result["wasserstein_normed"] == pytest.approx(normed, rel=1e-9)


def test_histogram_psi_bins_are_the_edges_nearest_the_reference_deciles() -> None:
    edges = np.array([100.0, 200, 500, 1000, 2000, 5000, np.inf])
    reference = np.array([5.0, 10, 35, 40, 9, 1, 0])  # CDF 0.05 0.15 0.5 0.9 0.99 1.0
    assert d.histogram_cuts(edges, reference).tolist() == [1, 2, 3]  # edges 200, 500, 1000


def test_an_empty_bin_counts_as_epsilon_on_its_side() -> None:
    value = d.psi(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.4, 0.1]), epsilon=1e-4)
    assert value == pytest.approx((0.4 - 0.5) * np.log(0.4 / 0.5) + (0.1 - 1e-4) * np.log(0.1 / 1e-4))


@pytest.mark.parametrize(
    ("n_ref", "values", "method"),
    [
        (500, "continuous", "ks"),
        (5000, "continuous", "wasserstein_normed"),
        (500, "three levels", "chi_square"),
        (5000, "three levels", "jensen_shannon"),
    ],
    ids=[
        "small numeric: KS",
        "large numeric: normed Wasserstein",
        "few values, small: chi-square",
        "few values, large: Jensen-Shannon",
    ],
)
def test_the_default_method_follows_evidentlys_choice(n_ref: int, values: str, method: str) -> None:
    rng = np.random.default_rng(1)
    make = (
        (lambda n: rng.normal(0, 1, n)) if values == "continuous" else (lambda n: rng.integers(0, 3, n).astype(float))
    )
    assert d.numeric_drift("x", make(n_ref), make(400), POLICY).method == method


@pytest.mark.parametrize(
    ("value", "band"), [(0.0, "stable"), (0.0999, "stable"), (0.1, "moderate"), (0.2499, "moderate"), (0.25, "major")]
)
def test_psi_bands_are_0_1_and_0_25(value: float, band: str) -> None:
    assert d.psi_band(value) == band
