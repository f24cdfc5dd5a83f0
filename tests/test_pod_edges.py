"""Where a pod's time starts and ends (issue 22, case 3), at every scrape interval and step.

Hand-built kube-state-metrics 2.x scrapes of one 8-GPU node ($16 an hour: $2 a GPU-hour) over a day.
A state gauge holds from its sample on, and a series ends one scrape interval after its last sample
(Prometheus' staleness rule), so a pod Running over [start, end) is billed exactly end - start when
both fall on the step grid: the truth below is that arithmetic, done by hand.

- Three pods hold 4, 2 and 1 GPUs from 00:00 to 24:00, 12:00 and 06:00: 96, 24 and 6 GPU-hours.
  OpenCost's weighted idle sharing of the node's other 66 GPU-hours ($132) by allocated cost gives
  192 + 132 x 192/252 = 292.5714, 48 + 132 x 48/252 = 73.1429 and 12 + 132 x 12/252 = 18.2857.
- Ten-minute jobs of 2 GPUs each, on a second node, start every hour from 01:00 to 06:00: 20
  GPU-minutes each, where a lookback carried past the end would add 40 %.

Scrapes at 15 s, 30 s, 60 s and 5 min on the interval boundaries, and at 60 s and 5 min 20 s after
them (a pod is then first seen 20 s late and billed from the next grid point, for its full length);
steps of 60 s and 5 min; through files and a real Prometheus in all three pushdown modes. (The DCGM
label style does not touch kube-state-metrics' series, so it has no case here.)
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from analytics.cost.chargeback import ChargebackOptions, chargeback
from collectors.metrics.prometheus import reader
from core import conventions as c
from core import promql
from core.store.warehouse import open_warehouse
from core.timeutil import Window, to_epoch
from tests import servers
from tests.conftest import RULES_FILE, run_cli, serve_prometheus

T0 = datetime(2026, 11, 2)
DAY = Window(T0, T0 + timedelta(days=1))
H, MIN = 3600, 60
# (node, pod, GPUs, start s, end s from T0)
LONG = [("n-long", "train-4", 4, 0, 24 * H), ("n-long", "train-2", 2, 0, 12 * H), ("n-long", "train-1", 1, 0, 6 * H)]
SHORT = [("n-short", f"job-{h}", 2, h * H, h * H + 10 * MIN) for h in range(1, 7)]
PODS = LONG + SHORT
# (scrape interval, seconds after the interval boundaries it scrapes at)
SCRAPES = [(15, 0), (30, 0), (60, 0), (300, 0), (60, 20), (300, 20)]
STEPS = [60, 300]


def _scrape(t: int) -> Iterator[str]:
    """Every series kube-state-metrics exposes at second t (from T0)."""
    for node in ("n-long", "n-short"):
        yield (
            f'kube_node_labels{{node="{node}",label_node_kubernetes_io_instance_type="hand.8gpu",'
            f'label_topology_kubernetes_io_region="us-east-1",label_nvidia_com_gpu_count="8"}} 1'
        )
    for node, pod, gpus, start, end in PODS:
        if not start <= t < end:
            continue  # not yet scheduled, or deleted at its end: its series are gone
        ids = f'namespace="ml",pod="{pod}",uid="uid-{pod}"'
        yield f'kube_pod_info{{{ids},node="{node}"}} 1'
        yield f'kube_pod_labels{{{ids},label_team="{pod.split("-")[0]}"}} 1'
        yield f'kube_pod_status_phase{{{ids},phase="Running"}} 1'
        yield (
            f'kube_pod_container_resource_requests{{{ids},container="main",node="{node}",'
            f'resource="nvidia_com_gpu",unit="integer"}} {gpus}'
        )


def write_ksm(out: Path, interval_s: int, offset_s: int) -> Path:
    """A day of scrapes every interval_s (and 10 minutes either side), as one timestamped OpenMetrics file."""
    epoch = int((T0 - datetime(1970, 1, 1)).total_seconds())
    times = range(-10 * MIN + offset_s, 24 * H + 10 * MIN, interval_s)
    lines = [f"{line} {epoch + t}" for t in times for line in _scrape(t)]
    path = out / f"ksm-{interval_s}s-{offset_s}s.om"
    path.write_text("\n".join(sorted(lines, key=lambda line: line.split("{", 1)[0])) + "\n# EOF\n")
    return path


def _prices(wh: Path) -> None:
    csv = wh.parent / "prices.csv"
    csv.write_text(
        "provider,region,instance_type,capacity_type,gpu_model,gpus,price_per_hour_usd,effective_from\n"
        "aws,us-east-1,hand.8gpu,on_demand,A100,8,16,2026-01-01T00:00:00Z\n"
    )
    result = run_cli("--warehouse", str(wh), "pricing", "import", str(csv))
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module", params=SCRAPES, ids=[f"scrape-{i}s-at-{o}s" for i, o in SCRAPES])
def ksm_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ksm(tmp_path_factory.mktemp("edges"), *request.param)


def collect_file(ksm: Path, step_s: int, base: Path) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    wh = base / f"files-{step_s}.duckdb"
    result = run_cli("--warehouse", str(wh), "collect", "openmetrics", str(ksm), "--step", f"{step_s}s")
    assert result.exit_code == 0, result.output
    assert "scrape interval could not be read" not in result.output
    _prices(wh)
    return wh


@functools.cache
def direct(ksm: Path, step_s: int) -> Path:
    """collect_file once per file and step for the whole module (read only by the tests that share it): each
    collection took 1.7 s, and the Prometheus test compared against a fresh one twice per case."""
    return collect_file(ksm, step_s, ksm.parent / f"direct-{ksm.stem}-{step_s}")


def pod_hours(wh: Path) -> dict[str, Decimal]:
    with open_warehouse(wh, read_only=True) as con:
        rows = con.execute(f"SELECT pod, sum(amount * step_s) FROM {c.T_POD_ALLOCATIONS} GROUP BY pod").fetchall()
    return {pod: Decimal(int(seconds)) / H for pod, seconds in rows}


@pytest.mark.parametrize("step_s", STEPS, ids=[f"step-{s}s" for s in STEPS])
def test_a_pod_is_billed_from_its_first_running_sample_until_one_scrape_interval_after_its_last(
    ksm_file: Path, step_s: int
) -> None:
    wh = direct(ksm_file, step_s)
    expected = {pod: Decimal(gpus * (end - start)) / H for _, pod, gpus, start, end in PODS}
    assert pod_hours(wh) == expected  # 96, 24, 6 and 1/3 for each ten-minute job
    with open_warehouse(wh, read_only=True) as con:
        first = dict(con.execute(f"SELECT pod, min(ts) FROM {c.T_POD_ALLOCATIONS} GROUP BY pod").fetchall())
    offset_s = int(ksm_file.stem.split("-")[2].removesuffix("s"))
    seen = 4 * H + offset_s  # job-4's first Running sample; its row starts at the first grid point from there
    assert first["job-4"] == T0 + timedelta(seconds=-(-seen // step_s) * step_s)  # 04:00 when aligned, not 03:59


@pytest.mark.parametrize("step_s", STEPS, ids=[f"step-{s}s" for s in STEPS])
@pytest.mark.parametrize("interval_s", [15, 60, 300], ids=lambda i: f"scrape-{i}s")
def test_weighted_idle_sharing_gives_opencosts_figures_once_pods_end_where_they_end(
    interval_s: int, step_s: int, tmp_path: Path
) -> None:
    wh = collect_file(write_ksm(tmp_path, interval_s, 0), step_s, tmp_path)
    with open_warehouse(wh, read_only=True) as con:
        report = chargeback(con, DAY, ChargebackOptions(by=("pod",), idle="weighted", idle_scope="node"))
    cost = {r.keys["pod"]: r.exact_total for r in report.rows}
    idle = Decimal(132)
    for _, pod, gpus, start, end in LONG:
        own = Decimal(2 * gpus * (end - start)) / H
        exact = own + idle * own / 252  # 292.5714, 73.1429, 18.2857
        assert abs(cost[pod] - exact) < Decimal("1e-20"), pod
    assert round(cost["train-4"], 4) == Decimal("292.5714")
    assert report.node_cost_usd == Decimal(2 * 16 * 24)  # both nodes all day


def _rows(wh: Path) -> list[tuple]:
    with duckdb.connect(str(wh), read_only=True) as con:
        return con.execute(
            f"SELECT ts, step_s, namespace, pod, uid, node, resource, amount FROM {c.T_POD_ALLOCATIONS} ORDER BY ALL"
        ).fetchall()


def _with_rules(ksm: Path, base: Path) -> list[Path]:
    """The recording rules as a live Prometheus would have evaluated them every minute over the day."""
    interval_s = int(ksm.stem.split("-")[1].removesuffix("s"))  # ksm-<interval>s-<offset>s
    live = {
        c.REC_POD_ALLOCATION_RUNNING: promql.pod_allocation(reader.selector_for("prometheus", 300, interval_s * 1000))
    }
    (base / "first").mkdir()
    with serve_prometheus([ksm], base / "first") as url:
        text = servers.recording_rules_as_openmetrics(url, RULES_FILE, to_epoch(DAY.start), to_epoch(DAY.end), 60, live)
    rules = base / "rules.om"
    rules.write_text(text)
    return [ksm, rules]


@pytest.mark.parametrize(
    "pushdown", ["raw", "query", "auto"], ids=["raw series", "aggregating queries", "recording rules"]
)
def test_a_real_prometheus_ends_pods_where_the_files_do(
    ksm_file: Path, pushdown: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The backfilled TSDB has no staleness markers: the collector emulates them in its queries."""
    base = tmp_path_factory.mktemp("edges-prom")
    config = base / "gpuledger.yaml"
    config.write_text(f"collect:\n  pushdown: {pushdown}\n  commit_window: 1d\n")
    files = _with_rules(ksm_file, base) if pushdown == "auto" else [ksm_file]
    with serve_prometheus(files, base) as url:
        for step_s in STEPS:
            wh = base / f"prom-{step_s}.duckdb"
            result = run_cli(
                "--config", str(config), "--warehouse", str(wh), "collect", "prometheus", "--url", url,
                "--start", "2026-11-02T00:00:00Z", "--end", "2026-11-03T00:00:00Z", "--step", f"{step_s}s",
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            assert ("recording rules" in result.output) == (pushdown == "auto"), result.output
            assert _rows(wh) == [r for r in _rows(direct(ksm_file, step_s)) if DAY.start <= r[0] < DAY.end]
