"""Dashboard under load: N concurrent sessions for S seconds against a 1,000-GPU warehouse while
`gpuledger serve` keeps collecting into it (issue 11). Everything runs on 127.0.0.1 and stops by pid.

    .venv/bin/python bench/dashboard_load.py [--sessions 20] [--seconds 60] [--gpus 1000] [--days 7]

A session is what a browser tab is to Streamlit: one websocket on /_stcore/stream that asks for a page
run (a BackMsg rerun_script, as the frontend sends it) and receives the page as ForwardMsgs until
`script_finished`. Each session walks through every page in turn, with a think time between pages
like a person reading it. A page's latency is request -> script_finished; an error is an exception
element on a page, a failed run, or a dropped connection. Exit status 1 when any error happened or
the p95 reached --p95-limit (1.5 s, issue 27's target).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import requests
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.asyncio.client import connect as websocket_connect  # Streamlit's own server dependency

from collectors.pricing import price_table
from core.store.rollups import hourly
from core.store.warehouse import connect, transaction

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("", "teams", "health", "inference", "drift", "alerts", "exports", "status")
TEAMS = ("vision", "nlp", "research", "ads", "search", "speech", "robotics", "recsys", "fraud", "maps")
STEP_S = 300
GPUS_PER_NODE = 8


def build_warehouse(path: Path, gpus: int, days: int, end: datetime) -> None:
    """A fleet of p4d.24xlarge nodes, one long-running 1-GPU pod per GPU (10 teams), 5-minute steps."""
    nodes, steps = gpus // GPUS_PER_NODE, days * 86400 // STEP_S
    start = end - timedelta(seconds=steps * STEP_S)
    con = connect(path)
    try:
        with transaction(con):
            con.execute(
                """INSERT INTO nodes (cluster, node, instance_type, capacity_type, region, zone, node_pool, gpu_model,
                gpu_count, gpu_replicas, labels, first_seen, last_seen) SELECT 'bench', 'node-' || n, 'p4d.24xlarge', 'on_demand', 'us-east-1', 'us-east-1a',
                'pool-' || (n % 4), 'NVIDIA-A100-SXM4-40GB', 8, NULL, '{}', ?, ? FROM range(?) t(n)""",
                [start, end, nodes],
            )
            con.execute(
                """INSERT INTO gpus SELECT 'bench', 'node-' || (g // 8), 'GPU-' || g, '', g % 8,
                'NVIDIA A100-SXM4-40GB', '', ?, ? FROM range(?) t(g)""",
                [start, end, gpus],
            )
            teams = "[" + ",".join(f"'{t}'" for t in TEAMS) + "]"
            con.execute(
                f"""INSERT INTO pods (cluster, namespace, pod, uid, node, labels, first_seen, last_seen) SELECT 'bench', 'ns-' || (g % 10), 'job-' || g, 'uid-' || g, 'node-' || (g // 8),
                json_object('team', {teams}[g % 10 + 1], 'app_kubernetes_io_name', 'app-' || (g % 37)), ?, ?
                FROM range(?) t(g)""",
                [start, end, gpus],
            )
            con.execute(
                "INSERT INTO namespaces SELECT 'bench', 'ns-' || n, '{}', ?, ? FROM range(10) t(n)", [start, end]
            )
            grid = "(SELECT ?::TIMESTAMP + to_seconds(s * 300) AS ts FROM range(?) t(s))"
            con.execute(
                f"INSERT INTO node_samples (ts, step_s, cluster, node, gpu_capacity) SELECT ts, 300, 'bench', 'node-' || n, 8 "
                f"FROM {grid}, range(?) t(n)",
                [start, steps, nodes],
            )
            activity = "(0.15 + 0.8 * ((g * 7919 + epoch(ts)::BIGINT // 300 * 31) % 100) / 100.0)"
            con.execute(
                f"""INSERT INTO gpu_samples SELECT ts, 300, 'bench', 'node-' || (g // 8), 'GPU-' || g, '', {activity},
                {activity} * 100, 20000, 300, 60 FROM {grid}, range(?) t(g)""",
                [start, steps, gpus],
            )
            con.execute(
                f"""INSERT INTO gpu_pod_samples SELECT ts, 300, 'bench', 'node-' || (g // 8), 'GPU-' || g, '', '',
                'ns-' || (g % 10), 'job-' || g, NULL FROM {grid}, range(?) t(g)""",
                [start, steps, gpus],
            )
            con.execute(
                f"""INSERT INTO pod_allocations SELECT ts, 300, 'bench', 'ns-' || (g % 10), 'job-' || g, 'uid-' || g,
                'node-' || (g // 8), 'nvidia_com_gpu', 1 FROM {grid}, range(?) t(g)""",
                [start, steps, gpus],
            )
        price_table.store(con, price_table.parse_csv(price_table.default_table_text(), "default"))
        with transaction(con):  # as a collector's commits leave it: rollups current, so pages read them
            hourly.refresh(con, None, full=True)
        con.execute("CHECKPOINT")
    finally:
        con.close()


def write_recent_scrapes(path: Path, gpus: int, end: datetime) -> None:
    """The last hour as exporters show it (dcgm-exporter + kube-state-metrics): what serve collects."""
    lines = []
    for i in range(12):
        t = int((end - timedelta(seconds=3600 - i * STEP_S)).replace(tzinfo=UTC).timestamp())
        for g in range(gpus):
            node, team = f"node-{g // 8}", TEAMS[g % 10]
            pod = f'namespace="ns-{g % 10}",pod="job-{g}"'
            dev = f'gpu="{g % 8}",UUID="GPU-{g}",modelName="NVIDIA A100-SXM4-40GB",Hostname="{node}",{pod}'
            lines.append(f"DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{dev}}} {0.2 + (g * 13 + i) % 70 / 100} {t}")
            lines.append(f'kube_pod_labels{{{pod},uid="uid-{g}",label_team="{team}"}} 1 {t}')
            lines.append(f'kube_pod_info{{{pod},uid="uid-{g}",node="{node}"}} 1 {t}')
            lines.append(f'kube_pod_status_phase{{{pod},uid="uid-{g}",phase="Running"}} 1 {t}')
            lines.append(
                f'kube_pod_container_resource_requests{{{pod},uid="uid-{g}",container="c",node="{node}",'
                f'resource="nvidia_com_gpu",unit="integer"}} 1 {t}'
            )
    path.write_text("\n".join(lines) + "\n# EOF\n")


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def session(url: str, deadline: float, think: float, out: Results, seed: int, pages: int | None = None) -> None:
    rng = random.Random(seed)
    ws = await websocket_connect(
        f"{url.replace('http', 'ws')}/_stcore/stream",
        subprotocols=["streamlit"],  # type: ignore[list-item]
        max_size=None,
    )
    hashes: dict[str, str] = {}
    order = list(PAGES)
    rng.shuffle(order)
    i = 0
    try:
        while time.monotonic() < deadline and (pages is None or i < pages):
            page = order[i % len(order)]
            i += 1
            msg = BackMsg()
            msg.rerun_script.query_string = ""
            msg.rerun_script.page_name = page
            if page in hashes:
                msg.rerun_script.page_script_hash = hashes[page]
            began = time.monotonic()
            await ws.send(msg.SerializeToString())
            error = await _until_finished(ws, hashes)
            out.latencies.setdefault(page or "overview", []).append(time.monotonic() - began)
            if error:
                out.errors.append(f"{page or 'overview'}: {error}")
            await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))
    except Exception as exc:  # a dropped connection is an error of the run, not of the harness
        out.errors.append(f"session {seed}: {type(exc).__name__}: {exc}")
    finally:
        await ws.close()


async def _until_finished(ws: object, hashes: dict[str, str]) -> str | None:
    error = None
    while True:
        raw = await ws.recv()  # type: ignore[attr-defined]
        fwd = ForwardMsg()
        fwd.ParseFromString(raw)
        kind = fwd.WhichOneof("type")
        if kind == "navigation":
            for p in fwd.navigation.app_pages:
                hashes[p.url_pathname] = p.page_script_hash
        elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
            if fwd.delta.new_element.WhichOneof("type") == "exception":
                error = fwd.delta.new_element.exception.message[:200]
        elif kind == "script_finished":
            if fwd.script_finished != ForwardMsg.FINISHED_SUCCESSFULLY and not error:
                error = f"script finished with status {fwd.script_finished}"
            return error


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app", *args], cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: process exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(out: Results, collections: float, serve_failed: list[str]) -> dict[str, object]:
    """What `make bench` records (--json): per page and over all pages, loads, p50, p95 and max seconds."""
    pages = {**out.latencies, "all": [v for vs in out.latencies.values() for v in vs]}
    return {
        "pages": {
            page: {"loads": len(v), "p50": statistics.median(v), "p95": _percentile(v, 0.95), "max": max(v)}
            for page, v in pages.items()
            if v
        },
        "errors": out.errors,
        "collections": collections,
        "serve_failed": serve_failed,
    }


def report(out: Results, serve_metrics: str, limit: float, json_out: Path | None = None) -> int:
    every = [v for vs in out.latencies.values() for v in vs]
    print(f"{'page':<10} {'loads':>6} {'p50 s':>7} {'p95 s':>7} {'max s':>7}")
    for page, values in sorted(out.latencies.items()):
        print(
            f"{page:<10} {len(values):>6} {statistics.median(values):>7.2f} {_percentile(values, 0.95):>7.2f} {max(values):>7.2f}"
        )
    p95 = _percentile(every, 0.95) if every else float("inf")
    print(f"{'all':<10} {len(every):>6} {statistics.median(every):>7.2f} {p95:>7.2f} {max(every):>7.2f}")
    collected = [line for line in serve_metrics.splitlines() if line.startswith(("gpuledger_job_duration_seconds_count", "gpuledger_errors_total")) and not line.endswith(" 0.0")]  # fmt: skip
    print("serve during the load: " + "; ".join(collected))
    print(f"errors: {len(out.errors)}" + "".join(f"\n  {e}" for e in out.errors[:20]))
    # the load counts only while collections really ran, and none of them failed
    collections = sum(
        float(line.rsplit(" ", 1)[1]) for line in collected if 'job="collect"' in line and "count" in line
    )
    serve_failed = [line for line in collected if line.startswith("gpuledger_errors_total")]
    if collections == 0 or serve_failed:
        print(f"serve: {collections:g} collections during the load, failures: {serve_failed or 'none'}")
    if json_out is not None:
        json_out.write_text(json.dumps(summary(out, collections, serve_failed), indent=1))
    return 0 if not out.errors and p95 < limit and collections > 0 and not serve_failed else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--gpus", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--think", type=float, default=2.0, help="mean seconds a user reads a page")
    parser.add_argument("--collect-every", default="15s", help="serve's collection interval during the load")
    parser.add_argument("--p95-limit", type=float, default=1.5)
    parser.add_argument("--json", type=Path, help="also write the figures here (make bench does)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gpuledger-load-") as tmp:
        return run(Path(tmp), args)


def run(work: Path, args: argparse.Namespace) -> int:
    end = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    began = time.monotonic()
    build_warehouse(work / "wh.duckdb", args.gpus, args.days, end)
    write_recent_scrapes(work / "recent.om", args.gpus, end)
    rows = (
        duckdb.connect(str(work / "wh.duckdb"), read_only=True).execute("SELECT count(*) FROM gpu_samples").fetchall()
    )
    print(
        f"warehouse: {args.gpus} GPUs x {args.days} days, {rows[0][0]:,} GPU rows, built in {time.monotonic() - began:.0f}s"
    )
    config = work / "gpuledger.yaml"
    dash_port, metrics_port = _free_port(), _free_port()
    config.write_text(json.dumps({
        "warehouse": {"path": str(work / "wh.duckdb")},
        "collect": {"step": f"{STEP_S}s", "cluster": "bench"},
        "export": {"directory": str(work / "exports")},
        "service": {"weekly_export": False, "health_interval": "0s", "metrics_port": metrics_port,
                    "sources": [{"name": "recent", "type": "openmetrics", "paths": [str(work / "recent.om")],
                                 "interval": args.collect_every}]},
    }))  # fmt: skip
    dash = _start(["--config", str(config), "dashboard", "--port", str(dash_port)], work / "dashboard.log")
    serve = _start(["--config", str(config), "serve"], work / "serve.log")
    try:
        url = f"http://127.0.0.1:{dash_port}"
        _wait(f"{url}/_stcore/health", dash)
        _wait(f"http://127.0.0.1:{metrics_port}/healthz", serve)
        # a dashboard that has been up: every page computed once (the cold start is reported, not judged)
        warm, began = Results(), time.monotonic()
        asyncio.run(session(url, float("inf"), 0, warm, -1, pages=len(PAGES)))
        print(f"cold start: every page once in {time.monotonic() - began:.0f}s ({len(warm.errors)} errors)")
        for error in warm.errors:
            print(f"  cold start: {error}")
        out = Results()
        deadline = time.monotonic() + args.seconds

        async def everyone() -> None:
            await asyncio.gather(*(session(url, deadline, args.think, out, i) for i in range(args.sessions)))

        asyncio.run(everyone())
        metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        print(
            f"{args.sessions} sessions for {args.seconds:g}s, think time ~{args.think:g}s, serve collecting every {args.collect_every}"
        )
        return report(out, metrics, args.p95_limit, args.json)
    finally:
        for proc in (dash, serve):  # our own processes, by pid
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=90)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
