"""The PromQL of Sloth SLI queries that the warehouse can evaluate, read into SLI terms.

It reads signed sums of:
- counters: `sum(rate|increase(<selector>[{{.window}}]))`, read as events (a ratio of rates is a ratio of
  increases), summed over series with or without the `sum`;
- gauges: `avg|count|sum_over_time(<selector>[{{.window}}])`, over the raw samples, or over a subquery
  `(<selector> <op> [bool] <number>)[{{.window}}:<step>]` (an empty step is Prometheus' default evaluation
  interval, 1m), bare (one series) or under `sum` / `avg`.

A raw error ratio is `bad / total`, `1 - good / total` (bad = total - good), or, of gauges only, a ratio with no
denominator (`1 - avg_over_time(up[{{.window}}])`). Anything else (other functions, `by` groupings, offsets,
counters mixed with gauges) raises UnsupportedQuery: the SLO is then written as rules only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from analytics.serving.counters import COUNTER_FNS, GAUGE_FNS, Compare, Matcher, Reading, Selector
from analytics.serving.sli import Term
from core.errors import ConfigError
from core.timeutil import parse_duration

_TOKEN = re.compile(
    r"\s*(?:(?P<window>\{\{\s*\.window\s*\}\})|(?P<str>\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op>=~|!~|!=|==|<=|>=|=|<|>|[-+/(){}\[\],:])"
    r"|(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)|(?P<num>[0-9.]+[smhdwy]?))"
)
_AGGREGATES = ("sum", "avg")
_COMPARISONS = ("==", "!=", "<", ">", "<=", ">=")
SUBQUERY_DEFAULT_STEP_S = 60  # `[W:]` steps at the rule group's interval: Prometheus' default is 1m

Parsed = tuple[tuple[Term, ...], tuple[Term, ...], float]  # bad terms, total terms (none: no denominator), offset


class UnsupportedQuery(ConfigError):
    """A query the warehouse cannot evaluate."""


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
        raise UnsupportedQuery(f"{self.where}: unsupported SLI query ({why}): {self.query.strip()}")

    def peek(self, ahead: int = 0) -> str | None:
        return self.tokens[self.pos + ahead][1] if self.pos + ahead < len(self.tokens) else None

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
            return [Term(sign * t.sign, t.selector, t.reading) for t in inner]
        word = self.take()
        if word in _AGGREGATES:
            return self._aggregated(word, sign)
        if word in COUNTER_FNS or word in GAUGE_FNS:
            self.take("(")
            selector, reading = self.range_(word)
            self.take(")")
            return [Term(sign, selector, reading)]
        self.fail(f"{word!r} is not sum(), avg(), rate(), increase() or a gauge's *_over_time()")
        return []

    def _aggregated(self, how: str, sign: int) -> list[Term]:
        self._grouping()
        self.take("(")
        terms = self.term(sign)
        self.take(")")
        self._grouping()
        if how == "avg" and (len(terms) != 1 or terms[0].reading.counts_events):
            self.fail("avg() of counters or of a sum is not a ratio of events")
        return [Term(t.sign, t.selector, replace(t.reading, aggregate=how)) for t in terms]

    def _grouping(self) -> None:
        if self.peek() in ("by", "without"):
            self.fail("by/without gives one SLI per group; write one SLO per group")

    def range_(self, fn: str) -> tuple[Selector, Reading]:
        """`<selector>[{{.window}}]`, or a subquery `(<selector> <op> [bool] <n>)[{{.window}}:<step>]`."""
        compare = None
        if self.peek() == "(":
            selector, compare = self._compared()
        else:
            selector = self.selector()
        self.take("[")
        if self.pos >= len(self.tokens) or self.tokens[self.pos][0] != "window":
            self.fail("the range must be {{.window}}")
        self.take()
        step = None
        if self.peek() == ":":
            self.take(":")
            step = SUBQUERY_DEFAULT_STEP_S if self.peek() == "]" else self._duration()
        self.take("]")
        if fn in COUNTER_FNS:
            if step is not None:
                self.fail("a subquery of a counter")
            return selector, Reading()  # a ratio of rates is a ratio of increases
        if compare is not None and step is None:
            self.fail("a comparison needs a subquery")
        return selector, Reading(fn, step, compare, aggregate=None)

    def _compared(self) -> tuple[Selector, Compare | None]:
        self.take("(")
        selector, compare = self._compared() if self.peek() == "(" else (self.selector(), None)
        if compare is None and self.peek() in _COMPARISONS:
            op = self.take()
            as_bool = self.peek() == "bool"
            if as_bool:
                self.take()
            negative = self.peek() == "-"
            if negative:
                self.take()
            compare = Compare(op, (-1 if negative else 1) * self._number(), as_bool)
        self.take(")")
        return selector, compare

    def _number(self) -> float:
        return float(self._converted(float, "a number"))

    def _duration(self) -> int:
        return int(self._converted(parse_duration, "a duration"))

    def _converted(self, convert: Callable[[str], float], what: str) -> float:
        text = self.take()
        try:
            return convert(text)
        except ValueError:
            self.fail(f"{text!r} is not {what}")
            return 0

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

    def end(self) -> None:
        if not self.done():
            self.fail(f"unexpected {self.peek()!r}")


def parse_events(query: str, where: str) -> tuple[Term, ...]:
    parser = _Parser(query, where)
    terms = parser.expression()
    parser.end()
    return tuple(terms)


def parse_ratio(query: str, where: str) -> Parsed:
    """A raw error ratio: `bad / total`, `1 - good / total` (bad = total - good), the ratio in parentheses or not;
    of gauges, also a ratio with no denominator."""
    parser = _Parser(query, where)
    complement = parser.peek() == "1" and parser.peek(1) == "-"
    if complement:
        parser.take("1")
        parser.take("-")
    wrapped = parser.peek() == "(" and _closes_at_end(parser.tokens, parser.pos)
    if wrapped:
        parser.take("(")
    top = tuple(parser.expression())
    total: tuple[Term, ...] = ()
    if parser.peek() == "/":
        parser.take("/")
        total = tuple(parser.expression())
    if wrapped:
        parser.take(")")
    parser.end()
    if not total:
        if any(t.reading.counts_events for t in top):
            parser.fail("a ratio of counters needs a denominator")
        return (tuple(Term(-t.sign, t.selector, t.reading) for t in top), (), 1.0) if complement else (top, (), 0.0)
    if complement:  # 1 - good/total = (total - good)/total
        return total + tuple(Term(-t.sign, t.selector, t.reading) for t in top), total, 0.0
    return top, total, 0.0


def _closes_at_end(tokens: list[tuple[str, str]], pos: int) -> bool:
    """Does the parenthesis at `pos` close at the last token (the whole ratio is wrapped)?"""
    depth = 0
    for i in range(pos, len(tokens)):
        depth += {"(": 1, ")": -1}.get(tokens[i][1], 0) if tokens[i][0] == "op" else 0
        if depth == 0:
            return i == len(tokens) - 1
    return False


def check_kinds(parsed: Parsed, where: str, query: str) -> None:
    """Counters and gauges do not mix in one SLI: events over a time share is no ratio."""
    kinds = {t.reading.counts_events for t in parsed[0] + parsed[1]}
    if len(kinds) > 1:
        raise UnsupportedQuery(f"{where}: unsupported SLI query (counters mixed with gauges): {query.strip()}")
