"""`make bench`: gpuledger at 100, 1,000 and 10,000 GPUs, against PromQL, pandas and the machine's limits.

Writes bench/results.json (every figure with fleet size, window and resolution) and bench/results.md
(bench/report.py). Fleets and Prometheus TSDBs are generated once and cached (bench/cache.py).
Environment: BENCH_RUNS (default 5), BENCH_QUICK=1 (100 and 1,000 GPUs only, 2 runs: a smoke test),
BENCH_ONLY=<section>,... (SECTIONS: run those only; their figures replace the same figures in bench/results.json,
every other figure is kept with the date of the run that measured it).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import duckdb

from bench import billing as bench_billing
from bench import cache, deps, fleet_openmetrics, promql, report, serving
from bench import drift as bench_drift
from bench import queues as bench_queues
from bench.fleet import Fleet, FleetSpec, build
from bench.harness import ROOT, Child, spawn, stat
from core import conventions as c
from core.timeutil import to_epoch

QUICK = os.environ.get("BENCH_QUICK") == "1"
RUNS = int(os.environ.get("BENCH_RUNS", "2" if QUICK else "5"))
SIZES = (100, 1000) if QUICK else (100, 1000, 10000)
DAYS = 30
STEP = "60 s"
COMPARE_HOURS = 6  # PromQL over a month at 1,000 GPUs takes hours: the three-way comparison uses 6 h
COMPARE_START = timedelta(days=1)  # 2026-10-06 00:00, a whole day into the month
INGEST_WINDOWS = (
    5,
    30,
)  # minutes: a scheduled collection, and a bulk load (up to 1,000 GPUs: 10,000 would take minutes per run)
INGEST_START = timedelta(days=1, hours=12)
LOAD_TIMEOUT = 900
# Pages whose first view reads the step tables (the overview's savings recommendations, analytics/finops/recommend.py;
# fleet health, analytics/health*.py): one run each, bounded, so `make bench` stays under 20 minutes.
SLOW_PAGES = ("overview", "health")
PAGE_TIMEOUT = 240


class Bench:
    def __init__(self) -> None:
        self.figures: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.started = time.monotonic()

    def log(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {text}", file=sys.stderr, flush=True)

    def add(
        self, fid: str, what: str, gpus: int, window: str, values: list[float], unit: str = "s", **extra: Any
    ) -> dict[str, Any]:
        fig = {
            "id": fid,
            "what": what,
            "gpus": gpus,
            "window": window,
            "resolution": STEP,
            "unit": unit,
            **stat(values).as_dict(),
            **extra,
        }
        self.figures.append(fig)
        self.log(f"{fid} @{gpus}: median {fig['median']:.4g} {unit} ({fig['runs']} runs)")
        return fig


def _spec(gpus: int) -> FleetSpec:
    return FleetSpec(gpus=gpus, days=DAYS)


def _start(delta: timedelta) -> str:
    return (FleetSpec(gpus=1).start + delta).isoformat()


def fleets(b: Bench) -> dict[int, tuple[Path, dict[str, Any]]]:
    out = {}
    for g in SIZES:
        path, stats = cache.warehouse(_spec(g))
        out[g] = (path, stats)
        rows = sum(cast(dict[str, int], stats["rows"]).values())
        b.figures.append({"id": "generate", "what": "generate the fleet's warehouse (cached after the first run)",
                          "gpus": stats["gpus"], "window": f"{DAYS} d", "resolution": STEP, "unit": "rows",
                          "rows": rows, "pods": stats["pods"], "bytes": stats["bytes"], "facts_s": stats["facts_s"],
                          "rollups_s": stats.get("rollups_s")})  # fmt: skip
    return out


def chargeback(b: Bench, whs: dict[int, tuple[Path, dict[str, Any]]]) -> None:
    for path, stats in whs.values():
        args = {"warehouse": str(path), "start": _start(timedelta(0)), "hours": DAYS * 24, "runs": RUNS}
        child = spawn("chargeback", args)
        b.add("chargeback.gpuledger", "30-day chargeback by team, gpuledger (rollups)", stats["gpus"], f"{DAYS} d",
              child.result["times"], peak_rss_mb=child.peak_rss_mb)  # fmt: skip
        # the same report with the energy columns read as constant zeros, in the same run: what energy costs it
        child = spawn("chargeback", {**args, "energy": False})
        b.add("chargeback.without_energy", "30-day chargeback by team, energy columns not read (the cost of energy)",
              stats["gpus"], f"{DAYS} d", child.result["times"], peak_rss_mb=child.peak_rss_mb)  # fmt: skip
        child = spawn("chargeback", {**args, "by": ["team", "day", "cluster", "node_pool", "gpu_model"]})
        b.add("chargeback.breakdown", "30-day chargeback by team x day x cluster x pool x GPU model (the dashboard's)",
              stats["gpus"], f"{DAYS} d", child.result["times"], peak_rss_mb=child.peak_rss_mb)  # fmt: skip
        # a window cut mid-hour at both ends (`report chargeback --start/--end` with minutes): its edge steps
        # come from the step tables, the partial days from the hourly rollups
        edges = {**args, "start": _start(timedelta(days=23, hours=5, minutes=30)), "hours": 5 * 24 + 11 + 40 / 60}
        child = spawn("chargeback", {**edges, "by": ["team", "workload"]})
        b.add("chargeback.edges", "chargeback by team x workload, 05:30 to 17:10 five days later (edges mid-hour)",
              stats["gpus"], "5 d 11 h 40 min", child.result["times"], peak_rss_mb=child.peak_rss_mb)  # fmt: skip
        lines = bench_billing.bill_fleet(path)  # every node-hour of the month on the bill
        child = spawn("chargeback", {**args, "price_source": "billing"})
        b.add("chargeback.billed", "30-day chargeback by team at billed cost (pricing.source: billing, every node-hour "
              "on the bill)", stats["gpus"], f"{DAYS} d", child.result["times"], peak_rss_mb=child.peak_rss_mb,
              bill_lines=lines)  # fmt: skip


def queues(b: Bench, whs: dict[int, tuple[Path, dict[str, Any]]]) -> None:
    """`report queues` over the month, on the fleets with their waiting derived (bench/queues.py): whole hours from the
    waiting rollups (core/store/rollups/waiting.py), each pod's wait in one pass."""
    for path, stats in whs.values():
        pending = bench_queues.queue_fleet(path)
        args = {"warehouse": str(path), "start": _start(timedelta(0)), "hours": DAYS * 24, "runs": RUNS}
        child = spawn("queues", args)
        b.add("queues", "30-day `report queues` by team (waits, pending GPU-hours, fragmentation, quotas)", stats["gpus"],
              f"{DAYS} d", child.result["times"], peak_rss_mb=child.peak_rss_mb, pending_rows=pending,
              pods=child.result["pods"])  # fmt: skip


