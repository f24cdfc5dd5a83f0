"""Write tests/fixtures/warehouse-v<VERSION>.duckdb: the simulated fleet's first three hours in a warehouse at
the schema version before the current one, made with the migration machinery itself, plus
the reports today's gpuledger gives on the same input ingested fresh (warehouse-v<VERSION>.expected.json).

    .venv/bin/python -m tests.make_old_warehouse      (when the schema moves on: the file of the version before
    the new one; older fixtures stay, each still migrates)

The old file is built by migrating an empty file to VERSION and copying, table by table, the
columns that version has from a warehouse ingested by the current code; nothing newer leaks in.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import duckdb

from core import conventions as c
from core.store.warehouse import migrate
from tests.conftest import FIXTURES, run_cli

VERSION = 18
OLD = FIXTURES / f"warehouse-v{VERSION}.duckdb"
EXPECTED = FIXTURES / f"warehouse-v{VERSION}.expected.json"
STATE_SINCE = {
    "coverage:": 9,
    "bill:": 15,
    "waiting:": 16,
    "pools:": 17,
}  # rollup_state rows by the schema version that began writing them
WINDOW = ("2026-11-02T00:00:00Z", "2026-11-02T03:00:00Z")


def reports(warehouse: Path, version: int = VERSION) -> dict[str, object]:
    """The reports the old file must still give after migrating: chargeback, health and unit cost; from version 15
    (who waits for GPUs) the queue report too."""
    base = ["--warehouse", str(warehouse), "report"]
    window = ["--start", WINDOW[0], "--end", WINDOW[1], "--format", "json"]
    out = {}
    for name, args in {
        "chargeback": ["chargeback", "--by", "team,workload"],
        "health": ["health", "--state", "healthy,watch,drain,offline,rma"],
        "unit_cost": ["unit-cost"],
        **({"queues": ["queues", "--pods"]} if version >= 15 else {}),
    }.items():
        result = run_cli(*base, *args, *window)
        assert result.exit_code == 0, result.output
        out[name] = json.loads(result.output)
    return out


def build(work: Path) -> Path:
    fleet = work / "fleet"
    assert run_cli("simulate", "--start", WINDOW[0], "--days", "0.125", "--out", str(fleet)).exit_code == 0
    new = work / "new.duckdb"
    files = [str(p) for p in sorted(fleet.glob("*.om"))]
    assert run_cli("--warehouse", str(new), "collect", "openmetrics", *files, "--step", "300s").exit_code == 0
    assert run_cli("--warehouse", str(new), "pricing", "import", "--default").exit_code == 0
    assert (
        run_cli("--warehouse", str(new), "health", "evaluate", "--start", WINDOW[0], "--end", WINDOW[1]).exit_code == 0
    )
    old = work / OLD.name
    con = duckdb.connect(str(old))
    con.execute("SET TimeZone = 'UTC'")
    migrate(con, 0, VERSION)
    con.execute(f"ATTACH '{new}' AS src (READ_ONLY)")
    tables = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database()"
        " AND table_schema = 'main' AND table_type = 'BASE TABLE'"
        " AND table_name <> ?",
        [c.T_SCHEMA_VERSION],
    ).fetchall()
    for (table,) in tables:
        cols = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database()"
            " AND table_schema = 'main' AND table_name = ?"
            " ORDER BY ordinal_position", [table]).fetchall()]  # fmt: skip
        names = ", ".join(f'"{col}"' for col in cols)
        con.execute(f'INSERT INTO "{table}" ({names}) SELECT {names} FROM src."{table}"')
    con.execute("DETACH src")
    if VERSION < 12:  # replicas came from the node label alone then: the old file carries the label's value
        for node, replicas in _resolved_replicas(new):
            con.execute(f"UPDATE {c.T_NODES} SET gpu_replicas = ? WHERE node = ?", [replicas, node])
    for prefix, since in STATE_SINCE.items():  # bookkeeping rows a warehouse of VERSION cannot have written
        if since > VERSION:
            con.execute(f"DELETE FROM {c.T_ROLLUP_STATE} WHERE starts_with(source, ?)", [prefix])
    con.execute("CHECKPOINT")
    con.close()
    EXPECTED.write_text(json.dumps(reports(new), indent=1, sort_keys=True) + "\n")
    return old


def _resolved_replicas(warehouse: Path) -> list[tuple[str, int]]:
    """Each time-sliced node's replicas as today's gpuledger resolves them (label or capacity)."""
    from core.store.step_sql import nodes_sql

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(f"SELECT node, gpu_replicas FROM ({nodes_sql()}) WHERE gpu_replicas IS NOT NULL").fetchall()
    finally:
        con.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(build(Path(tmp)), OLD)
    print(f"wrote {OLD} ({OLD.stat().st_size} bytes) and {EXPECTED}")
