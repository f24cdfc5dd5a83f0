"""Whether a rollup speaks for every step row: the step tables' row counts at its last refresh, in `rollup_state`.

A rollup a collection commit keeps current records the counts of the step tables it is computed from under its own
prefix (`coverage:<table>`, `waiting:<table>`). While they equal the tables' counts now, no write bypassed it (rows
written by hand, an older gpuledger, a migration that added the rollup) and a report may read it; otherwise the report
reads the steps and the next commit rebuilds it all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import duckdb

from core import conventions as c
from core.store import read_memo
from core.store.warehouse import days_holding, one, row_counts, ts_span
from core.timeutil import DAY, hours_covering

Steps = Callable[[duckdb.DuckDBPyConnection, datetime, datetime], None]


@dataclass(frozen=True)
class Counted:
    table: str  # the rollup's table (its schema version's sign that it exists)
    prefix: str  # its rows' prefix in rollup_state
    sources: tuple[str, ...]  # the step tables it is computed from

    def exists(self, con: duckdb.DuckDBPyConnection) -> bool:
        row = one(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [self.table])
        return bool(row and row[0])

    def in_sync(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Does the rollup speak for every step row (no write since its last refresh bypassed it)?"""
        return read_memo.remember(con, f"{self.prefix}in_sync", lambda: self._in_sync(con))

    def _in_sync(self, con: duckdb.DuckDBPyConnection) -> bool:
        if not self.exists(con):
            return False
        stored = dict(
            con.execute(
                f"SELECT source, source_rows FROM {c.T_ROLLUP_STATE} WHERE starts_with(source, ?)", [self.prefix]
            ).fetchall()
        )
        return bool(stored) and stored == self._counts(con)

    def _counts(self, con: duckdb.DuckDBPyConnection) -> dict[str, int]:
        return {self.prefix + t: n for t, n in row_counts(con, self.sources).items()}

    def record(self, con: duckdb.DuckDBPyConnection) -> None:
        """Store the step tables' counts now (the end of a refresh, inside its commit)."""
        con.execute(f"DELETE FROM {c.T_ROLLUP_STATE} WHERE starts_with(source, ?)", [self.prefix])
        con.executemany(f"INSERT INTO {c.T_ROLLUP_STATE} VALUES (?, ?)", list(self._counts(con).items()))


def refresh_hours(
    con: duckdb.DuckDBPyConnection,
    lo: datetime | None,
    hi: datetime | None,
    full: bool,
    added: tuple[datetime, datetime] | None,
    *,
    tables: tuple[str, ...],
    spans: tuple[str, ...],
    insert: Steps,
    merge: Steps,
) -> None:
    """The refresh every hourly rollup a commit keeps does (coverage, waiting, pools), on its `tables` (each with an
    `hour` column): `full` empties them and recomputes the hours of the `spans` step tables' data; `added` (the
    commit only added steps [start, end) no source held before) has `merge` fold them into their hours; otherwise the
    hours [lo, hi) are deleted and recomputed by `insert`, a day at a time (bounded memory on a rebuild), and only
    the days holding steps. The caller records its counts after."""
    if added is not None and not full:
        merge(con, *added)
        lo = hi = None
    if full:
        for t in tables:
            con.execute(f"DELETE FROM {t}")
        lo, hi = hours_covering(ts_span(con, spans))
    if lo is None or hi is None:
        return
    for t in tables:
        con.execute(f"DELETE FROM {t} WHERE hour >= $lo AND hour < $hi", {"lo": lo, "hi": hi})
    for day in days_holding(con, [(t, "ts") for t in spans], lo, hi):
        insert(con, max(lo, day), min(hi, day + DAY))
