"""Running benchmark tasks in child processes and summarising their timings.

Each task runs in its own `python -m bench.worker` process: its peak RSS comes from wait4() on
that process alone (not the harness), and its timings are a warm-up followed by N runs. Figures
are the median of the runs with min and max; ratios are taken run by run within one process.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Child:
    result: dict[str, Any]
    peak_rss_mb: float
    wall_s: float


OWN_PEAK = "own_peak_rss_mb"  # what a task measured of itself (own_peak_rss_mb()), in its JSON line


def own_peak_rss_mb() -> float:
    """This process's own peak RSS: the high-water mark of its address space (VmHWM), which exec starts afresh.
    Not ru_maxrss: Linux carries the parent's high-water mark into a child across fork and exec, so every task a
    3 GB benchmark runner started reported 3 GB (a 100-GPU chargeback that needs about 130 MB among them)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("/proc/self/status has no VmHWM: the benchmark measures memory on Linux only")


def spawn(task: str, args: dict[str, Any], timeout_s: float = 3600) -> Child:
    """Run one worker task; its own peak RSS (the VmHWM it reports as it ends) and wall time."""
    return spawn_argv(
        [sys.executable, "-m", "bench.worker", task, json.dumps(args)], timeout_s, {"PYTHONPATH": str(ROOT)}
    )


def spawn_argv(argv: list[str], timeout_s: float = 3600, extra_env: dict[str, str] | None = None) -> Child:
    """Run a command that prints one JSON line; its peak RSS (what it reports of itself, `own_peak_rss_mb`, else
    ru_maxrss from wait4, which may carry this process's own high-water mark) and wall time."""
    task = Path(argv[2] if argv[1] == "-m" else argv[1]).name
    started = time.monotonic()
    env = {**os.environ, **(extra_env or {})}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=ROOT, env=env)
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "killed (timeout?)"
        raise RuntimeError(f"{task} failed ({proc.returncode}): {last}")
    result = json.loads([x for x in stdout.strip().splitlines() if x.startswith("{")][-1])
    peak = result.pop(OWN_PEAK, None)
    return Child(result, peak if peak is not None else usage.ru_maxrss / 1024, time.monotonic() - started)


@dataclass
class Stat:
    median: float
    min: float
    max: float
    runs: int
    values: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.min, "max": self.max, "runs": self.runs}


def stat(values: list[float]) -> Stat:
    return Stat(statistics.median(values), min(values), max(values), len(values), values)


def exponent(sizes: Sequence[float], times: Sequence[float]) -> float | None:
    """Least-squares k in time = a * size^k (log-log fit)."""
    pts = [(math.log(s), math.log(t)) for s, t in zip(sizes, times, strict=True) if s > 0 and t > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else None


def timed(fn: Callable[[], Any], runs: int, warmup: int = 1) -> tuple[list[float], Any]:
    """Wall times of `runs` calls after `warmup` calls, and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return times, result
