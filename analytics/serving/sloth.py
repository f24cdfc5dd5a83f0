"""Sloth `prometheus/v1` SLO specs as gpuledger SLOs, so teams bring the specs they already have.

Sloth's SLI queries are PromQL templated on `{{.window}}`. gpuledger evaluates them in the warehouse,
which understands the shape every Sloth example uses: sums and differences of
`sum(rate|increase(<selector>[{{.window}}]))`, for `events.error_query` / `events.total_query`, or one such ratio as
`raw.error_ratio_query`. Anything else (functions, binary operators other than + - /, offsets,
plugin SLIs) is refused with the query named, never guessed. The spec has no period: Sloth takes it
from `--default-slo-period` (30d); gpuledger from `serving.sloth_window`.
"""

from __future__ import annotations

import re
from typing import Any

from analytics.serving.counters import Matcher, Selector
from analytics.serving.sli import SLI, SLODef, Term
from core.errors import ConfigError

_TOKEN = re.compile(
    r"\s*(?:(?P<window>\{\{\s*\.window\s*\}\})|(?P<str>\"(?:[^\"\\]|\\.)*\")|(?P<op>=~|!~|!=|=|[-+/(){}\[\],])"
    r"|(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)|(?P<num>[0-9.]+[smhdwy]?))"
)


class _Parser:
    def __init__(self, query: str, where: str) -> None:
        self.where = where
        self.query = query
        self.tokens = self._tokenize(query)
        self.pos = 0

    def _tokenize(self, query: str) -> list[tuple[str, str]]:
        out, i = [], 0
        query = query.strip()
        while i < len(query):
            m = _TOKEN.match(query, i)
            if not m or m.end() == i:
                self.fail(f"cannot read {query[i : i + 20]!r}")
            assert m is not None
            kind = m.lastgroup or ""
            out.append((kind, m.group(kind)))
            i = m.end()
            while i < len(query) and query[i].isspace():
                i += 1
        return out

    def fail(self, why: str) -> None:
        raise ConfigError(f"{self.where}: unsupported SLI query ({why}): {self.query.strip()}")

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        if self.pos >= len(self.tokens):
            self.fail("unexpected end")
        value = self.tokens[self.pos][1]
        if expected is not None and value != expected:
            self.fail(f"expected {expected!r}, found {value!r}")
        self.pos += 1
        return value

    def expression(self) -> list[Term]:
        terms = self.term(1)
        while self.peek() in ("+", "-"):
            sign = 1 if self.take() == "+" else -1
            terms += self.term(sign)
        return terms

    def term(self, sign: int) -> list[Term]:
        if self.peek() == "(":
            self.take("(")
            inner = self.expression()
            self.take(")")
            return [Term(sign * t.sign, t.selector) for t in inner]
        word = self.take()
        if word == "sum":
            self._grouping()
            self.take("(")
            terms = self.term(sign)
            self.take(")")
            self._grouping()
            return terms
        if word in ("rate", "increase"):
            self.take("(")
            selector = self.selector()
            self.take("[")
            if self.tokens[self.pos][0] != "window":
                self.fail("the range must be {{.window}}")
            self.take()
            self.take("]")
            self.take(")")
            return [Term(sign, selector)]
        self.fail(f"{word!r} is not sum(), rate() or increase()")
        return []

    def _grouping(self) -> None:
        if self.peek() in ("by", "without"):
            self.fail("sum by/without gives one SLI per group; write one SLO per group")

    def selector(self) -> Selector:
        name = self.take()
        matchers: list[Matcher] = []
        if self.peek() == "{":
            self.take("{")
            while self.peek() != "}":
                label, op = self.take(), self.take()
                if op not in ("=", "!=", "=~", "!~"):
                    self.fail(f"bad matcher operator {op!r}")
                value = self.take()
                matchers.append(Matcher(label, op, re.sub(r"\\(.)", r"\1", value[1:-1])))
                if self.peek() == ",":
                    self.take(",")
            self.take("}")
        return Selector(name, tuple(matchers))

    def done(self) -> bool:
        return self.pos >= len(self.tokens)


def parse_events(query: str, where: str) -> tuple[Term, ...]:
    parser = _Parser(query, where)
    terms = parser.expression()
    if not parser.done():
        parser.fail(f"unexpected {parser.peek()!r}")
    return tuple(terms)


def _ratio(query: str, where: str) -> tuple[tuple[Term, ...], tuple[Term, ...]]:
    parser = _Parser(query, where)
    bad = parser.expression()
    parser.take("/")
    total = parser.expression()
    if not parser.done():
        parser.fail(f"unexpected {parser.peek()!r}")
    return tuple(bad), tuple(total)


def slos_from_spec(spec: dict[str, Any], where: str, window_s: int) -> list[SLODef]:
    """Every SLO of one `prometheus/v1` spec (already loaded from YAML)."""
    if not isinstance(spec, dict) or spec.get("version") != "prometheus/v1":
        raise ConfigError(f"{where}: not a Sloth spec (version must be prometheus/v1)")
    service = spec.get("service")
    if not isinstance(service, str) or not service:
        raise ConfigError(f"{where}: the spec needs a service name")
    out = []
    for i, slo in enumerate(spec.get("slos") or []):
        here = f"{where}: slos[{i}]"
        name, objective, sli = slo.get("name"), slo.get("objective"), slo.get("sli") or {}
        if not name or not isinstance(objective, int | float) or not 0 < objective < 100:
            raise ConfigError(f"{here}: needs a name and an objective in (0, 100)")
        if "events" in sli:
            bad = parse_events(sli["events"].get("error_query", ""), f"{here}.sli.events.error_query")
            total = parse_events(sli["events"].get("total_query", ""), f"{here}.sli.events.total_query")
        elif "raw" in sli:
            bad, total = _ratio(sli["raw"].get("error_ratio_query", ""), f"{here}.sli.raw.error_ratio_query")
        else:
            raise ConfigError(f"{here}: only events and raw SLIs can be computed in the warehouse (not plugins)")
        labels = {str(k): str(v) for k, v in {**(spec.get("labels") or {}), **(slo.get("labels") or {})}.items()}
        description = str(slo.get("description") or "sloth events")
        out.append(
            SLODef(service, str(name), float(objective), window_s, SLI(bad, total, description), "events",
                   f"sloth:{where}", labels)
        )  # fmt: skip
    return out