def health(b: Bench, whs: dict[int, tuple[Path, dict[str, Any]]]) -> None:
    """The health report over the month, from the coverage rollup; from the step tables too at the smallest
    size (at 1,000 GPUs that path takes about a minute a run)."""
    for g, (path, stats) in whs.items():
        args = {"warehouse": str(path), "start": _start(timedelta(0)), "hours": DAYS * 24, "runs": RUNS}
        for rollups in (True, False) if g == min(SIZES) else (True,):
            child = spawn("health", {**args, "rollups": rollups})
            how = "coverage rollup" if rollups else "step tables only"
            fig = b.add(f"health.{'rollup' if rollups else 'steps'}", f"30-day health report ({how})", stats["gpus"],
                        f"{DAYS} d", child.result["times"], peak_rss_mb=child.peak_rss_mb,
                        periods=child.result["periods"])  # fmt: skip
            fig["baseline"] = not rollups


def load(b: Bench) -> None:
    """bench/dashboard_load.py (also `make bench-load`): 20 sessions x 60 s on 1,000 GPUs while serve collects."""
    out = cache.root() / "scratch" / "load.json"
    out.parent.mkdir(parents=True, exist_ok=True)  # no fleet generated before it in a `BENCH_ONLY=load` run
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(ROOT / "bench" / "dashboard_load.py"), "--json", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=LOAD_TIMEOUT, check=False)
    if not out.exists():
        b.notes.append(
            f"dashboard load: no figures (exit {done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}"
        )
        return
    result = json.loads(out.read_text())
    for page, f in result["pages"].items():
        b.add("dashboard.load", f"dashboard under load: page '{page}', p95 of {f['loads']} loads (20 sessions, 60 s, "
              "serve collecting)", 1000, "7 d (default)", [f["p95"]], page=page, p50_s=round(f["p50"], 3),
              slowest_s=round(f["max"], 3), errors=len(result["errors"]), collections=result["collections"])  # fmt: skip


