"""Hostile inputs, one sample at a time: absurd timestamps and values neither hang a collection nor
reach a bill. Inputs are the format-exact fixtures replayed once a minute; each case adds one line."""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result

from collectors.metrics import http
from core import conventions as c
from core.store.lock import WarehouseLock, WarehouseLocked
from core.store.rollups import hourly
from core.store.status import data_status
from core.store.warehouse import open_warehouse
from core.timeutil import Window, to_epoch
from tests import servers
from tests.builders import replayed, scrape_samples
from tests.conftest import FIXTURES, free_port, run_cli
from tests.helpers import content_digest

KSM = FIXTURES / "kube-state-metrics_v2.x_gpu_excerpt.prom"
DCGM = FIXTURES / "dcgm-exporter_4.8.2_k8s_h100.prom"
START = datetime(2026, 11, 2, 10)
MINUTES = 10
WINDOW = ("--start", "2026-11-02T10:00:00Z", "--end", "2026-11-02T10:10:00Z")


def _replayed(scrape: Path, out: Path, extra: Sequence[str] = ()) -> Path:
    return replayed(scrape, out, START, MINUTES, extra)


def _node_labels_at(stamp: str) -> str:
    """A kube_node_labels sample of the fixture's first node, at `stamp`."""
    series = next(s for s in scrape_samples(KSM) if s.startswith("kube_node_labels{"))
    return f"{series.rsplit(' ', 1)[0]} 1 {stamp}"


def _collect(wh: Path, *args: str) -> Result:
    return run_cli("--warehouse", str(wh), "collect", "openmetrics", *args)


@pytest.fixture()
def clean(tmp_path: Path) -> tuple[Path, Path]:
    """A warehouse holding the clean replay, and the dcgm file."""
    dcgm = _replayed(DCGM, tmp_path / "dcgm.om")
    wh = tmp_path / "wh.duckdb"
    result = _collect(wh, str(dcgm), str(_replayed(KSM, tmp_path / "ksm.om")))
    assert result.exit_code == 0, result.output
    return wh, dcgm


# a day boundary: the same value in every xdist worker that collects the tests
YEAR_AHEAD = f"{to_epoch(datetime.combine(datetime.now().date(), datetime.min.time()) + timedelta(days=365)):.0f}"


@pytest.mark.parametrize(
    ("stamp", "shown"),
    [
        ("0", "1970-01-01T00:00:00Z"),
        ("9999999999", "2286-11-20T17:46:39Z"),
        ("NaN", "not a time"),
        ("-1", "not a time"),
        (YEAR_AHEAD, ""),
        ("1e30", "not a time"),
    ],
    ids=["epoch 0", "year 2286", "NaN", "negative", "a year ahead", "beyond any calendar"],
)
def test_an_implausible_timestamp_without_a_window_is_refused_naming_its_line_and_nothing_changes(
    clean: tuple[Path, Path], tmp_path: Path, stamp: str, shown: str
) -> None:
    wh, dcgm = clean
    before = content_digest(wh)
    bad = _replayed(KSM, tmp_path / "bad.om", [_node_labels_at(stamp)])
    line = len(bad.read_text().splitlines()) - 1  # the line before `# EOF`
    result = _collect(wh, str(dcgm), str(bad))
    assert result.exit_code == 2, result.output
    assert f"bad.om:{line}: sample timestamp {stamp} ({shown}" in result.output
    assert "is outside 2000-01-01T00:00:00Z.." in result.output
    assert content_digest(wh) == before
    if shown == "not a time":  # no window makes it one
        windowed = _collect(wh, str(dcgm), str(bad), *WINDOW)
        assert windowed.exit_code == 2 and f"bad.om:{line}: sample timestamp {stamp} (not a time)" in windowed.output
        assert content_digest(wh) == before


@pytest.mark.parametrize("stamp", ["0", "9999999999", YEAR_AHEAD], ids=["epoch 0", "year 2286", "a year ahead"])
def test_with_a_window_a_sample_outside_it_is_dropped_counted_and_changes_no_row(
    clean: tuple[Path, Path], tmp_path: Path, stamp: str
) -> None:
    _, dcgm = clean
    windowed = tmp_path / "windowed.duckdb"
    assert _collect(windowed, str(dcgm), str(_replayed(KSM, tmp_path / "ksm.om")), *WINDOW).exit_code == 0
    other = tmp_path / "other.duckdb"
    bad = _replayed(KSM, tmp_path / "bad.om", [_node_labels_at(stamp)])
    result = _collect(other, str(dcgm), str(bad), *WINDOW)
    assert result.exit_code == 0, result.output
    assert result.output.count("samples outside the window") + result.output.count("sample outside the window") == 1
    assert "gpuledger: warning: 1 sample outside the window (and its lookback) was dropped" in result.output
    assert content_digest(other) == content_digest(windowed)


