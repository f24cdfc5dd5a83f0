"""Provider price formats: each importer on its fixture, to the exact Decimal, and bad input refused whole."""

from __future__ import annotations

import copy
import gzip
import json
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from collectors.pricing import gcp as pricing_gcp
from collectors.pricing.importer import import_file
from collectors.pricing.price_table import ImportOptions, Parsed
from core.errors import InputError
from tests.conftest import FIXTURES

FETCHED = datetime(2026, 11, 2, 12, 0)
OPTIONS = ImportOptions(fetched_at=FETCHED)
D = Decimal
# (provider, region, zone, instance_type, capacity_type, term, gpus, $/h, GPUs' part $/h, effective_from, sku)
Row = tuple[str, str, str, str, str, str, int, Decimal, Decimal, datetime, str]


def _rows(parsed: Parsed) -> list[Row]:
    return [
        (
            r.provider,
            r.region,
            r.zone,
            r.instance_type,
            r.capacity_type,
            r.term,
            r.gpus,
            r.price_per_hour_usd,
            r.gpu_price_per_hour_usd or D(-1),
            r.effective_from,
            r.sku,
        )
        for r in parsed.rows
    ]


MAR1 = datetime(2023, 3, 1)
CASES: list[tuple[str, str, list[Row], dict[str, int]]] = [
    (
        "aws-pricelist-ec2-gpu-DERIVED.json",
        "aws",
        [
            (
                "aws",
                "us-east-2",
                "",
                "p3.8xlarge",
                "on_demand",
                "",
                4,
                D("12.24"),
                D("12.24"),
                MAR1,
                "DERIVEDLINUXP38X.JRTCKXETXF.6YS6EN2CT7",
            ),
            (
                "aws",
                "us-east-2",
                "",
                "p3.8xlarge",
                "reserved",
                "1yr No Upfront standard",
                4,
                D("8.417"),
                D("8.417"),
                MAR1,
                "DERIVEDLINUXP38X.4NA7Y494T4",
            ),
        ],  # fmt: skip
        {"Windows/RHEL/SUSE rows": 1, "non-GPU instances": 1, "non-compute products": 1, "other reserved terms": 4},
    ),
    (
        "aws-getproducts-gpu-DERIVED.json",
        "aws",
        [
            (
                "aws",
                "us-west-2",
                "",
                "g5.xlarge",
                "on_demand",
                "",
                1,
                D("1.006"),
                D("1.006"),
                datetime(2023, 2, 1),
                "DERIVEDG5XLUSW20.JRTCKXETXF.6YS6EN2CT7",
            )
        ],  # fmt: skip
        {"capacity-reservation rows": 1},
    ),
    (
        "aws-spot-price-history-CONSTRUCTED.json",
        "aws-spot",
        [
            (
                "aws",
                "us-east-1",
                "us-east-1a",
                "p3.2xlarge",
                "spot",
                "",
                1,
                D("0.5197"),
                D("0.5197"),
                datetime(2025, 5, 1),
                "",
            ),
            (
                "aws",
                "us-east-1",
                "us-east-1a",
                "p5.48xlarge",
                "spot",
                "",
                8,
                D("30.326"),
                D("30.326"),
                datetime(2025, 5, 1),
                "",
            ),
            (
                "aws",
                "us-east-1",
                "us-east-1b",
                "p5.48xlarge",
                "spot",
                "",
                8,
                D("27.6948"),
                D("27.6948"),
                datetime(2025, 5, 1),
                "",
            ),
            (
                "aws",
                "us-east-2",
                "us-east-2a",
                "p5en.48xlarge",
                "spot",
                "",
                8,
                D("17.2194"),
                D("17.2194"),
                datetime(2025, 5, 1),
                "",
            ),
            (
                "aws",
                "us-west-2",
                "us-west-2a",
                "p4de.24xlarge",
                "spot",
                "",
                8,
                D("7.107"),
                D("7.107"),
                datetime(2025, 5, 1),
                "",
            ),
        ],  # fmt: skip
        {"non-Linux spot rows": 1},
    ),
    (
        "aws-spot-datafeed-gpu-DERIVED.tsv",
        "aws-spot",
        [
            (
                "aws",
                "us-east-2",
                "",
                "p3.2xlarge",
                "spot",
                "",
                1,
                D("0.918"),
                D("0.918"),
                datetime(2023, 12, 9, 8),
                "USE2-SpotUsage:p3.2xlarge",
            )
        ],  # fmt: skip
        {"non-GPU instances": 1},
    ),
    (
        "azure-retail-prices-CONSTRUCTED.json",
        "azure",
        [
            (
                "azure",
                "eastus",
                "",
                "Standard_NC4as_T4_v3",
                "on_demand",
                "",
                1,
                D("0.526"),
                D("0.526"),
                datetime(2021, 11, 1),
                "PLACEHOLDER-METER-ID-1",
            ),
            # the Reservation row's 3000 is the 1-year total: 3000 / 8760 h, rounded once to 10 places
            (
                "azure",
                "eastus",
                "",
                "Standard_NC4as_T4_v3",
                "reserved",
                "1yr",
                1,
                D("0.3424657534"),
                D("0.3424657534"),
                datetime(2021, 11, 1),
                "PLACEHOLDER-METER-ID-5",
            ),
            (
                "azure",
                "eastus",
                "",
                "Standard_NC4as_T4_v3",
                "spot",
                "",
                1,
                D("0.1"),
                D("0.1"),
                datetime(2021, 11, 1),
                "PLACEHOLDER-METER-ID-3",
            ),
        ],  # fmt: skip
        {"DevTest rows": 1, "Low Priority rows": 1, "Windows rows": 1},
    ),
]


