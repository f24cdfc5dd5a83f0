"""Who waits for GPUs (issue 28): pending demand, the wait to schedule, pods never started, fragmentation, MIG profile
mismatch and Kueue quota use, each against truth computed by hand in the test."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pytest

from analytics.capacity.queues import QueueOptions
from analytics.capacity.report import queue_report
from core import conventions as c
from core.store.rollups import hourly, waiting
from core.store.warehouse import open_warehouse
from core.timeutil import Window
from tests.builders import T0, add_node, add_pod, add_price, fresh_db
from tests.conftest import FIXTURES, run_cli

HALF_HOUR = Window(T0, T0 + timedelta(minutes=30))
HOUR = Window(T0, T0 + timedelta(hours=1))


def _pending(
    con: duckdb.DuckDBPyConnection,
    pod: str,
    *,
    team: str = "vision",
    resource: str = c.RESOURCE_GPU,
    amount: float = 1,
    offset: int = 0,
    steps: int = 10,
    created: int | None = 0,
    scheduled: int | None = None,
    unschedulable: bool = False,
) -> None:
    """A pod Pending from minute `offset` for `steps` minutes, created and scheduled at those minutes (None: unknown)."""
    at = {k: T0 + timedelta(minutes=v) if v is not None else None for k, v in (("c", created), ("s", scheduled))}
    con.execute(
        f"""INSERT INTO {c.T_PODS} (cluster, namespace, pod, uid, node, labels, first_seen, last_seen, created_at,
            scheduled_at) VALUES ('c1', 'ns', ?, ?, NULL, ?, ?, ?, ?, ?)
        ON CONFLICT DO UPDATE SET created_at = excluded.created_at, scheduled_at = excluded.scheduled_at""",
        [pod, f"uid-{pod}", json.dumps({"team": team}), T0, T0, at["c"], at["s"]],
    )
    con.execute(
        f"""INSERT INTO {c.T_POD_PENDING} SELECT ? + to_seconds((? + i) * 60), 60, 'c1', 'ns', ?, ?, ?, ?, ?
        FROM range(?) t(i)""",
        [T0, offset, pod, f"uid-{pod}", resource, float(amount), unschedulable, steps],
    )


def _allocatable(con: duckdb.DuckDBPyConnection, node: str, resource: str, amount: float, steps: int = 60) -> None:
    con.execute(
        f"INSERT INTO {c.T_NODE_RESOURCES} SELECT ? + to_seconds(i * 60), 60, 'c1', ?, ?, ? FROM range(?) t(i)",
        [T0, node, resource, float(amount), steps],
    )


def _report(con: duckdb.DuckDBPyConnection, window: Window, by: tuple[str, ...] = ("team",)) -> dict:
    """The report from the steps (the builders write no rollups), then again from the rollups a commit would have
    built (core/store/rollups): both must say the same."""
    stepped = queue_report(con, window, QueueOptions(by=by, pods=True)).as_dict()
    con.execute("BEGIN TRANSACTION")
    hourly.refresh(con, None, full=True)
    assert hourly.in_sync(con) and waiting.in_sync(con)
    stored = queue_report(con, window, QueueOptions(by=by, pods=True)).as_dict()
    con.execute("ROLLBACK")
    assert stored == stepped
    return stepped


def test_a_pod_pending_then_scheduled_waited_from_creation_to_binding_and_its_pending_gpu_hours_count() -> None:
    con = fresh_db()
    add_node(con, "n0", 8, steps=30)
    _pending(con, "train", amount=2, steps=10, created=0, scheduled=10)  # 2 GPUs, Pending for 10 minutes
    add_pod(con, "train", "n0", amount=2, offset=10, steps=20)  # then Running
    (row,) = _report(con, HALF_HOUR)["rows"]
    assert row["team"] == "vision" and row["pending_gpu_hours"] == round(2 * 600 / 3600, 6)
    assert (row["pods"], row["wait_max_seconds"], row["never_started"], row["still_pending"]) == (1, 600, 0, 0)


def test_pods_that_never_started_wait_to_the_windows_end_or_to_their_last_pending_step() -> None:
    con = fresh_db()
    add_node(con, "n0", 8, steps=30)
    _pending(con, "train", steps=10, created=0, scheduled=10)  # waited 600 s, then ran
    add_pod(con, "train", "n0", offset=10, steps=20)
    _pending(con, "stuck", steps=30, created=0, unschedulable=True)  # still Pending at the end: 1,800 s
    _pending(con, "gone", steps=5, created=0)  # deleted while Pending: waited its 300 s
    report = _report(con, HALF_HOUR)
    (row,) = report["rows"]
    waits = [600, 1800, 300]
    assert row["wait_p50_seconds"] == pytest.approx(np.percentile(waits, 50))
    assert row["wait_p95_seconds"] == pytest.approx(np.percentile(waits, 95))
    assert (row["wait_max_seconds"], row["never_started"], row["still_pending"], row["unschedulable"]) == (
        1800,
        2,
        1,
        1,
    )
    assert row["pending_gpu_hours"] == round((10 + 30 + 5) / 60, 6)
    assert report["totals"]["pending_gpu_hours"] == row["pending_gpu_hours"] and report["totals"]["pods"] == 3


def test_a_pod_whose_creation_time_is_unknown_waits_from_its_first_pending_step() -> None:
    con = fresh_db()
    _pending(con, "late", offset=12, steps=18, created=None)
    (row,) = _report(con, HALF_HOUR)["rows"]
    assert row["wait_max_seconds"] == 18 * 60 and row["still_pending"] == 1


def _pool(con: duckdb.DuckDBPyConnection, used: dict[str, int]) -> None:
    """A pool of 8-GPU nodes at $4 a GPU-hour, each with `used` GPUs held by a Running pod for the hour."""
    add_price(con, "32", gpus=8)
    for node, n in used.items():
        add_node(con, node, 8)
        _allocatable(con, node, c.RESOURCE_GPU, 8)
        add_pod(con, f"run-{node}", node, amount=n, steps=60)


@pytest.mark.parametrize(
    ("asked", "fragmented", "cost"),
    [
        (8, 2 + 3 + 4, "36.00"),  # 9 GPUs free, none of the nodes has 8: all of them unusable, 9 GPU-hours at $4
        (3, 2, "8.00"),  # a 3-GPU pod fits n2 and n3: only n1's 2 free GPUs are unusable
        (2, 0, "0.00"),  # fits everywhere
    ],
    ids=["an 8-GPU job", "a 3-GPU job", "a 2-GPU job"],
)
def test_free_gpus_count_as_fragmented_on_the_nodes_no_pending_pod_fits(asked: int, fragmented: int, cost: str) -> None:
    con = fresh_db()
    _pool(con, {"n1": 6, "n2": 5, "n3": 4})  # 2, 3 and 4 GPUs free
    _pending(con, "big", amount=asked, steps=60)
    totals = _report(con, HOUR)["totals"]
    assert totals["fragmented_gpu_hours"] == fragmented
    assert Decimal(totals["fragmented_cost_usd"]) == Decimal(cost)
    assert (totals["largest_placeable_gpus_min"], totals["largest_placeable_gpus_max"]) == (4, 4)


def test_no_pending_pod_means_no_fragmentation_however_many_gpus_are_free() -> None:
    con = fresh_db()
    _pool(con, {"n1": 6, "n2": 5, "n3": 4})
    totals = _report(con, HOUR)["totals"]
    assert totals["fragmented_gpu_hours"] == 0 and totals["largest_placeable_gpus_min"] is None


def test_free_mig_slices_of_the_wrong_profile_are_fragmented_and_the_profiles_are_compared() -> None:
    con = fresh_db()
    add_node(con, "m1", 1, model="NVIDIA A100-SXM4-40GB")
    add_price(con, "8", gpus=1)
    _allocatable(con, "m1", "nvidia_com_mig_1g_5gb", 7)  # the GPU cut into seven 1g.5gb instances, all free
    _pending(con, "llm", resource="nvidia_com_mig_3g_20gb", amount=1, steps=60)  # wants a 3g.20gb
    report = _report(con, HOUR)
    # seven free 1/7 slices: one GPU free for the hour, none usable by a 3g request ($8 a GPU-hour)
    assert report["totals"]["fragmented_gpu_hours"] == pytest.approx(1.0)
    assert Decimal(report["totals"]["fragmented_cost_usd"]) == Decimal("8.00")
    assert report["mig"] == [
        {"profile": "nvidia_com_mig_1g_5gb", "free_instance_hours": 7.0, "pending_instance_hours": 0.0},
        {"profile": "nvidia_com_mig_3g_20gb", "free_instance_hours": 0.0, "pending_instance_hours": 1.0},
    ]
    assert report["rows"][0]["pending_gpu_hours"] == round(3 / 7, 6), "a 3g instance is 3/7 of a GPU"


def _queue(con: duckdb.DuckDBPyConnection, queue: str, metric: str, value: float, **labels: str) -> None:
    con.execute(
        f"""INSERT INTO {c.T_QUEUE_SAMPLES} SELECT ? + to_seconds(i * 60), 60, 'c1', 'kueue', ?, ?, ?, ?, ?, ?, NULL, ?
        FROM range(60) t(i)""",
        [T0, queue, labels.get("cohort"), labels.get("flavor"), labels.get("resource"), labels.get("status"), metric,
         value],
    )  # fmt: skip


def test_kueue_borrowing_and_the_quota_that_idled_while_another_queue_waited() -> None:
    con = fresh_db()
    gpu = {"cohort": "gpu-cohort", "flavor": "h100", "resource": c.RESOURCE_GPU}
    for queue, nominal, used, pending in (("team-a-cq", 16, 24, 5), ("team-b-cq", 16, 4, 0)):
        _queue(con, queue, c.KUEUE_NOMINAL, nominal, **gpu)
        _queue(con, queue, c.KUEUE_USAGE, used, **gpu)
        _queue(con, queue, c.KUEUE_PENDING, pending, status="active")
    rows = {r["queue"]: r for r in _report(con, HOUR)["queues"]}
    a, b = rows["team-a-cq"], rows["team-b-cq"]
    assert (a["borrowed_gpu_hours"], a["idle_quota_gpu_hours"], a["pending_mean"]) == (8, 0, 5)
    assert (b["borrowed_gpu_hours"], b["idle_quota_gpu_hours"], b["idle_while_others_waited_gpu_hours"]) == (0, 12, 12)
    assert a["idle_while_others_waited_gpu_hours"] == 0


def test_the_kueue_fixture_collects_into_quota_rows_with_its_borrowing(tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    fixture = FIXTURES / "kueue_v0.13.x_metrics_sample.prom"
    args = ("--step", "60s", "--at")
    for at in ("2026-11-02T00:01:00Z", "2026-11-02T00:02:00Z"):  # two scrapes, a minute apart: two steps
        assert run_cli("--warehouse", str(wh), "collect", "openmetrics", str(fixture), *args, at).exit_code == 0
    with open_warehouse(wh, read_only=True) as con:
        report = queue_report(con, Window(datetime(2026, 11, 2), datetime(2026, 11, 2, 1)))
    rows = {r["queue"]: r for r in report.queues}
    # team-a: 24 used of 16 nominal for two minutes; team-b: 4 of 16 while team-a had 5 workloads waiting
    assert rows["team-a-cq"]["borrowed_gpu_hours"] == round(8 * 120 / 3600, 6)
    assert rows["team-b-cq"]["idle_while_others_waited_gpu_hours"] == round(12 * 120 / 3600, 6)
    assert rows["team-c-cq"]["pending_mean"] == 2 and rows["team-c-cq"]["cohort"] == "gpu-cohort"


def _ksm_timeline(path: Path) -> Path:
    """kube-state-metrics every minute for 10 minutes: pod wait-1 (2 GPUs) Pending and unschedulable for 5 minutes,
    then bound to n0 and Running; created at minute 0, scheduled at minute 5."""
    t0 = int((T0 - datetime(1970, 1, 1)).total_seconds())
    pod = 'namespace="ns",pod="wait-1",uid="u-1"'
    lines = [f"# TYPE {c.KSM_POD_PHASE} gauge"]
    for m in range(10):
        running = m >= 5
        lines += [f'{c.KSM_POD_PHASE}{{{pod},phase="Pending"}} {0 if running else 1} {t0 + 60 * m}',
                  f'{c.KSM_POD_PHASE}{{{pod},phase="Running"}} {1 if running else 0} {t0 + 60 * m}']  # fmt: skip
    requests = (
        f'{c.KSM_POD_REQUESTS}{{{pod},container="main",node="{{node}}",resource="nvidia_com_gpu",unit="integer"}}'
    )
    lines += [f"# TYPE {c.KSM_POD_REQUESTS} gauge"]
    lines += [f"{requests.replace('{node}', 'n0' if m >= 5 else '')} 2 {t0 + 60 * m}" for m in range(10)]
    for family, value, minutes in ((c.KSM_POD_CREATED, t0, range(10)), (c.KSM_POD_SCHEDULED, t0 + 300, range(5, 10)),
                                   (c.KSM_POD_UNSCHEDULABLE, 1, range(5))):  # fmt: skip
        lines += [f"# TYPE {family} gauge"] + [f"{family}{{{pod}}} {value} {t0 + 60 * m}" for m in minutes]
    path.write_text("\n".join(lines) + "\n# EOF\n")
    return path


def test_pending_pods_and_their_times_are_collected_from_kube_state_metrics(tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    om = _ksm_timeline(tmp_path / "ksm.om")
    result = run_cli("--warehouse", str(wh), "collect", "openmetrics", str(om), "--step", "60s")
    assert result.exit_code == 0, result.output
    with open_warehouse(wh, read_only=True) as con:
        pending = con.execute(
            f"SELECT count(*), min(ts), max(ts), sum(amount), bool_and(unschedulable) FROM {c.T_POD_PENDING}"
        ).fetchone()
        times = con.execute(f"SELECT created_at, scheduled_at FROM {c.T_PODS} WHERE pod = 'wait-1'").fetchone()
        report = queue_report(con, Window(T0, T0 + timedelta(minutes=10)))
    assert pending == (5, T0, T0 + timedelta(minutes=4), 10.0, True)
    assert times == (T0, T0 + timedelta(minutes=5))
    (row,) = report.rows
    assert (row["wait_max_seconds"], row["pending_gpu_hours"], row["never_started"]) == (300, round(600 / 3600, 6), 0)


def test_report_queues_on_the_command_line_gives_the_rows_and_totals_as_json(tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    assert (
        run_cli("--warehouse", str(wh), "collect", "openmetrics", str(_ksm_timeline(tmp_path / "k.om"))).exit_code == 0
    )
    window = ("--start", f"{T0:%Y-%m-%dT%H:%M:%SZ}", "--end", f"{T0 + timedelta(minutes=10):%Y-%m-%dT%H:%M:%SZ}")
    result = run_cli("--warehouse", str(wh), "report", "queues", *window, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"team", "pending_gpu_hours", "wait_p50_seconds", "wait_p95_seconds", "wait_max_seconds",
            "never_started"} <= set(data["rows"][0])  # fmt: skip
    assert {"pending_gpu_hours", "fragmented_gpu_hours", "fragmented_cost_usd"} <= set(data["totals"])
    assert data["rows"][0]["team"] == c.UNALLOCATED, "no team label allowlisted: the pod is nobody's"
    bad = run_cli("--warehouse", str(wh), "report", "queues", *window, "--by", "colour")
    assert bad.exit_code == 2 and "--by colour" in bad.output


def test_the_queues_page_shows_the_reports_numbers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.test_dashboard import _app

    con = fresh_db()  # the fragmentation pool and two waiting pods, written to a file the dashboard reads
    _pool(con, {"n1": 6, "n2": 5, "n3": 4})
    _pending(con, "big", amount=8, steps=60, created=0)
    _pending(con, "gone", team="nlp", steps=5, created=0)
    wh = tmp_path / "wh.duckdb"
    con.execute(f"ATTACH '{wh}' AS out")
    con.execute("COPY FROM DATABASE memory TO out")
    con.close()
    day = {"start": f"{T0:%Y-%m-%d}", "end": f"{T0:%Y-%m-%d}"}
    at = _app(monkeypatch, wh, "queues", **day)
    with open_warehouse(wh, read_only=True) as ro:
        report = queue_report(ro, Window(T0, T0 + timedelta(days=1)))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Pending GPU-hours"] == f"{report.totals['pending_gpu_hours']:,.2f}" == "8.08"
    # 9 GPUs free fit no 8-GPU pod, but for the 5 minutes the 1-GPU pod waited too they fitted it: 9 x 55/60
    assert metrics["Fragmented GPU-hours"] == f"{report.totals['fragmented_gpu_hours']:,.2f}" == "8.25"
    assert metrics["Never started"] == str(report.totals["never_started"]) == "2"
    table = at.dataframe[0].value
    assert dict(zip(table["team"], table["pending_gpu_hours"], strict=True)) == {
        r["team"]: r["pending_gpu_hours"] for r in report.rows
    }


def test_the_simulated_days_queues_are_the_simulators_truth(sim_warehouse: Path, truth: dict) -> None:
    """collectors/simulator/queues.py: gang jobs that waited for their GPUs, an 8-GPU job that never started, and
    the teams' Kueue queues; its truth is computed from the schedule, not from the files."""
    expected = truth["queues"]
    with open_warehouse(sim_warehouse, read_only=True) as con:
        report = queue_report(con, Window(datetime(2026, 11, 2), datetime(2026, 11, 3)))
    rows = {r["team"]: r for r in report.rows}
    assert rows.keys() == expected["teams"].keys()
    for team, want in expected["teams"].items():
        row = rows[team]
        assert row["pending_gpu_hours"] == pytest.approx(want["pending_gpu_hours"], abs=1e-6), team
        assert row["pods"] == len(want["waits"]) and row["never_started"] == want["never_started"], team
        for p, col in ((50, "wait_p50_seconds"), (95, "wait_p95_seconds"), (100, "wait_max_seconds")):
            assert row[col] == pytest.approx(np.percentile(want["waits"], p), abs=1e-3), (team, col)
    assert report.totals["fragmented_gpu_hours"] == pytest.approx(expected["fragmented_gpu_hours"], abs=1e-6)
    assert expected["fragmented_gpu_hours"] > 0 and rows["nlp"]["never_started"] == 1
    quotas = {q["queue"]: q for q in report.queues}
    for queue, want in expected["quotas"].items():
        for col, value in want.items():
            assert quotas[queue][col] == pytest.approx(value, abs=1e-6), (queue, col)
    assert expected["quotas"]["vision-cq"]["borrowed_gpu_hours"] > 0


