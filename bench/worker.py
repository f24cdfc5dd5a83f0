"""One benchmark task in its own process (`python -m bench.worker TASK JSON-ARGS`), so its peak RSS is
its own: a warm-up, then `runs` timed runs; prints one JSON line {"times": [...], ...}.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench import deps
from bench.harness import OWN_PEAK, own_peak_rss_mb, timed
from core.timeutil import Window, to_epoch


def _window(args: dict[str, Any]) -> Window:
    start = datetime.fromisoformat(args["start"])
    return Window(start, start + timedelta(hours=args["hours"]))


def _report(report: Any) -> dict[str, dict[str, float]]:
    return {
        r.keys["team"]: {"gpu_hours": r.gpu_hours, "cost_usd": float(r.cost_usd), "used_gpu_hours": r.used_gpu_hours}
        for r in report.rows
    }


def chargeback(args: dict[str, Any]) -> dict[str, Any]:
    from analytics.cost.chargeback import ChargebackOptions, chargeback
    from core.store.warehouse import open_warehouse

    w, rollups = _window(args), args.get("rollups", True)
    if not args.get("energy", True):
        _without_energy()
    with open_warehouse(Path(args["warehouse"]), read_only=True) as con:
        opts = ChargebackOptions(by=tuple(args.get("by", ["team"])), price_source=args.get("price_source", "list"))
        times, report = timed(
            lambda: chargeback(con, w, opts, use_rollups=rollups), args["runs"], args.get("warmup", 1)
        )
    return {"times": times, "numbers": _report(report)}


def _without_energy() -> None:
    """The chargeback as it was before it read energy (issue 25), for the cost of energy in the same run: the usage
    facts carry constant zeros for energy instead of reading the rollups' energy columns (an experiment, in this
    worker process only)."""
    from analytics.cost import fact_plan

    fact_plan._USAGE = "used_s, 0.0::DOUBLE AS energy_j, 0.0::DOUBLE AS derived_j"


def health(args: dict[str, Any]) -> dict[str, Any]:
    """`report health`'s work: every GPU's periods and Xid events, the pods on unhealthy GPUs, lost capacity."""
    from analytics.health import impact
    from analytics.health.policy import HealthThresholds
    from analytics.health.report import evaluate
    from analytics.health.xid_catalog import load_catalog
    from app.stage_options import chargeback_options
    from core.settings import Settings
    from core.store.warehouse import open_warehouse

    s, w, rollups = Settings(), _window(args), args.get("rollups", True)
    thresholds, catalog = HealthThresholds.from_all(s), load_catalog(s.health.xid_overrides)
    attribution = chargeback_options(s).attribution

    def once() -> int:
        result = evaluate(con, w, thresholds, catalog, attribution, use_rollups=rollups)
        impact.impacted_pods(con, result, attribution)
        impact.lost_capacity(con, result, s.pricing.fallback_gpu_hour_usd)
        return len(result.periods)

    with open_warehouse(Path(args["warehouse"]), read_only=True) as con:
        times, periods = timed(once, args["runs"], args.get("warmup", 1))
    return {"times": times, "periods": periods}


def slo(args: dict[str, Any]) -> dict[str, Any]:
    """`report slo`'s work at the end of the serving data: every declared SLO evaluated."""
    from analytics.serving import slo as slo_mod
    from app.publish.slo_rules import serving_data_end
    from app.stage_options import sloth_specs
    from collectors.simulator import fleet
    from core import conventions as c
    from core.settings import load_settings
    from core.store.warehouse import one, open_warehouse

    serving = load_settings(Path(args["config"]), env={}).serving
    with open_warehouse(Path(args["warehouse"]), read_only=True) as con:
        now = serving_data_end(con)

        def once() -> list[Any]:
            defs = slo_mod.build_slos(con, serving, sloth_specs(serving), now)
            return [slo_mod.evaluate(con, d, now) for d in defs]

        times, reports = timed(once, args["runs"], args.get("warmup", 1))
        samples, pods = one(con, f"SELECT count(*), count(DISTINCT pod) FROM {c.T_INFERENCE_SAMPLES}")  # type: ignore[misc]
    assert reports and all(r.sli is not None for r in reports), "every SLO has traffic in the simulated month"
    return {
        "times": times,
        "slos": len(reports),
        "services": len({r.slo.service for r in reports}),
        "pods": pods,
        "samples": samples,
        "gpus": sum(n.gpu_count for n in fleet.NODES),  # the simulated fleet's physical GPUs
        "sli": {f"{r.slo.service}/{r.slo.name}": r.sli for r in reports},
    }


