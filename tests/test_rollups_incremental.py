"""A commit recomputes only the rollup rows it changed, and they always equal a full rebuild.

Hours (alloc, capacity, usage and coverage): a collection appending after everything collected adds
its steps to their hours; one that overlaps collected steps recomputes its hours from their steps.
Either way the rollups equal a rebuild from every step.

Class rows (by attribution class, per day):

Each step collects a kube-state-metrics scrape through the real file path; the class rows after it
must equal what `classes.rebuild` computes from scratch on the same warehouse, and only the
days it collected are recomputed, plus the days of a pod whose attribution it changed (its labels,
its name's newest uid); a node's attributes reach every day.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from collectors.metrics.ingest import collect_files
from core import conventions as c
from core.settings import CollectSettings
from core.store.rollups import classes, hourly
from core.store.warehouse import open_warehouse
from core.timeutil import Window, to_epoch
from tests.conftest import run_cli

DAY1, DAY2 = datetime(2026, 11, 2), datetime(2026, 11, 3)
CLASS_TABLES = (c.T_CLASS_ALLOC, c.T_CLASS_USAGE, c.T_CLASS_NODES)


@dataclass(frozen=True)
class Pod:
    name: str
    uid: str
    node: str
    team: str | None  # None: kube_pod_labels without any label


@dataclass(frozen=True)
class Node:
    name: str
    capacity: str = "on-demand"
    product: str = "NVIDIA-A100-SXM4-80GB"


def _scrape(pods: list[Pod], nodes: list[Node], start: datetime, minutes: int, out: Path) -> Path:
    lines = []
    for k in range(minutes):
        t = f"{to_epoch(start + timedelta(minutes=k)):.0f}"
        for n in nodes:
            lines.append(
                f'kube_node_labels{{node="{n.name}",label_node_kubernetes_io_instance_type="p4d.24xlarge",'
                f'label_karpenter_sh_capacity_type="{n.capacity}",{c.NODE_GPU_PRODUCT_LABEL}="{n.product}"}} 1 {t}'
            )
        for p in pods:
            ids = f'namespace="ml",pod="{p.name}",uid="{p.uid}"'
            team = f',label_team="{p.team}"' if p.team else ""
            lines += [
                f'kube_pod_info{{{ids},node="{p.node}"}} 1 {t}',
                f'kube_pod_status_phase{{{ids},phase="Running"}} 1 {t}',
                f'kube_pod_container_resource_requests{{{ids},container="c",node="{p.node}",'
                f'resource="nvidia_com_gpu",unit="integer"}} 1 {t}',
                f"kube_pod_labels{{{ids}{team}}} 1 {t}",
            ]
    out.write_text("\n".join(lines) + "\n# EOF\n")
    return out


P1, P2, P3 = Pod("p1", "u1", "n1", "a"), Pod("p2", "u2", "n1", None), Pod("p3", "u3", "n2", "c")
N1, N2 = Node("n1"), Node("n2")

# (what the step collects, its window start, minutes, the days it recomputes class rows for: None, all)
STEPS = [
    ("the first two hours", [P1, P2, P3], [N1, N2], DAY1, 120, None),
    ("the next day, nothing changed", [P1, P2, P3], [N1, N2], DAY2, 30, {DAY2}),
    ("p1 relabelled", [replace(P1, team="b"), P2, P3], [N1, N2], DAY2 + timedelta(minutes=30), 30, {DAY1, DAY2}),
    (
        "p2 recreated with labels: its older uid borrows them",
        [replace(P1, team="b"), Pod("p2", "u2b", "n1", "d"), P3],
        [N1, N2],
        DAY2 + timedelta(hours=1),
        30,
        {DAY1, DAY2},
    ),
    (
        "n2 turned spot",
        [replace(P1, team="b"), Pod("p2", "u2b", "n1", "d"), P3],
        [N1, Node("n2", "spot")],
        DAY2 + timedelta(hours=1, minutes=30),
        30,
        None,
    ),
    (
        "day one's second hour collected again",
        [replace(P1, team="b"), P3],
        [N1, Node("n2", "spot")],
        DAY1 + timedelta(hours=1),
        60,
        {DAY1},
    ),
]


def _class_rows(con) -> dict[str, list[tuple]]:  # type: ignore[no-untyped-def]
    return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in CLASS_TABLES}


def _hours_recomputed(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """Record the first hour of each range of hours a commit recomputes from all their steps."""
    seen: list[datetime] = []
    refresh_hours = hourly._refresh_hours
    monkeypatch.setattr(hourly, "_refresh_hours", lambda con, lo, hi: (seen.append(lo), refresh_hours(con, lo, hi)))
    return seen


def _recomputing(monkeypatch: pytest.MonkeyPatch) -> list[set[datetime] | None]:
    """Record the days each commit recomputes class rows for (None: every day)."""
    seen: list[set[datetime] | None] = []
    insert = classes._insert_days

    def spy(con, where: str = "") -> None:  # type: ignore[no-untyped-def]
        seen.append({r[0] for r in con.execute("SELECT day FROM class_days").fetchall()} if where else None)
        insert(con, where)

    monkeypatch.setattr(classes, "_insert_days", spy)
    return seen


def test_each_commit_recomputes_only_the_class_rows_it_changed_and_they_equal_a_full_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh, settings = tmp_path / "wh.duckdb", CollectSettings(cluster="k1")
    recomputed = _recomputing(monkeypatch)
    for i, (what, pods, nodes, start, minutes, days) in enumerate(STEPS):
        recomputed.clear()
        scrape = _scrape(pods, nodes, start, minutes, tmp_path / f"step{i}.om")
        collect_files(wh, [scrape], settings, Window(start, start + timedelta(minutes=minutes)))
        assert recomputed == [days], what
        with open_warehouse(wh) as con:
            assert classes.valid(con), what
            incremental = _class_rows(con)
            con.execute("BEGIN")
            classes.rebuild(con)
            assert _class_rows(con) == incremental, what
            con.execute("ROLLBACK")
        assert incremental[c.T_CLASS_ALLOC], what


@pytest.mark.parametrize("team", ["a", "b"])
def test_the_class_rows_bill_a_relabelled_pods_earlier_days_to_its_new_team(team: str, tmp_path: Path) -> None:
    wh, settings = tmp_path / "wh.duckdb", CollectSettings(cluster="k1")
    collect_files(
        wh, [_scrape([P1], [N1], DAY1, 60, tmp_path / "d1.om")], settings, Window(DAY1, DAY1 + timedelta(hours=1))
    )
    collect_files(
        wh,
        [_scrape([replace(P1, team=team)], [N1], DAY2, 60, tmp_path / "d2.om")],
        settings,
        Window(DAY2, DAY2 + timedelta(hours=1)),
    )
    with open_warehouse(wh, read_only=True) as con:
        labels = con.execute(f"SELECT DISTINCT labels FROM {c.T_CLASS_ALLOC} WHERE day = ?", [DAY1]).fetchall()
    assert [r[0] for r in labels] == [f'{{"team":"{team}"}}']


HOURLY = [hourly.table(kind, "hourly") for kind in ("alloc", "capacity", "usage")]

# (window start, end, whether it appends after everything collected so far)
WINDOWS = [
    ("00:00", "00:20", True),
    ("00:20", "01:10", True),  # across an hour: both hours get their steps added
    ("01:10", "03:00", True),
    ("02:30", "03:30", False),  # overlaps: its hours are recomputed from their steps
    ("03:30", "03:35", True),
]


def _rollup_rows(con) -> dict[str, list[tuple]]:  # type: ignore[no-untyped-def]
    """Every rollup row, floats (used seconds, joules) to 10 significant digits: what float summation order cannot
    change (a GPU-hour's energy is ~10^6 J, so a fixed number of decimals would not do)."""
    out = {}
    for t in [*HOURLY, *(hourly.table(k, "daily") for k in ("alloc", "capacity", "usage")), c.T_COVERAGE_ROLLUP]:
        rows = con.execute(f"SELECT * FROM {t}").fetchall()
        out[t] = sorted((tuple(float(f"{v:.10g}") if isinstance(v, float) else v for v in r) for r in rows), key=repr)
    return out


def test_appended_windows_add_their_steps_to_the_hours_and_equal_hours_recomputed_from_every_step(
    sim_day: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh = tmp_path / "wh.duckdb"
    files = sorted(str(p) for p in sim_day.glob("*.om"))
    recomputed = _hours_recomputed(monkeypatch)
    for lo, hi, appends in WINDOWS:
        recomputed.clear()
        window = ("--start", f"2026-11-02T{lo}:00Z", "--end", f"2026-11-02T{hi}:00Z")
        args = ("--warehouse", str(wh), "collect", "openmetrics", *files, *window, "--step", "60s")
        assert run_cli(*args, "--cluster", "sim-us-east-1").exit_code == 0
        assert (recomputed == []) == appends, (lo, hi)
        with open_warehouse(wh) as con:
            assert hourly.in_sync(con)
            added = _rollup_rows(con)
            con.execute("BEGIN")
            hourly.refresh(con, None, full=True)
            assert _rollup_rows(con) == added, (lo, hi)
            con.execute("ROLLBACK")
            assert all(added[t] for t in [*HOURLY, c.T_COVERAGE_ROLLUP])


def test_an_appended_window_that_changes_a_nodes_gpu_model_recomputes_its_hours_from_every_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh, settings = tmp_path / "wh.duckdb", CollectSettings(cluster="k1")
    recomputed = _hours_recomputed(monkeypatch)
    halves = [(DAY1, N1), (DAY1 + timedelta(minutes=30), Node("n1", product="NVIDIA-H100-80GB-HBM3"))]
    for i, (start, node) in enumerate(halves):
        recomputed.clear()
        scrape = _scrape([P1], [node], start, 30, tmp_path / f"half{i}.om")
        collect_files(wh, [scrape], settings, Window(start, start + timedelta(minutes=30)))
        assert recomputed == ([DAY1] if i else []), "the first half is added; the second must recompute the hour"
        with open_warehouse(wh) as con:
            assert hourly.in_sync(con)
            kept = _rollup_rows(con)
            con.execute("BEGIN")
            hourly.refresh(con, None, full=True)
            assert _rollup_rows(con) == kept
            con.execute("ROLLBACK")
