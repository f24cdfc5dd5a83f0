"""`gpuledger billing import`: a provider's bill (FOCUS or AWS CUR 2.0) into billing_lines.

DuckDB reads the files directly (CSV, gzip CSV, Parquet; a folder is searched for them, so the
providers' hive-partitioned export folders `billing_period=YYYY-MM/...` import as they are), every
column as text, and formats.py maps them onto one layout. Everything is checked before anything is
written, and the write is one transaction: a refused bill leaves the warehouse as it was.

Refused, naming the file and row: a line whose times or amounts do not parse, a line that appears
twice (the same export imported twice, or overlapping files), a currency other than
`billing.currency` without a stated rate in `billing.rates`, a provider that cannot be told.

Kept: the lines of GPU instances (instance types the GPU catalog, the price table or the cluster's
GPU nodes name) and every line of a resource that is one of the cluster's nodes or of such an
instance (credits and refunds name the resource but no instance type). A re-import replaces the
billing periods it holds, per provider and billing account: providers restate a closed month for days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa

from collectors.billing import formats
from collectors.pricing import gpu_catalog
from core import conventions as c
from core.errors import InputError
from core.progress import SILENT, Progress
from core.settings import BillingSettings
from core.store.billing_sql import resource_key_sql
from core.store.rollups import bills
from core.store.sql import literal
from core.store.warehouse import one, open_warehouse

SUFFIXES = (".csv", ".csv.gz", ".parquet")


@dataclass
class BillImport:
    files: int = 0
    lines_read: int = 0
    lines_kept: int = 0
    periods: list[str] = field(default_factory=list)  # provider/account/YYYY-MM replaced
    effective_usd: Decimal = Decimal(0)  # of the kept lines, in the ledger's currency
    converted: dict[str, str] = field(default_factory=dict)  # currency -> rate used
    span: tuple[datetime, datetime] | None = None  # what the import changed: its lines' and the replaced ones' charges


def bill_files(paths: list[Path]) -> list[Path]:
    """The files to read: each file given, and every bill file under each folder given."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
            if not found:
                raise InputError(str(path), f"no bill files ({', '.join(SUFFIXES)}) in this folder")
            out += found
        elif path.is_file():
            out.append(path)
        else:
            raise InputError(str(path), "no such file or folder")
    return out


def import_bills(
    warehouse: Path,
    paths: list[Path],
    settings: BillingSettings,
    fmt: str | None = None,
    provider: str | None = None,
    now: datetime | None = None,
    progress: Progress = SILENT,
) -> BillImport:
    """Stage every bill file (reporting each), check and convert the lines, and commit them in one transaction."""
    files = bill_files(paths)
    result = BillImport(files=len(files))
    imported_at = (now or datetime.now(UTC)).replace(tzinfo=None)
    progress.begin("import bills", len(files) + 1, "steps")
    try:
        with open_warehouse(warehouse, memory_limit=settings.memory_limit) as con:
            con.execute("SET preserve_insertion_order = true")  # a line's row number is its place in its file
            con.execute(f"CREATE OR REPLACE TEMP TABLE bill_stage AS SELECT * FROM {c.T_BILLING_LINES} LIMIT 0")
            con.execute("ALTER TABLE bill_stage ADD COLUMN line_hash UBIGINT")
            con.execute("ALTER TABLE bill_stage ADD COLUMN provider_name VARCHAR")
            for path in files:
                _stage(con, path, fmt, imported_at, provider)
                progress.step(file=str(path), lines=_count(con, "bill_stage"))
            result.lines_read = _count(con, "bill_stage")
            _check_lines(con)
            result.converted = _convert(con, settings)
            _commit(con, result)
            progress.step(stage="commit", lines=result.lines_kept)
    finally:
        progress.end()
    return result


def _source(path: Path) -> str:
    """The file's lines, every column as text, with the line's hash (over its own columns only) and its
    row: a CSV's data row n is its line n + 1 (the header is line 1), a Parquet file's row n is row n."""
    name = literal(str(path))
    scan = (
        f"(SELECT COLUMNS(*)::VARCHAR FROM read_parquet({name}))"
        if path.name.endswith(".parquet")
        else f"read_csv({name}, all_varchar = true, header = true)"
    )
    header = 0 if path.name.endswith(".parquet") else 1
    return f"(SELECT r.*, hash(r) AS line_hash, row_number() OVER () + {header} AS source_row FROM {scan} r)"


