"""Reading an OpenMetrics file: the fast path (collectors/metrics/openmetrics_fast.py) for what it accepts, else
the strict line-by-line parser (collectors/metrics/openmetrics.py), which names the file and line of any error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from collectors.metrics.openmetrics import ANY_TIME_MS, Samples, parse_lines
from core.errors import InputError


def parse_file(
    path: Path,
    wants_family: Callable[[str], bool],
    default_ts_ms: int | None = None,
    require_eof: bool = True,
    ts_bounds_ms: tuple[int, int] = ANY_TIME_MS,
) -> Samples:
    if default_ts_ms is None and require_eof:
        from collectors.metrics import openmetrics_fast

        fast = openmetrics_fast.parse_file(path, wants_family, ts_bounds_ms)
        if fast is not None:
            return fast
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return parse_lines(fh, str(path), wants_family, default_ts_ms, require_eof, ts_bounds_ms)
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except IsADirectoryError:
        raise InputError(str(path), "is a directory, not an OpenMetrics file") from None
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text (byte {exc.start})") from None
