"""Price tables: gpuledger's CSV format, the shipped default table, all-or-nothing imports.

CSV columns: provider,region,instance_type,capacity_type,gpu_model,gpus,price_per_hour_usd,
effective_from[,source]. Prices are parsed as Decimal and stored exactly (DECIMAL(28,10)).
A row's price is in force from effective_from until the next row for the same
(provider, region, instance_type, capacity_type).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path

import duckdb

from core import conventions as c
from core.errors import ConfigError, InputError
from core.money import parse_price
from core.timeutil import parse_ts
from core.warehouse import transaction

REQUIRED = (
    "provider",
    "region",
    "instance_type",
    "capacity_type",
    "gpu_model",
    "gpus",
    "price_per_hour_usd",
    "effective_from",
)
DEFAULT_TABLE = "prices-default.csv"


@dataclass(frozen=True)
class PriceRow:
    provider: str
    region: str
    instance_type: str
    capacity_type: str
    gpu_model: str
    gpus: int
    price_per_hour_usd: Decimal
    effective_from: datetime
    source: str


def default_table_text() -> str:
    return resources.files("collectors.data").joinpath(DEFAULT_TABLE).read_text(encoding="utf-8")


def parse_csv(text: str, source: str) -> list[PriceRow]:
    """Parse and validate every row; raise InputError(file, line) on the first bad one."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [col for col in REQUIRED if col not in header]
    if missing:
        raise InputError(source, f"missing column(s) {', '.join(missing)}; expected {','.join(REQUIRED)}[,source]", 1)
    rows = []
    for record in reader:
        line = reader.line_num
        rows.append(_row(record, source, line))
    if not rows:
        raise InputError(source, "no price rows")
    keys = [(r.provider, r.region, r.instance_type, r.capacity_type, r.effective_from) for r in rows]
    if len(set(keys)) != len(keys):
        raise InputError(source, "the same provider/region/instance_type/capacity_type/effective_from appears twice")
    return rows


def _row(record: dict[str, str | None], source: str, line: int) -> PriceRow:
    values = {k: (record.get(k) or "").strip() for k in (*REQUIRED, "source")}
    for col in ("provider", "region", "instance_type", "capacity_type", "gpus", "price_per_hour_usd", "effective_from"):
        if not values[col]:
            raise InputError(source, f"empty {col}", line)
    if values["capacity_type"] not in c.CAPACITY_TYPES:
        raise InputError(
            source, f"capacity_type {values['capacity_type']!r} is not one of {', '.join(c.CAPACITY_TYPES)}", line
        )
    if not values["gpus"].isdigit() or int(values["gpus"]) < 1:
        raise InputError(source, f"gpus {values['gpus']!r} must be a positive integer", line)
    try:
        effective = parse_ts(values["effective_from"])
    except ConfigError:
        raise InputError(source, f"effective_from {values['effective_from']!r} is not an ISO date", line) from None
    return PriceRow(
        provider=values["provider"],
        region=values["region"],
        instance_type=values["instance_type"],
        capacity_type=values["capacity_type"],
        gpu_model=values["gpu_model"],
        gpus=int(values["gpus"]),
        price_per_hour_usd=parse_price(values["price_per_hour_usd"], source, line),
        effective_from=effective,
        source=values["source"] or f"{Path(source).name}:{line}",
    )


def read_file(path: Path) -> list[PriceRow]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    return parse_csv(text, str(path))


def store(con: duckdb.DuckDBPyConnection, rows: list[PriceRow]) -> int:
    """Upsert all rows in one transaction; returns how many rows were new or changed."""
    before = _snapshot(con)
    with transaction(con):
        con.executemany(
            f"""INSERT INTO {c.T_PRICES} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (provider, region, instance_type, capacity_type, effective_from) DO UPDATE SET
                gpu_model = excluded.gpu_model, gpus = excluded.gpus,
                price_per_hour_usd = excluded.price_per_hour_usd, source = excluded.source""",
            [
                [
                    r.provider,
                    r.region,
                    r.instance_type,
                    r.capacity_type,
                    r.gpu_model,
                    r.gpus,
                    r.price_per_hour_usd,
                    r.effective_from,
                    r.source,
                ]
                for r in rows
            ],
        )
    return len(_snapshot(con) - before)


def _snapshot(con: duckdb.DuckDBPyConnection) -> set[tuple[object, ...]]:
    return set(con.execute(f"SELECT * FROM {c.T_PRICES}").fetchall())
