"""Reading an OpenMetrics file: the fast path (collectors/metrics/openmetrics_fast.py) for what it accepts, else
the strict line-by-line parser (collectors/metrics/openmetrics.py), which names the file and line of any error."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from collectors.metrics.openmetrics import ANY_TIME_MS, Samples, parse_lines
from core.errors import InputError

MAX_LINE_BYTES = 2**20  # collect.max_line_kb's default: a real exporter's longest line is a few KB


def parse_file(
    path: Path,
    wants_family: Callable[[str], bool],
    default_ts_ms: int | None = None,
    require_eof: bool = True,
    ts_bounds_ms: tuple[int, int] = ANY_TIME_MS,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Samples:
    if default_ts_ms is None and require_eof:
        from collectors.metrics import openmetrics_fast

        fast = openmetrics_fast.parse_file(path, wants_family, ts_bounds_ms, max_line_bytes)
        if fast is not None:
            return fast
    try:
        with open(path, "rb") as fh:
            lines = _bounded_lines(fh, str(path), max_line_bytes)
            return parse_lines(lines, str(path), wants_family, default_ts_ms, require_eof, ts_bounds_ms)
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except IsADirectoryError:
        raise InputError(str(path), "is a directory, not an OpenMetrics file") from None


def _bounded_lines(fh: BinaryIO, source: str, max_line_bytes: int) -> Iterator[str]:
    """The file's lines, read at most `max_line_bytes` at a time (a 2 GiB line once took 6.6 GB before it was
    skipped), each decoded on its own so bad UTF-8 is named by line and file offset."""
    offset, lineno = 0, 0
    while raw := fh.readline(max_line_bytes + 1):
        lineno += 1
        if len(raw) > max_line_bytes:
            raise InputError(source, f"a line longer than {max_line_bytes // 1024} KB (collect.max_line_kb)", lineno)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(source, f"not UTF-8 text (byte {offset + exc.start} of the file)", lineno) from None
        offset += len(raw)
