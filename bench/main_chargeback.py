"""The 'before' figure: main's own chargeback (step tables only) on a bench warehouse.

Run as a script with main's checkout first on sys.path (`python bench/main_chargeback.py MAIN_DIR JSON`):
it imports main's `core` and `analytics`, never this branch's. main knows schema 6 (no rollups); the bench
warehouse is newer but holds the same step tables, so its version check is relaxed to the file's own version.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path


def main() -> None:
    main_dir, args = sys.argv[1], json.loads(sys.argv[2])
    here = Path(__file__).resolve().parent
    sys.path[:] = [main_dir] + [p for p in sys.path if p not in ("", str(here), str(here.parent))]
    import duckdb

    from analytics.cost.chargeback import ChargebackOptions, chargeback  # main's
    from core.store import warehouse
    from core.timeutil import Window  # main's

    probe = duckdb.connect(args["warehouse"], read_only=True)
    warehouse.LATEST_VERSION = int(probe.execute("SELECT max(version) FROM schema_version").fetchall()[0][0])
    probe.close()
    start = datetime.fromisoformat(args["start"])
    window = Window(start, start + timedelta(hours=args["hours"]))
    times = []
    with warehouse.open_warehouse(Path(args["warehouse"]), read_only=True) as con:
        for i in range(args["runs"] + args.get("warmup", 1)):
            started = time.perf_counter()
            report = chargeback(con, window, ChargebackOptions(by=("team",)))
            if i >= args.get("warmup", 1):
                times.append(time.perf_counter() - started)
    teams = {r.keys["team"]: {"gpu_hours": r.gpu_hours, "cost_usd": float(r.cost_usd)} for r in report.rows}
    print(
        json.dumps(
            {
                "times": times,
                "numbers": teams,
                "module": str(Path(sys.modules["analytics.cost.chargeback"].__file__ or "")),
            }
        )
    )


if __name__ == "__main__":
    main()
