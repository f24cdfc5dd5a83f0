"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, through every page."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
PAGES = {
    "": "GPU spend",
    "teams": "Team bill",
    "health": "Fleet",
    "inference": "Inference",
    "drift": "Drift",
    "alerts": "Alert rules",
    "exports": "Weekly exports",
    "status": "Data status",
}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def dashboard_url(direct_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("dash") / "streamlit.log"
    env = dict(os.environ, GPULEDGER_WAREHOUSE=str(direct_warehouse), GPULEDGER_CONFIG="/dev/null")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "--config",
            "/dev/null",
            "--warehouse",
            str(direct_warehouse),
            "dashboard",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        else:
            pytest.fail(f"dashboard did not start: {log.read_text()[-2000:]}")
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=20)


def _browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("chromium is not installed: run `make tools` (Debian package 'chromium')")
    return sync_playwright(), chromium


def test_every_page_renders_in_chromium_without_an_exception(dashboard_url: str, tmp_path: Path) -> None:
    shots = Path(os.environ.get("GPULEDGER_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    manager, chromium = _browser()
    with manager as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        for path, heading in PAGES.items():
            page.goto(f"{dashboard_url}/{path}?start=2026-11-02&end=2026-11-02", wait_until="networkidle")
            page.get_by_text(heading, exact=False).first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)  # let charts and tables finish drawing
            assert page.locator("[data-testid='stException']").count() == 0, path
            page.screenshot(path=str(shots / f"{path or 'overview'}.png"), full_page=True)
        page.goto(f"{dashboard_url}/?start=2026-11-02&end=2026-11-02", wait_until="networkidle")
        page.get_by_text("GPU spend in window").wait_for(timeout=60_000)
        assert page.get_by_text("$", exact=False).count() > 0
        browser.close()
    assert len(list(shots.glob("*.png"))) == len(PAGES)
