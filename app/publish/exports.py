"""Weekly chargeback export: one folder per ISO week, byte-stable, atomic, self-describing.

exports/<YYYY>-W<ww>/
  chargeback.csv, chargeback.parquet   one row per team (+ __idle__, __unallocated__, __shared__)
  workloads.csv                        the same costs per team, namespace and workload
  focus-1.2.csv                        FOCUS 1.2 rows (team x day x cluster x node pool x price row)
  sustainability.csv                   per team: GPU energy measured at the GPU, its carbon, embodied carbon
  manifest.json                        rows, bytes and sha256 of every file, the week's totals, its revision
                                       and, at billed cost, the bill files it read
  revisions/<n>/                       earlier revisions, as published (app/publish/revisions.py)

Re-running an export writes identical bytes (no run time is stored; rows are sorted; Parquet
writer options are pinned). The whole week is written and fsynced in `.staging/` under the export
root, then swapped with the published folder in one atomic rename (renameat2 RENAME_EXCHANGE), so a
reader, or a process killed at any instant, sees the previous week's files or the new ones: never a
torn file, never a mix of both. The manifest is written last and lists every file's sha256.
A week whose files would change (a restated bill) becomes a new revision; the old one is kept.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from analytics.cost.cost_rows import ENERGY_COLUMNS, MONEY_COLUMNS, ROW_COLUMNS, ChargebackReport
from analytics.cost.prices import PriceInfo
from app.publish import focus, revisions
from app.publish.render import csv_text
from core import conventions as c
from core.errors import ConfigError
from core.money import in_money_context
from core.timeutil import iso

COLUMNS = ("week", "window_start", "window_end", "team", *ROW_COLUMNS, "monthly_budget_usd", "price_sources")
WORKLOAD_COLUMNS = ("week", "team", "namespace", "workload", *ROW_COLUMNS, "price_sources")
FOCUS_FILE = f"focus-{focus.FOCUS_VERSION}.csv"
SUSTAINABILITY_FILE = "sustainability.csv"
# the chargeback's energy columns per team (its rows: the same numbers), the unpriced part, and carbon in all
SUSTAINABILITY_COLUMNS = (
    "week", "window_start", "window_end", "team", "gpu_hours", *ENERGY_COLUMNS, "carbon_unpriced_kwh", "total_co2e_kg",
)  # fmt: skip


@dataclass(frozen=True)
class WeeklyInputs:
    week: str
    by_team: ChargebackReport
    by_workload: ChargebackReport
    for_focus: ChargebackReport
    prices: dict[str, PriceInfo]
    budgets: dict[str, Decimal]
    account: str = "default"
    bills: tuple[dict[str, str], ...] = ()  # the bill files priced into the week (pricing.source billing|auto)


def _row(
    week: str, report: ChargebackReport, row: Any, columns: tuple[str, ...], extra: dict[str, Any]
) -> dict[str, Any]:
    d = row.as_dict()
    out = {"week": week, "window_start": iso(report.window.start), "window_end": iso(report.window.end), **d, **extra}
    out["price_sources"] = "; ".join(d["price_sources"])
    for m in MONEY_COLUMNS:
        if m in out:
            out[m] = Decimal(out[m]).quantize(Decimal("0.01"))
    return {k: out.get(k) for k in columns}


@in_money_context
def team_rows(inputs: WeeklyInputs) -> list[dict[str, Any]]:
    rep = inputs.by_team
    return [
        _row(inputs.week, rep, r, COLUMNS, {"monthly_budget_usd": inputs.budgets.get(r.keys["team"])}) for r in rep.rows
    ]


@in_money_context
def workload_rows(inputs: WeeklyInputs) -> list[dict[str, Any]]:
    rep = inputs.by_workload
    rows = [_row(inputs.week, rep, r, WORKLOAD_COLUMNS, {}) for r in rep.rows]
    return sorted(rows, key=lambda r: (r["team"], r["namespace"], r["workload"]))


def sustainability_rows(inputs: WeeklyInputs) -> list[dict[str, Any]]:
    """Per team (the chargeback's rows, __idle__ included): kWh, the part from power, carbon, embodied carbon, the
    kWh without an intensity, and operational plus embodied carbon."""
    rep, out = inputs.by_team, []
    for r in rep.rows:
        kwh = {name: r.kwh.get(name, Decimal(0)) for name in (*ENERGY_COLUMNS, "carbon_unpriced_kwh")}
        out.append({
            "week": inputs.week, "window_start": iso(rep.window.start), "window_end": iso(rep.window.end),
            "team": r.keys["team"], "gpu_hours": r.gpu_hours, **kwh,
            "total_co2e_kg": kwh["co2e_kg"] + kwh["embodied_co2e_kg"],
        })  # fmt: skip
    return out


def _parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    schema = pa.schema(
        [pa.field(col, pa.string()) for col in ("week", "window_start", "window_end", "team")]
        + [pa.field(col, pa.float64()) for col in ("gpu_hours", "used_gpu_hours", "efficiency", *ENERGY_COLUMNS)]
        + [pa.field(col, pa.decimal128(18, 2)) for col in (*MONEY_COLUMNS, "monthly_budget_usd")]
        + [pa.field("price_sources", pa.string())]
    )
    try:
        table = pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ConfigError(
            f"a cost does not fit the Parquet export's decimal(18,2) (one row is over $10^16: a price no GPU has; "
            f"see `gpuledger pricing show --all`): {str(exc).splitlines()[0]}"
        ) from None
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_statistics=True, use_dictionary=True)
    return bytes(sink.getvalue().to_pybytes())


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the kernel or filesystem cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _publish(staged: Path, folder: Path) -> None:
    """Put the staged week in place of the published one in one step (readers never see a mix)."""
    if not folder.exists():
        os.rename(staged, folder)
    elif not _exchange(staged, folder):
        # no RENAME_EXCHANGE (non-Linux, some network filesystems): the folder is briefly absent,
        # never mixed; recover_staging() puts the previous week back if a crash falls in between
        aside = staged.with_name(staged.name + ".previous")
        os.rename(folder, aside)
        os.rename(staged, folder)
        staged = aside
    _fsync_dir(folder.parent)
    _drop(staged)


def recover_staging(out_root: Path) -> None:
    """After a crash: restore a week moved aside by the fallback swap, and drop half-written stages."""
    staging = out_root / STAGING
    if not staging.is_dir():
        return
    for entry in staging.iterdir():
        week, _, rest = entry.name.partition(".")
        pid = rest.split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another export of this machine is writing it right now
        if entry.name.endswith(".previous") and not (out_root / week).exists():
            os.rename(entry, out_root / week)
        else:
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


STAGING = ".staging"


@in_money_context
def write_weekly(inputs: WeeklyInputs, out_root: Path) -> revisions.Published:
    """Write exports/<YYYY>-W<ww>/ (a new revision if it was published with other bytes)."""
    if out_root.exists() and not out_root.is_dir():
        raise ConfigError(f"{out_root}: not a directory (--out or export.directory names the folder exports go to)")
    folder = out_root / inputs.week
    recover_staging(out_root)
    staged = out_root / STAGING / f"{inputs.week}.{os.getpid()}"
    staged.mkdir(parents=True)
    try:
        return _write_staged(inputs, staged, folder)
    except BaseException:
        _drop(staged)  # a failed export leaves nothing behind (a kill -9 is recovered)
        raise


def _drop(staged: Path) -> None:
    """Remove a stage no longer needed (and the staging folder, unless a concurrent export still uses it: it removes
    it then)."""
    shutil.rmtree(staged, ignore_errors=True)
    with contextlib.suppress(OSError):
        staged.parent.rmdir()


def _write_staged(inputs: WeeklyInputs, staged: Path, folder: Path) -> revisions.Published:
    teams = team_rows(inputs)
    workloads = workload_rows(inputs)
    focus_rows = focus.focus_rows(inputs.for_focus, inputs.prices, inputs.account)
    green = sustainability_rows(inputs)
    payloads = {
        f"{c.EXPORT_CHARGEBACK_BASENAME}.csv": (csv_text(teams, COLUMNS).encode("utf-8"), len(teams)),
        f"{c.EXPORT_CHARGEBACK_BASENAME}.parquet": (_parquet_bytes(teams), len(teams)),
        "workloads.csv": (csv_text(workloads, WORKLOAD_COLUMNS).encode("utf-8"), len(workloads)),
        FOCUS_FILE: (csv_text(focus_rows, focus.COLUMNS).encode("utf-8"), len(focus_rows)),
        SUSTAINABILITY_FILE: (csv_text(green, SUSTAINABILITY_COLUMNS).encode("utf-8"), len(green)),
    }
    previous = revisions.published_manifest(folder)
    if previous is not None and revisions.same_files(previous, {n: d for n, (d, _) in payloads.items()}):
        _drop(staged)
        return revisions.Published(folder, revisions.revision_of(previous), written=False)
    for name, (data, _) in payloads.items():
        _write_synced(staged / name, data)
    manifest: dict[str, Any] = {
        "format_version": c.EXPORT_FORMAT_VERSION,
        "revision": 1 if previous is None else revisions.revision_of(previous) + 1,
        "week": inputs.week,
        "window": inputs.by_team.window.as_dict(),
        "focus_version": focus.FOCUS_VERSION,
        "allocation_options": inputs.by_team.options,
        "files": {
            name: {"rows": rows, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, (data, rows) in sorted(payloads.items())
        },
        "totals": inputs.by_team.totals(),
    }
    if inputs.bills:
        manifest["bills"] = list(inputs.bills)
    if previous is not None:
        after = {str(r["team"]): Decimal(r["cost_usd"]) for r in teams}
        manifest["changes"] = revisions.changes(previous, folder, manifest, after)
        revisions.keep_previous(folder, staged, revisions.revision_of(previous))
    _write_synced(staged / c.EXPORT_MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    _fsync_dir(staged)
    _publish(staged, folder)
    return revisions.Published(folder, manifest["revision"], written=True, changes=manifest.get("changes", {}))
