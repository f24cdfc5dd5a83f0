"""Fetching live prices (against a local HTTP server replaying the fixtures), offline failures, and the
settings-driven prices: on-prem servers and discounts, shown with their provenance."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests import servers
from tests.conftest import FIXTURES, run_cli
from tests.helpers import content_digest, rows

AZURE = json.loads((FIXTURES / "azure-retail-prices-CONSTRUCTED.json").read_text())
GCP = json.loads((FIXTURES / "gcp-billing-catalog-skus-sample.json").read_text())


def _azure_pages(base: str) -> dict[str, dict]:
    first = {**AZURE, "NextPageLink": f"{base}/azure/page2"}
    a100 = copy.deepcopy(AZURE["Items"][0])  # a second page with another size (values illustrative)
    a100.update(meterName="NC24ads A100 v4", skuName="NC24ads A100 v4", armSkuName="Standard_NC24ads_A100_v4")
    a100.update(retailPrice="3.673", meterId="PLACEHOLDER-METER-ID-7")
    return {"/azure": first, "/azure/page2": {**AZURE, "Items": [a100], "NextPageLink": None, "Count": 1}}


class _Replay(servers.StubHandler):
    pages: dict[str, dict] = {}
    seen: list[tuple[str, dict[str, list[str]]]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlparse(self.path)
        query = parse_qs(url.query)
        self.seen.append((url.path, query))
        key = url.path + ("?" + query["pageToken"][0] if "pageToken" in query else "")
        body = self.pages.get(key)
        if body is None:
            self.send_error(404)
            return
        self.reply(200, json.dumps(body).encode())


@pytest.fixture(scope="module")
def price_server() -> Iterator[str]:
    with servers.stub(_Replay) as base:
        _Replay.pages = {
            "/aws/us-east-2/index.json": json.loads((FIXTURES / "aws-pricelist-ec2-gpu-DERIVED.json").read_text()),
            **_azure_pages(base),
            # the GPU SKU on page 1, the core and RAM SKUs on page 2: a machine needs every page
            "/gcp": {"skus": GCP["skus"][:1], "nextPageToken": "page-2"},
            "/gcp?page-2": {"skus": GCP["skus"][1:], "nextPageToken": ""},
        }
        yield base


def _config(tmp_path: Path, base: str, key: bool = True) -> Path:
    (tmp_path / "gcp.key").write_text("test-key-123\n")
    config = tmp_path / "gpuledger.yaml"
    config.write_text(
        "pricing:\n"
        f"  aws_offer_url: '{base}/aws/{{region}}/index.json'\n"
        "  aws_regions: [us-east-2]\n"
        f"  azure_prices_url: '{base}/azure'\n"
        f"  gcp_catalog_url: '{base}/gcp'\n"
        + (f"  gcp_api_key_file: '{tmp_path / 'gcp.key'}'\n" if key else "")
        + "  fetch_timeout: 5s\n"
    )
    return config


@pytest.fixture(scope="module")
def priced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wh = tmp_path_factory.mktemp("priced") / "wh.duckdb"
    assert run_cli("--warehouse", str(wh), "pricing", "import", "--default").exit_code == 0
    return wh


FETCHED = [
    ("aws", "imported 2 price rows (2 new or changed) from aws (us-east-2); skipped 1 Windows/RHEL/SUSE rows", 2),
    ("azure", "imported 4 price rows (4 new or changed) from azure (eastus); skipped 1 DevTest rows", 4),
    ("gcp", "imported 5 price rows (5 new or changed) from gcp (us-central1)", 5),
]


@pytest.mark.parametrize(("provider", "message", "new_rows"), FETCHED, ids=[f[0] for f in FETCHED])
def test_fetch_downloads_every_page_and_stores_what_the_importer_makes_of_it(
    tmp_path: Path, price_server: str, priced: Path, provider: str, message: str, new_rows: int
) -> None:
    wh = tmp_path / "wh.duckdb"
    shutil.copy(priced, wh)
    before = len(rows(wh, "prices"))
    _Replay.seen.clear()  # (the Azure fixture's NC4as_T4_v3 Consumption row replaces the default table's)
    result = run_cli(
        "--config", str(_config(tmp_path, price_server)), "--warehouse", str(wh), "pricing", "fetch", provider
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(message)
    stored = rows(wh, "prices")
    assert len(stored) >= before
    assert sum(1 for r in stored if r[13] is not None) == new_rows  # fetched_at: only the fetched rows have one
    if provider == "gcp":
        assert [q["key"] for _, q in _Replay.seen] == [["test-key-123"]] * 2 and "test-key" not in result.output
        a2 = next(r for r in stored if r[3] == "a2-highgpu-1g" and r[13] is not None)
        assert (str(a2[8]), str(a2[9])) == ("3.6733850000", "2.9339080000")
    if provider == "azure":
        assert "armRegionName eq 'eastus'" in _Replay.seen[0][1]["$filter"][0]


@pytest.mark.parametrize("provider", ["aws", "azure", "gcp"])
def test_without_network_fetch_fails_with_one_line_and_exit_3_and_keeps_the_prices(
    tmp_path: Path, priced: Path, provider: str
) -> None:
    wh = tmp_path / "wh.duckdb"
    shutil.copy(priced, wh)
    before = content_digest(wh)
    with servers.refused_port() as port:
        result = run_cli(
            "--config", str(_config(tmp_path, f"http://127.0.0.1:{port}")), "--warehouse", str(wh),
            "pricing", "fetch", provider,
        )  # fmt: skip
    assert result.exit_code == 3
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot fetch prices (Connection refused); the stored prices are unchanged" in lines[0]
    assert content_digest(wh) == before


def test_fetching_gcp_without_an_api_key_file_says_which_setting_to_set(tmp_path: Path, price_server: str) -> None:
    result = run_cli("--config", str(_config(tmp_path, price_server, key=False)), "--warehouse", str(tmp_path / "w"),
                     "pricing", "fetch", "gcp")  # fmt: skip
    assert result.exit_code == 2 and "set pricing.gcp_api_key_file" in result.output


ON_PREM_CONFIG = """
pricing:
  discounts:
    - {name: EDP, percent: "10", provider: on_prem, effective_from: 2026-06-01}
  on_prem:
    - {instance_type: dgx-h100, gpu_model: H100 80GB, gpus_per_node: 8, effective_from: 2026-01-01,
       capex_usd: "300000", amortization_years: "4", opex_fraction_per_year: "0.15",
       power_kw: "8", pue: "1.4", usd_per_kwh: "0.10"}
