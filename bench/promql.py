"""The same chargeback computed by a real Prometheus, the way OpenCost computes it: PromQL over raw series.

Dataset: the series a chargeback needs, for the whole window, at one scrape a step — kube-state-
metrics GPU requests, Running phase and pod labels, plus what OpenCost's own exporter publishes per
node (`node_gpu_count`, `node_gpu_hourly_cost` in $/GPU-hour). It is written as OpenMetrics one
2-hour TSDB block at a time (promtool re-reads its whole input once per block, so one file per block
keeps a month linear) and backfilled with `promtool tsdb create-blocks-from openmetrics`.

Queries: allocation x price joined with `group_left` over the pod labels, summed over the window
with a subquery at the warehouse's step (`[30d:1m]`), as OpenCost's allocation queries do. PromQL
cannot read a number out of a label, so the MIG (g/7) and time-slicing (1/replicas) shares are
written into the query per resource name, which a query for any other fleet would have to list too.
"""

from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import requests

from bench import fleet_openmetrics as fo
from bench.fleet import MIG_LAYOUT, POOLS, Fleet
from bench.truth import gpu_hour_prices
from core import conventions as c

BLOCK_STEPS = 120  # 2 h at 60 s: Prometheus' block size, so each file becomes exactly one block


def _node_series(fleet: Fleet, lo: int, hi: int) -> Iterator[fo.Series]:
    prices = gpu_hour_prices()
    steps = np.arange(lo, hi)
    for n in fleet.nodes.itertuples():
        labels = f'node="{n.node}",instance_type="{n.instance_type}"'
        price = prices[(n.instance_type, n.capacity_type.replace("-", "_"))]
        yield fo.Series("node_gpu_count", labels, steps, [str(n.gpus)] * len(steps))
        yield fo.Series("node_gpu_hourly_cost", labels, steps, [f"{price}"] * len(steps))


def _block(args: tuple[Fleet, int, Path, str]) -> int:
    fleet, block, folder, promtool = args
    lo = block * BLOCK_STEPS
    hi = min(lo + BLOCK_STEPS, fleet.spec.steps)
    path = folder / f"block-{block:04d}.om"
    series = [*fo.ksm_series(fleet, lo, hi, minimal=True), *_node_series(fleet, lo, hi)]
    lines = 0
    with open(path, "w", encoding="utf-8") as fh:
        for chunk in fo.render(series, fo.stamps(fleet)):
            fh.write(chunk)
            lines += chunk.count("\n")
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(path), str(folder / "tsdb")],
                   check=True, capture_output=True)  # fmt: skip
    path.unlink()
    return lines


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        raise RuntimeError("promtool is not installed: run `make tools` (Debian package 'prometheus')")
    return found


