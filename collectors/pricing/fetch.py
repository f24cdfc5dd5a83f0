"""`gpuledger pricing fetch aws|gcp|azure`: download live price lists, parse them with the importers.

Everything is downloaded and parsed before anything is stored, so a network failure, a 5xx or a
truncated page leaves the stored prices exactly as they were. Network failures raise
SourceUnavailable (exit code 3: retry later); a refused request (4xx, e.g. a bad API key) is terminal.
- AWS: the public EC2 offer file of each region (no credentials). The us-east-1 file is several hundred
  MB of JSON: parsing it needs a few GB of memory.
- Azure: the Retail Prices API (no credentials), filtered server-side to the region and the GPU VM sizes
  gpuledger knows, following NextPageLink.
- GCP: the Cloud Billing Catalog API with an API key read from a file (never logged), following
  nextPageToken, keeping the configured regions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from collectors.pricing import aws, azure, gcp, gpu_catalog
from collectors.pricing.price_table import ImportOptions, Parsed, input_structure, load_json
from core.errors import ConfigError, GpuledgerError, InputError, QueryError, SourceUnavailable, TransientError
from core.settings import PricingSettings
from core.timeutil import parse_duration

MAX_PAGES = 2000  # a loop guard: Azure's biggest regions need a few hundred pages
AZURE_API_VERSION = "2023-01-01-preview"


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def fetch(provider: str, pricing: PricingSettings, regions: tuple[str, ...] = ()) -> Parsed:
    """Download and parse one provider's prices (nothing is stored here)."""
    timeout = parse_duration(pricing.fetch_timeout)
    if provider == "aws":
        return fetch_aws(pricing, regions or pricing.aws_regions, timeout)
    if provider == "azure":
        return fetch_azure(pricing, regions or pricing.azure_regions, timeout)
    if provider == "gcp":
        return fetch_gcp(pricing, regions or pricing.gcp_regions, timeout)
    raise ConfigError(f"unknown provider {provider!r}: choose aws, gcp or azure")


def fetch_aws(pricing: PricingSettings, regions: tuple[str, ...], timeout: float) -> Parsed:
    options = ImportOptions.from_settings(pricing, now())
    merged = Parsed([])
    for region in regions:
        url = pricing.aws_offer_url.format(region=region)
        doc = load_json(_get(url, {}, timeout).text, url)
        if not isinstance(doc, dict):
            raise InputError(url, "not an AWS offer file (expected a JSON object)")
        with input_structure(url):
            parsed = aws.parse_offer(doc, url, options)
        merged.rows += parsed.rows
        merged.skipped.update(parsed.skipped)
    return merged


def fetch_azure(pricing: PricingSettings, regions: tuple[str, ...], timeout: float) -> Parsed:
    sizes = " or ".join(f"armSkuName eq '{size}'" for size in sorted(gpu_catalog.AZURE))
    pages: list[tuple[dict[str, Any], str]] = []
    for region in regions:
        params = {
            "api-version": AZURE_API_VERSION,
            "$filter": f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' and ({sizes})",
        }
        url: str | None = pricing.azure_prices_url
        while url:
            if len(pages) >= MAX_PAGES:
                raise InputError(pricing.azure_prices_url, f"more than {MAX_PAGES} pages: stopping")
            doc = _page(url, params, timeout)
            pages.append((doc, url))
            url, params = doc.get("NextPageLink") or None, {}  # the next link carries the query
    options = ImportOptions.from_settings(pricing, now(), regions)
    with input_structure(pricing.azure_prices_url):
        return azure.parse_pages(pages, pricing.azure_prices_url, options)


def fetch_gcp(pricing: PricingSettings, regions: tuple[str, ...], timeout: float) -> Parsed:
    key = _api_key(pricing.gcp_api_key_file)
    try:
        return _fetch_gcp_pages(pricing, regions, timeout, key)
    except TransientError as exc:  # a server may echo the request (and its key) in an error body
        raise SourceUnavailable(str(exc).replace(key, "***")) from None
    except GpuledgerError as exc:
        raise QueryError(str(exc).replace(key, "***")) from None


def _fetch_gcp_pages(pricing: PricingSettings, regions: tuple[str, ...], timeout: float, key: str) -> Parsed:
    pages: list[tuple[dict[str, Any], str]] = []
    token = ""
    while True:
        if len(pages) >= MAX_PAGES:
            raise InputError(pricing.gcp_catalog_url, f"more than {MAX_PAGES} pages: stopping")
        params = {"key": key, "currencyCode": "USD", "pageSize": "5000", **({"pageToken": token} if token else {})}
        doc = _page(pricing.gcp_catalog_url, params, timeout, label=f"{pricing.gcp_catalog_url} page {len(pages) + 1}")
        pages.append((doc, f"{pricing.gcp_catalog_url} page {len(pages) + 1}"))
        token = str(doc.get("nextPageToken") or "")
        if not token:
            break
    options = ImportOptions.from_settings(pricing, now(), regions)
    with input_structure(pricing.gcp_catalog_url):
        return gcp.parse_pages(pages, pricing.gcp_catalog_url, options)


def _api_key(path: Path | None) -> str:
    if path is None:
        raise ConfigError("pricing fetch gcp needs an API key: set pricing.gcp_api_key_file to a file holding one")
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the GCP API key file ({exc.strerror})") from None
    if not key:
        raise ConfigError(f"{path}: the GCP API key file is empty")
    return key


def _page(url: str, params: dict[str, str], timeout: float, label: str | None = None) -> dict[str, Any]:
    doc = load_json(_get(url, params, timeout).text, label or url)
    if not isinstance(doc, dict):
        raise InputError(label or url, "expected a JSON object")
    return doc


def _get(url: str, params: dict[str, str], timeout: float) -> requests.Response:
    """One GET; the URL in messages never includes the query (it may hold an API key)."""
    try:
        response = requests.get(url, params=params, timeout=timeout)
    except requests.RequestException as exc:
        raise SourceUnavailable(
            f"{url}: cannot fetch prices ({_reason(exc)}); the stored prices are unchanged"
        ) from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise SourceUnavailable(f"{url}: HTTP {response.status_code}; the stored prices are unchanged")
    if response.status_code >= 400:
        first = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        raise QueryError(f"{url}: HTTP {response.status_code} {first}; the stored prices are unchanged")
    response.encoding = response.encoding or "utf-8"  # JSON is UTF-8 unless the server says otherwise
    return response


def _reason(exc: BaseException) -> str:
    """The innermost OS-level reason (e.g. 'Connection refused'), not urllib3's nested repr."""
    seen: object = exc
    for _ in range(10):  # requests -> urllib3 MaxRetryError -> NewConnectionError -> OSError
        if isinstance(seen, OSError) and seen.strerror:
            return str(seen.strerror)
        if not isinstance(seen, BaseException):
            break
        args = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = getattr(seen, "reason", None) or seen.__cause__ or seen.__context__ or args
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return type(exc).__name__
