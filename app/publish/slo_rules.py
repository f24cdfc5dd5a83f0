"""The SLOs a rules run alerts on: Sloth specs as they are, settings SLOs resolved against the
warehouse (which histogram and error counter each service really exports, as `report slo` does)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import duckdb

from alerts import serialize
from alerts.slo import SLORule, from_def
from analytics.serving.sli import SLODef
from analytics.serving.slo import build_slos
from analytics.serving.sloth import slos_from_documents, unique
from app.stage_options import read_sloth, sloth_specs
from core import conventions as c
from core.errors import ConfigError
from core.settings import Settings
from core.store.warehouse import one, open_warehouse
from core.timeutil import parse_duration


def serving_data_end(con: duckdb.DuckDBPyConnection) -> datetime:
    row = one(con, f"SELECT max(ts + to_seconds(step_s)) FROM {c.T_INFERENCE_SAMPLES}")
    if not row or row[0] is None:
        raise ConfigError("the warehouse holds no serving metrics yet; collect an inference server's metrics first")
    return row[0]


def sloth_defs(path: Path, window: str) -> list[SLODef]:
    """Every SLO of a Sloth spec file, checked: no warehouse needed, the spec names its own series."""
    window_s = parse_duration(window)
    problem = c.slo_period_problem(window_s)
    if problem:
        raise ConfigError(f"{path}: SLO period {window}: {problem}")
    defs = slos_from_documents(read_sloth(path), window_s)
    unique(defs)
    return defs


def from_sloth(path: Path, window: str) -> tuple[SLORule, ...]:
    """Every SLO of a Sloth spec file as gpuledger's SLO rules."""
    return tuple(from_def(d) for d in sloth_defs(path, window))


def declared(settings: Settings) -> tuple[SLORule, ...]:
    serving = settings.serving
    if not any(svc.slos for svc in serving.services.values()):
        return tuple(r for path in serving.sloth_specs for r in from_sloth(Path(path), serving.sloth_window))
    if not Path(settings.warehouse.path).exists():
        raise ConfigError(
            f"{settings.warehouse.path}: SLOs declared in the settings are resolved against the services' metrics "
            "(which histogram and error counter they export); collect them first"
        )
    with open_warehouse(settings.warehouse.path, read_only=True) as con:
        defs = build_slos(con, serving, sloth_specs(serving), serving_data_end(con), rules_only=True)
    unique(defs)
    return tuple(from_def(d) for d in defs)


_UNPARSED = re.compile(r'group "([^"]+)", rule \d+, "[^"]*": could not parse expression: (.*)')


def check_promql(path: Path, rule_file: Path, defs: list[SLODef], promtool: str) -> None:
    """Refuse a spec whose PromQL Prometheus cannot parse (a MetricsQL-only query, as Sloth refuses it), naming
    the SLO: promtool reads the written rules, and its first parse error is traced to the SLO's rule group."""
    ok, output = serialize.promtool_check([rule_file], promtool)
    if ok:
        return
    hit = _UNPARSED.search(output)
    if hit is None:
        raise ConfigError(f"{path}: promtool rejected the rules written for it: {output.splitlines()[-1]}")
    group, why = hit.groups()
    owner = next(
        (d for d in defs if group.removesuffix("-sli").removesuffix("-alerts").endswith(f"-{d.service}-{d.name}")), None
    )
    who = f"SLO {owner.name!r} of service {owner.service!r}" if owner else f"rule group {group!r}"
    raise ConfigError(f"{path}: {who}: Prometheus cannot parse its PromQL (a MetricsQL-only query?): {why}")