def _provider_sql(provider: str | None) -> str:
    """A staged line's provider: --provider, else its ProviderName as gpuledger names providers ('' unknown)."""
    if provider:
        return literal(provider)
    whens = " ".join(f"WHEN {literal(name)} THEN {literal(p)}" for name, p in formats.PROVIDERS.items())
    return f"CASE provider_name {whens} ELSE '' END"


def _stage(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: str | None, imported_at: datetime, provider: str | None
) -> None:
    """Map one file's lines onto billing_lines' columns into bill_stage (unchecked yet)."""
    try:
        cur = con.execute(f"SELECT * FROM {_source(path)} LIMIT 0")
    except duckdb.Error as exc:
        raise InputError(str(path), f"cannot be read as a bill: {str(exc).splitlines()[0]}") from None
    columns = {d[0] for d in cur.description} - {"line_hash", "source_row"}
    chosen = formats.FORMATS[fmt] if fmt else formats.detect(columns)
    if chosen is None:
        raise InputError(
            str(path), "neither FOCUS (BilledCost) nor AWS CUR 2.0 (line_item_unblended_cost): pass --format"
        )
    missing = [col for col in chosen.required if col not in columns]
    if missing:
        raise InputError(str(path), f"not a {chosen.name} bill: no {', '.join(missing)} column")
    try:
        con.execute(
            f"""INSERT INTO bill_stage BY NAME
            WITH mapped AS (
                SELECT {formats.select_sql(chosen, columns)}, src.source_row, src.line_hash FROM {_source(path)} src)
            SELECT *, {literal(chosen.name)} AS format, {_provider_sql(provider)} AS provider,
                {resource_key_sql("resource_id")} AS resource_key, currency AS original_currency, 1 AS fx_rate,
                {literal(str(path))} AS source_file, {literal(imported_at.isoformat())}::TIMESTAMP AS imported_at
            FROM mapped"""
        )
    except duckdb.Error as exc:
        raise InputError(str(path), f"cannot be read as a bill: {str(exc).splitlines()[0]}") from None


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = one(con, f"SELECT count(*) FROM {table}")
    return int(row[0]) if row else 0


def _first_bad(con: duckdb.DuckDBPyConnection, where: str) -> tuple[str, int] | None:
    row = one(con, f"SELECT source_file, source_row FROM bill_stage WHERE {where} ORDER BY source_file, source_row")
    return (str(row[0]), int(row[1])) if row else None


_UNPARSED = {
    "billing_period": "its billing period start is not a date",
    "charge_start": "its charge period start is not a time",
    "charge_end": "its charge period end is not a time",
    "billed_cost": "its billed cost is not a number",
    "effective_cost": "its effective cost is not a number",
    "currency": "it names no currency",
    "charge_category": "it has no charge category",
    "billing_account_id": "it names no billing account",
}


def _check_lines(con: duckdb.DuckDBPyConnection) -> None:
    """Every line readable, its provider known and there once: one pass counts, then the first offender is named."""
    problems = {f"{col} IS NULL": what for col, what in _UNPARSED.items()}
    problems["charge_end < charge_start"] = "its charge period ends before it starts"
    problems["provider = ''"] = "provider {name!r} is not one gpuledger knows: pass --provider"
    counts = one(con, "SELECT " + ", ".join(f"count_if({cond})" for cond in problems) + " FROM bill_stage") or ()
    for (cond, what), n in zip(problems.items(), counts, strict=True):
        row = (
            one(con, f"SELECT source_file, source_row, provider_name FROM bill_stage WHERE {cond} ORDER BY ALL")
            if n
            else None
        )
        if row:
            raise InputError(str(row[0]), f"refused: {what.format(name=row[2])}; nothing was imported", int(row[1]))
    # the hashes first (a count per hash: a list per hash of 7 million lines does not fit in a gigabyte)
    twice = one(con, "SELECT line_hash FROM bill_stage GROUP BY line_hash HAVING count(*) > 1 LIMIT 1")
    if twice:
        rows = con.execute(
            "SELECT source_file || ':' || source_row FROM bill_stage WHERE line_hash = ? ORDER BY source_file, source_row",
            [twice[0]],
        ).fetchall()
        first, *others = (r[0] for r in rows)
        path, _, row = first.rpartition(":")
        raise InputError(path, f"refused: the same line again at {', '.join(others)}; nothing was imported", int(row))