@pytest.mark.parametrize(("fixture", "fmt", "expected", "skipped"), CASES, ids=[c[0] for c in CASES])
def test_each_provider_file_yields_exactly_its_canonical_gpu_rows_and_counts_what_it_rejects(
    fixture: str, fmt: str, expected: list[Row], skipped: dict[str, int]
) -> None:
    parsed = import_file(FIXTURES / fixture, fmt, OPTIONS)
    assert _rows(parsed) == expected
    assert all(isinstance(r.price_per_hour_usd, Decimal) and r.fetched_at == FETCHED for r in parsed.rows)
    assert parsed.skipped == Counter(skipped)
    assert _rows(import_file(FIXTURES / fixture, None, OPTIONS)) == expected  # recognised from the content


def test_a_gcp_machine_is_priced_as_cores_plus_ram_plus_gpus_and_its_gpu_sku_is_the_gpu_part() -> None:
    parsed = import_file(FIXTURES / "gcp-billing-catalog-skus-sample.json", None, OPTIONS)
    rows = {(r.region, r.instance_type): r for r in parsed.rows}
    assert {region for region, _ in rows} == {"us-central1", "us-east1", "us-west1"}
    expected = {  # GPUs x 2.933908 + vCPUs x 0.031611 + GiB x 0.004237 (a2 shapes)
        "a2-highgpu-1g": (D("3.673385"), D("2.933908")),
        "a2-highgpu-2g": (D("7.34677"), D("5.867816")),
        "a2-highgpu-4g": (D("14.69354"), D("11.735632")),
        "a2-highgpu-8g": (D("29.38708"), D("23.471264")),
        "a2-megagpu-16g": (D("55.739504"), D("46.942528")),
    }
    for region in ("us-central1", "us-east1", "us-west1"):
        for machine, (node, gpus) in expected.items():
            row = rows[(region, machine)]
            assert (row.price_per_hour_usd, row.gpu_price_per_hour_usd) == (node, gpus)
            assert row.sku == "039F-D0DA-4055+2922-40C5-B19F+2390-DCAF-DA38" and row.capacity_type == "on_demand"
            assert row.effective_from == datetime(2023, 3, 24, 10, 52, 50, 681000)
    assert len(rows) == 15


def _gcp_doc() -> dict[str, Any]:
    return json.loads((FIXTURES / "gcp-billing-catalog-skus-sample.json").read_text())


def _gcp_variant(usage: str, prefix: str, prices: tuple[str, str, str]) -> list[dict[str, Any]]:
    """The fixture's three SKUs re-labelled for another usage type with other prices (derived here)."""
    out = []
    for sku, price in zip(_gcp_doc()["skus"], prices, strict=True):
        sku = copy.deepcopy(sku)
        sku["skuId"] = f"{usage}-{sku['skuId']}"
        sku["description"] = prefix + sku["description"]
        sku["category"]["usageType"] = usage
        units, _, frac = price.partition(".")
        sku["pricingInfo"][0]["pricingExpression"]["tieredRates"][0]["unitPrice"].update(
            units=units, nanos=int(frac.ljust(9, "0"))
        )
        out.append(sku)
    return out


