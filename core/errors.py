"""gpuledger's error taxonomy.

Transient errors are retried with backoff by whoever owns the loop (collectors); terminal errors
stop the run and say why. Library errors (duckdb, requests, yaml) are translated into these once,
at the boundary that called the library, so callers branch on the class and print one line.
"""

from __future__ import annotations


class GpuledgerError(Exception):
    """Base class: the message is one line a user can act on."""


class TerminalError(GpuledgerError):
    """Do not retry: the input, the configuration or the query is wrong."""


class TransientError(GpuledgerError):
    """Retry with backoff: the network or the server may recover."""


class InputError(TerminalError):
    """A file or payload is malformed; the message names the file and line (or URL)."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


class ConfigError(TerminalError):
    """The settings file or a command-line option is invalid."""


class SchemaError(TerminalError):
    """The warehouse file cannot be used by this version of gpuledger."""


class WarehouseBusy(TransientError):
    """Another process holds DuckDB's file lock on the warehouse (a writer, or readers while we write)."""


class SourceUnavailable(TransientError):
    """A metrics backend could not be reached or answered 5xx; names the URL."""


class QueryError(TerminalError):
    """A backend rejected a query (4xx, bad PromQL); names the URL and the query."""
