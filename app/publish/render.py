"""Rendering report rows as a text table, JSON or CSV (spreadsheet-safe)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

# Cells starting with these are formulas to a spreadsheet; finance opens our CSVs in one (OWASP's list,
# plus the full-width forms some spreadsheet imports fold into ASCII).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def safe_cell(value: Any) -> Any:
    """Neutralise spreadsheet formula injection in text cells (numbers pass through)."""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        try:
            float(value)
            return value
        except ValueError:
            return "'" + value
    return value


def safe_filename(name: str, limit: int = 200) -> str:
    """A file name from untrusted parts (team names): one path segment, no control or shell-special
    characters, never hidden or empty. Letters in any script stay; everything else becomes `_`."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-_.+@" else "_" for ch in name)
    cleaned = cleaned.lstrip(".") or "_"
    return cleaned[:limit]


def _cell(value: Any, decimals: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, float):
        text = f"{value:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_cell(r.get(col)) for col in columns] for r in rows]
    widths = [max([len(col)] + [len(row[i]) for row in cells]) for i, col in enumerate(columns)]
    line = "  ".join(col.ljust(widths[i]) for i, col in enumerate(columns))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in cells:
        out.append("  ".join(v.rjust(widths[i]) if _numeric(v) else v.ljust(widths[i]) for i, v in enumerate(row)))
    return "\n".join(out)


def _numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([safe_cell(_cell(r.get(col), decimals=9)) for col in columns])
    return buf.getvalue()


def json_text(data: Any) -> str:
    """Strict JSON: a number that is not finite (NaN, ±Infinity are not JSON) is written as null."""
    try:
        return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False) + "\n"
    except ValueError:
        return json.dumps(_finite(data), indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False) + "\n"


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data
