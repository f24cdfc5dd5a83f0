"""The design card's packages, measured where they would serve, against what gpuledger uses instead.

- prometheus-api-client against the collector's own client (collectors/metrics/prometheus/): every query a
  30-minute collection of a 1,000-GPU fleet sends, to a real Prometheus holding that fleet, at the
  collector's concurrency, decoded to numbers (the library returns JSON with values as strings; the
  collector needs floats, so the library's side pays that conversion too, and nothing else).
- polars against pandas for the dashboard's frames: the workloads frame of a 10,000-GPU week (190,000
  rows, the shape of the chargeback rows the teams page shows), built from the report's rows, filtered to
  one team (what an access scope does) and handed to Streamlit, which converts it to Arrow.
  The savings pass (analytics/finops/recommend.py) is SQL in DuckDB and Python over its rows: it uses
  neither library, so neither can change its 2.2 GB peak.

`python -m bench.deps` (or `make bench-deps`) writes bench/deps.md; `make bench` includes it.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import cache, fleet_openmetrics, promql
from bench.fleet import FleetSpec, build
from bench.harness import ROOT, spawn, stat, timed

GPUS = 1_000
MINUTES = 30
START = timedelta(days=2)
ROWS = 190_000  # a 10,000-GPU week's per-pod rows (the per-pod report builds ~190,000)
RUNS = 5


def _window(args: dict[str, Any]) -> Any:
    from core.timeutil import Window, parse_ts

    start = parse_ts(args["start"])
    return Window(start, start + timedelta(minutes=args["minutes"]))


def collection_plan(url: str, window: Any) -> tuple[Any, list[Any], Any]:
    """(reader, the queries a collection of `window` sends, its settings), as the collector plans them."""
    from collectors.metrics import http
    from collectors.metrics.ingest import window_plan
    from collectors.metrics.prometheus import reader as prometheus
    from core.settings import CollectSettings

    settings = CollectSettings(cluster="bench")
    client = http.HttpClient(url, http.HttpConfig(timeout_s=3600, retries=0))
    reader = prometheus.Reader(client, "prometheus", 60, settings.max_points_per_query, settings.concurrency)
    _, plan = window_plan(reader, settings, window)
    return reader, plan, settings


def client_own(args: dict[str, Any]) -> dict[str, Any]:
    """The collector's own fetch of the plan: HTTP, msgspec envelope, Arrow points, arrays of floats."""
    from collectors.metrics.prometheus import reader as prometheus

    reader, plan, _ = collection_plan(args["url"], _window(args))
    w = _window(args)
    times, fetched = timed(lambda: prometheus.fetch(reader, plan, w.start, w.end, "bench"), args["runs"])
    return {"times": times, "points": int(len(fetched.v)), "queries": len(plan)}


def client_pac(args: dict[str, Any]) -> dict[str, Any]:
    """prometheus-api-client's custom_query_range for every query of the same plan, at the same concurrency,
    its string values converted to floats."""
    import numpy as np
    from prometheus_api_client import PrometheusConnect

    _, plan, settings = collection_plan(args["url"], _window(args))
    w = _window(args)
    # start at window.start as the collector does: counters need the value before their first step
    prom = PrometheusConnect(url=args["url"], disable_ssl=True)

    def one(query: Any) -> int:
        answer = prom.custom_query_range(query.promql, start_time=w.start, end_time=w.end, step="60")
        return sum(len(np.asarray([v for _, v in s["values"]], dtype=np.float64)) for s in answer)

    def once() -> int:
        with ThreadPoolExecutor(settings.concurrency) as pool:
            return sum(pool.map(one, plan))

    times, points = timed(once, args["runs"])
    return {"times": times, "points": points, "queries": len(plan)}


def decode_only(args: dict[str, Any]) -> dict[str, Any]:
    """The client's own work without the store's: the plan's answers fetched once, then decoded to numbers by
    the collector's decoder and by what prometheus-api-client does with an answer (requests' .json(), then
    the values to floats), alternately."""
    import numpy as np
    import requests

    from collectors.metrics.prometheus.answers import decode_matrix
    from core.timeutil import to_epoch

    _, plan, _ = collection_plan(args["url"], _window(args))
    w = _window(args)
    params = {"start": f"{to_epoch(w.start):.3f}", "end": f"{to_epoch(w.end):.3f}", "step": "60"}
    bodies = [
        requests.get(f"{args['url']}/api/v1/query_range", params={**params, "query": q.promql}, timeout=600).content
        for q in plan
    ]

    def own() -> int:
        return sum(decode_matrix(b, args["url"], "bench").samples for b in bodies)

    def pac() -> int:
        total = 0
        for b in bodies:
            for series in json.loads(b)["data"]["result"]:
                total += len(np.asarray([v for _, v in series["values"]], dtype=np.float64))
        return total

    out: dict[str, Any] = {"own": [], "pac": [], "bytes": sum(map(len, bodies))}
    own(), pac()
    for _ in range(args["runs"]):  # alternating, so both see the same machine
        for name, fn in (("own", own), ("pac", pac)):
            t0 = time.perf_counter()
            out[f"{name}_points"] = fn()
            out[name].append(time.perf_counter() - t0)
    return out


