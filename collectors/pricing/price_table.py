"""Price tables: the row every importer produces, gpuledger's CSV format, all-or-nothing stores.

CSV columns: provider,region,instance_type,capacity_type,gpu_model,gpus,price_per_hour_usd,
effective_from, and optionally source, zone, term, gpu_price_per_hour_usd, sku, fetched_at.
Prices are parsed as Decimal and stored exactly (DECIMAL(28,10): derived rates such as an upfront fee
spread over a term are rounded once, half-even, to those 10 places before storing, so what a parser
returns is what the warehouse holds). A row's price is in force from effective_from until the next
row for the same (provider, region, zone, instance_type, capacity_type).

The provider importers (pricing_aws, pricing_gcp, pricing_azure, pricing_onprem) build PriceRows and
hand them to finish(), which applies the GPU share, the fetch time and the region filter, rejects
conflicting duplicates and refuses an import with no GPU rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from core import conventions as c
from core.errors import ConfigError, InputError
from core.money import parse_price
from core.settings import PricingSettings
from core.store.warehouse import transaction
from core.timeutil import parse_ts

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
OPTIONAL = ("source", "zone", "term", "gpu_price_per_hour_usd", "sku", "fetched_at")
DEFAULT_TABLE = "prices-default.csv"
STORED_PLACES = Decimal("1e-10")  # DECIMAL(28, 10)


@dataclass(frozen=True)
class PriceRow:
    provider: str
    region: str
    instance_type: str
    capacity_type: str
    gpu_model: str
    gpus: int
    price_per_hour_usd: Decimal  # the whole node (instance, machine, server) per hour
    effective_from: datetime
    source: str  # file or URL, and what in it
    zone: str = ""  # availability zone ('' = the whole region)
    term: str = ""  # reservation term, e.g. '1yr No Upfront standard' ('' for on-demand and spot)
    gpu_price_per_hour_usd: Decimal | None = None  # the GPUs' part of the node price; None = price x GPU share
    sku: str = ""  # the provider's id of the price (AWS rate code, GCP SKU ids, Azure meter id)
    fetched_at: datetime | None = None
    # on-prem rows that charge measured energy (collectors/pricing/from_settings.py): $ per kWh, PUE included, and the
    # nameplate power in the GPU part per node-hour, which the GPUs' measured kWh replace where they report it
    energy_usd_per_kwh: Decimal | None = None
    gpu_energy_usd_per_hour: Decimal | None = None

    @property
    def key(self) -> tuple[str, str, str, str, str, datetime]:
        return (self.provider, self.region, self.zone, self.instance_type, self.capacity_type, self.effective_from)


@dataclass(frozen=True)
class ImportOptions:
    """What an import needs from the settings (passed in: importers never read settings)."""

    gpu_share: Decimal = Decimal(1)
    reserved_term: str = "1yr"
    reserved_purchase_option: str = "No Upfront"
    fetched_at: datetime | None = None
    regions: frozenset[str] = frozenset()  # keep only these regions (empty: all)
    max_bytes: int = 2048 * 2**20  # a file (decompressed) larger than this is refused before it is parsed

    @classmethod
    def from_settings(
        cls, pricing: PricingSettings, fetched_at: datetime | None = None, regions: tuple[str, ...] = ()
    ) -> ImportOptions:
        return cls(
            pricing.gpu_share,
            pricing.reserved_term,
            pricing.reserved_purchase_option,
            fetched_at,
            frozenset(regions),
            pricing.max_file_mb * 2**20,
        )


@dataclass
class Parsed:
    """Rows ready to store, and what the importer skipped (reason -> count), for the summary line."""

    rows: list[PriceRow]
    skipped: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        if not self.skipped:
            return ""
        return "; skipped " + ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))


def stored(value: Decimal) -> Decimal:
    """The value the warehouse will hold (10 decimal places, half-even)."""
    return value.quantize(STORED_PLACES, rounding=ROUND_HALF_EVEN)


def finish(rows: list[PriceRow], source: str, options: ImportOptions, skipped: Counter[str] | None = None) -> Parsed:
    """Apply the GPU share, fetch time and region filter; refuse conflicts and empty imports."""
    skipped = Counter() if skipped is None else skipped
    out: dict[tuple[str, str, str, str, str, datetime], PriceRow] = {}
    for row in rows:
        if options.regions and row.region not in options.regions:
            skipped["in other regions"] += 1
            continue
        gpu_part = row.gpu_price_per_hour_usd
        row = replace(
            row,
            price_per_hour_usd=stored(row.price_per_hour_usd),
            gpu_price_per_hour_usd=stored(row.price_per_hour_usd * options.gpu_share if gpu_part is None else gpu_part),
            fetched_at=row.fetched_at or options.fetched_at,
            energy_usd_per_kwh=_stored_or_none(row.energy_usd_per_kwh),
            gpu_energy_usd_per_hour=_stored_or_none(row.gpu_energy_usd_per_hour),
        )
        if row.gpu_price_per_hour_usd is not None and row.gpu_price_per_hour_usd > row.price_per_hour_usd:
            raise InputError(source, f"the GPUs' part of {'/'.join(str(k) for k in row.key)} exceeds its node price")
        previous = out.get(row.key)
        if previous is not None and previous != row:
            raise InputError(source, f"two different prices for {'/'.join(str(k) for k in row.key)}")
        out[row.key] = row
    if not out:
        raise InputError(source, "no GPU price rows" + (Parsed([], skipped).summary() or ""))
    return Parsed(sorted(out.values(), key=lambda r: tuple(str(k) for k in r.key)), skipped)


def _stored_or_none(value: Decimal | None) -> Decimal | None:
    return None if value is None else stored(value)


# What walking a document of an unexpected shape raises (a list where an object belongs, a number where
# a string does, a missing key). Price files are untrusted input: that is the file's error, not ours.
STRUCTURE_ERRORS = (AttributeError, TypeError, KeyError, IndexError, ValueError, ArithmeticError, csv.Error)


@contextmanager
def input_structure(source: str) -> Iterator[None]:
    """Translate a malformed document's shape errors into InputError naming the file, once, at the boundary."""
    try:
        yield
    except STRUCTURE_ERRORS as exc:
        raise InputError(source, f"unexpected document structure ({type(exc).__name__}: {str(exc)[:120]})") from None


