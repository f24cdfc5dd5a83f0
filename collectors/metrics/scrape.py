"""Direct scrape: read exporters' /metrics text (dcgm-exporter, kube-state-metrics, vLLM) without a
Prometheus, for small setups. One run is one scrape: every sample stands for the step that ends at
or after the scrape time, exactly like a saved scrape ingested with `collect openmetrics --at`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from collectors.metrics import commit, http, ingest
from collectors.metrics.openmetrics import Samples, parse_lines
from collectors.metrics.series import wants_family
from core.errors import InputError
from core.settings import CollectSettings
from core.timeutil import parse_duration

# Ask for the text format: some exporters would otherwise negotiate protobuf or OpenMetrics.
ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"


def scrape(url: str, at: datetime, settings: CollectSettings) -> Samples:
    """GET one /metrics endpoint and parse it (samples without a timestamp get `at`)."""
    config = http.HttpConfig(
        timeout_s=parse_duration(settings.timeout), retries=settings.retries, headers={"Accept": ACCEPT}
    )
    client = http.HttpClient(url, config)
    body = client.get("", None, "scrape")
    source = client.base_url
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(source, f"not UTF-8 text (byte {exc.start})") from None
    bounds = ingest.plausible_ms(max(at, ingest.utcnow()))
    return parse_lines(text.splitlines(), source, wants_family, int(ingest.epoch_ms(at)), False, bounds)


def collect_scrapes(warehouse: Path, urls: list[str], settings: CollectSettings, at: datetime) -> commit.LoadResult:
    """Scrape every URL first (any failure: nothing is written), then commit them together."""
    parsed = [scrape(url, at, settings) for url in urls]
    source = "scrape:" + ",".join(sorted(http.split_userinfo(u)[0] for u in urls))
    return ingest.commit_samples(warehouse, parsed, settings, source, single_scrape=True)
