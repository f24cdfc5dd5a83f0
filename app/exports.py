"""Weekly chargeback export: CSV + Parquet + manifest.json for one ISO week, byte-stable and atomic.

Re-running an export writes identical bytes (nothing volatile is stored: no run time, sorted rows,
pinned Parquet writer options). Each file is written to a temp name and renamed into place, so a
reader sees the previous file or the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from analytics.ledger import ChargebackReport
from app.render import csv_text
from core import conventions as c
from core.timeutil import iso

# Export columns, in order (documented in the README, "Weekly exports").
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
    "price_sources",
)
MONEY = ("allocated_cost_usd", "idle_share_usd", "shared_share_usd", "adjustment_usd", "cost_usd")


def export_rows(week: str, report: ChargebackReport) -> list[dict[str, Any]]:
    rows = []
    for r in report.rows:
        d = r.as_dict()
        rows.append(
            {
                "week": week,
                "window_start": iso(report.window.start),
                "window_end": iso(report.window.end),
                "team": r.keys["team"],
                "gpu_hours": d["gpu_hours"],
                "used_gpu_hours": d["used_gpu_hours"],
                "efficiency": d["efficiency"],
                **{m: Decimal(d[m]).quantize(Decimal("0.01")) for m in MONEY},
                "price_sources": "; ".join(sorted(r.sources)),
            }
        )
    return rows


def _parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    schema = pa.schema(
        [pa.field(col, pa.string()) for col in ("week", "window_start", "window_end", "team")]
        + [pa.field(col, pa.float64()) for col in ("gpu_hours", "used_gpu_hours", "efficiency")]
        + [pa.field(col, pa.decimal128(18, 2)) for col in MONEY]
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


def write_weekly(week: str, report: ChargebackReport, out_root: Path) -> Path:
    """Write exports/<YYYY>-W<ww>/ and return the folder."""
    folder = out_root / week
    folder.mkdir(parents=True, exist_ok=True)
    rows = export_rows(week, report)
    payloads = {
        f"{c.EXPORT_CHARGEBACK_BASENAME}.csv": csv_text(rows, COLUMNS).encode("utf-8"),
        f"{c.EXPORT_CHARGEBACK_BASENAME}.parquet": _parquet_bytes(rows),
    }
    for name, data in payloads.items():
        _atomic_write(folder / name, data)
    manifest = {
        "format_version": c.EXPORT_FORMAT_VERSION,
        "week": week,
        "window": report.window.as_dict(),
        "files": {
            name: {"rows": len(rows), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in sorted(payloads.items())
        },
        "totals": report.totals(),
    }
    _atomic_write(folder / c.EXPORT_MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return folder
