"""`gpuledger serve` in-process: catch-up after outages, the schedule, config reloads, error kinds, /metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import app.cli  # noqa: F401  (the CLI package first: its command modules import each other in order)
from app.cli.serve import build_scheduler, check_settings
from app.service import schedule
from app.service.metrics import MetricsServer
from app.service.runner import Service
from core import conventions as c
from core.errors import ConfigError
from core.settings import load_settings
from core.timeutil import parse_ts, to_epoch
from tests.conftest import FIXTURES, free_port, run_cli


@pytest.mark.parametrize(
    ("now", "exported", "due"),
    [
        ("2026-11-09T00:59:59", [], ["2026-W44"]),  # before Monday 01:00 the week just ended is not due
        ("2026-11-09T01:00:00", [], ["2026-W45"]),
        ("2026-11-12T10:00:00", ["2026-W45"], []),  # exported: never again
        ("2026-11-24T03:00:00", ["2026-W44"], ["2026-W45", "2026-W46", "2026-W47"]),  # down for two Mondays
        ("2027-01-05T01:00:00", ["2026-W52"], ["2026-W53"]),  # 2026 has 53 ISO weeks
        ("2026-12-01T01:00:00", ["2026-W45", "2026-W48"], ["2026-W46", "2026-W47"]),  # still waiting for data
    ],
    ids=["not yet", "monday 01:00", "already exported", "down two mondays", "year with 53 weeks", "gaps stay due"],
)
def test_due_weeks_are_every_week_after_the_last_export_up_to_the_one_that_just_ended(
    now: str, exported: list[str], due: list[str]
) -> None:
    assert schedule.due_weeks(parse_ts(now), exported) == due


@pytest.fixture(scope="module")
def week_allocations(sim_week: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated week's kube-state-metrics (allocations and nodes) at 5 minutes, with default prices."""
    wh = tmp_path_factory.mktemp("svc") / "week.duckdb"
    ksm = str(sim_week / "kube-state-metrics.om")
    assert run_cli("--warehouse", str(wh), "collect", "openmetrics", ksm, "--step", "300s").exit_code == 0
    assert run_cli("--warehouse", str(wh), "pricing", "import", "--default").exit_code == 0
    return wh


def _service(tmp_path: Path, warehouse: Path, now: str, extra: str = "") -> Service:
    wh = tmp_path / "wh.duckdb"
    if not wh.exists():
        shutil.copy(warehouse, wh)
    config = tmp_path / "gpuledger.yaml"
    config.write_text(
        f"warehouse: {{path: {wh}}}\nexport: {{directory: {tmp_path / 'exports'}}}\n"
        f"service:\n  health_interval: 0s\n  rules_dir: {tmp_path / 'rules'}\n{extra}"
    )
    service = Service(load_settings(config, env={}), config, clock=lambda: parse_ts(now))
    service.seed()
    return service


def test_a_service_down_over_a_monday_exports_that_week_on_start_exactly_once(
    tmp_path: Path, week_allocations: Path
) -> None:
    first = _service(tmp_path, week_allocations, "2026-11-10T09:00:00Z")  # down from Sunday to Tuesday
    first.catch_up()
    manifest = tmp_path / "exports" / "2026-W45" / c.EXPORT_MANIFEST
    assert manifest.is_file()
    written = manifest.stat().st_ino, manifest.stat().st_mtime_ns
    assert first.metrics.registry.get_sample_value(c.M_EXPORT_PENDING) == 0
    assert first.metrics.registry.get_sample_value(c.M_EXPORT_LATEST_WEEK_END) == to_epoch(parse_ts("2026-11-09"))
    again = _service(tmp_path, week_allocations, "2026-11-10T09:05:00Z")  # restarted: nothing owed
    again.catch_up()
    again.run_job(c.JOB_EXPORT, again.export_due)  # and the Monday job firing late changes nothing either
    assert (manifest.stat().st_ino, manifest.stat().st_mtime_ns) == written
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["2026-W45"]


def test_a_week_the_warehouse_does_not_cover_from_its_start_is_never_exported(
    tmp_path: Path, week_allocations: Path
) -> None:
    service = _service(tmp_path, week_allocations, "2026-11-09T00:30:00Z")  # W44 is due; data starts in W45
    service.catch_up()
    assert schedule.exported_weeks(tmp_path / "exports") == []
    assert schedule.read_waiting(tmp_path / "exports") == {
        "2026-W44": "waiting: the warehouse holds no data from the week's start"
    }
    assert service.metrics.registry.get_sample_value(c.M_EXPORT_PENDING) == 1


