"""The benchmark's memory figures are each task's own: a tiny task started by a runner that has grown large
reports a tiny peak (Linux's ru_maxrss would carry the runner's high-water mark into it across fork and exec)."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.harness import own_peak_rss_mb, spawn

BALLAST_MB = 600


def test_a_tiny_task_started_by_a_large_runner_reports_its_own_small_peak() -> None:
    ballast = bytearray(BALLAST_MB * 2**20)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page: resident, as a grown runner's are
    assert own_peak_rss_mb() > BALLAST_MB
    child = spawn("noop", {})
    assert child.result == {"times": []}
    assert child.peak_rss_mb < 200, child.peak_rss_mb
    # the number the harness used to report, for the same kind of child: the runner's high-water mark
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    _, _, usage = os.wait4(proc.pid, 0)
    assert usage.ru_maxrss / 1024 > BALLAST_MB
    del ballast
