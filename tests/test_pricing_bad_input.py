"""Bad price input: a clear error naming the file and position, and nothing from the file applied."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from collectors.pricing.importer import parse_text
from collectors.pricing.price_table import ImportOptions
from core.errors import InputError
from tests.conftest import FIXTURES, run_cli
from tests.helpers import content_digest

OPTIONS = ImportOptions(fetched_at=datetime(2026, 11, 2, 12, 0))


def _edit_json(name: str, edit: Any) -> str:
    doc = json.loads((FIXTURES / name).read_text())
    edit(doc)
    return json.dumps(doc, indent=1)


def _set(path: list[Any], value: Any) -> Any:
    def edit(doc: Any) -> None:
        for key in path[:-1]:
            doc = doc[key]
        doc[path[-1]] = value

    return edit


@pytest.fixture(scope="module")
def priced_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wh = tmp_path_factory.mktemp("priced") / "wh.duckdb"
    assert run_cli("--warehouse", str(wh), "pricing", "import", "--default").exit_code == 0
    return wh


GCP = "gcp-billing-catalog-skus-sample.json"
AZURE = "azure-retail-prices-CONSTRUCTED.json"
AWS = "aws-pricelist-ec2-gpu-DERIVED.json"
OD_DIM = ["terms", "OnDemand", "DERIVEDLINUXP38X", "DERIVEDLINUXP38X.JRTCKXETXF", "priceDimensions"]
BAD = [
    ("truncated JSON page", "skus.json", (FIXTURES / GCP).read_text()[:1500], r"skus\.json:\d+: not valid JSON"),
    (
        "GCP SKU with an unknown unit",
        "skus.json",
        _edit_json(GCP, _set(["skus", 1, "pricingInfo", 0, "pricingExpression", "usageUnit"], "GiBy.mo")),
        r"skus\.json: skus\[1\] \(2390-DCAF-DA38\) pricingInfo\[0\]: unknown usage unit 'GiBy\.mo'",
    ),
    (
        "GCP negative units",
        "skus.json",
        _edit_json(
            GCP, _set(["skus", 0, "pricingInfo", 0, "pricingExpression", "tieredRates", 0, "unitPrice", "units"], "-2")
        ),
        r"skus\[0\] \(039F-D0DA-4055\) pricingInfo\[0\] units: price '-2' must be a finite non-negative number",
    ),  # fmt: skip
    (
        "Azure negative price",
        "retail.json",
        _edit_json(AZURE, _set(["Items", 0, "retailPrice"], -0.526)),
        r"retail\.json: Items\[0\] \(PLACEHOLDER-METER-ID-1\) retailPrice: price '-0\.526' must be",
    ),
    (
        "Azure unknown unit",
        "retail.json",
        _edit_json(AZURE, _set(["Items", 0, "unitOfMeasure"], "1/Month")),
        r"Items\[0\] \(PLACEHOLDER-METER-ID-1\): unknown unit of measure '1/Month'",
    ),
    (
        "AWS non-numeric price",
        "index.json",
        _edit_json(AWS, _set([*OD_DIM, "DERIVEDLINUXP38X.JRTCKXETXF.6YS6EN2CT7", "pricePerUnit", "USD"], "twelve")),
        r"index\.json: products\.DERIVEDLINUXP38X OnDemand DERIVEDLINUXP38X\.JRTCKXETXF .*price 'twelve' is not a number",
    ),
    (
        "AWS spot price not a number",
        "spot.json",
        _edit_json("aws-spot-price-history-CONSTRUCTED.json", _set(["SpotPriceHistory", 1, "SpotPrice"], "n/a")),
        r"spot\.json: SpotPriceHistory\[1\] SpotPrice: price 'n/a' is not a number",
    ),
    (
        "spot feed price without USD",
        "feed.tsv",
        (FIXTURES / "aws-spot-datafeed-gpu-DERIVED.tsv").read_text().replace("0.9180000000 USD\t0", "0.918\t0"),
        r"feed\.tsv:4: MarketPrice '0\.918' is not in USD",
    ),
    (
        "GetProducts item truncated",
        "products.json",
        _edit_json(
            "aws-getproducts-gpu-DERIVED.json", lambda d: d["PriceList"].__setitem__(1, d["PriceList"][1][:900])
        ),
        r"products\.json: PriceList\[1\]:1: not valid JSON",
    ),
    (
        "AWS unknown price unit",
        "index.json",
        _edit_json(AWS, _set([*OD_DIM, "DERIVEDLINUXP38X.JRTCKXETXF.6YS6EN2CT7", "unit"], "Mins")),
        r"DERIVEDLINUXP38X\.JRTCKXETXF\.6YS6EN2CT7: unknown unit 'Mins' \(expected Hrs or Quantity\)",
    ),
    (
        "CSV missing a column",
        "prices.csv",
        "provider,region,instance_type\naws,us-east-1,p5.48xlarge\n",
        r"prices\.csv:1: missing column",
    ),  # fmt: skip
]


@pytest.mark.parametrize(("name", "text", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_named_by_file_and_position_and_nothing_from_the_file_is_applied(
    tmp_path: Path, priced_warehouse: Path, name: str, text: str, message: str
) -> None:
    wh = tmp_path / "wh.duckdb"
    shutil.copy(priced_warehouse, wh)
    before = content_digest(wh)
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        parse_text(text, str(path), None, OPTIONS)
    result = run_cli("--warehouse", str(wh), "pricing", "import", str(path))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert content_digest(wh) == before


def test_a_file_of_another_format_than_the_one_given_is_refused() -> None:
    text = (FIXTURES / AZURE).read_text()
    with pytest.raises(InputError, match="not a Billing Catalog page"):
        parse_text(text, "retail.json", "gcp", OPTIONS)
