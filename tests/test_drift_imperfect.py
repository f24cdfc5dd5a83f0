"""`gpuledger drift check` on imperfect data (issue 29): never "no drift" for what it could not judge.

Each row is a pair of Parquet files and what a careful analyst expects, stated here (not computed by the code
under test); the JSON output must parse under a strict parser (no NaN, no Infinity).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.conftest import run_cli

RNG = np.random.default_rng(29)
Pair = tuple[pd.DataFrame, pd.DataFrame]


def _strict(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _check(tmp_path: Path, pair: Pair) -> tuple[int, str]:
    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    pair[0].to_parquet(ref)
    pair[1].to_parquet(cur)
    result = run_cli("drift", "check", "--reference", str(ref), "--current", str(cur), "--format", "json")
    return result.exit_code, result.output


def infinities_and_a_shift() -> Pair:
    ref = RNG.normal(0, 1, 2000)
    cur = np.concatenate([RNG.normal(1, 1, 2000), np.full(10, np.inf)])
    return pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur})


def an_empty_current_side() -> Pair:
    return pd.DataFrame({"x": RNG.normal(0, 1, 500)}), pd.DataFrame({"x": np.zeros(0)})


def all_missing_on_one_side() -> Pair:
    return pd.DataFrame({"x": RNG.normal(0, 1, 500)}), pd.DataFrame({"x": np.full(500, np.nan)})


def all_missing_on_both_sides() -> Pair:
    return pd.DataFrame({"x": np.full(500, np.nan)}), pd.DataFrame({"x": np.full(400, np.nan)})


def dates_of_two_disjoint_months() -> Pair:
    october = pd.date_range("2026-10-01", "2026-10-31", periods=600)
    november = pd.date_range("2026-11-01", "2026-11-30", periods=600)
    return pd.DataFrame({"t": october}), pd.DataFrame({"t": november})


def a_missing_share_from_10_to_30_percent() -> Pair:
    def column(missing: int) -> np.ndarray:
        values = RNG.normal(0, 1, 5000)
        values[:missing] = np.nan
        return values

    return pd.DataFrame({"x": column(500)}), pd.DataFrame({"x": column(1500)})


def many_categories_alike() -> Pair:
    """100,000 categories, 200,000 rows a side, drawn from one distribution: sparse counts, no drift."""
    return tuple(  # type: ignore[return-value]
        pd.DataFrame({"id": [f"user-{i}" for i in RNG.integers(0, 100_000, 200_000)]}) for _ in range(2)
    )


def ten_thousand_categories_alike() -> Pair:
    """20 rows a category a side: Jensen-Shannon over them read 0.11 ("drift") on one distribution."""
    return tuple(  # type: ignore[return-value]
        pd.DataFrame({"id": [f"user-{i}" for i in RNG.integers(0, 10_000, 200_000)]}) for _ in range(2)
    )


def ten_thousand_categories_and_a_new_favourite() -> Pair:
    """The current side sends half its rows to 100 of the 10,000 categories."""
    ref = [f"user-{i}" for i in RNG.integers(0, 10_000, 200_000)]
    cur = [f"user-{i}" for i in RNG.integers(0, 10_000, 100_000)] + [f"user-{i}" for i in RNG.integers(0, 100, 100_000)]
    return pd.DataFrame({"id": ref}), pd.DataFrame({"id": cur})


# case -> (files, column, expected status, expected entries of the column's JSON)
CASES: dict[str, tuple[Callable[[], Pair], str, str, dict[str, Any]]] = {
    "10 +inf values plus a 1-sd shift": (
        infinities_and_a_shift, "x", "drift",
        {"infinite_current": 10.0, "infinite_reference": 0.0, "method": "wasserstein_normed",
         "missing_share_current": 10 / 2010},
    ),
    "an empty current side": (
        an_empty_current_side, "x", "insufficient", {"drift": None, "reason": "the current sample has no value"},
    ),
    "all NaN on one side": (
        all_missing_on_one_side, "x", "insufficient",
        {"drift": None, "reason": "the current sample has no value", "missing_share_current": 1.0},
    ),
    "all NaN on both sides": (
        all_missing_on_both_sides, "x", "insufficient",
        {"drift": None, "reason": "the reference and the current samples have no value"},
    ),
    "a datetime column over two disjoint months": (
        dates_of_two_disjoint_months, "t", "drift", {"kind": "datetime", "method": "ks", "ks_statistic": 1.0},
    ),
    "a missing share rising from 10% to 30%": (
        a_missing_share_from_10_to_30_percent, "x", "drift",
        {"missing_share_reference": 0.1, "missing_share_current": 0.3,
         "reason": "the missing share moved from 10.0% to 30.0%"},
    ),
    "100,000 categories alike on both sides": (
        many_categories_alike, "id", "no_drift", {"kind": "categorical (high cardinality)"},
    ),
    "10,000 categories alike on both sides": (
        ten_thousand_categories_alike, "id", "no_drift", {"kind": "categorical (high cardinality)"},
    ),
    "10,000 categories, half the current rows on 100 of them": (
        ten_thousand_categories_and_a_new_favourite, "id", "drift", {"method": "jensen_shannon"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_imperfect_columns_get_the_verdict_an_analyst_expects(case: str, tmp_path: Path) -> None:
    make, column, status, entries = CASES[case]
    code, output = _check(tmp_path, make())
    report = _strict(output.split("gpuledger: error:")[0])
    got = report["features"][column]
    assert got["status"] == status, got
    for key, value in entries.items():
        assert got[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    # exit 2 only when nothing could be judged (one column here)
    assert code == (2 if status == "insufficient" else 0), output


def test_a_column_it_cannot_judge_does_not_fail_the_ones_it_can(tmp_path: Path) -> None:
    ref = pd.DataFrame({"x": RNG.normal(0, 1, 500), "y": RNG.normal(0, 1, 500)})
    cur = pd.DataFrame({"x": np.full(400, np.nan), "y": RNG.normal(3, 1, 400)})
    code, output = _check(tmp_path, (ref, cur))
    report = _strict(output)
    assert code == 0 and report["insufficient"] == ["x"] and report["drifted"] == ["y"]
    assert report["share_drifted"] == 1.0  # of the judged columns


def test_numbers_on_one_side_and_text_on_the_other_are_refused_naming_the_column_and_both_types(
    tmp_path: Path,
) -> None:
    ref = pd.DataFrame({"price": np.arange(100, dtype=float)})
    cur = pd.DataFrame({"price": [str(v) for v in range(100)]})
    code, output = _check(tmp_path, (ref, cur))
    assert code == 2
    assert output.strip().splitlines() == [
        f"gpuledger: error: {tmp_path / 'cur.parquet'}: column 'price' is float64 (numeric) in the reference and "
        "str (categorical) in the current sample: cast one of them, drift is not measured across kinds"
    ]


def test_categories_expected_fewer_than_5_times_are_pooled_before_the_chi_square(tmp_path: Path) -> None:
    """a 50/48, b 45/47 and the rare c 3/2, d 2/0, e 0/3: c, d and e pooled (5 and 5), so the test is the 2 x 3 table
    [[50, 45, 5], [48, 47, 5]]; its p-value is scipy's on that table."""
    ref = pd.DataFrame({"k": ["a"] * 50 + ["b"] * 45 + ["c"] * 3 + ["d"] * 2})
    cur = pd.DataFrame({"k": ["a"] * 48 + ["b"] * 47 + ["c"] * 2 + ["e"] * 3})
    code, output = _check(tmp_path, (ref, cur))
    got = _strict(output)["features"]["k"]
    expected = stats.chi2_contingency(np.array([[50, 45, 5], [48, 47, 5]]), correction=False)
    assert code == 0 and got["method"] == "chi_square" and got["chi_square_dof"] == 2
    assert got["chi_square_p_value"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert {k for k in got if k.startswith("share_reference[")} == {
        "share_reference[a]",
        "share_reference[b]",
        "share_reference[__other__]",
    }
    assert got["unseen_share_current"] == pytest.approx(3 / 100)  # e, which the reference never had


def _run(tmp_path: Path, pair: Pair, *args: str, config: str = "") -> tuple[int, str]:
    ref, cur = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    pair[0].to_parquet(ref)
    pair[1].to_parquet(cur)
    settings = tmp_path / "gpuledger.yaml"
    settings.write_text(config)
    result = run_cli("--config", str(settings), "drift", "check", "--reference", str(ref), "--current", str(cur),
                     "--format", "json", *args)  # fmt: skip
    return result.exit_code, result.output


def _shifted(sd: float) -> Pair:
    """800 rows a side (its own seed), the current one shifted by `sd` standard deviations: at 0.4, KS p far below 0.05
    and PSI near 0.16 (a shift's PSI is about its square), under the 0.25 of a major move."""
    rng = np.random.default_rng(4)
    return pd.DataFrame({"x": rng.normal(0, 1, 800)}), pd.DataFrame({"x": rng.normal(sd, 1, 800)})


OWN = {
    "the default (KS at 800 rows)": ((), "", "ks", "drift"),
    "PSI at 0.25, by option": (("--method", "x=psi", "--threshold", "x=0.25"), "", "psi", "no_drift"),
    "PSI at 0.25, by setting": ((), "serving:\n  drift_columns:\n    x: {method: psi, threshold: 0.25}\n", "psi", "no_drift"),
    "KS at a p-value of 1e-30": (("--threshold", "x=1e-30"), "", "ks", "no_drift"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(OWN), ids=list(OWN))
def test_a_column_is_decided_by_its_own_method_and_threshold(case: str, tmp_path: Path) -> None:
    args, config, method, status = OWN[case]
    code, output = _run(tmp_path, _shifted(0.4), *args, config=config)
    got = _strict(output)["features"]["x"]
    assert code == 0 and (got["method"], got["status"]) == (method, status), got
    assert got["ks_p_value"] < 1e-4 and got["psi"] < 0.25  # the same statistics, another verdict


def test_a_method_a_column_cannot_take_is_refused_in_one_line(tmp_path: Path) -> None:
    pair = (pd.DataFrame({"k": ["a", "b"] * 50}), pd.DataFrame({"k": ["a", "b"] * 50}))
    code, output = _run(tmp_path, pair, "--method", "k=ks")
    assert code == 2 and output.strip().splitlines() == [
        "gpuledger: error: column 'k' is categorical: method 'ks' does not apply (choose chi_square, "
        "jensen_shannon, psi)"
    ]


@pytest.mark.parametrize(("share", "verdict"), [(0.5, True), (0.8, False)])
def test_the_dataset_drifts_when_its_share_of_drifted_columns_reaches_drift_share(
    share: float, verdict: bool, tmp_path: Path
) -> None:
    """Columns a and b move by 3 standard deviations, c does not: 2 of 3 drifted."""
    ref = pd.DataFrame({col: RNG.normal(0, 1, 500) for col in "abc"})
    cur = pd.DataFrame({"a": RNG.normal(3, 1, 500), "b": RNG.normal(3, 1, 500), "c": RNG.normal(0, 1, 500)})
    code, output = _run(tmp_path, (ref, cur), config=f"serving:\n  drift_share: {share}\n")
    report = _strict(output)
    assert code == 0 and report["drifted"] == ["a", "b"] and report["share_drifted"] == pytest.approx(2 / 3)
    assert report["dataset_drift"] is verdict