def load_json(text: str, source: str) -> Any:
    """JSON with every non-integer number as Decimal (never float); a syntax error names line and column."""
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise InputError(source, f"not valid JSON: {exc.msg} (column {exc.colno})", exc.lineno) from None
    except RecursionError:
        raise InputError(source, "JSON nested deeper than any price list (refused)") from None


def money(value: object, source: str, where: str) -> Decimal:
    """A price from a JSON field (string or number), exact, non-negative; errors name the field."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InputError(source, f"{where}: price {value!r} is not a number")
    return parse_price(str(value), f"{source}: {where}")


def timestamp(value: object, source: str, where: str) -> datetime:
    try:
        return parse_ts(str(value)) if isinstance(value, str) else parse_ts("")
    except ConfigError:
        raise InputError(source, f"{where}: {value!r} is not an ISO timestamp") from None


def default_table_text() -> str:
    return resources.files("collectors.pricing.data").joinpath(DEFAULT_TABLE).read_text(encoding="utf-8")


def parse_csv(text: str, source: str, options: ImportOptions | None = None) -> list[PriceRow]:
    """Parse and validate every row; raise InputError(file, line) on the first bad one."""
    options = options or ImportOptions()
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [col for col in REQUIRED if col not in header]
    if missing:
        raise InputError(source, f"missing column(s) {', '.join(missing)}; expected {','.join(REQUIRED)}[,source]", 1)
    rows = []
    for record in reader:
        rows.append(_row(record, source, reader.line_num))
    if not rows:
        raise InputError(source, "no price rows")
    if len({r.key for r in rows}) != len(rows):
        raise InputError(
            source, "the same provider/region/zone/instance_type/capacity_type/effective_from appears twice"
        )
    return finish(rows, source, options).rows


def _row(record: dict[str, str | None], source: str, line: int) -> PriceRow:
    values = {k: (record.get(k) or "").strip() for k in (*REQUIRED, *OPTIONAL)}
    for col in ("provider", "region", "instance_type", "capacity_type", "gpus", "price_per_hour_usd", "effective_from"):
        if not values[col]:
            raise InputError(source, f"empty {col}", line)
    if values["capacity_type"] not in c.CAPACITY_TYPES:
        raise InputError(
            source, f"capacity_type {values['capacity_type']!r} is not one of {', '.join(c.CAPACITY_TYPES)}", line
        )
    if not values["gpus"].isdigit() or int(values["gpus"]) < 1:
        raise InputError(source, f"gpus {values['gpus']!r} must be a positive integer", line)
    gpu_part = values["gpu_price_per_hour_usd"]
    return PriceRow(
        provider=values["provider"],
        region=values["region"],
        instance_type=values["instance_type"],
        capacity_type=values["capacity_type"],
        gpu_model=values["gpu_model"],
        gpus=int(values["gpus"]),
        price_per_hour_usd=parse_price(values["price_per_hour_usd"], source, line),
        effective_from=_ts(values["effective_from"], "effective_from", source, line),
        source=values["source"] or f"{Path(source).name}:{line}",
        zone=values["zone"],
        term=values["term"],
        gpu_price_per_hour_usd=parse_price(gpu_part, source, line) if gpu_part else None,
        sku=values["sku"],
        fetched_at=_ts(values["fetched_at"], "fetched_at", source, line) if values["fetched_at"] else None,
    )


def _ts(text: str, column: str, source: str, line: int) -> datetime:
    try:
        return parse_ts(text)
    except ConfigError:
        raise InputError(source, f"{column} {text!r} is not an ISO date", line) from None


def read_file(path: Path, options: ImportOptions | None = None) -> list[PriceRow]:
    """A price CSV file (see import_file in pricing_import for every format)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    return parse_csv(text, str(path), options)


