"""Running `gpuledger serve` as a real process in tests: start, wait, read its metrics, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
STARTED: list[ServeProcess] = []  # killed after each test (conftest.py), so a failed test leaves no serve running


class ServeProcess:
    def __init__(self, config: Path, port: int, log: Path) -> None:
        STARTED.append(self)
        self.port = port
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--config", str(config), "serve", "--metrics-port", str(port)],
            cwd=ROOT,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve did not answer /healthz: {self.log.read_text()[-3000:]}")

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples().get((name, tuple(sorted(labels.items()))))

    def wait_for(self, name: str, at_least: float = 1, timeout: float = 120, **labels: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.value(name, **labels)
            if value is not None and value >= at_least:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"{name}{labels} did not reach {at_least}: {self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        os.kill(self.proc.pid, sig)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no handler runs, no transaction commits."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