def test_rollup_work_visits_the_days_holding_data_not_the_days_between_them(
    clean: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node-labels sample a year before the rest is plausible and kept; the rollups then visit its day
    and the replay's, not the 365 days between (a day at a time over the span took minutes)."""
    wh, dcgm = clean
    visited: list[datetime] = []
    refresh_day = hourly._refresh_day
    monkeypatch.setattr(hourly, "_refresh_day", lambda con, day: (visited.append(day), refresh_day(con, day)))
    early = START - timedelta(days=365)
    old = _replayed(KSM, tmp_path / "old.om", [_node_labels_at(f"{to_epoch(early):.0f}")])
    result = _collect(tmp_path / "year.duckdb", str(dcgm), str(old))
    assert result.exit_code == 0, result.output
    assert sorted(set(visited)) == [datetime(2025, 11, 2), datetime(2026, 11, 2)]


GPU0_UTIL = 'DCGM_FI_DEV_GPU_UTIL{gpu="0",'
GPU_REQUEST = 'kube_pod_container_resource_requests{namespace="team-vision",pod="resnet-train-7d9f8-abcde"'


def _corrupted(scrape: Path, out: Path, prefix: str, value: str | None, minute: int = 3) -> Path:
    """The replay with the `minute`th sample of the series starting with `prefix` (and `nvidia_com_gpu`, for
    requests) set to `value`, or left out when `value` is None."""
    lines = _replayed(scrape, out).read_text().splitlines()
    stamp = f"{to_epoch(START) + 60 * minute:.0f}"
    hits = [
        i
        for i, s in enumerate(lines)
        if s.startswith(prefix) and s.endswith(" " + stamp) and "cpu" not in s and "memory" not in s
    ]
    assert len(hits) == 1, hits
    series = lines[hits[0]].rsplit(" ", 2)[0]
    if value is None:
        del lines[hits[0]]
    else:
        lines[hits[0]] = f"{series} {value} {stamp}"
    out.write_text("\n".join(lines) + "\n")
    return out


@pytest.mark.parametrize(
    ("scrape", "prefix", "value", "family"),
    [
        (DCGM, GPU0_UTIL, "-Inf", "DCGM_FI_DEV_GPU_UTIL"),
        (DCGM, GPU0_UTIL, "NaN", "DCGM_FI_DEV_GPU_UTIL"),
        (DCGM, GPU0_UTIL, "-3", "DCGM_FI_DEV_GPU_UTIL"),
        (DCGM, GPU0_UTIL, "1e12", "DCGM_FI_DEV_GPU_UTIL"),
        (DCGM, GPU0_UTIL, "250", "DCGM_FI_DEV_GPU_UTIL"),
        (KSM, GPU_REQUEST, "-1", "kube_pod_container_resource_requests"),
        (KSM, GPU_REQUEST, "+Inf", "kube_pod_container_resource_requests"),
        (KSM, GPU_REQUEST, "1e9", "kube_pod_container_resource_requests"),
    ],
    ids=["util -Inf", "util NaN", "util -3", "util 1e12", "util 250", "request -1", "request +Inf", "request 1e9"],
)
def test_a_value_its_family_cannot_have_is_dropped_counted_and_shown(
    tmp_path: Path, scrape: Path, prefix: str, value: str, family: str
) -> None:
    """The warehouse is exactly the one collected without that sample; the run and Data status say so."""
    other = DCGM if scrape is KSM else KSM
    files = [str(_replayed(other, tmp_path / "other.om"))]
    bad, without = tmp_path / "bad.duckdb", tmp_path / "without.duckdb"
    result = _collect(bad, *files, str(_corrupted(scrape, tmp_path / "bad.om", prefix, value)))
    assert result.exit_code == 0, result.output
    assert "; 1 invalid values dropped" in result.output
    assert f"1 values out of their family's range or not finite were dropped ({family} 1)" in result.output
    assert _collect(without, *files, str(_corrupted(scrape, tmp_path / "without.om", prefix, None))).exit_code == 0
    assert content_digest(bad) == content_digest(without)
    with open_warehouse(bad, read_only=True) as con:
        status = data_status(con)
    assert [r["invalid_values"] for r in status["runs"]] == [1]
    assert any("1 sample values were out of their metric's range" in w for w in status["warnings"])


@pytest.mark.parametrize("stored", [float("-inf"), float("nan"), -3.0, 1e12])
def test_reports_never_fail_on_impossible_stored_activity_and_count_it_as_not_reported(
    clean: tuple[Path, Path], tmp_path: Path, stored: float
) -> None:
    """An older warehouse may hold what ingestion now drops: reports read it as no activity reported."""
    wh, _ = clean
    copies = {}
    for name, value in (("bad", stored), ("none", None)):
        copies[name] = tmp_path / f"{name}.duckdb"
        shutil.copy(wh, copies[name])
        with open_warehouse(copies[name]) as con:
            changed = con.execute(
                f"UPDATE {c.T_GPU_SAMPLES} SET gr_engine_active = ? WHERE ts = ?", [value, START + timedelta(minutes=3)]
            ).fetchall()
            assert changed[0][0] > 0
            con.execute(f"DELETE FROM {c.T_ROLLUP_STATE}")  # as after a write outside a commit: reports read the steps
    window = ("--start", "2026-11-02T10:00:00Z", "--end", "2026-11-02T11:00:00Z")
    for report in ("chargeback", "efficiency"):
        got = {
            n: run_cli("--warehouse", str(p), "report", report, *window, "--format", "json") for n, p in copies.items()
        }
        assert got["bad"].exit_code == 0, got["bad"].output
        assert got["bad"].output == got["none"].output  # the JSON, and the same unpriced-node warning
    exported = run_cli(
        "--warehouse", str(copies["bad"]), "export", "weekly", "--week", "2026-W45", "--out", str(tmp_path / "x")
    )
    assert exported.exit_code == 0, exported.output


# --- one line and exit 2, never a traceback (issue 30: items 11, 13, 14) ----------------------------------
def _bytes_file(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


BAD_SETTINGS = [
    (b"collect:\n  step: 0s\n", "settings.yaml: collect.step: 0s is outside 1 s to 86400 s"),
    (b"collect:\n  lookback: 100000d\n", "settings.yaml: collect.lookback: 100000d is outside 1 s to 604800 s"),
    (
        b"collect:\n  step: 60s\ncollect:\n  step: 30s\n",
        "settings.yaml:3:1: not valid YAML: key 'collect' given twice (first on line 1)",
    ),
    (
        b"collect:\n  step: 60s\n  step: 30s\n",
        "settings.yaml:3:3: not valid YAML: key 'step' given twice (first on line 2)",
    ),
    (b"a: 1\n  b: [\n", "settings.yaml:2:4: not valid YAML: mapping values are not allowed here"),
    (b"collect:\n  cluster: \xff\n", "settings.yaml:2:12: not UTF-8 text (byte 20)"),
]


@pytest.mark.parametrize(("content", "message"), BAD_SETTINGS, ids=[
    "zero step", "huge lookback", "duplicate section", "duplicate key", "syntax error", "not utf-8"])  # fmt: skip
def test_a_settings_file_no_one_should_write_is_one_line_naming_file_and_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    config = _bytes_file(tmp_path, "settings.yaml", content)
    result = run_cli("--config", config, "--warehouse", str(tmp_path / "w.duckdb"), "report", "budget")
    assert result.exit_code == 2, result.output
    assert result.output == f"gpuledger: error: {tmp_path / message}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "weekly", "--week", "9999-W52"], "no such ISO week: '9999-W52' (years 1970 to 9998)"),
        (["collect", "scrape", "file:///etc/passwd"], "file:///etc/passwd: not an http(s) URL"),
        (["collect", "scrape", "ftp://127.0.0.1/x"], "ftp://127.0.0.1/x: not an http(s) URL"),
    ],
    ids=["week past the calendar", "file url", "ftp url"],
)
def test_arguments_no_one_should_pass_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    wh = tmp_path / "w.duckdb"
    result = run_cli("--warehouse", str(wh), *args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"gpuledger: error: {message}") and result.output.count("\n") == 1
    assert not wh.exists()