"""


def test_configure_stores_on_prem_prices_and_discounts_and_show_says_where_a_price_came_from(tmp_path: Path) -> None:
    config = tmp_path / "gpuledger.yaml"
    config.write_text(ON_PREM_CONFIG)
    base = ["--config", str(config), "--warehouse", str(tmp_path / "wh.duckdb"), "pricing"]
    result = run_cli(*base, "configure")
    assert result.exit_code == 0, result.output
    assert "on-prem dgx-h100: 1.8523 $/GPU-h" in result.output
    assert "stored 1 on-prem price rows (1 new or changed) and 1 discounts" in result.output
    before = run_cli(*base, "show", "--instance-type", "dgx-h100", "--at", "2026-05-01").output
    after = run_cli(*base, "show", "--instance-type", "dgx-h100", "--at", "2026-11-02").output
    assert "14.8186301370" in before and "1.852328767" in before and "EDP" not in before
    assert "EDP" in after and "1.667095890" in after  # 1.85232876712 x 0.9
    assert "settings pricing.on_prem[0]: capex 300000" in after


def test_show_lists_the_price_in_force_with_its_sku_fetch_time_and_source(tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    assert (
        run_cli(
            "--warehouse", str(wh), "pricing", "import", str(FIXTURES / "aws-pricelist-ec2-gpu-DERIVED.json")
        ).exit_code
        == 0
    )
    shown = run_cli("--warehouse", str(wh), "pricing", "show", "--instance-type", "p3.8xlarge").output
    assert "DERIVEDLINUXP38X.JRTCKXETXF.6YS6EN2CT7" in shown and "AWS offer AmazonEC2 20230322145651" in shown
    assert "3.0600000000" in shown and "1yr No Upfront standard" in shown
    history = run_cli("--warehouse", str(wh), "pricing", "show", "--all").output
    assert history.count("p3.8xlarge") == 2


def test_switching_on_prem_power_to_nameplate_restates_the_stored_row_only_with_replace(tmp_path: Path) -> None:
    config = tmp_path / "gpuledger.yaml"
    config.write_text(ON_PREM_CONFIG)
    base = ["--config", str(config), "--warehouse", str(tmp_path / "wh.duckdb"), "pricing"]
    assert run_cli(*base, "configure").exit_code == 0
    config.write_text(ON_PREM_CONFIG.replace('usd_per_kwh: "0.10"}', 'usd_per_kwh: "0.10", energy: nameplate}'))
    refused = run_cli(*base, "configure")
    assert (
        refused.exit_code == 2 and "the GPUs' power charged as measured or nameplate; pass --replace" in refused.output
    )
    done = run_cli(*base, "configure", "--replace")
    assert done.exit_code == 0 and "replaced dgx-h100 on_prem" in done.output
    assert "stored 1 on-prem price rows (1 new or changed)" in done.output