@pytest.mark.parametrize(
    ("usage", "prefix", "capacity", "term", "expected"),
    [
        ("Preemptible", "Spot Preemptible ", "spot", "", D("1.205")),  # 1 + 12 x 0.01 + 85 x 0.001
        ("Commit1Yr", "Commitment v1: ", "reserved", "1yr", D("2.41")),  # 2 + 12 x 0.02 + 85 x 0.002
    ],
    ids=["preemptible SKUs price spot machines", "one-year commitments price reserved machines"],
)
def test_gcp_usage_types_map_to_capacity_types(
    usage: str, prefix: str, capacity: str, term: str, expected: Decimal
) -> None:
    doc = _gcp_doc()
    scale = "1" if usage == "Preemptible" else "2"
    doc["skus"] += _gcp_variant(usage, prefix, (f"{scale}.0", f"0.00{scale}", f"0.0{scale}"))
    doc["skus"] += _gcp_variant("Commit3Yr", "Commitment v1: ", ("9.0", "0.009", "0.09"))  # not the configured term
    parsed = pricing_gcp.parse_catalog(doc, "skus.json", OPTIONS)
    row = next(r for r in parsed.rows if r.capacity_type == capacity and r.instance_type == "a2-highgpu-1g")
    assert (row.price_per_hour_usd, row.term, row.region) == (expected, term, "us-central1")
    assert parsed.skipped["other commitment terms"] == 3


def test_a_reserved_term_spreads_its_upfront_fee_over_the_terms_hours() -> None:
    options = ImportOptions(reserved_purchase_option="Partial Upfront", fetched_at=FETCHED)
    parsed = import_file(FIXTURES / "aws-pricelist-ec2-gpu-DERIVED.json", "aws", options)
    reserved = next(r for r in parsed.rows if r.capacity_type == "reserved")
    assert reserved.price_per_hour_usd == D("7.9914337900")  # 3.996 + 35000 / 8760, rounded once to 10 places
    assert reserved.term == "1yr Partial Upfront standard" and reserved.sku == "DERIVEDLINUXP38X.HU7G6KETJZ"
    all_upfront = import_file(
        FIXTURES / "aws-pricelist-ec2-gpu-DERIVED.json", "aws", ImportOptions(reserved_purchase_option="All Upfront")
    )
    assert next(r for r in all_upfront.rows if r.capacity_type == "reserved").price_per_hour_usd == D("7.7625570776")


def test_the_gpu_share_setting_bills_part_of_a_whole_node_price_but_not_of_a_gpu_sku() -> None:
    share = ImportOptions(gpu_share=D("0.95"))
    aws = import_file(FIXTURES / "aws-getproducts-gpu-DERIVED.json", None, share).rows[0]
    assert (aws.price_per_hour_usd, aws.gpu_price_per_hour_usd) == (D("1.006"), D("0.9557"))
    gcp = import_file(FIXTURES / "gcp-billing-catalog-skus-sample.json", None, share).rows[0]
    assert gcp.gpu_price_per_hour_usd == D("2.933908")


@pytest.mark.parametrize(
    "fixture",
    ["aws-pricelist-ec2-sample.json", "aws-getproducts-response-sample.json", "aws-spot-datafeed-sample.tsv"],
)
def test_a_real_excerpt_with_no_canonical_gpu_row_imports_nothing_and_says_why(fixture: str) -> None:
    with pytest.raises(InputError, match=r"no GPU price rows; skipped \d"):
        import_file(FIXTURES / fixture, None, OPTIONS)


def test_a_gzipped_spot_feed_is_read_as_is(tmp_path: Path) -> None:
    path = tmp_path / "123456789012.2023-12-09-08.001.abcd.gz"
    path.write_bytes(gzip.compress((FIXTURES / "aws-spot-datafeed-gpu-DERIVED.tsv").read_bytes()))
    assert _rows(import_file(path, None, OPTIONS)) == CASES[3][2]