def three_way(args: dict[str, Any]) -> dict[str, Any]:
    """gpuledger, PromQL and pandas interleaved run by run, so each ratio compares the same moment."""
    from analytics.cost.chargeback import chargeback
    from bench import pandas_chargeback, promql
    from core.store.warehouse import open_warehouse

    w = _window(args)
    sides: dict[str, list[float]] = {"gpuledger": [], "promql": [], "pandas": []}
    numbers: dict[str, Any] = {}
    with open_warehouse(Path(args["warehouse"]), read_only=True) as con:
        fns: dict[str, Callable[[], Any]] = {
            "gpuledger": lambda: _report(chargeback(con, w)),
            "promql": lambda: promql.chargeback_by_team(args["url"], to_epoch(w.end), args["hours"] / 24, 60),
            "pandas": lambda: pandas_chargeback.chargeback_by_team(con, w.start, w.end),
        }
        for i in range(args["runs"] + 1):  # the first round is the warm-up
            for side, fn in fns.items():
                if side not in args.get("sides", list(fns)):
                    continue
                started = time.perf_counter()
                numbers[side] = fn()
                if i:
                    sides[side].append(time.perf_counter() - started)
    return {"times": sides, "numbers": numbers}


def ingest_files(args: dict[str, Any]) -> dict[str, Any]:
    from collectors.metrics.ingest import collect_files
    from core.settings import CollectSettings

    files = [Path(p) for p in args["files"]]
    scratch = Path(args["scratch"])
    settings = CollectSettings(cluster="bench", lookback="60s")
    out: dict[str, Any] = {}

    def once() -> Any:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        result = collect_files(scratch / "w.duckdb", files, settings)
        out["bytes"] = (scratch / "w.duckdb").stat().st_size
        out["samples"], out["rows"] = result.samples, result.total_rows
        return result

    out["times"], _ = timed(once, args["runs"], args.get("warmup", 1))
    return out


def ingest_history(args: dict[str, Any]) -> dict[str, Any]:
    """A scheduled collection on a month of history: the fleet's warehouse without its last minutes,
    then those minutes collected from files (appended after every collected step, as `serve` does).
    Each run cuts them off again first (untimed), through the rollups' own refresh."""
    from collectors.metrics.ingest import collect_files
    from core.settings import CollectSettings

    wh, w = Path(args["scratch"]) / "history.duckdb", _window(args)
    wh.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(args["warehouse"], wh)
    settings = CollectSettings(cluster="bench", lookback="60s")
    out: dict[str, Any] = {"times": []}
    try:
        for i in range(args["runs"] + args.get("warmup", 1)):
            _cut(wh, w.start)
            started = time.perf_counter()
            result = collect_files(wh, [Path(p) for p in args["files"]], settings, w)
            if i >= args.get("warmup", 1):
                out["times"].append(time.perf_counter() - started)
        out["samples"], out["rows"] = result.samples, result.total_rows
    finally:
        wh.unlink(missing_ok=True)
    return out


def _cut(wh: Path, start: datetime) -> None:
    from collectors.metrics import grid_stage
    from core.store.rollups import hourly
    from core.store.warehouse import open_warehouse, transaction

    with open_warehouse(wh) as con, transaction(con):
        for _, table, _ in grid_stage.STAGED:
            con.execute(f"DELETE FROM {table} WHERE ts >= ?", [start])
        hourly.refresh(con, (start - timedelta(minutes=1), start - timedelta(microseconds=1)))