def three_way(b: Bench, whs: dict[int, tuple[Path, dict[str, Any]]], port: int) -> None:
    """gpuledger vs PromQL on a real Prometheus vs pandas, same numbers asserted first."""
    for g in [s for s in SIZES if s <= 1000]:
        path, stats = whs[g]
        fleet = build(_spec(g))
        lo = int(COMPARE_START.total_seconds() // 60)
        folder = cache.root() / "promql" / f"{fleet.spec.key}-{lo}-{COMPARE_HOURS}h-gen{cache.GENERATOR_VERSION}"
        if not (folder / "ready").exists():
            b.log(f"backfilling Prometheus with {g} GPUs x {COMPARE_HOURS} h ...")
            info = promql.backfill(fleet, folder, lo=lo, hi=lo + COMPARE_HOURS * 60)
            (folder / "ready").write_text(json.dumps(info))
        info = json.loads((folder / "ready").read_text())
        window = f"{COMPARE_HOURS} h"
        with promql.server(folder / "tsdb", port, folder / "prometheus.log") as url:
            args = {
                "warehouse": str(path),
                "url": url,
                "start": _start(COMPARE_START),
                "hours": COMPARE_HOURS,
                "runs": RUNS,
            }
            child = spawn("three_way", args)
            agreement = report.agree(child.result["numbers"])
            times = child.result["times"]
            for side in ("gpuledger", "promql", "pandas"):
                b.add(f"compare.{side}", f"chargeback by team: {side}", stats["gpus"], window, times[side],
                      agreement=agreement, prometheus_samples=info["samples"])  # fmt: skip
            for side in ("promql", "pandas"):
                ratios = [o / m for o, m in zip(times[side], times["gpuledger"], strict=True)]
                b.add(
                    f"ratio.{side}",
                    f"{side} time / gpuledger time, run by run",
                    stats["gpus"],
                    window,
                    ratios,
                    unit="x",
                )
            if g == min(SIZES):
                raw, seconds = promql.raw_samples_rate(url, to_epoch(fleet.spec.start) + lo * 60, COMPARE_HOURS, 60)
                b.add("limit.prometheus_raw", "Prometheus serving raw samples (query_range, requests + json)",
                      stats["gpus"], window, [raw / seconds], unit="samples/s", samples=raw)  # fmt: skip


def ingest(b: Bench, port: int) -> None:
    for g in SIZES:
        for minutes in INGEST_WINDOWS if g <= 1_000 else INGEST_WINDOWS[:1]:
            _ingest_window(b, port, build(_spec(g)), minutes)


def _ingest_window(b: Bench, port: int, fleet: Fleet, minutes: int) -> None:
    """One collection of `minutes` of the fleet: the 5-minute one is what a scheduled collection commits,
    the 30-minute one a bulk load (per-series work is paid once per 30 samples, not per 5)."""
    lo = int(INGEST_START.total_seconds() // 60)
    folder = cache.root() / "ingest" / f"{fleet.spec.key}-{lo}-{minutes}m-gen{cache.GENERATOR_VERSION}"
    files = [folder / "dcgm-exporter.om", folder / "kube-state-metrics.om"]
    if not (folder / "ready").exists():
        b.log(f"writing OpenMetrics for {fleet.physical_gpus} GPUs x {minutes} min ...")
        shutil.rmtree(folder, ignore_errors=True)
        lines = fleet_openmetrics.write_files(fleet, folder, lo, lo + minutes)
        promql.backfill_files(files, folder / "tsdb")
        (folder / "ready").write_text(json.dumps(lines))
    window, suffix = f"{minutes} min", "" if minutes == INGEST_WINDOWS[0] else ".bulk"
    scratch = cache.root() / "scratch" / "ingest"
    child = spawn("ingest_files", {"files": [str(f) for f in files], "scratch": str(scratch), "runs": RUNS})
    _ingest_figures(b, "files" + suffix, fleet.physical_gpus, window, child)
    _projection(b, "files" + suffix, fleet.physical_gpus, minutes, child.result)
    with promql.server(folder / "tsdb", port, folder / "prometheus.log") as url:
        args = {"url": url, "scratch": str(scratch), "start": _start(INGEST_START), "hours": minutes / 60, "runs": RUNS}
        child = spawn("ingest_prometheus", args)
        _ingest_figures(b, "prometheus" + suffix, fleet.physical_gpus, window, child)
        _projection(b, "prometheus" + suffix, fleet.physical_gpus, minutes, child.result)
        samples = child.result["samples"]
        answers = spawn("prometheus_answers", args).result
        b.add(f"limit.prometheus_answers{suffix}", "Prometheus answering a collection's queries (fetch only, no decoding)",
              fleet.physical_gpus, window, [samples / t for t in answers["times"]], unit="samples/s", samples=samples,
              queries=answers["queries"], mb=round(answers["bytes"] / 1e6, 1))  # fmt: skip
        # the same queries in the same run: the collection's rate as a share of what the store alone delivers
        ratios = [a / c for a, c in zip(answers["times"], child.result["times"], strict=False)]
        b.add(f"ratio.collect_vs_fetch{suffix}", "collect prometheus rate / the store's fetch-only rate, run by run",
              fleet.physical_gpus, window, ratios, unit="x")  # fmt: skip


PROJECTED_GPUS, PROJECTED_DAYS = 10_000, 30


def _projection(b: Bench, source: str, gpus: int, minutes: int, result: dict[str, Any]) -> None:
    """The wall time of a 30-day backfill at 10,000 GPUs at this run's rate: samples scale with GPUs and minutes."""
    total = result["samples"] / (gpus * minutes) * PROJECTED_GPUS * PROJECTED_DAYS * 1440
    hours = [total / (result["samples"] / t) / 3600 for t in result["times"]]
    name = source.removesuffix(".bulk")
    b.add(f"projection.{source}", f"projected wall time of a {PROJECTED_DAYS}-day backfill at {PROJECTED_GPUS:,} GPUs "
          f"from {name} at this rate: hours", gpus, f"{minutes} min", hours, unit="h", samples=round(total))  # fmt: skip


def ingest_history(b: Bench, whs: dict[int, tuple[Path, dict[str, Any]]]) -> None:
    """A 5-minute collection appended to the fleet's month (its last 5 minutes, cut off and collected
    again): what `serve` pays per collection once history has grown. 10,000 GPUs would copy 16 GB per run."""
    for g in [g for g in SIZES if g <= 1_000]:
        fleet, minutes = build(_spec(g)), INGEST_WINDOWS[0]
        lo = DAYS * 1440 - minutes
        folder = cache.root() / "ingest" / f"{fleet.spec.key}-{lo}-{minutes}m-gen{cache.GENERATOR_VERSION}"
        files = [folder / "dcgm-exporter.om", folder / "kube-state-metrics.om"]
        if not all(f.exists() for f in files):
            fleet_openmetrics.write_files(fleet, folder, lo, lo + minutes)
        scratch = cache.root() / "scratch" / "history"
        args = {"warehouse": str(whs[g][0]), "files": [str(f) for f in files], "scratch": str(scratch),
                "start": _start(timedelta(minutes=lo)), "hours": minutes / 60, "runs": RUNS}  # fmt: skip
        child = spawn("ingest_history", args)
        r = child.result
        b.add("ingest.history", "ingest from files onto a month of history: samples/s (parse, grid, stage, commit, rollups)",
              fleet.physical_gpus, f"{minutes} min", [r["samples"] / t for t in r["times"]], unit="samples/s",
              samples=r["samples"], rows=r["rows"], peak_rss_mb=child.peak_rss_mb)  # fmt: skip


def billing_import(b: Bench) -> None:
    """A month's bill for 10,000 GPU instances (7.2 million hourly lines, Parquet): target under 60 s and 1 GB."""
    instances = 1_000 if QUICK else 10_000
    folder = cache.root() / "billing" / f"focus-{instances}x720-gen{cache.GENERATOR_VERSION}"
    if not folder.exists():
        bench_billing.write_month(folder, instances)
    args = {"bill": str(folder), "scratch": str(cache.root() / "scratch" / "billing"), "runs": min(RUNS, 2)}
    child = spawn("billing_import", args)
    r = child.result
    b.add("billing.import", "`billing import` of a month's bill, FOCUS Parquet, every line a GPU instance's: seconds",
          instances, "30 d", r["times"], lines=r["lines"], peak_rss_mb=child.peak_rss_mb)  # fmt: skip


def drift(b: Bench) -> None:
    """`drift check` beside Evidently's DataDriftPreset on the same files, each in a process of its own."""
    pairs = bench_drift.write_files(cache.root() / "drift")
    python = bench_drift.evidently_python(cache.root())
    runs = min(RUNS, 2)
    for name, pair in pairs.items():
        cmd = [sys.executable, "-m", "bench.drift", f"{pair[0]},{pair[1]}", str(runs)]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=True)
        ours = json.loads(done.stdout.strip().splitlines()[-1])
        theirs = bench_drift.evidently(python, pair, runs)
        what = "1,000,000 rows x 10 columns a side" if name == "wide" else "100,000 categories, 200,000 rows a side"
        b.add("drift.gpuledger", f"drift check ({what}): read, test every column", 0, what, ours["times"],
              peak_rss_mb=round(ours["peak_rss_mb"]), drifted=len(ours["drifted"]))  # fmt: skip
        if "timed_out" in theirs:
            b.notes.append(f"Evidently DataDriftPreset ({what}) did not finish in {theirs['timed_out']} s")
            continue
        b.add("drift.evidently", f"Evidently DataDriftPreset ({what}): read, report", 0, what, theirs["times"],
              peak_rss_mb=round(theirs["peak_rss_mb"]), drifted=theirs["drifted"])  # fmt: skip
        ratios = [e / g for e, g in zip(theirs["times"], ours["times"], strict=True)]
        b.add("ratio.drift", f"Evidently time / gpuledger time ({what})", 0, what, ratios, unit="x")


def _ingest_figures(b: Bench, source: str, gpus: int, window: str, child: Child) -> None:
    r = child.result
    rates = [r["samples"] / t for t in r["times"]]
    name = source.removesuffix(".bulk") + (" in one bulk load" if source.endswith(".bulk") else "")
    b.add(f"ingest.{source}", f"ingest from {name}: samples/s (parse, grid, stage, commit, rollups)", gpus, window,
          rates, unit="samples/s", samples=r["samples"], rows=r["rows"], peak_rss_mb=child.peak_rss_mb)  # fmt: skip
    b.add(f"bytes.{source}", f"warehouse bytes per ingested sample (ingest from {name})", gpus, window,
          [r["bytes"] / r["samples"]], unit="B/sample")  # fmt: skip


def storage(b: Bench, whs: dict[int, tuple[Path, dict[str, Any]]]) -> None:
    """Bytes per stored raw sample: file size / every value the step tables hold."""
    for path, stats in whs.values():
        con = duckdb.connect(str(path), read_only=True)
        values = sum(
            int(con.execute(f"SELECT {expr} FROM {t}").fetchall()[0][0])
            for t, expr in (
                (
                    c.T_GPU_SAMPLES,
                    "count(gr_engine_active) + count(gpu_util) + count(fb_used_mib) + count(power_w) + count(temp_c)",
                ),
                (c.T_GPU_POD_SAMPLES, "count(*) + count(gpu_util)"),
                (c.T_POD_ALLOCATIONS, "count(*)"),
                (c.T_NODE_SAMPLES, "count(*)"),
            )
        )
        con.close()
        b.add("bytes.warehouse", "warehouse file bytes (step tables + rollups) per stored raw sample", stats["gpus"],
              f"{DAYS} d", [stats["bytes"] / values], unit="B/sample", samples=values)  # fmt: skip


def limits(b: Bench, whs: dict[int, tuple[Path, dict[str, Any]]]) -> None:
    """DuckDB's own scan-and-aggregate over the step rows a month's chargeback would otherwise read."""
    g = max(whs)
    path, stats = whs[g]
    base = {"warehouse": str(path), "start": _start(timedelta(0)), "hours": DAYS * 24, "runs": RUNS}
    for table, group, value in ((c.T_POD_ALLOCATIONS, "namespace", "amount * step_s"),):
        child = spawn("scan_rate", {**base, "table": table, "group": group, "value": value})
        rows = child.result["rows"]
        b.add(f"limit.duckdb_scan.{table}", f"DuckDB scan-and-aggregate of {table} (rows/s)", stats["gpus"], f"{DAYS} d",
              [rows / t for t in child.result["times"]], unit="rows/s", rows=rows, seconds=stat(child.result["times"]).as_dict())  # fmt: skip


def dashboard(b: Bench, whs: dict[int, tuple[Path, dict[str, Any]]]) -> None:
    g = max(whs)
    path, stats = whs[g]
    pages = ["teams", "alerts", "exports", "status", "inference", "drift"]
    child = spawn("dashboard", {"warehouse": str(path), "pages": pages, "runs": RUNS})
    for page, t in child.result["times"].items():
        b.add("dashboard.cold", f"dashboard page '{page}', caches cleared (first view after a collection)",
              stats["gpus"], "7 d (default)", t["cold"], page=page, peak_rss_mb=child.peak_rss_mb,
              filter_lists_in_s=round(statistics.median(t["lists"]), 3))  # fmt: skip
        b.add(
            "dashboard.warm", f"dashboard page '{page}', cached", stats["gpus"], "7 d (default)", t["warm"], page=page
        )
    for page in SLOW_PAGES:  # they read the step tables: one run each, bounded
        try:
            child = spawn("dashboard", {"warehouse": str(path), "pages": [page], "runs": 1}, timeout_s=PAGE_TIMEOUT)
            t = child.result["times"][page]
            b.add("dashboard.cold", f"dashboard page '{page}', caches cleared", stats["gpus"], "7 d (default)",
                  t["cold"], page=page, peak_rss_mb=child.peak_rss_mb,
                  filter_lists_in_s=round(statistics.median(t["lists"]), 3))  # fmt: skip
            if page == "overview":  # its savings panel fills in after the page, from a background thread
                b.add("dashboard.complete", "dashboard page 'overview' until its savings panel is filled in",
                      stats["gpus"], "7 d (default)", t["complete"], page=page)  # fmt: skip
            b.add(
                "dashboard.warm",
                f"dashboard page '{page}', cached",
                stats["gpus"],
                "7 d (default)",
                t["warm"],
                page=page,
            )
        except (TimeoutError, RuntimeError) as exc:
            b.notes.append(f"{page} page at {stats['gpus']} GPUs: {exc}")
            b.figures.append({"id": "dashboard.cold", "what": f"dashboard page '{page}' (did not finish in {PAGE_TIMEOUT} s)",
                              "gpus": stats["gpus"], "window": "7 d (default)", "resolution": STEP, "unit": "s",
                              "median": None, "min": float(PAGE_TIMEOUT), "max": None, "runs": 0, "page": page})  # fmt: skip


SECTIONS = ("chargeback", "queues", "health", "serving", "three_way", "ingest", "ingest_history", "billing", "drift",
            "storage", "limits", "dashboard", "load", "deps")  # fmt: skip


def _dependencies(b: Bench, port: int) -> None:
    dependencies = deps.measure(port + 1, RUNS, b.log)  # the design card's packages where they would serve
    (ROOT / "bench" / "deps.json").write_text(json.dumps(dependencies, indent=1) + "\n")
    (ROOT / "bench" / "deps.md").write_text(deps.markdown(dependencies))


def main() -> None:
    b = Bench()
    header: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_at_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "runs": RUNS,
        "quick": QUICK,
    }
    port = int(os.environ.get("BENCH_PORT", "19090"))
    b.notes.append(
        "Health report: the synthetic fleets carry DCGM's device gauges but no health fields (Xid, ECC, row "
        "remapping) and no silent GPUs, so the figure is the cost of finding every GPU's span and of proving "
        "there is nothing to report (the simulated fleet in the tests has the incidents). SLO report: the synthetic "
        "fleets have no serving metrics, so it reads a month of the simulator's two vLLM services (bench/serving.py); "
        "its cost grows with services and series, not GPUs. The 30-day health report from the step tables only "
        "(100 GPUs) is a baseline, to show what the coverage rollup saves; it is what `report health` does only "
        "on a warehouse whose rollup is out of sync, and it is left out of the peak-RSS target."
    )
    b.notes.append(
        "SLO report, profiled (py-spy): 85% of it was analytics/serving/counters.py joining every sample to each of the 69 "
        "spans it falls in (period, burn windows, 30 daily and 30 cumulative), ~17 reads of the month. Now a span's "
        "increase comes from each series' numbered samples and running drops at its first and last sample (two "
        "ASOF joins), and a selector is read once per SLI: 10.1-13.4 s -> 3.9-5.1 s on the same warehouse, the "
        "same SLIs (measured side by side with the previous commit; the PromQL equivalence tests still pass)."
    )
    only = [x.strip() for x in os.environ.get("BENCH_ONLY", "").split(",") if x.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"BENCH_ONLY: no section {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    # the generated fleets (a 10,000-GPU month takes hours to generate): only for a section that reads them
    fleetless = {"serving", "ingest", "billing", "drift", "load", "deps"}.issuperset(only) if only else False
    whs = {} if fleetless else fleets(b)
    sections = {
        "chargeback": lambda: chargeback(b, whs),
        "queues": lambda: queues(b, whs),
        "health": lambda: health(b, whs),
        "serving": lambda: serving.figure(b, RUNS),
        "three_way": lambda: three_way(b, whs, port),
        "ingest": lambda: ingest(b, port),
        "ingest_history": lambda: ingest_history(b, whs),
        "billing": lambda: billing_import(b),
        "drift": lambda: drift(b),
        "storage": lambda: storage(b, whs),
        "limits": lambda: limits(b, whs),
        "dashboard": lambda: dashboard(b, whs),
        "load": lambda: load(b),
        "deps": lambda: _dependencies(b, port),
    }
    assert tuple(sections) == SECTIONS
    for name, run in sections.items():
        if not only or name in only:
            run()
    if only:
        header["partial"] = only
    header["loadavg_at_end"] = os.getloadavg()
    header["seconds"] = round(time.monotonic() - b.started)
    out = ROOT / "bench"
    previous = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    figures = report.merge_figures(previous, b.figures, str(header["started"])) if only else b.figures
    if only:
        header["previous_started"] = previous.get("header", {}).get("started")
    results = {"header": header, "figures": figures, "notes": b.notes, "before": previous.get("before", {})}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / "results.md").write_text(report.markdown(results))
    b.log(f"wrote {out / 'results.md'} and results.json in {header['seconds']} s")


if __name__ == "__main__":
    main()
