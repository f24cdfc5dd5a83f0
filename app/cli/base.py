"""The `gpuledger` command group, its context and error translation; the commands live beside it.

Exit codes: 0 ok; 2 bad input, configuration or query (terminal); 3 a source or the warehouse was
unavailable (transient: retry later); 1 anything unexpected; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from app.cli.progress import progress_for
from core.errors import GpuledgerError, TransientError
from core.progress import Progress
from core.settings import Settings, load_settings, with_override
from core.timeutil import Window, parse_ts

F = TypeVar("F", bound=Callable[..., Any])


def fail_cleanly(func: F) -> F:
    """Translate gpuledger errors into one line on stderr and an exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GpuledgerError as exc:
            click.echo(f"gpuledger: error: {exc}", err=True)
            sys.exit(3 if isinstance(exc, TransientError) else 2)

    return wrapper  # type: ignore[return-value]


def run() -> None:
    """The `gpuledger` command (and `python -m app`): `main`, where Ctrl-C exits 130 at once.

    By the time the interrupt reaches here, the command has unwound: an open commit window is rolled back and the
    warehouse closed. Exiting normally would then wait for worker threads still blocked on a store's answer (a
    collection's prefetch and its queries), each for up to collect.timeout per retry, so the exit skips that wait.
    The handler records the signal because the exception that arrives is not always a KeyboardInterrupt: DuckDB,
    interrupted mid-query, raises "Query interrupted" instead."""
    interrupted: list[int] = []

    def on_interrupt(signum: int, frame: Any) -> None:
        interrupted.append(signum)
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where the shell ignores it (`cmd &`)
        signal.signal(signal.SIGINT, on_interrupt)
    try:
        main()
    except BaseException as exc:
        if not interrupted or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            raise  # no interrupt, or one the command took as its way to stop (`dashboard`: "Ctrl-C to stop")
        click.echo("gpuledger: interrupted: what was committed before is kept, the rest rolled back", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


class Context:
    def __init__(self, settings: Settings, config: Path | None = None, quiet: bool = False) -> None:
        self.settings = settings
        self.config = config  # the settings file, handed on to the dashboard process
        self.quiet = quiet  # no progress bars or lines, and `serve` logs warnings and errors only

    @property
    def progress(self) -> Progress:
        """Where long work reports its progress (app/cli/progress.py)."""
        return progress_for(self.quiet)

    @property
    def warehouse(self) -> Path:
        return self.settings.warehouse.path


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", type=click.Path(path_type=Path), default=None, help="Settings file (YAML).")
@click.option("--warehouse", type=click.Path(path_type=Path), default=None, help="DuckDB warehouse file.")
@click.option(
    "--quiet", "-q", is_flag=True, help="No progress bars or progress lines (serve: warnings and errors only)."
)
@click.pass_context
@fail_cleanly
def main(ctx: click.Context, config: Path | None, warehouse: Path | None, quiet: bool) -> None:
    """gpuledger: GPU cost, health and serving SLOs for Kubernetes fleets."""
    settings = load_settings(config)
    settings = with_override(settings, "warehouse", path=warehouse)
    ctx.obj = Context(settings, config, quiet)


def window_option(func: F) -> F:
    func = click.option("--end", required=True, help="Window end, ISO-8601 UTC (exclusive).")(func)
    return click.option("--start", required=True, help="Window start, ISO-8601 UTC (inclusive).")(func)  # type: ignore[return-value]


def make_window(start: str, end: str) -> Window:
    return Window(parse_ts(start), parse_ts(end))
