"""The warehouse schema is versioned: older files migrate, newer files are refused clearly."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from core import conventions as c
from core.errors import SchemaError
from core.settings import load_settings
from core.store.schema import LATEST_VERSION
from core.store.warehouse import connect, migrate, schema_version


def test_a_new_warehouse_is_created_at_the_latest_version(tmp_path: Path) -> None:
    con = connect(tmp_path / "wh.duckdb")
    assert schema_version(con) == LATEST_VERSION
    con.close()


def test_an_older_warehouse_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    raw = duckdb.connect(str(path))
    migrate(raw, 0, to_version=1)
    raw.execute(f"INSERT INTO {c.T_WATERMARKS} VALUES ('src', '2026-11-02', '2026-11-02')")
    raw.close()
    con = connect(path)
    assert schema_version(con) == LATEST_VERSION
    assert con.execute(f"SELECT source FROM {c.T_WATERMARKS}").fetchall() == [("src",)]
    assert con.execute(f"SELECT count(*) FROM {c.T_INGEST_RUNS}").fetchall() == [(0,)]
    con.close()


def test_a_newer_warehouse_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    connect(path).close()
    raw = duckdb.connect(str(path))
    raw.execute(f"INSERT INTO {c.T_SCHEMA_VERSION} VALUES ({LATEST_VERSION + 1}, now())")
    raw.close()
    with pytest.raises(SchemaError, match=f"version {LATEST_VERSION + 1} is newer"):
        connect(path)


def test_the_warehouse_path_comes_from_the_environment_when_set(tmp_path: Path) -> None:
    settings = load_settings(Path("/dev/null"), env={"GPULEDGER_WAREHOUSE": str(tmp_path / "x.duckdb")})
    assert settings.warehouse.path == tmp_path / "x.duckdb"


def test_a_settings_file_with_an_unknown_key_is_rejected(tmp_path: Path) -> None:
    from core.errors import ConfigError

    bad = tmp_path / "s.yaml"
    bad.write_text("collect:\n  stepp: 60s\n")
    with pytest.raises(ConfigError, match="collect.stepp"):
        load_settings(bad, env={})
