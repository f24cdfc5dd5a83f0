"""The `gpuledger` command line: the only place that wires settings into the stages.

`base` defines the group; each command module registers its commands on it when imported, and this
package imports them all, so `app.cli.main` is the whole command line and any module here also imports
on its own (it needs only `base`, never this package's other modules through `main`).

Exit codes: 0 ok; 2 bad input, configuration or query (terminal); 3 a source or the warehouse was
unavailable (transient: retry later); 1 anything unexpected; 130 interrupted (Ctrl-C).
"""

from app.cli import billing, capacity, carbon, collect, demo, finops, health, pricing, publish, report, serve, serving  # noqa: F401 (registers)
from app.cli.base import main, run

__all__ = ["main", "run"]
