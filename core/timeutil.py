"""Time helpers: every timestamp in gpuledger is UTC; windows are half-open [start, end)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from core.errors import ConfigError

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_ts(text: str) -> datetime:
    """Parse an ISO-8601 timestamp ('2026-11-02T00:00:00Z' or a date) into naive UTC."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time())
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"not an ISO-8601 timestamp: {text!r}") from exc
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def iso(ts: datetime) -> str:
    """Format a naive-UTC datetime as '2026-11-02T00:00:00Z'."""
    # isoformat writes the same text from year 1000 on, ~5x faster (a 10,000-GPU health report formats 40,000)
    if ts.tzinfo is None and not ts.microsecond:
        return ts.isoformat() + "Z"
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(text: str) -> int:
    """Parse '60s', '5m', '1h30m', '7d' (or a bare number of seconds) into seconds."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    match = _DURATION.match(value)
    if not value or not match or not any(match.groups()):
        raise ConfigError(f"not a duration (use e.g. 60s, 5m, 1h, 7d): {text!r}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def floor_to(ts: datetime, unit: timedelta) -> datetime:
    """The start of the hour (unit HOUR) or UTC day (unit DAY) holding ts."""
    hour = ts.replace(minute=0, second=0, microsecond=0)
    return hour.replace(hour=0) if unit == DAY else hour


def ceil_to(ts: datetime, unit: timedelta) -> datetime:
    floor = floor_to(ts, unit)
    return floor if floor == ts else floor + unit


def hours_covering(span: tuple[datetime, datetime] | None) -> tuple[datetime | None, datetime | None]:
    """Times [first, last] (inclusive) -> the whole hours [lo, hi) holding them; (None, None) for no span."""
    return (floor_to(span[0], HOUR), floor_to(span[1], HOUR) + HOUR) if span else (None, None)


def to_epoch(ts: datetime) -> float:
    return ts.replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Window:
    """A half-open time window [start, end) in naive UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ConfigError(f"window end {iso(self.end)} is not after start {iso(self.start)}")

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    def as_dict(self) -> dict[str, str]:
        return {"start": iso(self.start), "end": iso(self.end)}

    def split(self, chunk: timedelta) -> list[Window]:
        """Consecutive windows of `chunk` from the start (the last one shorter) that together are this one."""
        edges = [self.start]
        while edges[-1] + chunk < self.end:
            edges.append(edges[-1] + chunk)
        return [Window(a, b) for a, b in zip(edges, [*edges[1:], self.end], strict=True)]


def iso_week_window(week: str) -> Window:
    """'2026-W45' -> [Monday 00:00 UTC, next Monday 00:00 UTC)."""
    match = re.fullmatch(r"(\d{4})-W(\d{2})", week.strip())
    if not match:
        raise ConfigError(f"not an ISO week (use e.g. 2026-W45): {week!r}")
    year = int(match.group(1))
    if not 1970 <= year <= 9998:  # a week whose end the calendar can still name
        raise ConfigError(f"no such ISO week: {week!r} (years 1970 to 9998)")
    try:
        monday = date.fromisocalendar(year, int(match.group(2)), 1)
    except ValueError as exc:
        raise ConfigError(f"no such ISO week: {week!r}") from exc
    start = datetime.combine(monday, datetime.min.time())
    return Window(start, start + timedelta(days=7))


def iso_week_of(ts: datetime) -> str:
    year, week, _ = ts.isocalendar()
    return f"{year}-W{week:02d}"


def floor_step(ts: datetime, step_s: int) -> datetime:
    ms = int((ts - datetime(1970, 1, 1)) / timedelta(milliseconds=1))
    return datetime(1970, 1, 1) + timedelta(milliseconds=ms - ms % (step_s * 1000))


def commit_windows(window: Window, length_s: int, step_s: int) -> list[Window]:
    """Consecutive windows of about length_s (a whole number of steps) covering the window."""
    span = timedelta(seconds=max(step_s, length_s - length_s % step_s))
    out, start = [], window.start
    while start < window.end:
        out.append(Window(start, min(start + span, window.end)))
        start = out[-1].end
    return out
