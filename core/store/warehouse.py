"""Opening the DuckDB warehouse: create, migrate, refuse newer files, translate driver errors.

DuckDB allows one writing process per file (or many read-only ones). Writers hold the connection
only for the duration of a command; readers (dashboard, reports) open read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from core import conventions as c
from core.errors import SchemaError, TerminalError, TransientError, WarehouseBusy
from core.store.schema import LATEST_VERSION, MIGRATIONS

# DuckDB's own default is 80% of the machine's memory: a month's health report at 10,000 GPUs then peaked at
# 2.4 GB. Capped, DuckDB spills its joins and aggregations to disk instead; collect.memory_limit and
# dashboard.memory_limit set their own caps. 768 MB keeps a command's whole process under 1 GB at 10,000 GPUs: a
# chargeback whose window starts and ends mid-hour (it reads steps) peaked at 1,055 MB under 1 GB and 827 MB under
# 768 MB, in the same time (6.4 s and 6.5-6.8 s; 512 MB spilled and took 8.4 s).
DEFAULT_MEMORY_LIMIT = "768MB"


def connect(path: Path, read_only: bool = False, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """Open (and for writers, create or migrate) the warehouse at `path`, DuckDB capped at `memory_limit`."""
    if read_only and not path.exists():
        raise TerminalError(f"{path}: no warehouse here yet; run `gpuledger demo` or `gpuledger collect` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        kind = WarehouseBusy if "lock" in str(exc).lower() else TransientError
        raise kind(f"{path}: cannot open warehouse ({_first_line(exc)})") from exc
    except duckdb.Error as exc:
        raise TerminalError(f"{path}: not a usable DuckDB warehouse ({_first_line(exc)})") from exc
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit}'")
    # DuckDB 2.0's partitioned execution re-scans a step table once per partition when its filter is an OR of
    # ts ranges (a chargeback window starting and ending mid-hour: 40 scans for its 40 edge steps, 9 s of a
    # 14 s report at 10,000 GPUs); off, that query takes 3.4 s, the report 8 s, and nothing else measured slower
    # beyond noise (the 6-hour chargeback about 5%)
    con.execute("SET disabled_optimizers = 'partitioned_execution'")
    version = schema_version(con)
    if version > LATEST_VERSION:
        con.close()
        raise SchemaError(
            f"{path}: warehouse schema version {version} is newer than this gpuledger supports "
            f"({LATEST_VERSION}); upgrade gpuledger to read it"
        )
    if version < LATEST_VERSION:
        if read_only:
            con.close()
            raise SchemaError(f"{path}: warehouse schema version {version} needs migrating; open it once for writing")
        migrate(con, version)
    return con


@contextmanager
def open_warehouse(
    path: Path, read_only: bool = False, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(path, read_only=read_only, memory_limit=memory_limit)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All-or-nothing: commit on success, roll back on any exception (the warehouse is unchanged)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> tuple[Any, ...] | None:
    """The first row of a query, with the result fully consumed (DuckDB 2 refuses new work on a
    connection whose previous result was only partly fetched)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def rewrite(con: duckdb.DuckDBPyConnection, table: str, where: str, rows: str, params: dict[str, Any]) -> None:
    """Replace the rows of `table` that `where` selects by the query `rows`, which may read them (it
    is materialized before they are deleted; its columns are matched to the table's by name)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE rewrite_rows AS {rows}", params)
    con.execute(f"DELETE FROM {table} WHERE {where}", params)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM rewrite_rows")
    con.execute("DROP TABLE rewrite_rows")


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = one(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [c.T_SCHEMA_VERSION])
    if not exists or not exists[0]:
        return 0
    row = one(con, f"SELECT max(version) FROM {c.T_SCHEMA_VERSION}")
    return int(row[0]) if row and row[0] is not None else 0


def migrate(con: duckdb.DuckDBPyConnection, from_version: int, to_version: int = LATEST_VERSION) -> None:
    """Apply migrations from_version+1 .. to_version, each in its own transaction."""
    with transaction(con):
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {c.T_SCHEMA_VERSION} (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)"
        )
    for version in range(from_version + 1, to_version + 1):
        with transaction(con):
            for statement in MIGRATIONS[version - 1]:
                con.execute(statement)
            now = datetime.now(UTC).replace(tzinfo=None)
            con.execute(f"INSERT INTO {c.T_SCHEMA_VERSION} VALUES (?, ?)", [version, now])


def row_counts(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> dict[str, int]:
    """Rows per table (DuckDB answers a bare count(*) from its metadata)."""
    return {t: int(one(con, f"SELECT count(*) FROM {t}")[0]) for t in tables}  # type: ignore[index]


def ts_span(con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> tuple[datetime, datetime] | None:
    """The first and last `ts` over the tables; None when they are all empty."""
    parts = " UNION ALL ".join(f"SELECT min(ts) lo, max(ts) hi FROM {t}" for t in tables)
    row = one(con, f"SELECT min(lo), max(hi) FROM ({parts})")
    return (row[0], row[1]) if row and row[0] is not None else None


def days_holding(
    con: duckdb.DuckDBPyConnection, columns: Iterable[tuple[str, str]], lo: datetime, hi: datetime
) -> list[datetime]:
    """The UTC days on which any (table, time column) has a row in [lo, hi), oldest first: a loop over
    days visits these, so its work grows with the data, not with the span between two timestamps
    (one sample dated 1970 once made a rebuild walk 20,000 empty days)."""
    parts = " UNION ".join(
        f"SELECT DISTINCT date_trunc('day', {col}) AS day FROM {t} WHERE {col} >= $lo AND {col} < $hi"
        for t, col in columns
    )
    return [r[0] for r in con.execute(f"SELECT day FROM ({parts}) ORDER BY day", {"lo": lo, "hi": hi}).fetchall()]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
