"""A strict, fast parser for OpenMetrics / Prometheus text exposition with sample timestamps.

Only the families gpuledger ingests are decoded (others are skipped after a dict lookup on the
metric name). Label sets are parsed once per distinct series and cached, so the per-line cost is
a find, a slice, a dict lookup and two float conversions. Which series of those families are kept
(Running phases, GPU resources, ...) is decided when they are staged (collectors/metrics/series_mapping.py). Any
malformed line raises InputError naming the file and line; nothing is returned from a file that fails.

Timestamps: OpenMetrics gives seconds (possibly fractional), the Prometheus text format gives
milliseconds. Values above 1e11 are read as milliseconds (1e11 s is the year 5138). A timestamp
outside `ts_bounds_ms` (by default: not a time at all, NaN, negative or past the year 9999) is refused
naming its line: one sample at epoch 0 once made a collection span 56 years of steps.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from collectors.metrics.series import SeriesTable
from core.errors import InputError

# every instant a sample can have at all: 1970 to the end of the year 9999 (ms)
ANY_TIME_MS = (0, 253_402_300_799_999)


@dataclass
class Samples:
    """Columnar samples: series `sid` of `table`, and parallel sample arrays."""

    table: SeriesTable = field(default_factory=SeriesTable)
    sid: array = field(default_factory=lambda: array("i"))
    ts_ms: array = field(default_factory=lambda: array("q"))
    value: array = field(default_factory=lambda: array("d"))
    lines: int = 0

    def __len__(self) -> int:
        return len(self.sid)


_PLAIN_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="([^"\\\x00]*)"(?:,|$)')
# The exposition format's names: anything else (`a-b`, `ü`, an HTML page's `<html>`) is not a metric
METRIC_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_labels(text: str, source: str, line: int) -> dict[str, str]:
    """Parse `a="x",b="y\\"z"` (OpenMetrics escapes: \\\\, \\", \\n).

    Label sets without escapes (nearly all) are matched by one regular expression, accepted only when its
    matches cover the whole text (every character is a name, a quoted value or a separating comma), so it
    accepts exactly what the character loop below does; anything else goes through that loop, which also
    says what is wrong."""
    found = _PLAIN_LABEL.findall(text)
    if found and sum(len(k) + len(v) + 4 for k, v in found) - 1 == len(text) and text[-1] != ",":
        labels = dict(found)
        if len(labels) == len(found):
            return labels
    return _parse_labels_escaped(text, source, line)


def _parse_labels_escaped(text: str, source: str, line: int) -> dict[str, str]:
    labels: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        eq = text.find("=", i)
        if eq < 0 or eq + 1 >= n or text[eq + 1] != '"':
            raise InputError(source, f"malformed label set {{{text}}}", line)
        name = text[i:eq].strip()
        if not LABEL_NAME.match(name):
            raise InputError(source, f"malformed label name {name!r}", line)
        if name in labels:
            raise InputError(source, f"label {name!r} given twice in one series", line)
        j, out = eq + 2, []
        while True:
            if j >= n:
                raise InputError(source, f"unterminated label value for {name!r}", line)
            ch = text[j]
            if ch == "\\" and j + 1 < n:
                nxt = text[j + 1]
                out.append("\n" if nxt == "n" else nxt)
                j += 2
            elif ch == '"':
                break
            elif ch == "\x00":
                raise InputError(source, f"a NUL byte in the value of label {name!r}", line)
            else:
                out.append(ch)
                j += 1
        labels[name] = "".join(out)
        i = j + 1
        if i < n and text[i] == ",":
            i += 1
        elif i < n:
            raise InputError(source, f"expected ',' after label {name!r}", line)
    return labels


def _number(text: str, what: str, source: str, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(source, f"{what} {text!r} is not a number", line) from None


class _Reader:
    def __init__(
        self,
        source: str,
        wants_family: Callable[[str], bool],
        default_ts_ms: int | None,
        ts_bounds_ms: tuple[int, int] = ANY_TIME_MS,
    ):
        self.source = source
        self.ts_bounds_ms = ts_bounds_ms
        self.wants_family = wants_family
        self.series: list[tuple[str, dict[str, str]]] = []
        self.default_ts_ms = default_ts_ms
        self.out = Samples()
        self.names: dict[str, bool] = {}
        self.keys: dict[str, int] = {}

    def sample(self, line: str, lineno: int) -> None:
        brace = line.find("{")
        if brace >= 0:
            close = line.rfind("}")
            if close < brace:
                raise InputError(self.source, "unclosed '{' in sample line", lineno)
            name, key, rest = line[:brace], line[: close + 1], line[close + 1 :]
        else:
            parts = line.split(None, 1)
            name = key = parts[0]
            rest = parts[1] if len(parts) > 1 else ""
        wanted = self.names.get(name)
        if wanted is None:
            if not METRIC_NAME.match(name):
                raise InputError(self.source, f"malformed metric name {name[:80]!r} (not an exposition line)", lineno)
            wanted = self.names[name] = self.wants_family(name)
        if not wanted:
            return
        sid = self.keys.get(key)
        if sid is None:
            labels = parse_labels(key[brace + 1 : -1], self.source, lineno) if brace >= 0 else {}
            sid = self.keys[key] = len(self.series)
            self.series.append((name, labels))
        self._append(sid, rest.split(), lineno)

    def _append(self, sid: int, fields: list[str], lineno: int) -> None:
        if not fields or len(fields) > 3:
            raise InputError(self.source, "expected 'value [timestamp]' after the series", lineno)
        value = _number(fields[0], "value", self.source, lineno)
        if len(fields) >= 2:
            ts = _number(fields[1], "timestamp", self.source, lineno)
            ms = ts if ts > 1e11 else ts * 1000.0
            if not self.ts_bounds_ms[0] <= ms <= self.ts_bounds_ms[1]:
                raise InputError(self.source, implausible_time(fields[1], ms, self.ts_bounds_ms), lineno)
            ts_ms = int(round(ms))
        elif self.default_ts_ms is not None:
            ts_ms = self.default_ts_ms
        else:
            raise InputError(self.source, "sample has no timestamp (pass --at to ingest a plain scrape)", lineno)
        self.out.sid.append(sid)
        self.out.ts_ms.append(ts_ms)
        self.out.value.append(value)


def implausible_time(text: str, ms: float, bounds: tuple[int, int]) -> str:
    lo, hi = (_iso_ms(b) for b in bounds)
    when = _iso_ms(ms) if ANY_TIME_MS[0] <= ms <= ANY_TIME_MS[1] else "not a time"
    return (
        f"sample timestamp {text} ({when}) is outside {lo}..{hi}; a clock or exporter error? "
        "(collect a window with --start/--end to drop samples outside it)"
    )


def _iso_ms(ms: float) -> str:
    return (datetime(1970, 1, 1) + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_lines(
    lines: Iterable[str],
    source: str,
    wants_family: Callable[[str], bool],
    default_ts_ms: int | None = None,
    require_eof: bool = True,
    ts_bounds_ms: tuple[int, int] = ANY_TIME_MS,
) -> Samples:
    reader = _Reader(source, wants_family, default_ts_ms, ts_bounds_ms)
    seen_eof = False
    lineno = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\n").rstrip("\r")
        if seen_eof:
            if line.strip():
                raise InputError(source, "content after '# EOF'", lineno)
            continue
        if not line.strip():
            continue
        if line[0] == "#":
            if line.strip() == "# EOF":
                seen_eof = True
            continue
        reader.sample(line, lineno)
    reader.out.lines = lineno
    reader.out.table = SeriesTable.from_pairs(reader.series)
    if require_eof and not seen_eof:
        raise InputError(source, "ends without '# EOF' (truncated OpenMetrics file?)", lineno or None)
    return reader.out
