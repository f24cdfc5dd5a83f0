"""Unit cost of serving: cost per 1,000 requests and per 1M input / output tokens, per model (and
version), over any window, against the configured ceiling.

cost(model)  = the chargeback cost of the pods that served it (analytics/cost/chargeback.py grouped by
               namespace and pod: whole GPUs, MIG slices and time-sliced shares, priced per step)
requests     = increase() of the server's request counter over the window (vLLM: requests finished
               by the engine, any reason; Triton: successes + failures; TGI: tgi_request_count;
               KServe: predictions; Knative: revision requests)
tokens       = increase() of the prompt and generation token counters (TGI: the token histograms' _sum)
input/output = the GPU cost is split by the time spent in prefill vs decode when vLLM exports
               request_prefill/decode_time_seconds; otherwise by token count (both then cost the
               same per token, shown as split "tokens").
energy       = the GPU energy of the same pods' chargeback rows (measured at the GPU), per 1,000 requests and
               per 1M tokens (input and output together); their carbon (kWh x PUE x grid intensity, plus the GPUs'
               embodied share where configured) the same way: the Green Software Foundation's SCI per functional
               unit. Energy drawn in a region without an intensity is named in the notes, never counted as zero.
Money stays Decimal; unit costs are rounded to 1/10,000 of a dollar, energy to the watt-hour, carbon to the gram.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import duckdb

from analytics.cost.chargeback import ChargebackOptions, chargeback
from analytics.serving.counters import Matcher, Selector, Span, series_increases
from core import conventions as c
from core.money import in_money_context
from core.timeutil import Window

UNIT = Decimal("0.0001")
KWH_UNIT = Decimal("0.001")  # a watt-hour
GRAM = Decimal("0.001")  # of a kilogram
G_UNIT = Decimal("0.01")  # grams per functional unit
JOULES_PER_KWH = Decimal(3_600_000)

PodKey = tuple[str, str]  # namespace, pod


@dataclass
class UnitCost:
    model: str
    version: str
    pods: list[str]
    gpu_hours: float
    cost_usd: Decimal
    requests: float
    prompt_tokens: float
    generation_tokens: float
    split: str  # prefill_decode | tokens
    ceiling_per_1k_requests_usd: Decimal
    cost_per_1k_requests_usd: Decimal | None = None
    cost_per_1m_input_tokens_usd: Decimal | None = None
    cost_per_1m_output_tokens_usd: Decimal | None = None
    per_request_usd: float | None = None
    energy_kwh: Decimal = Decimal(0)  # the GPU energy of the model's pods in the window
    kwh_per_1k_requests: Decimal | None = None
    kwh_per_1m_tokens: Decimal | None = None
    co2e_kg: Decimal = Decimal(0)  # the carbon of that energy (and of the GPUs' embodied share, where configured)
    gco2e_per_1k_requests: Decimal | None = None
    gco2e_per_1m_tokens: Decimal | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def over_ceiling(self) -> bool:
        return (
            self.cost_per_1k_requests_usd is not None
            and self.cost_per_1k_requests_usd > self.ceiling_per_1k_requests_usd
        )

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "per_request_usd"}
        for k, v in out.items():
            if isinstance(v, Decimal):
                out[k] = str(v)
        out["over_ceiling"] = self.over_ceiling
        return out


def version_of(labels_json: str) -> str:
    labels = json.loads(labels_json or "{}")
    return next((labels[k] for k in c.L_VERSION_LABELS if labels.get(k)), "")


def serving_pods(
    con: duckdb.DuckDBPyConnection, window: Window, model: str | None = None
) -> dict[tuple[str, str], set[PodKey]]:
    """(model, version) -> the pods that exported its series in the window."""
    sql = f"""SELECT DISTINCT model, labels, namespace, pod FROM {c.T_INFERENCE_SAMPLES}
        WHERE ts >= ? AND ts < ? AND model <> '' AND pod <> ''"""
    params: list[object] = [window.start, window.end]
    if model is not None:
        sql += " AND model = ?"
        params.append(model)
    out: dict[tuple[str, str], set[PodKey]] = defaultdict(set)
    for m, labels, ns, pod in con.execute(sql, params).fetchall():
        out[(m, version_of(labels))].add((ns, pod))
    return out


def _pod_matchers(pods: set[PodKey]) -> tuple[Matcher, ...]:
    return (
        Matcher("namespace", "=~", "|".join(sorted({re.escape(ns) for ns, _ in pods}))),
        Matcher("pod", "=~", "|".join(sorted(re.escape(p) for _, p in pods))),
    )


def _counted(con: duckdb.DuckDBPyConnection, metrics: tuple[str, ...], pods: set[PodKey], span: Span) -> float | None:
    """Sum of increase() of the first metric group the pods export (None: none of them)."""
    total, found = 0.0, False
    for metric in metrics:
        increases = series_increases(con, Selector(metric, _pod_matchers(pods)), [span]).get(0, {})
        mine = [v for k, v in increases.items() if (k[1], k[2]) in pods]
        if mine:
            total, found = total + sum(mine), True
    return total if found else None


def _first(con: duckdb.DuckDBPyConnection, groups: tuple[tuple[str, ...], ...], pods: set[PodKey], span: Span) -> float:
    for group in groups:
        value = _counted(con, group, pods, span)
        if value is not None:
            return value
    return 0.0


@in_money_context
def unit_costs(
    con: duckdb.DuckDBPyConnection,
    window: Window,
    ceiling: Decimal,
    model: str | None = None,
    options: ChargebackOptions | None = None,
    by_version: bool = True,
) -> list[UnitCost]:
    """One row per model (and version, when `by_version`) serving in the window; GPU cost from the
    chargeback (grouped by namespace and pod, with the caller's allocation options)."""
    span = Span(window.end, int((window.end - window.start).total_seconds()))
    report = chargeback(con, window, replace(options or ChargebackOptions(), by=("namespace", "pod")))
    cost = {(r.keys["namespace"], r.keys["pod"]): r for r in report.rows}
    groups: dict[tuple[str, str], set[PodKey]] = defaultdict(set)
    for (m, version), pods in serving_pods(con, window, model).items():
        groups[(m, version if by_version else "")] |= pods
    out = []
    for (m, version), pods in sorted(groups.items()):
        rows = [cost[p] for p in sorted(pods) if p in cost]
        money = sum((r.cost_usd for r in rows), Decimal(0))
        item = UnitCost(
            m, version, sorted(p for _, p in pods), sum(r.gpu_hours for r in rows), money,
            _first(con, c.REQUEST_COUNTERS, pods, span),
            _first(con, tuple((x,) for x in c.PROMPT_TOKEN_COUNTERS), pods, span),
            _first(con, tuple((x,) for x in c.GENERATION_TOKEN_COUNTERS), pods, span),
            "tokens", ceiling,
        )  # fmt: skip
        item.energy_kwh = (sum((r.energy_j for r in rows), Decimal(0)) / JOULES_PER_KWH).quantize(KWH_UNIT)
        item.co2e_kg = (sum((r.co2e_g + r.embodied_g for r in rows), Decimal(0)) / 1000).quantize(GRAM)
        unpriced = sum((r.unpriced_carbon_j for r in rows), Decimal(0)) / JOULES_PER_KWH
        if unpriced > 0:
            item.notes.append(f"{unpriced.quantize(KWH_UNIT)} kWh drawn where no carbon intensity is known")
        if len(rows) < len(pods):
            item.notes.append(f"{len(pods) - len(rows)} pod(s) hold no GPU in the window")
        _divide(con, item, pods, span)
        out.append(item)
    return out


def _divide(con: duckdb.DuckDBPyConnection, item: UnitCost, pods: set[PodKey], span: Span) -> None:
    if item.requests > 0 and item.gpu_hours > 0:  # no GPU held in the window: no cost to spread
        item.cost_per_1k_requests_usd = (item.cost_usd * 1000 / _dec(item.requests)).quantize(UNIT)
        item.per_request_usd = float(item.cost_usd) / item.requests
        item.kwh_per_1k_requests = (item.energy_kwh * 1000 / _dec(item.requests)).quantize(UNIT)
        item.gco2e_per_1k_requests = (item.co2e_kg * 1000 * 1000 / _dec(item.requests)).quantize(G_UNIT)
    tokens = item.prompt_tokens + item.generation_tokens
    if tokens <= 0 or item.gpu_hours <= 0:
        return
    item.kwh_per_1m_tokens = (item.energy_kwh * 1_000_000 / _dec(tokens)).quantize(UNIT)
    item.gco2e_per_1m_tokens = (item.co2e_kg * 1000 * 1_000_000 / _dec(tokens)).quantize(G_UNIT)
    prefill = _counted(con, (c.PREFILL_DECODE_SUMS[0],), pods, span)
    decode = _counted(con, (c.PREFILL_DECODE_SUMS[1],), pods, span)
    if prefill and decode:
        item.split = "prefill_decode"
        input_cost = item.cost_usd * _dec(prefill) / _dec(prefill + decode)
    else:
        input_cost = item.cost_usd * _dec(item.prompt_tokens) / _dec(tokens)
    if item.prompt_tokens > 0:
        item.cost_per_1m_input_tokens_usd = (input_cost * 1_000_000 / _dec(item.prompt_tokens)).quantize(UNIT)
    if item.generation_tokens > 0:
        output_cost = item.cost_usd - input_cost
        item.cost_per_1m_output_tokens_usd = (output_cost * 1_000_000 / _dec(item.generation_tokens)).quantize(UNIT)


def _dec(value: float) -> Decimal:
    return Decimal(repr(float(value)))
