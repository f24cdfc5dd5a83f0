"""Hourly grid carbon intensity: history exports of Electricity Maps and WattTime, or a plain CSV, into the warehouse.

Formats (`--format`, else told apart by the file's first bytes):
- `electricitymaps`: the CSV of Electricity Maps' datasets (`Datetime (UTC)`, `Zone Id`, `Carbon Intensity gCO₂eq/kWh
  (direct)` and `(LCA)`, or `Carbon intensity gCO₂eq/kWh (direct)` / `(Life cycle)` in newer files), hourly or
  finer. `--factor direct` (operational emissions, as the GHG Protocol's location-based scope 2 and the shipped
  annual table) or `lifecycle` (Electricity Maps' default).
- `watttime`: the JSON WattTime's v3 `historical` endpoint returns (`data` of `point_time`, `value`; `meta` with
  `region`, `units` lbs_co2_per_mwh and `signal_type`), 5-minute points. MOER is a *marginal* rate (what one more
  kWh emits), not the grid's average: the docs say when to use which.
- `csv`: `zone,hour,gco2e_per_kwh` (hour in ISO 8601, UTC).

Points within an hour are averaged (each hour's mean of its points); values are Decimal gCO2e/kWh (WattTime's
pounds per MWh x 0.45359237). A bad line stops the import naming the file and line; the warehouse keeps what it
had. An import replaces the (zone, hour) rows it brings and keeps the others.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

from core import conventions as c
from core.errors import InputError
from core.progress import SILENT, Progress
from core.store.warehouse import open_warehouse, transaction

Format = Literal["electricitymaps", "watttime", "csv"]
FORMATS: tuple[Format, ...] = ("electricitymaps", "watttime", "csv")
Factor = Literal["direct", "lifecycle"]
LB_PER_MWH_AS_G_PER_KWH = Decimal("0.45359237")  # 453.59237 g per lb, 1,000 kWh per MWh
MAX_G_PER_KWH = Decimal(5000)
_EM_TIME = "Datetime (UTC)"
_EM_ZONE = ("Zone Id", "Zone Name")
_EM_VALUE = {
    "direct": ("Carbon Intensity gCO₂eq/kWh (direct)", "Carbon intensity gCO₂eq/kWh (direct)"),
    "lifecycle": ("Carbon Intensity gCO₂eq/kWh (LCA)", "Carbon intensity gCO₂eq/kWh (Life cycle)"),
}

Points = dict[tuple[str, datetime], list[Decimal]]  # (zone, hour) -> the points in it


@dataclass
class HourlyImport:
    files: int = 0
    points: int = 0
    hours: int = 0  # (zone, hour) rows written
    zones: dict[str, str] = field(default_factory=dict)  # zone -> its source (format, signal or factor)


def _hour(text: str, source: str, line: int) -> datetime:
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(source, f"{text!r} is not a time (ISO 8601, UTC)", line) from None
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t.replace(minute=0, second=0, microsecond=0)


def _value(text: str, source: str, line: int, scale: Decimal = Decimal(1)) -> Decimal:
    try:
        value = Decimal(text.strip()) * scale
    except InvalidOperation:
        raise InputError(source, f"{text!r} is not a number", line) from None
    if not value.is_finite() or value < 0 or value > MAX_G_PER_KWH:
        raise InputError(source, f"{value} gCO2e/kWh is not an intensity (0 to {MAX_G_PER_KWH})", line)
    return value


def _rows(text: str, source: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """A CSV's header and its (line, row) pairs, blank lines skipped."""
    reader = csv.DictReader(io.StringIO(text))
    rows = [(reader.line_num, row) for row in reader if any((v or "").strip() for v in row.values())]
    return list(reader.fieldnames or []), rows


def _electricitymaps(text: str, source: str, factor: Factor, out: Points) -> str:
    header, rows = _rows(text, source)
    value_col = next((col for col in _EM_VALUE[factor] if col in header), None)
    zone_col = next((col for col in _EM_ZONE if col in header), None)
    if _EM_TIME not in header or value_col is None or zone_col is None:
        want = f"{_EM_TIME!r}, {' or '.join(map(repr, _EM_ZONE))} and {' or '.join(map(repr, _EM_VALUE[factor]))}"
        raise InputError(source, f"not an Electricity Maps export: the header needs {want}", 1)
    for line, row in rows:
        zone = (row.get(zone_col) or "").strip()
        if not zone:
            raise InputError(source, f"no {zone_col}", line)
        out[(zone, _hour(row[_EM_TIME] or "", source, line))].append(_value(row[value_col] or "", source, line))
    return f"electricitymaps ({factor})"