def _convert(con: duckdb.DuckDBPyConnection, settings: BillingSettings) -> dict[str, str]:
    """Lines in another currency: converted at the stated rate, else refused."""
    used: dict[str, str] = {}
    for (currency,) in con.execute(
        "SELECT DISTINCT currency FROM bill_stage WHERE currency <> ? ORDER BY 1", [settings.currency]
    ).fetchall():
        rate = settings.rates.get(currency)
        if rate is None:
            where = f"currency = {literal(currency)}"
            path, row = _first_bad(con, where) or ("", 0)
            raise InputError(
                path,
                f"refused: billed in {currency}, the ledger is in {settings.currency} and billing.rates states no "
                f"{currency} rate; nothing was imported",
                row,
            )
        con.execute(
            """UPDATE bill_stage SET currency = ?, fx_rate = ?::DECIMAL(38, 10),
            billed_cost = billed_cost * ?::DECIMAL(38, 10), effective_cost = effective_cost * ?::DECIMAL(38, 10),
            list_cost = list_cost * ?::DECIMAL(38, 10) WHERE currency = ?""",
            [settings.currency, str(rate), str(rate), str(rate), str(rate), currency],
        )
        used[currency] = str(rate)
    return used


def gpu_instance_types(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Instance types that carry GPUs: the catalog's, the price table's and the cluster's GPU nodes'."""
    known = set(gpu_catalog.AWS) | set(gpu_catalog.AZURE) | set(gpu_catalog.GCP)
    rows = con.execute(
        f"""SELECT DISTINCT instance_type FROM {c.T_PRICES} WHERE instance_type <> ''
        UNION SELECT DISTINCT instance_type FROM {c.T_NODES} WHERE instance_type <> '' AND gpu_count > 0"""
    ).fetchall()
    return sorted(known | {r[0] for r in rows})


def _keep_gpu_lines(con: duckdb.DuckDBPyConnection) -> None:
    """bill_keys: the resources whose lines are kept (GPU instances, and the cluster's nodes)."""
    con.register("gpu_types", pa.table({"instance_type": gpu_instance_types(con)}))
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE bill_keys AS
        SELECT DISTINCT resource_key FROM bill_stage WHERE instance_type IN (SELECT instance_type FROM gpu_types)
            AND resource_key IS NOT NULL
        UNION SELECT DISTINCT {resource_key_sql("provider_id")} FROM {c.T_NODES} WHERE provider_id IS NOT NULL"""
    )
    con.unregister("gpu_types")


def _commit(con: duckdb.DuckDBPyConnection, result: BillImport) -> None:
    periods = con.execute(
        "SELECT DISTINCT provider, billing_account_id, billing_period FROM bill_stage ORDER BY ALL"
    ).fetchall()
    result.periods = [f"{p}/{a}/{d:%Y-%m}" for p, a, d in periods]
    _keep_gpu_lines(con)
    kept = "FROM bill_stage SEMI JOIN bill_keys USING (resource_key)"
    row = one(con, f"SELECT count(*), coalesce(sum(effective_cost), 0) {kept}")
    result.lines_kept, result.effective_usd = (int(row[0]), Decimal(str(row[1]))) if row else (0, Decimal(0))
    replaced = f"""FROM {c.T_BILLING_LINES} WHERE (provider, billing_account_id, billing_period) IN
            (SELECT DISTINCT provider, billing_account_id, billing_period FROM bill_stage)"""
    span = one(
        con,
        f"""SELECT min(s), max(e) FROM (SELECT charge_start AS s, charge_end AS e {kept}
            UNION ALL SELECT charge_start, charge_end {replaced})""",
    )
    result.span = (span[0], span[1]) if span and span[0] is not None else None
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE {replaced}")
        con.execute(f"INSERT INTO {c.T_BILLING_LINES} BY NAME SELECT * EXCLUDE (line_hash, provider_name) {kept}")
        bills.update(con, result.span, bill=True)  # the stored prices of the hours the bill lines changed
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
