"""Progress of long work (collections, backfills, imports, simulations), reported while it happens.

The stages take a `Progress` and report to it: `begin` with how many units of work there are, `step` after each
(a commit window, a file, a stage of a simulation) with what it did, `end` when done. They never print: the
command line decides how progress is shown (app/cli/progress.py), and the default is `SILENT`.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def begin(self, what: str, total: int, unit: str) -> None:
        """Work named `what` starts: `total` units (commit windows, files, stages) of `unit`."""

    def step(self, **fields: object) -> None:
        """One unit is done; `fields` say what it did (window, samples, rows ...)."""

    def end(self) -> None:
        """The work is over (also after an error)."""


class Silent:
    """Progress nobody watches."""

    def begin(self, what: str, total: int, unit: str) -> None:
        return None

    def step(self, **fields: object) -> None:
        return None

    def end(self) -> None:
        return None


SILENT: Progress = Silent()