def _rows(n: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    teams = [f"team-{i}" for i in range(40)]
    return [
        {
            "team": rng.choice(teams), "namespace": f"ns-{rng.randrange(400)}", "workload": f"job-{rng.randrange(20_000)}",
            "pod": f"pod-{i}", "gpu_hours": rng.random() * 168, "used_gpu_hours": rng.random() * 100,
            "efficiency": rng.random(), "allocated_cost_usd": f"{rng.random() * 5000:.2f}", "idle_share_usd": "0.00",
            "shared_share_usd": "0.00", "adjustment_usd": "0.00", "cost_usd": f"{rng.random() * 5000:.2f}",
            "unused_cost_usd": f"{rng.random() * 100:.2f}", "price_sources": ["aws:on_demand"], "kind": "allocated",
        }
        for i in range(n)
    ]  # fmt: skip


def frames(args: dict[str, Any]) -> dict[str, Any]:
    """Build, filter to one team, convert to Arrow: pandas (what the dashboard does) and polars."""
    import pandas as pd
    import polars as pl
    import pyarrow as pa

    rows = _rows(args["rows"])
    keep = ["team-3", "team-17"]

    def with_pandas() -> int:
        frame = pd.DataFrame(rows)
        frame = frame[frame["team"].isin(keep)]
        return pa.Table.from_pandas(frame, preserve_index=False).num_rows

    def with_polars() -> int:
        frame = pl.DataFrame(rows)  # the schema from the first 100 rows (polars default): every row has the same keys
        frame = frame.filter(pl.col("team").is_in(keep))
        return frame.to_arrow().num_rows

    out: dict[str, Any] = {}
    for name, fn in (("pandas", with_pandas), ("polars", with_polars)):
        out[name], out[f"{name}_rows"] = timed(fn, args["runs"])
    return out


def _prometheus_folder(b_log: Any) -> Path:
    fleet = build(FleetSpec(gpus=GPUS, days=3))
    lo = int(START.total_seconds() // 60)
    folder = cache.root() / "deps" / f"{fleet.spec.key}-{lo}-{MINUTES}m-gen{cache.GENERATOR_VERSION}"
    files = [folder / "dcgm-exporter.om", folder / "kube-state-metrics.om"]
    if not (folder / "ready").exists():
        b_log(f"writing OpenMetrics for {fleet.physical_gpus} GPUs x {MINUTES} min ...")
        shutil.rmtree(folder, ignore_errors=True)
        fleet_openmetrics.write_files(fleet, folder, lo, lo + MINUTES)
        promql.backfill_files(files, folder / "tsdb")
        (folder / "ready").write_text("ok")
    return folder


def measure(port: int, runs: int = RUNS, log: Any = print) -> dict[str, Any]:
    """Both comparisons, each pair alternating in the same run; ratios of medians."""
    folder = _prometheus_folder(log)
    start = (FleetSpec(gpus=GPUS, days=3).start + START).isoformat()
    out: dict[str, Any] = {"gpus": GPUS, "minutes": MINUTES, "rows": ROWS, "runs": runs}
    with promql.server(folder / "tsdb", port, folder / "prometheus.log") as url:
        args = {"url": url, "start": start, "minutes": MINUTES, "runs": runs}
        own, pac = spawn("client_own", args).result, spawn("client_pac", args).result
        decode = spawn("decode_only", args).result
    out["client"] = {
        "own": stat(own["times"]).as_dict(), "prometheus_api_client": stat(pac["times"]).as_dict(),
        "points": own["points"], "points_pac": pac["points"], "queries": own["queries"],
        "decode_own": stat(decode["own"]).as_dict(), "decode_pac": stat(decode["pac"]).as_dict(),
        "decode_points": [decode["own_points"], decode["pac_points"]], "mb": round(decode["bytes"] / 1e6, 1),
    }  # fmt: skip
    f = spawn("frames", {"rows": ROWS, "runs": runs}).result
    out["frames"] = {"pandas": stat(f["pandas"]).as_dict(), "polars": stat(f["polars"]).as_dict()}
    return out


def markdown(r: dict[str, Any]) -> str:
    c, f = r["client"], r["frames"]
    own, pac = c["own"]["median"], c["prometheus_api_client"]["median"]
    pd_, pl_ = f["pandas"]["median"], f["polars"]["median"]
    d_own, d_pac = c["decode_own"]["median"], c["decode_pac"]["median"]
    return "\n".join([
        "# Dependencies measured where they would serve (`python -m bench.deps`)",
        "",
        f"Medians of {r['runs']} runs after a warm-up, each pair in the same run on this machine (2 cores, shared).",
        "",
        "| where | gpuledger uses | median | the design card's package | median | ratio |",
        "|---|---|---|---|---|---|",
        f"| fetch and decode a {r['minutes']}-minute collection of {r['gpus']:,} GPUs from Prometheus ({c['queries']} queries, "
        f"{c['points']:,} points) | own client (msgspec + Arrow) | {own:.2f} s | prometheus-api-client 0.7.2 | {pac:.2f} s | {pac / own:.1f}x |",
        f"| the same answers ({c['mb']} MB) decoded only, the store's time left out | own decoder | {d_own:.3f} s "
        f"| prometheus-api-client's decoding (requests .json(), values to floats) | {d_pac:.3f} s | {d_pac / d_own:.1f}x |",
        f"| the dashboard's workloads frame, {r['rows']:,} rows: build, filter to a team, to Arrow | pandas | {pd_:.2f} s "
        f"| polars | {pl_:.2f} s | {pd_ / pl_:.2f}x |",
        "",
    ])  # fmt: skip


def main() -> None:
    import os

    result = measure(int(os.environ.get("BENCH_PORT", "19091")), int(os.environ.get("BENCH_RUNS", RUNS)))
    (ROOT / "bench" / "deps.json").write_text(json.dumps(result, indent=1) + "\n")
    (ROOT / "bench" / "deps.md").write_text(markdown(result))
    print(markdown(result), file=sys.stderr)


if __name__ == "__main__":
    main()
