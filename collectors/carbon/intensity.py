"""Grid carbon intensity tables: the annual averages shipped with gpuledger, and a user's own over them.

A user's table (`carbon.intensity_file`) has the same layout; its rows replace the shipped ones region by region.

Layout: CSV with a header `provider,region,gco2e_per_kwh[,source,year]`; lines starting with `#` are comments
(the shipped file states its sources and years there). Values are parsed as Decimal; a bad line stops the load
naming the file and line.
"""

from __future__ import annotations

import csv
import functools
import io
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path

from core.errors import InputError

DEFAULT_TABLE = "grid_intensity_annual.csv"
_REQUIRED = ("provider", "region", "gco2e_per_kwh")


def parse(text: str, source: str) -> dict[str, Decimal]:
    """region -> gCO2e per kWh, from a table's text."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]
    if not lines:
        raise InputError(source, "no header line (provider,region,gco2e_per_kwh)")
    header_line, header = lines[0]
    columns = next(csv.reader(io.StringIO(header)))
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise InputError(source, f"the header lacks {', '.join(missing)}", header_line)
    out: dict[str, Decimal] = {}
    for n, line in lines[1:]:
        row = dict(zip(columns, next(csv.reader(io.StringIO(line))), strict=False))
        region = (row.get("region") or "").strip()
        try:
            value = Decimal((row.get("gco2e_per_kwh") or "").strip())
        except InvalidOperation:
            raise InputError(source, f"gco2e_per_kwh {row.get('gco2e_per_kwh')!r} is not a number", n) from None
        if not region or not value.is_finite() or value < 0 or value > 5000:
            raise InputError(source, "needs a region and a gco2e_per_kwh between 0 and 5,000", n)
        out[region] = value
    return out


@functools.cache
def _shipped() -> tuple[tuple[str, Decimal], ...]:
    text = resources.files("collectors.carbon.data").joinpath(DEFAULT_TABLE).read_text(encoding="utf-8")
    return tuple(parse(text, DEFAULT_TABLE).items())


def default_table() -> dict[str, Decimal]:
    """The shipped annual averages (read once per process: every report's options carry them)."""
    return dict(_shipped())


def load(path: Path | None) -> dict[str, Decimal]:
    """The shipped table, with a user's table's regions over it."""
    table = default_table()
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
        table.update(parse(text, str(path)))
    return table
