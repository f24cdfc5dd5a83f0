"""Property-based fuzzing (Hypothesis) of everything that reads untrusted bytes: the OpenMetrics parser and
every price importer. Whatever the input, the only exception is gpuledger's documented one
(core.errors.GpuledgerError: InputError / ConfigError), never a crash, and a failed import writes nothing."""

from __future__ import annotations

import contextlib
import json
import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from collectors.metrics.om_file import parse_file
from collectors.metrics.openmetrics import parse_lines
from collectors.pricing.importer import parse_text
from collectors.pricing.price_table import ImportOptions
from core.errors import ConfigError, GpuledgerError
from core.settings import Settings, load_settings
from tests.conftest import FIXTURES, run_cli
from tests.helpers import content_digest

OPTIONS = ImportOptions(fetched_at=datetime(2026, 11, 2, 12, 0))
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PRICE_FILES = [
    "aws-pricelist-ec2-gpu-DERIVED.json",
    "aws-getproducts-gpu-DERIVED.json",
    "aws-spot-price-history-CONSTRUCTED.json",
    "gcp-billing-catalog-skus-sample.json",
    "azure-retail-prices-CONSTRUCTED.json",
]
TEXT_FILES = ["aws-spot-datafeed-gpu-DERIVED.tsv"]

# Pieces of the exposition format, so generated lines reach deep into the parser, not only its first check.
TOKENS = st.sampled_from(
    ['{', '}', '"', '\\', '=', ',', ' ', '\t', '\n', '#', 'EOF', '# EOF', 'NaN', '+Inf', '-Inf', '1e400', '0x1p3',
     '1', '-0', '1793577600', '1793577600123', 'DCGM_FI_DEV_GPU_UTIL', 'kube_pod_labels', 'label_team', 'gpu',
     'UUID', 'Hostname', 'le', '_bucket', 'é', '\x00', '\r', '9.223372036854775e18']
)  # fmt: skip
LINES = st.lists(st.lists(TOKENS | st.text(max_size=6), max_size=12).map("".join), max_size=20)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.decimals(allow_nan=True).map(str),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _only_documented_errors(call: Any) -> None:
    """Any exception but gpuledger's own fails the test (Hypothesis then shrinks the input)."""
    with contextlib.suppress(GpuledgerError):
        call()


@FAST
@given(st.text(max_size=400))
def test_the_openmetrics_parser_raises_only_input_errors_on_any_text(text: str) -> None:
    for eof in (True, False):
        _only_documented_errors(
            lambda eof=eof: parse_lines(text.splitlines(True), "fuzz", lambda n: True, require_eof=eof)
        )


