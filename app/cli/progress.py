"""How progress is shown: a rich bar on a terminal, one JSON line per step off one, nothing with `--quiet`.

A bar shows the units done of all, the samples per second where the work counts samples, and the time left. Off
a terminal (CI logs, `kubectl logs`, a pipe), each step is one JSON object on stderr: the work, the step number of
how many, what the step did (window, samples, rows ...), its seconds and the estimated seconds left. Both go to
stderr, so a command's output on stdout stays what its format says.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress

from core.progress import SILENT, Progress


class _Clock:
    """Seconds of the current step and the estimate of what is left (the mean step so far, times the steps left)."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.began = self.last = time.monotonic()

    def tick(self) -> tuple[float, float]:
        now = time.monotonic()
        seconds, self.last = now - self.last, now
        self.done += 1
        return seconds, (now - self.began) / self.done * max(self.total - self.done, 0)


class JsonLines:
    """One JSON line per step, for logs."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self.what, self.clock = "", _Clock(0)

    def begin(self, what: str, total: int, unit: str) -> None:
        self.what, self.unit, self.clock = what, unit, _Clock(total)

    def step(self, **fields: object) -> None:
        seconds, left = self.clock.tick()
        line = {"progress": self.what, self.unit: self.clock.done, "of": self.clock.total, **fields,
                "seconds": round(seconds, 3), "eta_seconds": round(left, 1)}  # fmt: skip
        print(json.dumps(line, default=str), file=self.stream or sys.stderr, flush=True)

    def end(self) -> None:
        return None


class Bar:
    """A progress bar with the rate and the time left, on a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bar: RichProgress | None = None
        self.samples, self.began = 0, time.monotonic()

    def begin(self, what: str, total: int, unit: str) -> None:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())  # fmt: skip
        self.bar = RichProgress(*columns, console=self.console, transient=False)
        self.bar.start()
        self.task = self.bar.add_task(what, total=total, rate="")
        self.samples, self.began = 0, time.monotonic()

    def step(self, **fields: object) -> None:
        if self.bar is None:
            return
        samples = fields.get("samples")
        rate = ""
        if isinstance(samples, int):
            self.samples += samples
            rate = f"{self.samples / max(time.monotonic() - self.began, 1e-9):,.0f} samples/s"
        self.bar.update(self.task, advance=1, rate=rate)

    def end(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def progress_for(quiet: bool) -> Progress:
    """Nothing with --quiet; a bar on a terminal; JSON lines otherwise."""
    if quiet:
        return SILENT
    return Bar() if sys.stderr.isatty() else JsonLines()