def test_the_weekly_export_fires_on_monday_at_01_00_utc_and_collections_at_their_interval(tmp_path: Path) -> None:
    config = tmp_path / "s.yaml"
    config.write_text(
        "service:\n  sources:\n    - {name: prom, type: prometheus, url: 'http://127.0.0.1:1', interval: 7m}\n"
        "  price_refresh: [azure]\n  price_refresh_at: '04:30'\n"
    )
    scheduler = build_scheduler(Service(load_settings(config, env={}), config))
    saturday = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    fire = {job.id: job.trigger.get_next_fire_time(None, saturday) for job in scheduler.get_jobs()}
    assert fire[c.JOB_EXPORT] == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    assert fire[c.JOB_PRICES] == datetime(2026, 11, 28, 11, 0, tzinfo=UTC).replace(hour=4, minute=30, day=29)
    interval = scheduler.get_job(f"{c.JOB_COLLECT}:prom").trigger.interval
    assert interval.total_seconds() == 7 * 60
    assert {"catch-up", c.JOB_HEALTH, c.JOB_RULES} <= set(fire)


def _rules_text(tmp_path: Path) -> str:
    return (tmp_path / "rules" / "gpuledger-cost.yaml").read_text()


def test_rules_are_regenerated_when_the_settings_file_changes_and_kept_when_it_breaks(
    tmp_path: Path, week_allocations: Path
) -> None:
    service = _service(tmp_path, week_allocations, "2026-11-04T00:00:00Z", "  weekly_export: false\n")
    service.check_config(force=True)
    before = _rules_text(tmp_path)
    config = service.config
    assert config is not None
    config.write_text(config.read_text() + 'budgets:\n  monthly_usd: {vision: "20000"}\n')
    assert service.run_job(c.JOB_RULES, service.check_config)
    changed = _rules_text(tmp_path)
    assert changed != before and "label_team: vision" in changed
    config.write_text(config.read_text() + "nonsense: {}\n")
    assert not service.run_job(c.JOB_RULES, service.check_config)
    assert _rules_text(tmp_path) == changed
    errors = service.metrics.registry.get_sample_value(f"{c.M_ERRORS}_total", {"job": c.JOB_RULES, "kind": "terminal"})
    assert errors == 1


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("{name: drop, type: openmetrics, paths: ['/nonexistent/*.om']}", "terminal"),
        ("{name: prom, type: prometheus, url: 'http://127.0.0.1:PORT', backfill: 10m}", "transient"),
    ],
    ids=["no file matches", "prometheus unreachable"],
)
def test_failed_collections_are_counted_by_kind_and_the_service_carries_on(
    tmp_path: Path, week_allocations: Path, source: str, kind: str
) -> None:
    extra = f"  weekly_export: false\n  sources:\n    - {source.replace('PORT', str(free_port()))}\n"
    service = _service(tmp_path, week_allocations, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), extra)
    service.settings = service.settings.model_copy(
        update={"collect": service.settings.collect.model_copy(update={"retries": 0, "timeout": "2s"})}
    )
    service.collect_source(service.settings.service.sources[0])
    name = service.settings.service.sources[0].name
    get: Callable[..., float | None] = service.metrics.registry.get_sample_value
    assert get(f"{c.M_ERRORS}_total", {"job": c.JOB_COLLECT, "kind": kind}) == 1
    assert get(c.M_COLLECTION_LAST_SUCCESS, {"source": name}) is None


