"""Revisions of a published week: a week exported again with different numbers is a new revision, never a
silent overwrite.

Bills are restated for days after a month closes, so a closed week's chargeback at billed cost can change
after it was exported. Writing that week again compares the new files with the published ones:

- the same bytes: nothing is written, the published revision stands (a re-run is a no-op);
- different bytes: the week becomes revision N + 1. The files of every earlier revision are kept, unchanged,
  under `<week>/revisions/<n>/` (their own manifest included), and the new manifest says what changed:
  which files, which bill files came or went, the totals before and after, and each team's total cost
  before and after.

A manifest written before revisions existed (no `revision` field) is revision 1.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import shutil
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from core import conventions as c

REVISIONS = "revisions"  # <week>/revisions/<n>/: the files of revision n, as published


@dataclass(frozen=True)
class Published:
    """What writing a week did: its folder, the revision now published, and whether this run wrote it."""

    folder: Path
    revision: int
    written: bool
    changes: dict[str, Any] = field(default_factory=dict)  # empty for a first issue or an unchanged week

    def summary(self, week: str) -> str:
        if not self.written:
            return f"{week}: unchanged, revision {self.revision} stands ({self.folder})"
        if self.revision == 1:
            return f"{week}: revision 1 written to {self.folder}"
        total = self.changes["totals"].get("total_usd")
        moved = f"; total cost {total['before']} -> {total['after']} ({total['difference']})" if total else ""
        teams = len(self.changes["teams"])
        return (
            f"{week}: revision {self.revision} written to {self.folder} (revision {self.revision - 1} kept in "
            f"{REVISIONS}/{self.revision - 1}/){moved}; {teams} team(s) changed; see manifest.json 'changes'"
        )


def published_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / c.EXPORT_MANIFEST
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None


def revision_of(manifest: dict[str, Any]) -> int:
    return int(manifest.get("revision", 1))


def same_files(manifest: dict[str, Any], payloads: dict[str, bytes]) -> bool:
    """Do the payloads equal the published files, name for name and byte for byte (by their sha256)?"""
    published = {name: entry["sha256"] for name, entry in manifest.get("files", {}).items()}
    return published == {name: hashlib.sha256(data).hexdigest() for name, data in payloads.items()}


def keep_previous(folder: Path, staged: Path, revision: int) -> None:
    """Copy the published revision (and the ones it kept) into the staged week, which then replaces it."""
    kept = folder / REVISIONS
    if kept.is_dir():
        shutil.copytree(kept, staged / REVISIONS)
    target = staged / REVISIONS / str(revision)
    target.mkdir(parents=True)
    for path in folder.iterdir():
        if path.is_file():
            shutil.copy2(path, target / path.name)


def changes(
    previous: dict[str, Any], folder: Path, manifest: dict[str, Any], teams_after: dict[str, Decimal]
) -> dict[str, Any]:
    """What revision N + 1 changes against the published revision N (its manifest and team file in `folder`)."""
    before_files = {name: entry["sha256"] for name, entry in previous.get("files", {}).items()}
    after_files = {name: entry["sha256"] for name, entry in manifest["files"].items()}
    before_bills = {_bill_key(b) for b in previous.get("bills", [])}
    after_bills = {_bill_key(b) for b in manifest.get("bills", [])}
    teams_before = _team_totals(folder / f"{c.EXPORT_CHARGEBACK_BASENAME}.csv")
    totals = {
        key: _moved(previous.get("totals", {}).get(key), value)
        for key, value in manifest["totals"].items()
        if str(previous.get("totals", {}).get(key)) != str(value)
    }
    teams = [
        {"team": team, **_moved(teams_before.get(team), teams_after.get(team))}
        for team in sorted(set(teams_before) | set(teams_after))
        if teams_before.get(team) != teams_after.get(team)
    ]
    manifest_path = folder / c.EXPORT_MANIFEST
    return {
        "from_revision": revision_of(previous),
        "from_manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
        "files": sorted(n for n in set(before_files) | set(after_files) if before_files.get(n) != after_files.get(n)),
        "bills_added": sorted(after_bills - before_bills),
        "bills_removed": sorted(before_bills - after_bills),
        "totals": totals,
        "teams": teams,
    }


def _bill_key(bill: dict[str, Any]) -> str:
    return f"{bill['provider']}/{bill['billing_account_id']}/{bill['billing_period']} {bill['source_file']} " + str(
        bill["imported_at"]
    )


def _moved(before: Any, after: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"before": _text(before), "after": _text(after)}
    # a total that is not money (a count, a list) has no difference: before and after say it
    with contextlib.suppress(ArithmeticError):
        out["difference"] = str(Decimal(str(after or 0)) - Decimal(str(before or 0)))
    return out


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _team_totals(path: Path) -> dict[str, Decimal]:
    """Each team's cost in a published chargeback.csv."""
    if not path.is_file():
        return {}
    rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
    return {r["team"]: Decimal(r["cost_usd"]) for r in rows if r.get("cost_usd")}