@FAST
@given(LINES, st.sampled_from([None, 1793577600000]))
def test_the_openmetrics_parser_raises_only_input_errors_on_near_valid_lines(lines: list[str], at: int | None) -> None:
    body = [line + "\n" for line in lines] + ["# EOF\n"]
    _only_documented_errors(lambda: parse_lines(body, "fuzz", lambda n: True, default_ts_ms=at))


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_the_openmetrics_file_reader_raises_only_input_errors_on_any_bytes(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("om") / "x.om"
    path.write_bytes(data)
    _only_documented_errors(lambda: parse_file(path, lambda n: True))


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node of a JSON document (the fuzzer picks where to damage it)."""
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@st.composite
def damaged_price_file(draw: st.DrawFn) -> tuple[str, str]:
    """A real provider file with a few of its nodes replaced by arbitrary JSON (or its text cut short)."""
    name = draw(st.sampled_from(PRICE_FILES + TEXT_FILES))
    text = (FIXTURES / name).read_text()
    if name.endswith(".tsv"):
        lines = text.splitlines(True)
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        lines[i] = draw(st.text(max_size=80)) + "\n"
        return name, "".join(lines)
    doc = json.loads(text, parse_float=Decimal)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        doc = _replace(doc, draw(st.sampled_from(paths)), draw(JSON_VALUES))
    out = json.dumps(doc, default=str)
    if draw(st.booleans()):
        out = out[: draw(st.integers(0, len(out)))]  # a truncated download
    return name, out


@FAST
@given(damaged_price_file(), st.sampled_from([None, "aws", "aws-spot", "gcp", "azure", "csv"]))
def test_every_price_importer_raises_only_input_errors_on_damaged_files(case: tuple[str, str], fmt: str | None) -> None:
    _only_documented_errors(lambda: parse_text(case[1], case[0], fmt, OPTIONS))


CSV_HEADER = "provider,region,instance_type,capacity_type,gpu_model,gpus,price_per_hour_usd,effective_from"
CELLS = st.sampled_from(["aws", "us-east-1", "p4d.24xlarge", "on_demand", "A100", "8", "21.9", "2026-11-01", "", "-1",
                         "1e30", "99999999999999999999", "NaN", "Infinity", "2026-13-45", '"', "=1+1", "spot", "\x00"])  # fmt: skip


CSV_FILES = st.lists(st.lists(CELLS | st.text(max_size=5), min_size=1, max_size=10).map(",".join), max_size=5).map(
    lambda rows: ("fuzz.csv", "\n".join([CSV_HEADER, *rows]) + "\n")
)


@FAST
@given(CSV_FILES)
def test_the_csv_price_importer_raises_only_input_errors(case: tuple[str, str]) -> None:
    _only_documented_errors(lambda: parse_text(case[1], case[0], "csv", OPTIONS))


@pytest.fixture(scope="module")
def priced_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wh = tmp_path_factory.mktemp("fuzz") / "wh.duckdb"
    assert run_cli("--warehouse", str(wh), "pricing", "import", "--default").exit_code == 0
    return wh


@pytest.mark.parametrize(
    "row",
    [
        "aws,us-east-1,p4d.24xlarge,on_demand,A100,8,1e20,2026-11-01",
        "aws,us-east-1,p4d.24xlarge,on_demand,A100,99999999999,2,2026-11-01",
    ],
    ids=["price beyond the stored decimal", "gpus beyond the stored integer"],
)
def test_values_the_warehouse_cannot_hold_are_input_errors_not_crashes(
    priced_warehouse: Path, tmp_path: Path, row: str
) -> None:
    (tmp_path / "p.csv").write_text(f"{CSV_HEADER}\n{row}\n")
    wh = tmp_path / "wh.duckdb"
    shutil.copy(priced_warehouse, wh)
    result = run_cli("--warehouse", str(wh), "pricing", "import", str(tmp_path / "p.csv"))
    assert result.exit_code == 2 and "out of range" in result.output
    assert content_digest(wh) == content_digest(priced_warehouse)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damaged_price_file() | CSV_FILES)
def test_a_failed_import_writes_nothing_and_exits_with_the_input_error_code(
    priced_warehouse: Path, tmp_path_factory: pytest.TempPathFactory, case: tuple[str, str]
) -> None:
    work = tmp_path_factory.mktemp("imp")
    wh = work / "wh.duckdb"
    shutil.copy(priced_warehouse, wh)
    before = content_digest(wh)
    price_file = work / Path(case[0]).name
    price_file.write_text(case[1])
    result = run_cli("--warehouse", str(wh), "pricing", "import", str(price_file))
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:  # one error line (off a terminal, the progress lines before it are JSON on stderr)
        said = [line for line in result.output.splitlines() if not line.startswith('{"progress": ')]
        assert content_digest(wh) == before and len(said) == 1 and said[0].startswith("gpuledger: error: ")


SECTIONS = sorted(Settings.model_fields)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=20),
    st.sampled_from(["0s", "60s", "5m", "100000d", "-1s", "1e9", "1GB", "oidc", "http://[::1]:9", "team"]),
)  # fmt: skip
SETTING_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)  # fmt: skip
SETTINGS_DOCS = st.dictionaries(
    st.sampled_from(SECTIONS) | st.text(max_size=8),
    st.dictionaries(st.text(max_size=20) | st.sampled_from(["step", "lookback", "path", "url", "auth", "user_claim"]), SETTING_VALUES, max_size=4)
    | SETTING_VALUES,
    max_size=4,
)  # fmt: skip


@FAST
@given(SETTINGS_DOCS.map(lambda doc: yaml.safe_dump(doc).encode()) | st.binary(max_size=300))
@example(b"budgets:\n  ? |-\n    a\n    b\n  : 1\n")  # a key with a newline once made the message two lines
@example(yaml.safe_dump({"budgets": {"\n": None}}).encode())
def test_the_settings_loader_raises_only_config_errors_on_any_file(tmp_path_factory: Any, data: bytes) -> None:
    """Whatever a settings file holds (random sections and values, or bytes), loading it gives Settings or the
    one documented error: the CLI exits 0 or 2, never 1."""
    path = tmp_path_factory.mktemp("settings") / "gpuledger.yaml"
    path.write_bytes(data)
    try:
        load_settings(path, env={})
    except ConfigError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