def test_fragmentation_and_idle_quota_become_ranked_recommendations_with_their_evidence() -> None:
    con = fresh_db()
    _pool(con, {"n1": 6, "n2": 5, "n3": 4})
    _pending(con, "big", amount=8, steps=60)
    gpu = {"cohort": "gpu-cohort", "flavor": "h100", "resource": c.RESOURCE_GPU}
    for queue, nominal, used, pending in (("team-a-cq", 16, 24, 5), ("team-b-cq", 16, 4, 0)):
        _queue(con, queue, c.KUEUE_NOMINAL, nominal, **gpu)
        _queue(con, queue, c.KUEUE_USAGE, used, **gpu)
        _queue(con, queue, c.KUEUE_PENDING, pending, status="active")
    recs = _report(con, HOUR)["recommendations"]
    assert [r["kind"] for r in recs] == ["consolidate", "quota_move"]
    # $36 stranded in the hour: $36 x 730 hours a month
    assert recs[0]["monthly_savings_usd"] == "26280.00" and recs[0]["target"] == "c1/n3, c1/n2, c1/n1"
    assert recs[1]["target"] == "team-b-cq" and "team-a-cq" in recs[1]["action"]


def test_a_mig_profile_asked_for_while_another_idles_is_a_relayout_recommendation() -> None:
    con = fresh_db()
    add_node(con, "m1", 1, model="NVIDIA A100-SXM4-40GB")
    add_price(con, "8", gpus=1)
    _allocatable(con, "m1", "nvidia_com_mig_1g_5gb", 7)
    _pending(con, "llm", resource="nvidia_com_mig_3g_20gb", amount=1, steps=60)
    recs = {r["kind"]: r for r in _report(con, HOUR)["recommendations"]}
    rec = recs["mig_relayout"]
    assert rec["kind"] == "mig_relayout" and rec["target"] == "nvidia_com_mig_3g_20gb"
    assert rec["monthly_savings_usd"] == "5840.00", "7 free 1/7 slices for the hour at $8 a GPU-hour, x 730"


