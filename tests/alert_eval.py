"""Evaluate generated alert rules over history on a real Prometheus, as its rule manager would.

Prometheus only evaluates rules from the moment it starts, so for backfilled data each alert's
expression is evaluated with query_range at the evaluation interval, its recording rules inlined
as subqueries at the same interval ((expr)[2h:1m] is what avg_over_time over a recorded series
sees), and `for:` applied to runs of consecutive true evaluations: firing from activeAt + for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import requests
import yaml

from core.timeutil import parse_duration, to_epoch


@dataclass(frozen=True)
class Firing:
    alert: str
    labels: tuple[tuple[str, str], ...]
    since: datetime

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")


def load(rules_dir: Path) -> tuple[dict[str, str], list[tuple[str, str, int, dict[str, str]]]]:
    records: dict[str, str] = {}
    alerts = []
    for path in sorted((rules_dir / "tests").glob("*.rules.yaml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    records.setdefault(rule["record"], rule["expr"])
                else:
                    alerts.append(
                        (rule["alert"], rule["expr"], parse_duration(rule.get("for", "0s")), rule.get("labels", {}))
                    )
    return records, alerts


def inline(expr: str, records: dict[str, str], step: str = "1m") -> str:
    for _ in range(10):
        changed = False
        for name, body in records.items():
            pattern = re.compile(rf"(?<![\w:]){re.escape(name)}(?![\w:])(\[(\w+)\])?")
            if pattern.search(expr):
                expr = pattern.sub(lambda m, b=body: f"({b})[{m.group(2)}:{step}]" if m.group(1) else f"({b})", expr)
                changed = True
        if not changed:
            return expr
    raise AssertionError("recording rules nest too deep")


def fired(url: str, rules_dir: Path, start: datetime, end: datetime, step_s: int = 60) -> list[Firing]:
    records, alerts = load(rules_dir)
    out = []
    for name, expr, for_s, labels in alerts:
        query = inline(expr, records, f"{step_s}s")
        resp = requests.get(
            f"{url}/api/v1/query_range",
            params={"query": query, "start": to_epoch(start), "end": to_epoch(end), "step": step_s},
            timeout=300,
        )
        resp.raise_for_status()
        for series in resp.json()["data"]["result"]:
            merged = {**{k: v for k, v in series["metric"].items() if k != "__name__"}, **labels}
            for since in _firing_runs([float(t) for t, _ in series["values"]], for_s, step_s):
                out.append(Firing(name, tuple(sorted(merged.items())), datetime.utcfromtimestamp(since)))
    return out


def _firing_runs(times: list[float], for_s: int, step_s: int) -> list[float]:
    """When each run of consecutive true evaluations started firing (had lasted `for`)."""
    out: list[float] = []
    run_start, previous, recorded = 0.0, None, False
    for t in times:
        if previous is None or t - previous > step_s:
            run_start, recorded = t, False
        previous = t
        if not recorded and t - run_start >= for_s:
            out.append(run_start + for_s)
            recorded = True
    return out


def window(start: str, hours: float) -> tuple[datetime, datetime]:
    from core.timeutil import parse_ts

    begin = parse_ts(start)
    return begin, begin + timedelta(hours=hours)
