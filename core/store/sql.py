"""SQL text: the one way gpuledger writes a value into a statement.

Values go in as parameters wherever DuckDB takes them. Where it does not (EXPORT DATABASE's path, a
VALUES list or a CASE built from settings, where parameters cost a plan per call), `literal` quotes them.
"""

from __future__ import annotations


def literal(text: str) -> str:
    """`text` as a SQL string literal: quotes doubled, nothing else can end it (DuckDB has no backslash escapes)."""
    return "'" + text.replace("'", "''") + "'"