def test_a_store_url_with_credentials_and_an_ipv6_host_keeps_its_brackets(tmp_path: Path) -> None:
    """Taking the credentials out once left '::1:9' (no brackets), which requests could not parse: a traceback."""
    assert http.split_userinfo("http://u:pw@[::1]:9090/prom") == ("http://[::1]:9090/prom", ("u", "pw"))
    assert http.split_userinfo("https://u:pw@[2001:db8::7]/") == ("https://[2001:db8::7]/", ("u", "pw"))
    result = run_cli(
        "--warehouse", str(tmp_path / "w.duckdb"), "collect", "prometheus", "--url", f"http://u:secret-pw@[::1]:{free_port()}",
        "--start", "2026-11-02T00:00:00Z", "--end", "2026-11-02T01:00:00Z",
    )  # fmt: skip
    assert result.exit_code == 3 and "http://[::1]:" in result.output and "cannot connect" in result.output
    assert "secret-pw" not in result.output


def test_a_price_file_nested_deeper_than_any_price_list_is_refused(tmp_path: Path) -> None:
    deep = _bytes_file(tmp_path, "deep.json", b"[" * 100_000 + b"]" * 100_000)
    result = run_cli("--warehouse", str(tmp_path / "w.duckdb"), "pricing", "import", deep)
    assert result.exit_code == 2
    assert result.output == f"gpuledger: error: {deep}: JSON nested deeper than any price list (refused)\n"


