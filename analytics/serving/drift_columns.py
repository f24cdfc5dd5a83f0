"""Drift of a table's columns (`gpuledger drift check`): which test each column gets, and what it cannot judge.

- A column's kind comes from its type on both sides: numbers (not booleans), datetimes (compared as seconds since
  the epoch: two disjoint months drift), vectors (a list column: embeddings, analytics/serving/drift_embeddings.py),
  anything else categories (as text). A column that is numbers on one side
  and text on the other is refused (`ColumnTypes`), never compared as text ("12.0" is not "12").
- Its missing share (NaN, None, ±inf) is reported on both sides; a change of `policy.missing_share` or more is
  drift, with the reason, whatever the distribution of the values present.
- A side with no value left is `insufficient`, never "no drift"; so is a column missing everywhere.
- The dataset's verdict: drifted when the share of judged columns that drifted reaches `policy.drift_share`.
- A column's method and threshold can be its own (`policy.methods`, `policy.thresholds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analytics.serving.drift import (
    DriftPolicy,
    FeatureDrift,
    categorical_drift,
    empty_side,
    insufficient,
    numeric_drift,
)
from analytics.serving.drift_embeddings import embedding_drift

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ColumnTypes(ValueError):
    """A column of one kind in the reference and another in the current sample."""

    column: str
    reference: str
    current: str

    def __str__(self) -> str:
        return (
            f"column {self.column!r} is {self.reference} in the reference and {self.current} in the current sample: "
            "cast one of them, drift is not measured across kinds"
        )


def kind_of(series: pd.Series) -> str:
    import pandas as pd

    if series.isna().all():
        return "missing"
    if series.dtype == object and isinstance(series.dropna().iloc[0], list | tuple | np.ndarray):
        return "embedding"  # a Parquet list column: one vector a row
    if pd.api.types.is_bool_dtype(series):
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    return "categorical"


def _missing(series: pd.Series) -> float:
    values = series.to_numpy()
    missing = series.isna().to_numpy()
    if values.dtype.kind == "f":
        missing = missing | np.isinf(values)
    return float(missing.sum())


def column_drift(name: str, ref: pd.Series, cur: pd.Series, policy: DriftPolicy) -> FeatureDrift:
    """The column's drift by the test its kind calls for, with its missing shares; ColumnTypes across kinds."""
    kinds = {kind_of(ref), kind_of(cur)}
    if "missing" in kinds:
        kind = (kinds - {"missing"} or {"numeric"}).pop()
        present = float(ref.notna().sum()), float(cur.notna().sum())
        out = insufficient(name, kind, *present, empty_side(*present, "value") or "")
    elif len(kinds) > 1:
        raise ColumnTypes(name, f"{ref.dtype} ({kind_of(ref)})", f"{cur.dtype} ({kind_of(cur)})")
    elif kinds == {"categorical"}:
        out = categorical_drift(name, _text(ref), _text(cur), policy)
    elif kinds == {"embedding"}:
        out = embedding_drift(name, _vectors(ref), _vectors(cur), policy)
    else:
        out = numeric_drift(name, _numbers(ref), _numbers(cur), policy)
        out.kind = "datetime" if kinds == {"datetime"} else out.kind
    return _with_missing(out, ref, cur, policy)


def _text(series: pd.Series) -> np.ndarray:
    return series.dropna().astype(str).to_numpy()


def _vectors(series: pd.Series) -> np.ndarray:
    """One row a vector; vectors of unequal lengths give a 1-d object array (insufficient: dimensions differ)."""
    rows = [np.asarray(v, dtype=float) for v in series.dropna()]
    if len({len(r) for r in rows}) > 1:
        return np.array(rows, dtype=object)
    return np.vstack(rows) if rows else np.zeros((0, 0))


def _numbers(series: pd.Series) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series):
        stamps = series.dropna()
        return (stamps.astype("int64").to_numpy() / 1e9) if len(stamps) else np.zeros(0)
    return series.to_numpy(dtype=float, na_value=np.nan)


def _with_missing(out: FeatureDrift, ref: pd.Series, cur: pd.Series, policy: DriftPolicy) -> FeatureDrift:
    shares = [_missing(s) / len(s) if len(s) else None for s in (ref, cur)]
    out.statistics["missing_share_reference"], out.statistics["missing_share_current"] = shares
    if shares[0] is None or shares[1] is None or out.drift is None:
        return out
    if abs(shares[1] - shares[0]) >= policy.missing_share:
        out.drift = True
        out.reason = f"the missing share moved from {shares[0]:.1%} to {shares[1]:.1%}"
    return out


def share_drifted(results: list[FeatureDrift]) -> float | None:
    """Drifted columns over judged ones (None: none could be judged)."""
    judged = [r for r in results if r.drift is not None]
    return sum(1 for r in judged if r.drift) / len(judged) if judged else None


def dataset_drift(results: list[FeatureDrift], policy: DriftPolicy) -> bool | None:
    """The dataset's verdict, as Evidently's: drifted when at least `policy.drift_share` of its judged columns did."""
    share = share_drifted(results)
    return None if share is None else share >= policy.drift_share
