"""Scheduling arithmetic for `gpuledger serve`: which weeks are due (collections are cut by core.timeutil).

No I/O but the export folder's own bookkeeping, and an explicit `now`, so catch-up after any outage is a
table-driven test.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from core import conventions as c
from core.timeutil import iso_week_of, iso_week_window

WEEK = timedelta(days=7)
MAX_CATCH_UP_WEEKS = 52  # a service down for longer exports the last year and says so
_WEEK_NAME = re.compile(r"^\d{4}-W\d{2}$")


def monday_of(ts: datetime) -> datetime:
    day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def latest_due_week(now: datetime) -> str:
    """The newest ISO week whose export time (the next Monday at EXPORT_HOUR_UTC) has passed."""
    monday = monday_of(now)
    if now < monday + timedelta(hours=c.EXPORT_HOUR_UTC):
        monday -= WEEK
    return iso_week_of(monday - WEEK)


def due_weeks(now: datetime, exported: Iterable[str]) -> list[str]:
    """Weeks to export now, oldest first: every week from the first export up to the latest due one that
    has no export yet (a week still waiting for its data stays due after later weeks are exported).

    With no export yet, only the latest due week: a new installation does not invent a history.
    A week that was exported is never due again, so a restart cannot export it twice.
    """
    latest = iso_week_window(latest_due_week(now)).start
    done = sorted(iso_week_window(w).start for w in exported)
    if not done:
        return [iso_week_of(latest)]
    weeks, start, exported_starts = [], done[0], set(done)
    while start <= latest:
        if start not in exported_starts:
            weeks.append(iso_week_of(start))
        start += WEEK
    return weeks[-MAX_CATCH_UP_WEEKS:]


def write_waiting(root: Path, waiting: dict[str, str]) -> None:
    """Record the due weeks that wait for their data, and why (`export.directory/waiting.json`), atomically."""
    path = root / c.EXPORT_WAITING
    if not waiting:
        path.unlink(missing_ok=True)
        return
    root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(waiting, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_waiting(root: Path) -> dict[str, str]:
    path = root / c.EXPORT_WAITING
    return json.loads(path.read_text()) if path.is_file() else {}


def exported_weeks(root: Path) -> list[str]:
    """Weeks with a published export (the manifest is written last, so its presence means complete)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if _WEEK_NAME.match(p.name) and (p / c.EXPORT_MANIFEST).is_file())