COLUMNS = (
    "provider, region, zone, instance_type, capacity_type, term, gpu_model, gpus, price_per_hour_usd, "
    f"gpu_price_per_hour_usd, effective_from, source, sku, fetched_at, {c.COL_ENERGY_USD_PER_KWH}, "
    f"{c.COL_GPU_ENERGY_USD_PER_HOUR}"
)


# The stored columns' ranges: DECIMAL(28, 10) keeps 18 integer digits, gpus is an INTEGER.
MAX_PRICE = Decimal(10) ** 18
MAX_GPUS = 2**31 - 1


def _check_storable(rows: list[PriceRow], force: bool) -> None:
    for r in rows:
        for what, value in (("price", r.price_per_hour_usd), ("GPU price", r.gpu_price_per_hour_usd)):
            if value is not None and abs(value) >= MAX_PRICE:
                raise InputError(r.source or "prices", f"{r.instance_type}: {what} {value} is out of range")
        if not 0 < r.gpus <= MAX_GPUS:
            raise InputError(r.source or "prices", f"{r.instance_type}: {r.gpus} GPUs is out of range")
        per_gpu = (r.gpu_price_per_hour_usd if r.gpu_price_per_hour_usd is not None else r.price_per_hour_usd) / r.gpus
        if per_gpu > c.MAX_PLAUSIBLE_GPU_HOUR_USD and not force:
            raise InputError(
                r.source or "prices",
                f"{r.instance_type} ({r.capacity_type}, {r.region}): ${per_gpu:.2f} per GPU-hour is above "
                f"${c.MAX_PLAUSIBLE_GPU_HOUR_USD} (no GPU rents for that; pass --force if it is real)",
            )


@dataclass(frozen=True)
class Restated:
    """A stored price row a file would change: the bills from `effective_from` on move."""

    key: tuple[str, str, str, str, str, datetime]
    old: Decimal
    new: Decimal

    def describe(self) -> str:
        provider, region, zone, itype, ctype, since = self.key
        where = f"{itype} {ctype} {region}{'/' + zone if zone else ''} ({provider})"
        if self.old == self.new:  # the price is the same: how its power is charged changes
            return f"{where} from {since:%Y-%m-%dT%H:%M:%SZ}: the GPUs' power charged as measured or nameplate"
        return (
            f"{where} from {since:%Y-%m-%dT%H:%M:%SZ}: ${self.old.normalize():f} -> ${self.new.normalize():f} per hour"
        )


