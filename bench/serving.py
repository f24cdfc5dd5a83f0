"""The 30-day SLO report figure: the simulator's model-serving fleet, a month of it.

The synthetic GPU fleets (bench/fleet.py) carry no serving metrics: what an SLO report reads grows with
the services and their series, not with the GPUs. So the figure uses the simulator's two vLLM services
(four pods, their vLLM and HTTP histograms and counters, with its incidents: a latency regression, a
canary's errors) over 30 days at its 5-minute scrape interval, collected through the OpenMetrics path
into a warehouse of their own, cached like the fleets. The report is `gpuledger report slo`'s work:
every declared SLO's period SLI, error budget, four burn-rate window pairs and 30 daily and cumulative
values.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench import cache
from bench.harness import ROOT, spawn
from core.store.schema import LATEST_VERSION

DAYS = 30
SEED = 7
START = "2026-10-05T00:00:00Z"
SCRAPE = "5m"
GENERATOR_VERSION = 1  # bump when what is generated changes


def folder() -> Path:
    return (
        cache.root() / "fleets" / f"serving-d{DAYS}-{SCRAPE}-seed{SEED}-gen{GENERATOR_VERSION}-schema{LATEST_VERSION}"
    )


def settings_doc() -> dict[str, Any]:
    """The services and SLOs the simulator declares, as `gpuledger demo` writes them into its settings."""
    from collectors.simulator import serving_truth

    services: dict[str, dict[str, Any]] = {n: {**s, "slos": []} for n, s in serving_truth.SERVICES.items()}
    for slo in serving_truth.SLOS:
        services[str(slo["service"])]["slos"].append({k: v for k, v in slo.items() if k != "service"})
    return {"serving": {"services": services}}


def warehouse() -> tuple[Path, Path, dict[str, Any]]:
    """(warehouse, settings file, generation stats), generated now unless cached."""
    where = folder()
    path, config, stats_path = where / "warehouse.duckdb", where / "gpuledger.yaml", where / "generated.json"
    if stats_path.exists() and path.exists() and config.exists():
        return path, config, json.loads(stats_path.read_text())
    shutil.rmtree(where, ignore_errors=True)
    (where / "om").mkdir(parents=True)
    started = time.monotonic()
    _cli("simulate", "--start", START, "--days", str(DAYS), "--seed", str(SEED), "--interval", SCRAPE,
         "--out", str(where / "om"))  # fmt: skip
    simulated = time.monotonic()
    _cli("--warehouse", str(path), "collect", "openmetrics", str(where / "om" / "vllm.om"), "--step", "300s")
    shutil.rmtree(where / "om")  # 2 GB of text, not needed again
    config.write_text(yaml.safe_dump(settings_doc(), sort_keys=True), encoding="utf-8")
    stats = {
        "simulate_s": round(simulated - started, 1),
        "collect_s": round(time.monotonic() - simulated, 1),
        "bytes": path.stat().st_size,
    }
    stats_path.write_text(json.dumps(stats, indent=2) + "\n")
    return path, config, stats


def _cli(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"gpuledger {' '.join(args[:3])} failed: {done.stderr.strip()[-500:]}")


def figure(b: Any, runs: int) -> None:
    """Add the 30-day SLO report's figure to the bench `b` (bench/run.py's Bench)."""
    path, config, stats = warehouse()
    child = spawn("slo", {"warehouse": str(path), "config": str(config), "runs": runs})
    r = child.result
    b.add("slo.report", f"30-day SLO report: {r['slos']} SLOs of {r['services']} services ({r['pods']} pods), "
          "period SLI and budget, 4 burn-rate pairs, 30 daily and cumulative values each", r["gpus"], f"{DAYS} d",
          r["times"], resolution=f"{SCRAPE} scrape", peak_rss_mb=child.peak_rss_mb, samples=r["samples"],
          bytes=stats["bytes"])  # fmt: skip
