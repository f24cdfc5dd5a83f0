"""The column-wise series mapping (collectors/metrics/series_mapping.py) against a plain-Python statement of the same
conventions (tests/series_oracle.py), one series at a time: on every exporter fixture, on the
simulated fleet, and on random label sets with hostile values."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.metrics import series_mapping
from collectors.metrics.openmetrics import parse_lines
from collectors.metrics.series import KIND_BY_NAME, PUSHED_KINDS, SeriesContext, wants_family
from core import conventions as c
from tests import series_oracle
from tests.builders import describe_series
from tests.conftest import FIXTURES

CONTEXTS = [SeriesContext("c1", "plain"), SeriesContext("it's", "exported")]


def _expected(pairs: list[tuple[str, dict[str, str]]], ctx: SeriesContext) -> list[dict[str, object]]:
    return [
        series_oracle.describe(sid, name, labels, ctx)
        for sid, (name, labels) in enumerate(pairs)
        if series_oracle.kept(name, labels)
    ]


def _fixture_pairs(path: Path) -> list[tuple[str, dict[str, str]]]:
    # the excerpts quote their source's prose between scrapes (`$ curl ...`, `...`): exposition lines only
    lines = [line for line in path.read_text().splitlines() if not line.startswith(("$", "..."))]
    out = parse_lines(lines, path.name, wants_family, default_ts_ms=1, require_eof=False)
    return out.table.pairs()


@pytest.mark.parametrize("ctx", CONTEXTS, ids=["plain", "exported"])
@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*") if p.suffix in (".prom", ".txt")))
def test_every_exporter_fixture_maps_exactly_as_the_python_statement_says(name: str, ctx: SeriesContext) -> None:
    pairs = _fixture_pairs(FIXTURES / name)
    assert pairs, name
    assert describe_series(pairs, ctx) == _expected(pairs, ctx)


def test_the_simulated_fleet_maps_exactly_as_the_python_statement_says(sim_files: list[Path]) -> None:
    pairs = [pair for path in sim_files for pair in _fixture_pairs(path)]
    kinds = {KIND_BY_NAME[name] for name, _ in pairs}
    assert {"dcgm_sample", "dcgm_health", "ksm_requests", "ksm_pod_labels", "ksm_node_labels", "inference"} <= kinds
    assert describe_series(pairs, CONTEXTS[0]) == _expected(pairs, CONTEXTS[0])


_NAMES = sorted(set(series_mapping._needed("plain") + series_mapping._needed("exported"))) + [
    "label_team",
    "label_app_kubernetes_io_name",
    "version",
    "engine",
    "finished_reason",
    "__name__",
    "pci_bus_id",
]


def _not_nan(text: str) -> bool:  # NaN never equals itself: keep it out of the comparison
    try:
        return float(text) == float(text)
    except ValueError:
        return True


_VALUES = st.sampled_from(["", "0", "7", "+Inf", "0.25", "x", "Running", "nvidia_com_gpu", "nvidia_com_mig_1g_10gb",
                           "cpu", "/v1/chat", "/metrics", "spot", "SPOT", "true", "on-demand"]) | st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6
).filter(_not_nan)  # fmt: skip
_SERIES = st.tuples(
    st.sampled_from(sorted({**KIND_BY_NAME, **PUSHED_KINDS})),
    st.dictionaries(st.sampled_from(_NAMES), _VALUES, max_size=8),
)


@given(st.lists(_SERIES, max_size=12), st.sampled_from(CONTEXTS))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_label_sets_with_quotes_unicode_and_junk_map_exactly_as_the_python_statement_says(
    pairs: list[tuple[str, dict[str, str]]], ctx: SeriesContext
) -> None:
    assert describe_series(pairs, ctx) == _expected(pairs, ctx)


def test_label_json_escapes_exactly_as_json_dumps_does() -> None:
    labels = {"label_team": 'q"a\\b', "label_owner": "zoë", "label_tab": "a\tb", "label_plain": "x"}
    (row,) = describe_series([(c.KSM_POD_LABELS, {"pod": "p", **labels})], CONTEXTS[0])
    assert row["labels"] == '{"owner":"zo\\u00eb","plain":"x","tab":"a\\tb","team":"q\\"a\\\\b"}'