def test_an_export_out_that_names_a_file_is_refused_and_leaves_no_staging(
    clean: tuple[Path, Path], tmp_path: Path
) -> None:
    wh, _ = clean
    afile = tmp_path / "a-file"
    afile.write_text("mine")
    result = run_cli("--warehouse", str(wh), "export", "weekly", "--week", "2026-W45", "--out", str(afile))
    assert result.exit_code == 2, result.output
    assert "not a directory" in result.output and afile.read_text() == "mine"


def test_the_one_writer_lock_holds_whatever_path_leads_to_the_warehouse(tmp_path: Path) -> None:
    """A symlink to a warehouse another serve holds once let a second writer in (the lock keyed on the path)."""
    real = tmp_path / "real" / "wh.duckdb"
    real.parent.mkdir()
    real.touch()
    link = tmp_path / "link.duckdb"
    link.symlink_to(real)
    with WarehouseLock(real):
        for other in (link, tmp_path / "real" / ".." / "real" / "wh.duckdb"):
            with pytest.raises(WarehouseLocked):
                WarehouseLock(other).acquire()
    WarehouseLock(link).acquire().release()  # free again once the holder let go


def test_demo_dir_holds_the_warehouse_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    from app.cli.demo import demo_settings
    from core.settings import Settings, with_override

    settings, _ = demo_settings(Settings(), tmp_path / "mine", 300)
    assert settings.warehouse.path == tmp_path / "mine" / "gpuledger.duckdb"
    chosen = with_override(Settings(), "warehouse", path=tmp_path / "elsewhere.duckdb")
    settings, _ = demo_settings(chosen, tmp_path / "mine2", 300)
    assert settings.warehouse.path == tmp_path / "elsewhere.duckdb"


NODE_LABELS = 'kube_node_labels{node="gpu-node-a1",label_team="vision"}'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('kube-node-labels{node="a"} 1 {t}', "malformed metric name 'kube-node-labels'"),
        ('kube_node_labels{node-name="a"} 1 {t}', "malformed label name 'node-name'"),
        ('kube_node_labels{node:name="a"} 1 {t}', "malformed label name 'node:name'"),
        ('kube_node_labels{nödé="a"} 1 {t}', "malformed label name 'nödé'"),
        ('kube_node_labels{node="a",node="b"} 1 {t}', "label 'node' given twice in one series"),
        ('kube_node_labels{node="a\x00b"} 1 {t}', "a NUL byte in the value of label 'node'"),
        ("<html><body>Login</body></html>", "malformed metric name '<html><body>Login</body></html>'"),
    ],
    ids=["dash in metric name", "dash in label name", "colon in label name", "non-ascii label name",
         "label given twice", "nul byte", "an html page"],
)  # fmt: skip
def test_a_line_the_exposition_format_does_not_allow_is_refused_naming_file_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    stamp = f"{to_epoch(START):.0f}"
    good = f"{NODE_LABELS} 1 {stamp}"
    path = tmp_path / "bad.om"
    path.write_text(
        "\n".join([good, good.replace(stamp, str(int(stamp) + 60)), line.replace("{t}", stamp)]) + "\n# EOF\n"
    )
    wh = tmp_path / "w.duckdb"
    result = _collect(wh, str(path))
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"gpuledger: error: {path}:3: {message}"), result.output
    assert not wh.exists()


