"""`gpuledger collect scrape`: exporters' /metrics read directly, served by a local HTTP server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core import conventions as c
from tests import servers
from tests.conftest import FIXTURES, run_cli
from tests.helpers import DATA_TABLES, rows

AT = "2026-11-02T10:00:00Z"


def vllm_metrics() -> str:
    """vLLM's documented /metrics excerpt (sample A of the fixture) without the doc's elisions."""
    text = (FIXTURES / "vllm_metrics_samples.txt").read_text().split("# SAMPLE B", 1)[0]
    keep = [line for line in text.splitlines() if line.startswith(("vllm:", "# HELP vllm:", "# TYPE vllm:"))]
    return "\n".join(line for line in keep if "...}" not in line) + "\n"


ENDPOINTS = {
    "/dcgm/metrics": (FIXTURES / "dcgm-exporter_4.8.2_k8s_h100.prom").read_text()
    + (FIXTURES / "dcgm-exporter_4.8.2_mig_and_timeslicing.prom").read_text(),
    "/ksm/metrics": (FIXTURES / "kube-state-metrics_v2.x_gpu_excerpt.prom").read_text(),
    "/vllm/metrics": vllm_metrics(),
}


@pytest.fixture(scope="module")
def exporters() -> Iterator[str]:
    accepts: list[str] = []

    class Handler(servers.StubHandler):
        def do_GET(self) -> None:  # noqa: N802
            accepts.append(self.headers.get("Accept", ""))
            body = ENDPOINTS.get(self.path, "").encode()
            self.reply(200 if self.path in ENDPOINTS else 404, body, "text/plain; version=0.0.4")

    with servers.stub(Handler) as base:
        yield base


def test_scraping_exporters_stores_what_ingesting_the_same_text_as_files_stores(exporters: str, tmp_path: Path) -> None:
    files = []
    for path, text in ENDPOINTS.items():
        files.append(tmp_path / (path.strip("/").replace("/", "-") + ".prom"))
        files[-1].write_text(text)
    scraped, saved = tmp_path / "scraped.duckdb", tmp_path / "saved.duckdb"
    urls = [exporters + path for path in ENDPOINTS]
    result = run_cli("--warehouse", str(scraped), "collect", "scrape", *urls, "--at", AT)
    assert result.exit_code == 0, result.output
    assert f"scrape:{exporters}/dcgm/metrics" in result.output
    assert run_cli("--warehouse", str(saved), "collect", "openmetrics", *map(str, files), "--at", AT).exit_code == 0
    for table in DATA_TABLES:
        assert rows(scraped, table) == rows(saved, table), table
    assert rows(scraped, c.T_INFERENCE_SAMPLES) and rows(scraped, c.T_GPU_POD_SAMPLES)


def test_an_unreachable_exporter_fails_cleanly_and_writes_nothing(exporters: str, tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    result = run_cli("--warehouse", str(wh), "collect", "scrape", exporters + "/ksm/metrics", exporters + "/missing")
    assert result.exit_code == 2 and "/missing" in result.output and "HTTP 404" in result.output
    assert not wh.exists()