def billing_import(args: dict[str, Any]) -> dict[str, Any]:
    """`gpuledger billing import` of a month's bill into an empty warehouse, each run from scratch."""
    from collectors.billing.importer import import_bills
    from core.settings import BillingSettings

    scratch = Path(args["scratch"])
    scratch.mkdir(parents=True, exist_ok=True)
    kept: list[int] = []

    def once() -> None:
        wh = scratch / "bill.duckdb"
        wh.unlink(missing_ok=True)
        kept.append(import_bills(wh, [Path(args["bill"])], BillingSettings()).lines_kept)

    times, _ = timed(once, args["runs"], 0)
    return {"times": times, "lines": kept[-1]}


def ingest_prometheus(args: dict[str, Any]) -> dict[str, Any]:
    from collectors.metrics.ingest import collect_prometheus
    from core.settings import CollectSettings, PrometheusSettings

    scratch, w = Path(args["scratch"]), _window(args)
    out: dict[str, Any] = {}

    def once() -> Any:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        prom = PrometheusSettings(url=args["url"])
        result = collect_prometheus(scratch / "w.duckdb", prom, CollectSettings(cluster="bench"), w.start, w.end)
        out["bytes"] = (scratch / "w.duckdb").stat().st_size
        out["samples"], out["rows"] = result.samples, result.total_rows
        return result

    out["times"], _ = timed(once, args["runs"], args.get("warmup", 1))
    return out