def test_a_scrape_of_an_html_page_is_an_error_not_an_empty_collection(tmp_path: Path) -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>\n"

    class Html(servers.StubHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.reply(200, page, "text/html")

    with servers.stub(Html) as base:
        url = f"{base}/metrics"
        result = run_cli("--warehouse", str(tmp_path / "w.duckdb"), "collect", "scrape", url)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"gpuledger: error: {url}:1: malformed metric name '<!DOCTYPE'")


# --- prices (issue 30 #9, #10) ---------------------------------------------------------------------------
PRICE_HEADER = "provider,region,instance_type,capacity_type,gpu_model,gpus,price_per_hour_usd,effective_from\n"


def _price_file(tmp_path: Path, name: str, price: str) -> str:
    path = tmp_path / name
    path.write_text(PRICE_HEADER + f"aws,us-east-1,p4de.24xlarge,on_demand,A100,8,{price},2026-11-01T00:00:00Z\n")
    return str(path)


def test_a_price_no_gpu_has_is_refused_unless_forced_and_a_failed_export_leaves_nothing(
    direct_warehouse: Path, tmp_path: Path
) -> None:
    wh = tmp_path / "wh.duckdb"
    shutil.copy(direct_warehouse, wh)
    absurd = _price_file(tmp_path, "absurd.csv", "900000000000000000")
    before = content_digest(wh)
    refused = run_cli("--warehouse", str(wh), "pricing", "import", absurd)
    assert refused.exit_code == 2 and "$112500000000000000.00 per GPU-hour is above $1000" in refused.output
    assert "pass --force if it is real" in refused.output and content_digest(wh) == before
    assert run_cli("--warehouse", str(wh), "pricing", "import", absurd, "--force").exit_code == 0
    out = tmp_path / "exports"
    failed = run_cli("--warehouse", str(wh), "export", "weekly", "--week", "2026-W45", "--out", str(out))
    assert failed.exit_code == 2 and "does not fit the Parquet export's decimal(18,2)" in failed.output
    assert failed.output.count("\n") == 1
    assert [p.name for p in out.iterdir()] == []  # no week folder, no .staging


def test_past_prices_change_only_with_replace_and_the_command_says_which_bills_move(
    direct_warehouse: Path, tmp_path: Path
) -> None:
    wh = tmp_path / "wh.duckdb"
    shutil.copy(direct_warehouse, wh)
    assert run_cli("--warehouse", str(wh), "pricing", "import", _price_file(tmp_path, "a.csv", "32.77")).exit_code == 0
    again = run_cli("--warehouse", str(wh), "pricing", "import", _price_file(tmp_path, "a.csv", "32.77"))
    assert again.exit_code == 0  # the same prices again: no bill moves, nothing to refuse
    before = content_digest(wh)
    changed = _price_file(tmp_path, "b.csv", "40.96")
    refused = run_cli("--warehouse", str(wh), "pricing", "import", changed)
    moved = "p4de.24xlarge on_demand us-east-1 (aws) from 2026-11-01T00:00:00Z: $32.77 -> $40.96 per hour"
    assert (
        refused.exit_code == 2 and f"would change a stored price, and the bills that used it: {moved}" in refused.output
    )
    assert content_digest(wh) == before
    replaced = run_cli("--warehouse", str(wh), "pricing", "import", changed, "--replace")
    assert replaced.exit_code == 0 and f"replaced {moved}: bills from then on move" in replaced.output


