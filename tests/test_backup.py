"""`gpuledger backup` (EXPORT DATABASE from a read-only connection) and `gpuledger restore` (into a new file)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli
from tests.helpers import content_digest


def _report(wh: Path) -> str:
    result = run_cli(
        "--warehouse",
        str(wh),
        "report",
        "chargeback",
        "--start",
        "2026-11-02",
        "--end",
        "2026-11-03",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_a_backup_restores_into_a_warehouse_with_the_same_data_and_reports(
    direct_warehouse: Path, tmp_path: Path
) -> None:
    backup = tmp_path / "backup"
    assert run_cli("--warehouse", str(direct_warehouse), "backup", "--out", str(backup)).exit_code == 0
    assert any(backup.glob("*.parquet")) and (backup / "schema.sql").is_file()
    restored = tmp_path / "restored.duckdb"
    result = run_cli("--warehouse", str(restored), "restore", "--from", str(backup))
    assert result.exit_code == 0, result.output
    assert content_digest(restored) == content_digest(direct_warehouse)
    assert _report(restored) == _report(direct_warehouse)


def test_backup_and_restore_never_overwrite(direct_warehouse: Path, tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    assert run_cli("--warehouse", str(direct_warehouse), "backup", "--out", str(tmp_path / "used")).exit_code == 2
    assert run_cli("--warehouse", str(direct_warehouse), "restore", "--from", str(tmp_path / "used")).exit_code == 2
    bad = run_cli("--warehouse", str(tmp_path / "new.duckdb"), "restore", "--from", str(tmp_path / "used"))
    assert bad.exit_code == 2 and not (tmp_path / "new.duckdb").exists()
