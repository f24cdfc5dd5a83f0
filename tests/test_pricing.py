"""Price tables: exact Decimal money, validated rows, all-or-nothing imports."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from collectors.pricing import price_table
from core.errors import InputError
from tests.conftest import run_cli
from tests.helpers import content_digest

HEADER = "provider,region,instance_type,capacity_type,gpu_model,gpus,price_per_hour_usd,effective_from\n"


def test_the_default_table_parses_with_exact_decimals_and_a_date_and_source_on_every_row() -> None:
    rows = price_table.parse_csv(price_table.default_table_text(), "default")
    p4d = next(r for r in rows if r.instance_type == "p4d.24xlarge" and r.capacity_type == "on_demand")
    assert p4d.price_per_hour_usd == Decimal("21.957642") and p4d.gpus == 8
    assert all(r.effective_from and r.source for r in rows)
    a2 = next(r for r in rows if r.instance_type == "a2-highgpu-1g" and r.capacity_type == "on_demand")
    assert a2.price_per_hour_usd == Decimal("3.673385")  # = 2.933908 + 12 x 0.031611 + 85 x 0.004237


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "aws,us-east-1,p5.48xlarge,on_demand,H100,8,-1,2026-01-01\n",
            "prices.csv:2: price '-1' must be a finite non-negative number",
        ),
        (
            "aws,us-east-1,p5.48xlarge,on_demand,H100,8,cheap,2026-01-01\n",
            "prices.csv:2: price 'cheap' is not a number",
        ),
        ("aws,us-east-1,p5.48xlarge,ondemand,H100,8,1,2026-01-01\n", "prices.csv:2: capacity_type 'ondemand'"),
        (
            "aws,us-east-1,p5.48xlarge,on_demand,H100,0,1,2026-01-01\n",
            "prices.csv:2: gpus '0' must be a positive integer",
        ),
        ("aws,us-east-1,p5.48xlarge,on_demand,H100,8,1,yesterday\n", "prices.csv:2: effective_from 'yesterday'"),
    ],
    ids=["negative price", "non-numeric price", "unknown capacity type", "zero GPUs", "bad date"],
)
def test_a_bad_row_is_named_by_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(HEADER + "aws,us-east-1,p4d.24xlarge,on_demand,A100,8,21.957642,2026-01-21\n" + body)
    with pytest.raises(InputError) as info:
        price_table.read_file(path)
    assert message.replace(":2:", ":3:") in str(info.value)


def test_a_missing_column_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("provider,region,instance_type\naws,us-east-1,p5.48xlarge\n")
    with pytest.raises(InputError, match="prices.csv:1: missing column"):
        price_table.read_file(path)


def test_an_import_with_one_bad_row_applies_nothing(tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    assert run_cli("--warehouse", str(wh), "pricing", "import", "--default").exit_code == 0
    before = content_digest(wh)
    path = tmp_path / "prices.csv"
    path.write_text(
        HEADER
        + "aws,us-east-1,p4d.24xlarge,on_demand,A100,8,1.00,2026-02-01\naws,us-east-1,x,on_demand,A100,8,oops,2026-02-01\n"
    )
    result = run_cli("--warehouse", str(wh), "pricing", "import", str(path))
    assert result.exit_code == 2 and "prices.csv:3:" in result.output
    assert content_digest(wh) == before


def test_importing_the_same_table_twice_changes_nothing(tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    assert run_cli("--warehouse", str(wh), "pricing", "import", "--default").exit_code == 0
    before = content_digest(wh)
    result = run_cli("--warehouse", str(wh), "pricing", "import", "--default")
    assert "(0 new or changed)" in result.output and content_digest(wh) == before
    shown = run_cli("--warehouse", str(wh), "pricing", "show", "--instance-type", "p4d.24xlarge")
    assert "21.9576420000" in shown.output and "vantage" in shown.output


def test_the_default_table_is_regenerated_from_the_importers_where_the_fixtures_allow() -> None:
    from tests.regenerate_prices import TABLE, generated_rows, regenerate

    current = TABLE.read_text(encoding="utf-8")
    assert regenerate(current) == current, "stale: run .venv/bin/python -m tests.regenerate_prices"
    shipped = {(r.provider, r.region, r.instance_type, r.capacity_type): r for r in price_table.parse_csv(current, "d")}
    for row in generated_rows():
        kept = shipped[(row.provider, row.region, row.instance_type, row.capacity_type)]
        assert (kept.price_per_hour_usd, kept.gpu_price_per_hour_usd) == (
            row.price_per_hour_usd,
            row.gpu_price_per_hour_usd,
        )
    a2 = shipped[("gcp", "us-central1", "a2-highgpu-1g", "on_demand")]
    assert a2.gpu_price_per_hour_usd == Decimal("2.933908") and "039F-D0DA-4055" in a2.sku


def test_prices_in_a_version_2_warehouse_survive_the_migration_and_bill_all_of_the_node_to_its_gpus(
    tmp_path: Path,
) -> None:
    import duckdb

    from core import conventions as c
    from core.store.warehouse import connect, migrate

    path = tmp_path / "v2.duckdb"
    raw = duckdb.connect(str(path))
    migrate(raw, 0, to_version=2)
    raw.execute(
        f"INSERT INTO {c.T_PRICES} VALUES ('aws', 'us-east-1', 'p4d.24xlarge', 'on_demand', 'A100', 8, 21.957642,"
        " '2026-01-21', 'vantage')"
    )
    raw.close()
    con = connect(path)
    row = con.execute(
        f"SELECT zone, term, price_per_hour_usd, gpu_price_per_hour_usd, source, effective_to FROM {c.V_PRICE_HISTORY}"
    ).fetchall()
    con.close()
    assert row == [("", "", Decimal("21.957642"), Decimal("21.957642"), "vantage", None)]


def test_the_csv_takes_optional_zone_term_gpu_part_sku_and_fetch_time_columns(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(
        HEADER.strip() + ",zone,term,gpu_price_per_hour_usd,sku,fetched_at\n"
        "aws,us-east-1,p3.2xlarge,spot,V100,1,0.52,2026-01-01,us-east-1a,,0.50,r-1,2026-01-02T03:04:05Z\n"
        "gcp,us-central1,a2-highgpu-1g,reserved,A100,1,2.5,2026-01-01,,1yr,,,\n"
    )
    spot, reserved = sorted(price_table.read_file(path, price_table.ImportOptions(gpu_share=Decimal("0.9"))), key=str)
    assert (spot.zone, spot.gpu_price_per_hour_usd, spot.sku, str(spot.fetched_at)) == (
        "us-east-1a",
        Decimal("0.50"),
        "r-1",
        "2026-01-02 03:04:05",
    )
    assert (reserved.term, reserved.gpu_price_per_hour_usd) == ("1yr", Decimal("2.25"))  # 2.5 x the 0.9 share
    path.write_text(HEADER.strip() + ",gpu_price_per_hour_usd\naws,us-east-1,x,on_demand,A,1,1,2026-01-01,2\n")
    with pytest.raises(InputError, match="GPUs' part of .* exceeds its node price"):
        price_table.read_file(path)
