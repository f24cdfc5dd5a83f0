"""Weekly chargeback export: one folder per ISO week, byte-stable, atomic, self-describing.

exports/<YYYY>-W<ww>/
  chargeback.csv, chargeback.parquet   one row per team (+ __idle__, __unallocated__, __shared__)
  workloads.csv                        the same costs per team, namespace and workload
  focus-1.2.csv                        FOCUS 1.2 rows (team x day x cluster x node pool x price row)
  manifest.json                        rows, bytes and sha256 of every file, and the week's totals

Re-running an export writes identical bytes (no run time is stored; rows are sorted; Parquet
writer options are pinned). Each file goes to a temp name and is renamed into place, so a reader
sees the previous file or the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from analytics.ledger import ChargebackReport
from analytics.prices import PriceInfo
from app import focus
from app.render import csv_text
from core import conventions as c
from core.timeutil import iso

COLUMNS = (
    "week",
    "window_start",
    "window_end",
    "team",
    "gpu_hours",
    "used_gpu_hours",
    "efficiency",
    "allocated_cost_usd",
    "idle_share_usd",
    "shared_share_usd",
    "adjustment_usd",
    "cost_usd",
    "unused_cost_usd",
    "monthly_budget_usd",
    "price_sources",
)
WORKLOAD_COLUMNS = (
    "week",
    "team",
    "namespace",
    "workload",
    "gpu_hours",
    "used_gpu_hours",
    "efficiency",
    "allocated_cost_usd",
    "idle_share_usd",
    "shared_share_usd",
    "cost_usd",
    "unused_cost_usd",
    "price_sources",
)
MONEY = ("allocated_cost_usd", "idle_share_usd", "shared_share_usd", "adjustment_usd", "cost_usd", "unused_cost_usd")
FOCUS_FILE = f"focus-{focus.FOCUS_VERSION}.csv"


@dataclass(frozen=True)
class WeeklyInputs:
    week: str
    by_team: ChargebackReport
    by_workload: ChargebackReport
    for_focus: ChargebackReport
    prices: dict[str, PriceInfo]
    budgets: dict[str, Decimal]
    account: str = "default"


def _row(
    week: str, report: ChargebackReport, row: Any, columns: tuple[str, ...], extra: dict[str, Any]
) -> dict[str, Any]:
    d = row.as_dict()
    out = {"week": week, "window_start": iso(report.window.start), "window_end": iso(report.window.end), **d, **extra}
    out["price_sources"] = "; ".join(d["price_sources"])
    for m in MONEY:
        if m in out:
            out[m] = Decimal(out[m]).quantize(Decimal("0.01"))
    return {k: out.get(k) for k in columns}


def team_rows(inputs: WeeklyInputs) -> list[dict[str, Any]]:
    rep = inputs.by_team
    return [
        _row(inputs.week, rep, r, COLUMNS, {"monthly_budget_usd": inputs.budgets.get(r.keys["team"])}) for r in rep.rows
    ]


def workload_rows(inputs: WeeklyInputs) -> list[dict[str, Any]]:
    rep = inputs.by_workload
    rows = [_row(inputs.week, rep, r, WORKLOAD_COLUMNS, {}) for r in rep.rows]
    return sorted(rows, key=lambda r: (r["team"], r["namespace"], r["workload"]))


def _parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    schema = pa.schema(
        [pa.field(col, pa.string()) for col in ("week", "window_start", "window_end", "team")]
        + [pa.field(col, pa.float64()) for col in ("gpu_hours", "used_gpu_hours", "efficiency")]
        + [
            pa.field(col, pa.decimal128(18, 2))
            for col in (
                "allocated_cost_usd",
                "idle_share_usd",
                "shared_share_usd",
                "adjustment_usd",
                "cost_usd",
                "unused_cost_usd",
                "monthly_budget_usd",
            )
        ]
        + [pa.field("price_sources", pa.string())]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_statistics=True, use_dictionary=True)
    return bytes(sink.getvalue().to_pybytes())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_weekly(inputs: WeeklyInputs, out_root: Path) -> Path:
    """Write exports/<YYYY>-W<ww>/ and return the folder."""
    folder = out_root / inputs.week
    folder.mkdir(parents=True, exist_ok=True)
    teams = team_rows(inputs)
    workloads = workload_rows(inputs)
    focus_rows = focus.focus_rows(inputs.for_focus, inputs.prices, inputs.account)
    payloads = {
        f"{c.EXPORT_CHARGEBACK_BASENAME}.csv": (csv_text(teams, COLUMNS).encode("utf-8"), len(teams)),
        f"{c.EXPORT_CHARGEBACK_BASENAME}.parquet": (_parquet_bytes(teams), len(teams)),
        "workloads.csv": (csv_text(workloads, WORKLOAD_COLUMNS).encode("utf-8"), len(workloads)),
        FOCUS_FILE: (csv_text(focus_rows, focus.COLUMNS).encode("utf-8"), len(focus_rows)),
    }
    for name, (data, _) in payloads.items():
        _atomic_write(folder / name, data)
    manifest = {
        "format_version": c.EXPORT_FORMAT_VERSION,
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
    _atomic_write(folder / c.EXPORT_MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return folder
