"""The fast path for OpenMetrics files with sample timestamps: Arrow parses, Python only sees series.

Arrow's CSV reader splits the file into lines (multi-threaded C++, no Python object per line),
Arrow compute splits each line at its last two spaces and converts value and timestamp, and
dictionary-encoding the series keys leaves only the distinct series, whose label sets Arrow splits
into (series, name, value) rows with no Python per series (label sets with escapes go through the
strict label parser, one by one). Anything this path does not expect (a line without timestamp,
a malformed key or number, content after `# EOF`, bad UTF-8, ...) makes it return None and the
strict line-by-line parser reads the file again, so every error is still reported with its file
and line, and both paths return identical Samples for every file the fast one accepts.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from collectors.metrics import openmetrics as om
from collectors.metrics.series import SeriesTable
from core.errors import InputError

# One column per line: a delimiter and no quoting that cannot occur in exposition text.
_READ = pacsv.ReadOptions(column_names=["line"], block_size=1 << 24)
_PARSE = pacsv.ParseOptions(delimiter="\x01", quote_char=False, escape_char=False, newlines_in_values=False)
_CONVERT = pacsv.ConvertOptions(
    column_types={"line": pa.string()}, strings_can_be_null=False, quoted_strings_can_be_null=False
)


# A whole label set without escapes: what openmetrics.parse_labels reads with its one regular expression
_PLAIN_SET = r'^(?:[A-Za-z_][A-Za-z0-9_]*="[^"\\]*"(?:,[A-Za-z_][A-Za-z0-9_]*="[^"\\]*")*)?$'
_NAME = r"^[A-Za-z_:][A-Za-z0-9_:]*$"  # openmetrics.METRIC_NAME: anything else goes to the strict parser


def parse_file(
    path: Path,
    wants_family: Callable[[str], bool],
    ts_bounds_ms: tuple[int, int] = om.ANY_TIME_MS,
    max_line_bytes: int | None = None,
) -> om.Samples | None:
    """Samples of a timestamped, `# EOF`-terminated file, or None when the strict parser must read it
    (also when a kept sample's timestamp is outside `ts_bounds_ms`: the strict parser names its line)."""
    try:
        lines = pacsv.read_csv(path, _READ, _PARSE, _CONVERT).column("line")
    except (pa.ArrowInvalid, OSError):
        return None
    if max_line_bytes is not None and len(lines) and pc.max(pc.binary_length(lines)).as_py() >= max_line_bytes:
        return None  # the strict reader names the line that is too long
    comment = pc.starts_with(lines, "#")
    if not _ends_with_eof(lines, comment):
        return None
    samples = _without(lines, comment)
    parts = pc.split_pattern(samples, " ", max_splits=2, reverse=True)
    if len(samples) and pc.min(pc.list_value_length(parts)).as_py() != 3:
        return None  # a line without timestamp (or with no value): the strict parser says which
    keys = pc.list_element(parts, 0)
    try:
        values = pc.cast(pc.list_element(parts, 1), pa.float64()).to_numpy(zero_copy_only=False)
        stamps = pc.cast(pc.list_element(parts, 2), pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    out = _select(keys, values, stamps, str(path), wants_family, ts_bounds_ms)
    if out is not None:
        out.lines = len(lines)
    return out


def _without(lines: pa.ChunkedArray, comment: pa.ChunkedArray) -> pa.ChunkedArray:
    """The lines that are not comments, as zero-copy slices between the (few) comment lines
    (a filter copied all 100 MB of a 10,000-GPU scrape)."""
    cuts = [-1, *pc.indices_nonzero(comment).to_pylist(), len(lines)]
    pieces = [lines.slice(a + 1, b - a - 1) for a, b in zip(cuts[:-1], cuts[1:], strict=False) if b - a > 1]
    return pa.chunked_array([chunk for piece in pieces for chunk in piece.chunks], pa.string())


def _ends_with_eof(lines: pa.ChunkedArray, comment: pa.ChunkedArray) -> bool:
    """`# EOF` is the last line and appears once (the strict parser reports anything else)."""
    if not len(lines) or lines[-1].as_py() != "# EOF":
        return False
    return pc.sum(pc.equal(pc.filter(lines, comment), "# EOF")).as_py() == 1


def _select(
    keys: pa.ChunkedArray,
    values: np.ndarray,
    stamps: np.ndarray,
    source: str,
    wants_family: Callable[[str], bool],
    ts_bounds_ms: tuple[int, int],
) -> om.Samples | None:
    encoded = pc.dictionary_encode(keys).combine_chunks()
    found = _series(encoded.dictionary, source, wants_family)
    if found is None:
        return None
    out = om.Samples(table=found[0])
    sid = found[1][encoded.indices.to_numpy(zero_copy_only=False)]
    ms = np.where(stamps > 1e11, stamps, stamps * 1000.0)
    with np.errstate(invalid="ignore"):
        inside = (ms >= ts_bounds_ms[0]) & (ms <= ts_bounds_ms[1])  # NaN is outside
    if not inside[sid >= 0].all():
        return None
    ts_ms = np.round(np.where(inside, ms, 0)).astype(np.int64)
    keep = sid >= 0
    out.sid = array("i", sid[keep].astype(np.int32).tobytes())
    out.ts_ms = array("q", ts_ms[keep].tobytes())
    out.value = array("d", values[keep].tobytes())
    return out


def _series(
    keys: pa.StringArray, source: str, wants_family: Callable[[str], bool]
) -> tuple[SeriesTable, np.ndarray] | None:
    """The wanted families' series of the distinct keys, and key index -> sid (-1: not wanted)."""
    parts = pc.split_pattern(keys, "{", max_splits=1)
    names = pc.list_element(parts, 0)
    braced = pc.equal(pc.list_value_length(parts), 2)
    rest = pc.list_element(parts.filter(braced), 1)
    if not _well_formed(names, rest):
        return None
    texts = pc.replace_with_mask(pa.array([""] * len(keys), pa.string()), braced, pc.utf8_slice_codeunits(rest, 0, -1))
    families = pa.array([n for n in pc.unique(names).to_pylist() if wants_family(n)], pa.string())
    wanted = np.flatnonzero(pc.is_in(names, value_set=families).to_numpy(zero_copy_only=False))
    mapping = np.full(len(keys), -1, dtype=np.int32)
    mapping[wanted] = np.arange(len(wanted), dtype=np.int32)
    labels = _labels(texts.take(pa.array(wanted)), source)
    if labels is None:
        return None
    return SeriesTable(names.take(pa.array(wanted)), *labels), mapping


def _well_formed(names: pa.Array, rest: pa.Array) -> bool:
    """Every key is `name` or `name{labels}`: anything else (an odd metric name, no closing brace) is
    left to the strict parser. (all() of no values is null: nothing braced is well formed too.)"""
    closed = pc.all(pc.ends_with(rest, "}")).as_py() is not False
    no_nul = pc.any(pc.match_substring(rest, "\x00")).as_py() is not True
    return closed and no_nul and pc.all(pc.match_substring_regex(pc.unique(names), _NAME)).as_py() is not False


def _labels(texts: pa.StringArray, source: str) -> tuple[np.ndarray, pa.Array, pa.Array] | None:
    """(series, name, value) rows of label texts; None if one is malformed or names a label twice."""
    plain = pc.and_(pc.match_substring_regex(texts, _PLAIN_SET), pc.greater(pc.binary_length(texts), 0))
    rows = np.flatnonzero(plain.to_numpy(zero_copy_only=False))
    # `a="1",b="2"` without its closing quote splits at `",` into `a="1` and `b="2`
    items = pc.split_pattern(pc.utf8_slice_codeunits(texts.take(pa.array(rows)), 0, -1), '",')
    sids = rows[pc.list_parent_indices(items).to_numpy()].astype(np.int32)
    pairs = pc.split_pattern(pc.list_flatten(items), '="', max_splits=1)
    names, values = pc.list_element(pairs, 0), pc.list_element(pairs, 1)
    odd = np.flatnonzero(~plain.to_numpy(zero_copy_only=False))
    if len(odd):  # escapes, a trailing comma, an empty set: the strict label parser, one by one
        extra: list[tuple[int, str, str]] = []
        for i, text in zip(odd.tolist(), texts.take(pa.array(odd)).to_pylist(), strict=True):
            try:
                extra += [(i, k, v) for k, v in om.parse_labels(text, source, 0).items()]
            except InputError:
                return None
        sids = np.concatenate([sids, np.array([i for i, _, _ in extra], np.int32)])
        names = pa.concat_arrays([names, pa.array([k for _, k, _ in extra], pa.string())])
        values = pa.concat_arrays([values, pa.array([v for _, _, v in extra], pa.string())])
    if _repeats(sids, names):
        return None  # the strict parser names the line of a label given twice
    return sids, names, values


def _repeats(sids: np.ndarray, names: pa.Array) -> bool:
    codes = pc.dictionary_encode(names).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    key = np.sort(sids.astype(np.int64) * (int(codes.max(initial=0)) + 1) + codes)
    return bool((key[1:] == key[:-1]).any())  # (np.unique took ten times as long: 1.4 s for a million labels)