def test_metrics_and_healthz_are_served_over_http(tmp_path: Path, week_allocations: Path) -> None:
    service = _service(tmp_path, week_allocations, "2026-11-10T09:00:00Z")
    service.catch_up()
    server = MetricsServer("127.0.0.1", 0, service.metrics, service.health).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        text = requests.get(f"{base}/metrics", timeout=5).text
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {c.M_ERRORS, c.M_JOB_DURATION, c.M_EXPORT_LATEST_WEEK_END, c.M_EXPORT_PENDING} <= names
        health = requests.get(f"{base}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert c.JOB_EXPORT in health.json()["last_success"]
        service.stop.set()
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 503
        assert requests.get(f"{base}/other", timeout=5).status_code == 404
    finally:
        server.stop()


@pytest.mark.parametrize(
    "sources",
    [
        "[{name: a, type: prometheus}]",
        "[{name: a, type: openmetrics}]",
        "[{name: a, type: openmetrics, paths: [x]}, {name: a, type: openmetrics, paths: [y]}]",
        "[{name: a, type: prometheus, url: 'http://x', interval: 0s}]",
    ],
    ids=["prometheus without url", "openmetrics without paths", "duplicate names", "zero interval"],
)
def test_service_settings_that_cannot_work_are_refused_at_start(tmp_path: Path, sources: str) -> None:
    config = tmp_path / "s.yaml"
    config.write_text(f"service:\n  sources: {sources}\n")
    with pytest.raises(ConfigError):
        check_settings(load_settings(config, env={}))


_READER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)  # a dashboard session between two queries
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.mark.parametrize(
    ("hold", "lock_wait", "collected"),
    [(1.5, "30s", True), (30, "1s", False)],
    ids=["a reader letting go within lock_wait", "a reader holding on past lock_wait"],
)
def test_a_collection_waits_for_dashboard_readers_to_let_go_of_the_warehouse(
    tmp_path: Path, week_allocations: Path, hold: float, lock_wait: str, collected: bool
) -> None:
    drop = tmp_path / "drop.om"
    drop.write_text(
        '# TYPE kube_pod_info gauge\nkube_pod_info{namespace="a",pod="p",uid="u",node="n"} 1 1794300000\n# EOF\n'
    )
    extra = f"  lock_wait: {lock_wait}\n  sources:\n    - {{name: drop, type: openmetrics, paths: ['{drop}']}}\n"
    service = _service(tmp_path, week_allocations, "2026-11-10T09:00:00Z", "  weekly_export: false\n" + extra)
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, str(service.warehouse), str(hold)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "holding"
        began = time.monotonic()
        ok = service.run_job(c.JOB_COLLECT, service.collect, service.settings.service.sources[0])
        waited = time.monotonic() - began
    finally:
        reader.kill()
        reader.wait()
    get: Callable[..., float | None] = service.metrics.registry.get_sample_value
    assert ok is collected
    if collected:
        assert waited >= 1.0  # it waited for the reader instead of failing at once
        assert get(c.M_COLLECTION_LAST_SUCCESS, {"source": "drop"}) is not None
    else:
        assert 1.0 <= waited < 10
        assert get(f"{c.M_ERRORS}_total", {"job": c.JOB_COLLECT, "kind": "transient"}) == 1


def _ksm_weeks(path: Path, mondays: list[str]) -> Path:
    """The kube-state-metrics fixture scraped every 5 minutes through each of the ISO weeks from `mondays`."""
    scrape = [
        s for s in (FIXTURES / "kube-state-metrics_v2.x_gpu_excerpt.prom").read_text().splitlines() if s and s[0] != "#"
    ]
    starts = [to_epoch(parse_ts(m)) for m in mondays]
    lines = [f"{s} {t0 + 300 * k:.0f}" for t0 in starts for k in range(7 * 288) for s in scrape]
    path.write_text("\n".join(lines) + "\n# EOF\n")
    return path


def test_weeks_without_collected_data_wait_and_are_exported_when_their_data_arrives(tmp_path: Path) -> None:
    """Data for W45 and W48, W45 exported: W48 is exported, W46 and W47 wait (recorded, counted) instead of
    being exported empty; W46's data arrives later and W46 is exported then, W47 still waits."""
    wh = tmp_path / "wh.duckdb"
    ksm = _ksm_weeks(tmp_path / "w45-w48.om", ["2026-11-02T00:00:00Z", "2026-11-23T00:00:00Z"])
    assert run_cli("--warehouse", str(wh), "collect", "openmetrics", str(ksm), "--step", "300s").exit_code == 0
    exported = run_cli(
        "--warehouse", str(wh), "export", "weekly", "--week", "2026-W45", "--out", str(tmp_path / "exports")
    )
    assert exported.exit_code == 0, exported.output
    service = _service(tmp_path, wh, "2026-12-01T02:00:00Z")
    service.export_due()
    root = tmp_path / "exports"
    assert schedule.exported_weeks(root) == ["2026-W45", "2026-W48"]
    waiting = schedule.read_waiting(root)
    assert sorted(waiting) == ["2026-W46", "2026-W47"]
    assert waiting["2026-W46"].startswith("waiting: no data collected on 2026-11-09, 2026-11-10, ")
    assert service.metrics.registry.get_sample_value(c.M_EXPORT_PENDING) == 2
    w46 = _ksm_weeks(tmp_path / "w46.om", ["2026-11-09T00:00:00Z"])
    assert run_cli("--warehouse", str(wh), "collect", "openmetrics", str(w46), "--step", "300s").exit_code == 0
    service.export_due()
    assert schedule.exported_weeks(root) == ["2026-W45", "2026-W46", "2026-W48"]
    assert list(schedule.read_waiting(root)) == ["2026-W47"]
    assert service.metrics.registry.get_sample_value(c.M_EXPORT_PENDING) == 1
    manifest = json.loads((root / "2026-W46" / c.EXPORT_MANIFEST).read_text())
    assert manifest["files"]["chargeback.csv"]["rows"] > 0