def prometheus_answers(args: dict[str, Any]) -> dict[str, Any]:
    """The store's side of a collection: every query the collector sends for the window, fetched at its
    concurrency through requests and thrown away (no decoding): what the machine's Prometheus takes."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    w = _window(args)
    _, plan, settings = deps.collection_plan(args["url"], w)
    params = {"start": f"{to_epoch(w.start):.3f}", "end": f"{to_epoch(w.end):.3f}", "step": "60"}

    def fetch(query: Any) -> int:
        r = requests.get(f"{args['url']}/api/v1/query_range", params={**params, "query": query.promql}, timeout=3600)
        r.raise_for_status()
        return len(r.content)

    def once() -> int:
        with ThreadPoolExecutor(settings.concurrency) as pool:
            return sum(pool.map(fetch, plan))

    times, size = timed(once, args["runs"], args.get("warmup", 1))
    return {"times": times, "bytes": size, "queries": len(plan)}


def scan_rate(args: dict[str, Any]) -> dict[str, Any]:
    """DuckDB's own scan-and-aggregate over `table` in the window: the machine's limit for that many rows."""
    import duckdb

    w = _window(args)
    con = duckdb.connect(args["warehouse"], read_only=True)
    col = args.get("ts", "ts")
    sql = (
        f"SELECT {args['group']}, sum({args['value']}) FROM {args['table']} WHERE {col} >= ? AND {col} < ? GROUP BY ALL"
    )
    rows = con.execute(
        f"SELECT count(*) FROM {args['table']} WHERE {col} >= ? AND {col} < ?", [w.start, w.end]
    ).fetchall()[0][0]
    times, _ = timed(lambda: con.execute(sql, [w.start, w.end]).fetchall(), args["runs"])
    return {"times": times, "rows": int(rows)}


def dashboard(args: dict[str, Any]) -> dict[str, Any]:
    """Every page as the dashboard serves it (_served: the sidebar, the page, then the sidebar's filter lists),
    through Streamlit's AppTest: cold (both caches cleared just before the page runs; shown: the page's content is
    complete, as the browser receives it; lists: the filter lists too), complete (until panels filled in after the
    page are there), and warm (cached) renders."""
    import logging

    from streamlit.testing.v1 import AppTest

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    os.environ["GPULEDGER_WAREHOUSE"], os.environ["GPULEDGER_CONFIG"] = args["warehouse"], "/dev/null"
    out: dict[str, Any] = {}
    for page in args["pages"]:
        at = AppTest.from_function(_served, args=(page,), default_timeout=3600)
        cold, lists, complete = [], [], []
        for i in range(args["runs"] + 1):  # the first round is the warm-up
            shown, listed, done = _cold_render(at, page)
            if i:
                cold.append(shown)
                lists.append(listed)
                complete.append(done)
        warm, _ = timed(functools.partial(_render, at, page), args["runs"], 0)
        out[page] = {"cold": cold, "lists": lists, "warm": warm, "complete": complete}
    return {"times": out}


PAGE_SHOWN: list[float] = []  # _served's clock when the page's content is complete


def _served(page: str) -> None:
    """A page run as the dashboard serves it (app/dashboard/streamlit_app.py, without st.navigation): the sidebar's
    window and filters, the page, then the filter lists, whose values read the breakdown. AppTest's switch_page runs
    a page without the entrypoint, so its first views left the sidebar out. Run by AppTest as a script of its own:
    everything it needs is imported here."""
    import runpy
    import time
    from pathlib import Path

    import streamlit as st

    from app.dashboard import access, sidebar, ui
    from bench import worker

    def run() -> None:
        try:
            runpy.run_path(str(Path(ui.__file__).parent / "pages" / f"{page}.py"))
        finally:
            worker.PAGE_SHOWN.append(time.perf_counter())

    st.session_state["scope"] = access.EVERYTHING
    sidebar.serve(access.EVERYTHING, page, run)


def _cold_render(at: Any, page: str) -> tuple[float, float, float]:
    """(seconds until the page's content is complete, until the sidebar's filter lists are in too, until its
    background panels are filled in too), the caches cleared first (what is under way finished), so the page computes
    everything it shows itself."""
    import streamlit as st

    from app.dashboard import freshness

    freshness.clear()  # waits for what is under way first
    st.cache_data.clear()
    PAGE_SHOWN.clear()
    began = time.perf_counter()
    _render(at, page)
    listed = time.perf_counter()
    shown = PAGE_SHOWN[0] if PAGE_SHOWN else listed
    freshness.settle()  # panels filled in after the page (the overview's savings)
    _render(at, page)
    return shown - began, listed - began, time.perf_counter() - began


def _render(at: Any, page: str) -> None:
    at.run()
    if at.exception:
        raise RuntimeError(f"{page}: {at.exception}")


def queues(args: dict[str, Any]) -> dict[str, Any]:
    """`report queues` by team over the window: waits, pending GPU-hours, fragmentation and quotas."""
    from analytics.capacity.report import queue_report
    from core.store.warehouse import open_warehouse

    with open_warehouse(Path(args["warehouse"]), read_only=True) as con:
        times, report = timed(lambda: queue_report(con, _window(args)), args["runs"], args.get("warmup", 1))
    return {
        "times": times,
        "pods": report.totals["pods"],
        "fragmented_gpu_hours": report.totals["fragmented_gpu_hours"],
    }


def noop(args: dict[str, Any]) -> dict[str, Any]:
    """Nothing: the smallest task there is (the harness's memory figures are tested on it)."""
    return {"times": []}


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "chargeback": chargeback,
    "queues": queues,
    "three_way": three_way,
    "health": health,
    "slo": slo,
    "ingest_files": ingest_files,
    "ingest_prometheus": ingest_prometheus,
    "billing_import": billing_import,
    "ingest_history": ingest_history,
    "prometheus_answers": prometheus_answers,
    "scan_rate": scan_rate,
    "dashboard": dashboard,
    "client_own": deps.client_own,
    "client_pac": deps.client_pac,
    "frames": deps.frames,
    "decode_only": deps.decode_only,
    "noop": noop,
}


def main() -> None:
    task, args = sys.argv[1], json.loads(sys.argv[2])
    result = {**TASKS[task](args), OWN_PEAK: own_peak_rss_mb()}
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