def _with_repeat(tmp_path: Path, name: str, value: str | None) -> Path:
    """The replay with the GPU request's minute-3 sample given again (with `value`, or the same one)."""
    path = _replayed(KSM, tmp_path / name)
    lines = path.read_text().splitlines()
    stamp = f"{to_epoch(START) + 180:.0f}"
    i = next(
        i for i, s in enumerate(lines) if s.startswith(GPU_REQUEST) and "nvidia_com_gpu" in s and s.endswith(stamp)
    )
    series, original, _ = lines[i].rsplit(" ", 2)
    lines.insert(i + 1, f"{series} {value or original} {stamp}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_two_samples_of_one_series_at_one_time_that_disagree_are_refused_and_identical_ones_pass(
    clean: tuple[Path, Path], tmp_path: Path
) -> None:
    wh, dcgm = clean
    other = tmp_path / "other.duckdb"
    bad = _collect(other, str(dcgm), str(_with_repeat(tmp_path, "bad.om", "2")))
    assert bad.exit_code == 2, bad.output
    assert "kube_pod_container_resource_requests{" in bad.output and 'pod="resnet-train-7d9f8-abcde"' in bad.output
    assert "has two samples at 2026-11-02T10:03:00Z with different values (1 and 2)" in bad.output
    assert not other.exists()
    same = _collect(other, str(dcgm), str(_with_repeat(tmp_path, "same.om", None)))
    assert same.exit_code == 0, same.output
    assert content_digest(other) == content_digest(wh)


def test_the_savings_pass_reads_the_data_in_a_window_not_the_window(
    clean: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 10-year `report savings` over 10 minutes of data read 14,600 empty 6-hour chunks (112 s on a week):
    now only the chunks of the data's span are read, and the pool steps are the same as the data's own window's."""
    from analytics.finops import recommend

    wh, _ = clean
    calls: list[Window] = []
    rows = recommend._rows
    monkeypatch.setattr(
        recommend, "_rows", lambda con, sql, part, extra=None: (calls.append(part), rows(con, sql, part, extra))[1]
    )
    decade = Window(datetime(2020, 1, 1), datetime(2030, 1, 1))
    with open_warehouse(wh, read_only=True) as con:
        wide = recommend._stepped(con, decade, "compute")
        assert len(calls) <= 5
        narrow = recommend._stepped(con, Window(START - timedelta(hours=1), START + timedelta(hours=1)), "compute")
    assert wide and recommend._pools(wide, {}) == recommend._pools(narrow, {})


# --- size limits (issue 30 #8, #14) -----------------------------------------------------------------------
def test_a_line_longer_than_the_limit_is_refused_naming_it_and_read_in_bounded_memory(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("collect:\n  max_line_kb: 64\n")
    path = _replayed(KSM, tmp_path / "long.om", [f'unwanted_family{{x="{"y" * 100_000}"}} 1 {to_epoch(START):.0f}'])
    line = len(path.read_text().splitlines()) - 1
    result = run_cli(
        "--config", str(config), "--warehouse", str(tmp_path / "w.duckdb"), "collect", "openmetrics", str(path)
    )
    assert result.exit_code == 2
    assert result.output == f"gpuledger: error: {path}:{line}: a line longer than 64 KB (collect.max_line_kb)\n"


def test_bad_utf8_is_named_by_line_and_file_offset_not_by_a_chunks_offset(tmp_path: Path) -> None:
    good = _replayed(KSM, tmp_path / "good.om").read_bytes()
    cut = good.index(b"\n", len(good) // 2) + 1  # the start of a line in the middle of the file
    path = tmp_path / "bad.om"
    path.write_bytes(good[:cut] + b'kube_node_labels{node="\xff"} 1 1\n' + good[cut:])
    line = good[:cut].count(b"\n") + 1
    result = _collect(tmp_path / "w.duckdb", str(path))
    assert result.exit_code == 2
    assert result.output == f"gpuledger: error: {path}:{line}: not UTF-8 text (byte {cut + 23} of the file)\n"


def test_a_gzip_price_file_that_inflates_past_the_limit_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    bomb = tmp_path / "prices.json.gz"
    with gzip.open(bomb, "wb") as fh:
        for _ in range(8):
            fh.write(b" " * 2**20)  # 8 MB of spaces: 8 KB compressed
    config = tmp_path / "settings.yaml"
    config.write_text("pricing:\n  max_file_mb: 4\n")
    result = run_cli("--config", str(config), "--warehouse", str(tmp_path / "w.duckdb"), "pricing", "import", str(bomb))
    assert result.exit_code == 2
    assert result.output == f"gpuledger: error: {bomb}: decompresses to larger than 4 MB (pricing.max_file_mb)\n"
