"""Unit cost on a hand-made warehouse: one pod holding one $8/h GPU for an hour, known counters."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import duckdb
import pytest

from analytics.cost.carbon import CarbonTable
from analytics.cost.chargeback import ChargebackOptions
from analytics.serving.unit_cost import unit_costs
from core import conventions as c
from core.timeutil import Window
from tests.builders import T0, add_gpu_usage, add_node, add_pod, add_price, fresh_db

HOUR = Window(T0, T0 + timedelta(hours=1))


def _counter(
    con: duckdb.DuckDBPyConnection, metric: str, per_minute: float, labels: dict[str, str] | None = None
) -> None:
    """A counter scraped every minute on the minute from T0 to T0 + 1h, rising by `per_minute`."""
    con.executemany(
        f"INSERT INTO {c.T_INFERENCE_SAMPLES} VALUES (?, 60, 'c1', 'ns', 'srv-0', 'm', ?, NULL, ?, ?, ?)",
        [
            [T0 + timedelta(minutes=k - 1), metric, json.dumps(labels or {}), per_minute * k, T0 + timedelta(minutes=k)]
            for k in range(61)
        ],
    )


@pytest.fixture
def serving_hour() -> duckdb.DuckDBPyConnection:
    con = fresh_db()
    add_node(con, "n1", 8)
    add_pod(con, "srv-0", "n1", namespace="ns", steps=60)
    add_price(con, "64")  # $64/h for 8 GPUs: $8 per GPU-hour
    _counter(con, c.VLLM_FINISHED, 100, {"finished_reason": "stop"})  # 6,000 requests
    _counter(con, "vllm:prompt_tokens_total", 30_000)  # 1.8M input tokens
    _counter(con, "vllm:generation_tokens_total", 10_000)  # 0.6M output tokens
    return con


def test_cost_per_1k_requests_and_per_1m_tokens_split_by_token_count(serving_hour: duckdb.DuckDBPyConnection) -> None:
    (row,) = unit_costs(serving_hour, HOUR, Decimal("5"))
    assert (row.cost_usd, row.requests, row.split) == (Decimal("8.00"), pytest.approx(6000), "tokens")
    assert row.cost_per_1k_requests_usd == Decimal("1.3333")  # $8 / 6 thousand requests
    assert row.cost_per_1m_input_tokens_usd == row.cost_per_1m_output_tokens_usd == Decimal("3.3333")  # $8 / 2.4M
    assert row.over_ceiling is False


def test_the_models_gpu_energy_per_1k_requests_and_per_1m_tokens(serving_hour: duckdb.DuckDBPyConnection) -> None:
    add_gpu_usage(serving_hour, "n1", "GPU-0", 0.6, pod="srv-0", namespace="ns", steps=60, power_w=450.0)
    (row,) = unit_costs(serving_hour, HOUR, Decimal("5"))
    # 450 W for an hour: 0.45 kWh over 6,000 requests and 2.4M tokens
    assert row.energy_kwh == Decimal("0.450")
    assert row.kwh_per_1k_requests == Decimal("0.0750") and row.kwh_per_1m_tokens == Decimal("0.1875")


@pytest.mark.parametrize(
    ("intensity", "pue", "co2e_kg", "per_1k", "per_1m", "note"),
    [
        # 0.45 kWh x PUE 1.2 x 400 g/kWh = 216 g over 6,000 requests (36 g per 1,000) and 2.4M tokens (90 g per 1M)
        ({"us-east-1": Decimal(400)}, Decimal("1.2"), Decimal("0.216"), Decimal("36.00"), Decimal("90.00"), None),
        # the node's region has no intensity: no carbon, and the energy named, not taken as zero grams
        ({"eu-west-1": Decimal(300)}, Decimal("1.2"), Decimal("0.000"), Decimal("0.00"), Decimal("0.00"), "0.450 kWh"),
    ],
    ids=["a known region", "a region without intensity"],
)
def test_the_models_carbon_per_1k_requests_and_per_1m_tokens_is_its_energy_at_the_regions_intensity(
    serving_hour: duckdb.DuckDBPyConnection,
    intensity: dict[str, Decimal],
    pue: Decimal,
    co2e_kg: Decimal,
    per_1k: Decimal,
    per_1m: Decimal,
    note: str | None,
) -> None:
    add_gpu_usage(serving_hour, "n1", "GPU-0", 0.6, pod="srv-0", namespace="ns", steps=60, power_w=450.0)
    opts = ChargebackOptions(carbon=CarbonTable(intensity, {}, pue))
    (row,) = unit_costs(serving_hour, HOUR, Decimal("5"), options=opts)
    assert (row.co2e_kg, row.gco2e_per_1k_requests, row.gco2e_per_1m_tokens) == (co2e_kg, per_1k, per_1m)
    assert any(note in n for n in row.notes) if note else not row.notes


def test_prefill_and_decode_time_split_the_gpu_cost_between_input_and_output(
    serving_hour: duckdb.DuckDBPyConnection,
) -> None:
    _counter(serving_hour, c.PREFILL_DECODE_SUMS[0], 1.0)  # 60 s of prefill
    _counter(serving_hour, c.PREFILL_DECODE_SUMS[1], 3.0)  # 180 s of decode
    (row,) = unit_costs(serving_hour, HOUR, Decimal("1"))
    assert row.split == "prefill_decode"
    assert row.cost_per_1m_input_tokens_usd == Decimal("1.1111")  # $2 of the $8 over 1.8M input tokens
    assert row.cost_per_1m_output_tokens_usd == Decimal("10.0000")  # $6 over 0.6M output tokens
    assert row.over_ceiling is True, "$1.33 per 1,000 requests is over a $1 ceiling"