def _watttime(text: str, source: str, zone: str | None, out: Points) -> str:
    try:
        doc = json.loads(text)
        meta, data = doc.get("meta") or {}, doc["data"]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise InputError(source, "not a WattTime historical answer (a JSON object with `data` and `meta`)") from None
    units = meta.get("units", "lbs_co2_per_mwh")
    if units != "lbs_co2_per_mwh":
        raise InputError(source, f"units {units!r}: gpuledger reads lbs_co2_per_mwh")
    region = zone or meta.get("region")
    if not region:
        raise InputError(source, "no zone: `meta.region` is missing (give --zone)")
    for n, point in enumerate(data, 1):  # a JSON array has no lines: the point's number stands in for one
        if not isinstance(point, dict) or "point_time" not in point or "value" not in point:
            raise InputError(source, "a point needs point_time and value", n)
        value = _value(str(point["value"]), source, n, LB_PER_MWH_AS_G_PER_KWH)
        out[(region, _hour(str(point["point_time"]), source, n))].append(value)
    return f"watttime ({meta.get('signal_type', 'co2_moer')})"


def _plain(text: str, source: str, out: Points) -> str:
    header, rows = _rows(text, source)
    missing = [col for col in ("zone", "hour", "gco2e_per_kwh") if col not in header]
    if missing:
        raise InputError(source, f"the header lacks {', '.join(missing)} (zone,hour,gco2e_per_kwh)", 1)
    for line, row in rows:
        zone = (row.get("zone") or "").strip()
        if not zone:
            raise InputError(source, "no zone", line)
        out[(zone, _hour(row["hour"] or "", source, line))].append(_value(row["gco2e_per_kwh"] or "", source, line))
    return "csv"


def detect(text: str) -> Format:
    """The format of a file from its first bytes: JSON is WattTime's, a CSV with Electricity Maps' time column theirs."""
    head = text.lstrip("\ufeff \n")[:2000]
    if head.startswith("{"):
        return "watttime"
    first = head.splitlines()[0] if head else ""
    return "electricitymaps" if _EM_TIME in first else "csv"


def read(path: Path, fmt: Format | None, zone: str | None, factor: Factor) -> tuple[Points, str]:
    """(zone, hour) -> the file's points in that hour, and what the file is (its source label)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source, f"cannot read: {exc}") from None
    out: Points = defaultdict(list)
    kind = fmt or detect(text)
    if kind == "watttime":
        label = _watttime(text, source, zone, out)
    elif kind == "electricitymaps":
        label = _electricitymaps(text, source, factor, out)
    else:
        label = _plain(text, source, out)
    if not out:
        raise InputError(source, "no intensity in the file")
    return out, label


def import_hourly(
    warehouse: Path,
    paths: list[Path],
    fmt: Format | None = None,
    zone: str | None = None,
    factor: Factor = "direct",
    progress: Progress = SILENT,
) -> HourlyImport:
    """Read every file (all of them before writing anything), then replace their (zone, hour) rows in one transaction."""
    result = HourlyImport(files=len(paths))
    hours: dict[tuple[str, datetime], Decimal] = {}
    sources: dict[tuple[str, datetime], str] = {}
    progress.begin("reading intensity files", len(paths), "files")
    try:
        for path in paths:
            points, label = read(path, fmt, zone, factor)
            for key, values in points.items():
                hours[key] = sum(values, Decimal(0)) / len(values)
                sources[key] = f"{label}: {path.name}"
                result.zones[key[0]] = label
            result.points += sum(len(v) for v in points.values())
            progress.step(file=path.name, samples=sum(len(v) for v in points.values()))
    finally:
        progress.end()
    rows = [(z, h, v.quantize(Decimal("0.000001")), sources[(z, h)]) for (z, h), v in sorted(hours.items())]
    with open_warehouse(warehouse) as con, transaction(con):
        con.execute("CREATE TEMP TABLE carbon_in (zone VARCHAR, hour TIMESTAMP, g DECIMAL(18, 6), source VARCHAR)")
        con.executemany("INSERT INTO carbon_in VALUES (?, ?, ?, ?)", rows)
        con.execute(f"DELETE FROM {c.T_CARBON_HOURLY} WHERE (zone, hour) IN (SELECT zone, hour FROM carbon_in)")
        con.execute(f"INSERT INTO {c.T_CARBON_HOURLY} SELECT zone, hour, g, source, now()::TIMESTAMP FROM carbon_in")
    result.hours = len(rows)
    return result