def test_report_savings_ranks_the_waiting_recommendations_with_the_others(tmp_path: Path) -> None:
    con = fresh_db()
    _pool(con, {"n1": 6, "n2": 5, "n3": 4})
    _pending(con, "big", amount=8, steps=60)
    wh = tmp_path / "wh.duckdb"
    con.execute(f"ATTACH '{wh}' AS out")
    con.execute("COPY FROM DATABASE memory TO out")
    con.close()
    window = ("--start", f"{T0:%Y-%m-%dT%H:%M:%SZ}", "--end", f"{T0 + timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}")
    result = run_cli("--warehouse", str(wh), "report", "savings", *window, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    rows = rows["rows"] if isinstance(rows, dict) else rows
    dollars = [Decimal(r["monthly_savings_usd"]) for r in rows]
    assert "consolidate" in {r["kind"] for r in rows} and dollars == sorted(dollars, reverse=True)


def test_the_savings_join_gives_the_reports_own_recommendations() -> None:
    from analytics.capacity.report import waiting_recommendations

    con = fresh_db()
    _pool(con, {"n1": 6, "n2": 5, "n3": 4})
    _pending(con, "big", amount=8, steps=60)
    assert waiting_recommendations(con, HOUR) == _report(con, HOUR)["recommendations"] != []