def backfill(fleet: Fleet, folder: Path, lo: int = 0, hi: int | None = None, workers: int = 2) -> dict[str, float]:
    """Write and backfill the chargeback series of steps [lo, hi) (block-aligned) into folder/tsdb."""
    promtool = _promtool()
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "tsdb").mkdir(parents=True)
    hi = fleet.spec.steps if hi is None else hi
    blocks = range(lo // BLOCK_STEPS, int(np.ceil(hi / BLOCK_STEPS)))
    started = time.monotonic()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        lines = sum(pool.map(_block, [(fleet, b, folder, promtool) for b in blocks], chunksize=4))
    return {"samples": lines, "backfill_s": round(time.monotonic() - started, 1)}


def backfill_files(files: list[Path], tsdb: Path) -> None:
    """Backfill exporter text (a window shorter than a block) into tsdb, one block per file."""
    tsdb.mkdir(parents=True, exist_ok=True)
    for f in files:
        subprocess.run([_promtool(), "tsdb", "create-blocks-from", "openmetrics", "-q", str(f), str(tsdb)],
                       check=True, capture_output=True)  # fmt: skip


@contextmanager
def server(tsdb: Path, port: int, log: Path) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1:port serving the backfilled TSDB (no scraping)."""
    config = tsdb.parent / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=100y",
            "--query.max-samples=2000000000",
            "--query.timeout=30m",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {proc.returncode}; see {log}")
            try:
                if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _shares() -> str:
    """Allocated GPUs per (namespace, pod, node): requests x each resource's share of a card."""
    req = c.KSM_POD_REQUESTS
    replicas = next(p.replicas for p in POOLS if p.replicas)
    terms = [f'sum by (namespace, pod, node) ({req}{{resource="{c.RESOURCE_GPU}", node!=""}})']
    terms.append(f'sum by (namespace, pod, node) ({req}{{resource="{c.RESOURCE_GPU_SHARED}", node!=""}}) / {replicas}')
    for g in sorted({int(p.split("g.")[0]) for profiles in MIG_LAYOUT.values() for p in profiles}):
        terms.append(
            f'sum by (namespace, pod, node) ({req}{{resource=~"{c.RESOURCE_MIG_PREFIX}{g}g_.*", node!=""}}) * {g} / 7'
        )
    return "(" + " or ".join(terms) + ")"


def queries(days: float, step_s: int) -> dict[str, str]:
    running = f'(max by (namespace, pod) ({c.KSM_POD_PHASE}{{phase="Running"}}) == 1)'
    team = f'max by (namespace, pod, label_team) (label_replace({c.KSM_POD_LABELS}, "label_team", "{c.UNALLOCATED}", "label_team", ""))'
    price = "max by (node) (node_gpu_hourly_cost)"
    alloc = f"({_shares()} * on (namespace, pod) group_left () {running})"
    rng = f"[{int(days * 86400)}s:{step_s}s]"
    per_hour = 3600 / step_s
    gpus = f"sum by (label_team) ({alloc} * on (namespace, pod) group_left (label_team) {team})"
    cost = f"sum by (label_team) (({alloc} * on (node) group_left () {price}) * on (namespace, pod) group_left (label_team) {team})"
    return {
        "gpu_hours": f"sum_over_time({gpus}{rng}) / {per_hour}",
        "cost_usd": f"sum_over_time({cost}{rng}) / {per_hour}",
        "capacity_gpu_hours": f"sum_over_time(sum(node_gpu_count){rng}) / {per_hour}",
        "capacity_cost_usd": f"sum_over_time(sum(node_gpu_count * on (node) group_left () {price}){rng}) / {per_hour}",
    }


def _query(url: str, promql: str, at: float) -> list[dict[str, Any]]:
    params: dict[str, str | float] = {"query": promql, "time": at}
    r = requests.get(f"{url}/api/v1/query", params=params, timeout=3600)
    r.raise_for_status()
    body = r.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{promql}: {body}")
    return list(body["data"]["result"])


def chargeback_by_team(url: str, end_epoch: float, days: float, step_s: int) -> dict[str, dict[str, float]]:
    """team -> gpu_hours, cost_usd (and __idle__), evaluated at the window's end."""
    q = queries(days, step_s)
    out: dict[str, dict[str, float]] = {}
    for name in ("gpu_hours", "cost_usd"):
        for item in _query(url, q[name], end_epoch):
            out.setdefault(item["metric"].get("label_team", c.UNALLOCATED), {})[name] = float(item["value"][1])
    capacity = {
        name: float(_query(url, q[f"capacity_{name}"], end_epoch)[0]["value"][1]) for name in ("gpu_hours", "cost_usd")
    }
    out[c.IDLE] = {name: capacity[name] - sum(v.get(name, 0.0) for v in out.values()) for name in capacity}
    return out


def raw_samples_rate(url: str, start_epoch: float, hours: float, step_s: int) -> tuple[int, float]:
    """Prometheus serving raw samples: one query_range of the Running phase series, fetched and decoded."""
    started = time.monotonic()
    params: dict[str, str | float] = {
        "query": f'{c.KSM_POD_PHASE}{{phase="Running"}}',
        "start": start_epoch + step_s,
        "end": start_epoch + hours * 3600,
        "step": step_s,
    }
    r = requests.get(f"{url}/api/v1/query_range", params=params, timeout=3600)
    r.raise_for_status()
    samples = sum(len(s["values"]) for s in r.json()["data"]["result"])
    return samples, time.monotonic() - started
