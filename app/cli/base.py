"""The `gpuledger` command group, its context and error translation; the commands live beside it.

Exit codes: 0 ok; 2 bad input, configuration or query (terminal); 3 a source or the warehouse was
unavailable (transient: retry later); 1 anything unexpected.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from core.errors import GpuledgerError, TransientError
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


class Context:
    def __init__(self, settings: Settings, config: Path | None = None) -> None:
        self.settings = settings
        self.config = config  # the settings file, handed on to the dashboard process

    @property
    def warehouse(self) -> Path:
        return self.settings.warehouse.path


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", type=click.Path(path_type=Path), default=None, help="Settings file (YAML).")
@click.option("--warehouse", type=click.Path(path_type=Path), default=None, help="DuckDB warehouse file.")
@click.pass_context
@fail_cleanly
def main(ctx: click.Context, config: Path | None, warehouse: Path | None) -> None:
    """gpuledger: GPU cost, health and serving SLOs for Kubernetes fleets."""
    settings = load_settings(config)
    settings = with_override(settings, "warehouse", path=warehouse)
    ctx.obj = Context(settings, config)


def window_option(func: F) -> F:
    func = click.option("--end", required=True, help="Window end, ISO-8601 UTC (exclusive).")(func)
    return click.option("--start", required=True, help="Window start, ISO-8601 UTC (inclusive).")(func)  # type: ignore[return-value]


def make_window(start: str, end: str) -> Window:
    return Window(parse_ts(start), parse_ts(end))