def restated(con: duckdb.DuckDBPyConnection, rows: list[PriceRow]) -> list[Restated]:
    """The stored rows these rows would change (same key, another node or GPU price)."""
    stored = {
        tuple(r[:6]): tuple(r[6:])
        for r in con.execute(
            f"""SELECT provider, region, zone, instance_type, capacity_type, effective_from, price_per_hour_usd,
                gpu_price_per_hour_usd, {c.COL_ENERGY_USD_PER_KWH}, {c.COL_GPU_ENERGY_USD_PER_HOUR} FROM {c.T_PRICES}"""
        ).fetchall()
    }
    out = []
    for r in rows:
        old = stored.get(r.key)
        gpu_part = r.price_per_hour_usd if r.gpu_price_per_hour_usd is None else r.gpu_price_per_hour_usd
        # measured energy charged or not moves the bills as a price does
        new = (r.price_per_hour_usd, gpu_part, r.energy_usd_per_kwh, r.gpu_energy_usd_per_hour)
        if old is not None and old != new:
            out.append(Restated(r.key, old[0], r.price_per_hour_usd))
    return sorted(out, key=lambda x: x.key)


@dataclass(frozen=True)
class Stored:
    changed: int  # rows new or changed
    restated: list[Restated]  # stored prices replaced (only with `replace`)


def store(con: duckdb.DuckDBPyConnection, rows: list[PriceRow], replace: bool = False, force: bool = False) -> Stored:
    """Upsert all rows in one transaction. A row that would change a stored price (past bills move) is
    refused unless `replace`; a price per GPU-hour above c.MAX_PLAUSIBLE_GPU_HOUR_USD unless `force`."""
    _check_storable(rows, force)
    moved = restated(con, rows)
    if moved and not replace:
        first = moved[0]
        more = f" (and {len(moved) - 1} more)" if len(moved) > 1 else ""
        raise InputError(
            rows[0].source or "prices",
            f"would change a stored price, and the bills that used it: {first.describe()}{more}; pass --replace to do so",
        )
    before = _snapshot(con)
    try:
        _upsert(con, rows)
    except (duckdb.ConversionException, duckdb.ConstraintException, duckdb.InvalidInputException) as exc:
        # rolled back already: a value the checks above did not foresee is still the file's fault
        raise InputError(rows[0].source if rows else "prices", f"cannot store: {str(exc).splitlines()[0]}") from None
    return Stored(len(_snapshot(con) - before), moved)


def _upsert(con: duckdb.DuckDBPyConnection, rows: list[PriceRow]) -> None:
    with transaction(con):
        con.executemany(
            f"""INSERT INTO {c.T_PRICES} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (provider, region, zone, instance_type, capacity_type, effective_from) DO UPDATE SET
                term = excluded.term, gpu_model = excluded.gpu_model, gpus = excluded.gpus,
                price_per_hour_usd = excluded.price_per_hour_usd,
                gpu_price_per_hour_usd = excluded.gpu_price_per_hour_usd, source = excluded.source,
                sku = excluded.sku, fetched_at = excluded.fetched_at,
                {c.COL_ENERGY_USD_PER_KWH} = excluded.{c.COL_ENERGY_USD_PER_KWH},
                {c.COL_GPU_ENERGY_USD_PER_HOUR} = excluded.{c.COL_GPU_ENERGY_USD_PER_HOUR}""",
            [_values(r) for r in rows],
        )


def _values(r: PriceRow) -> list[object]:
    gpu_part = r.price_per_hour_usd if r.gpu_price_per_hour_usd is None else r.gpu_price_per_hour_usd
    return [
        r.provider,
        r.region,
        r.zone,
        r.instance_type,
        r.capacity_type,
        r.term,
        r.gpu_model,
        r.gpus,
        r.price_per_hour_usd,
        gpu_part,
        r.effective_from,
        r.source,
        r.sku,
        r.fetched_at,
        r.energy_usd_per_kwh,
        r.gpu_energy_usd_per_hour,
    ]


def _snapshot(con: duckdb.DuckDBPyConnection) -> set[tuple[object, ...]]:
    return set(con.execute(f"SELECT * FROM {c.T_PRICES}").fetchall())
