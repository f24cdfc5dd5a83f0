"""The fast path for OpenMetrics files with sample timestamps: Arrow parses, Python only sees series.

The file is read in blocks of 16 MB cut at line ends, and Arrow's CSV reader splits each into lines (C++, no
Python object per line), so a file of any size is read in bounded memory: each block's lines are split at their
last two spaces, value and timestamp converted, its series keys dictionary-encoded and checked, and only the
wanted families' samples kept (as a series number into one growing list of distinct keys, a value and a
time: 16 bytes a sample). The distinct series' label sets are then split by Arrow into (series, name, value)
rows with no Python per series (label sets with escapes go through the strict label parser, one by one). Anything this path does not expect (a line without timestamp,
a malformed key or number, content after `# EOF`, bad UTF-8, ...) makes it return None and the
strict line-by-line parser reads the file again, so every error is still reported with its file
and line, and both paths return identical Samples for every file the fast one accepts.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
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
# Blocks are cut here, at line ends, and each parsed whole: Arrow's streaming reader reads ahead of its consumer
# (over 100 MB at 4 MB blocks), which a bounded read must not. 16 MB blocks read an 805 MB file as fast as parsing
# it at once did (7.9 s against 7.3 s) at a quarter of the memory (789 MB against 3,253 MB); 4 MB blocks, 700 MB
# in 9.9 s
BLOCK_BYTES = 1 << 24
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
    kept = _Kept(wants_family)
    try:
        for block in _blocks(path, max_line_bytes or BLOCK_BYTES):
            lines = pacsv.read_csv(pa.BufferReader(block), _READ, _PARSE, _CONVERT).column("line")
            if not all(kept.add(chunk, max_line_bytes) for chunk in lines.chunks):
                return None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        return None
    if kept.eofs != 1 or kept.last != "# EOF":
        return None  # `# EOF` must be the last line and appear once (the strict parser reports anything else)
    out = _select(kept, str(path), wants_family, ts_bounds_ms)
    if out is not None:
        out.lines = kept.lines
    return out


def _blocks(path: Path, max_line: int) -> Iterator[bytes]:
    """The file in blocks of about BLOCK_BYTES, each ending at a line end; OSError for a line longer than any
    block may hold (the strict reader then names it)."""
    with open(path, "rb") as fh:
        rest = b""
        while chunk := fh.read(BLOCK_BYTES):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            if not cut and len(data) > max_line + BLOCK_BYTES:
                raise OSError("a line longer than any block")
            if cut:
                yield data[:cut]
            rest = data[cut:]
        if rest:
            yield rest


class _Kept:
    """The wanted samples of the blocks read so far: each key's number in `keys` (distinct keys in order of
    first appearance, as dictionary-encoding the whole file would number them), value and time."""

    def __init__(self, wants_family: Callable[[str], bool]) -> None:
        self.wants: dict[str, bool] = {}
        self.wants_family = wants_family
        self.keys = pa.array([], pa.string())
        self.index: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.stamps: list[np.ndarray] = []
        self.lines, self.eofs, self.last = 0, 0, ""

    def add(self, lines: pa.Array, max_line_bytes: int | None) -> bool:
        """Read one block's lines; False where the strict parser must read the file."""
        if not len(lines):
            return True
        if max_line_bytes is not None and pc.max(pc.binary_length(lines)).as_py() >= max_line_bytes:
            return False  # the strict reader names the line that is too long
        self.lines += len(lines)
        self.last = lines[-1].as_py()
        comment = pc.starts_with(lines, "#")
        self.eofs += pc.sum(pc.equal(pc.filter(lines, comment), "# EOF")).as_py() or 0
        if self.eofs and self.last != "# EOF":
            return False  # content after `# EOF`
        samples = _without(pa.chunked_array([lines]), comment)
        parts = pc.split_pattern(samples, " ", max_splits=2, reverse=True)
        if len(samples) and pc.min(pc.list_value_length(parts)).as_py() != 3:
            return False  # a line without timestamp (or with no value): the strict parser says which
        values = pc.cast(pc.list_element(parts, 1), pa.float64()).to_numpy(zero_copy_only=False)
        stamps = pc.cast(pc.list_element(parts, 2), pa.float64()).to_numpy(zero_copy_only=False)
        encoded = pc.dictionary_encode(pc.list_element(parts, 0)).combine_chunks()
        wanted = self._wanted(encoded.dictionary)
        if wanted is None:
            return False
        index = encoded.indices.to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(wanted[index])
        self.index.append(self._numbered(encoded.dictionary, wanted)[index[rows]])
        self.values.append(values[rows])
        self.stamps.append(stamps[rows])
        return True

    def _wanted(self, keys: pa.StringArray) -> np.ndarray | None:
        """Which of a block's distinct keys are of a wanted family; None if one is not well formed."""
        parts = pc.split_pattern(keys, "{", max_splits=1)
        names = pc.list_element(parts, 0)
        braced = pc.equal(pc.list_value_length(parts), 2)
        if not _well_formed(names, pc.list_element(parts.filter(braced), 1)):
            return None
        for name in pc.unique(names).to_pylist():
            if name not in self.wants:
                self.wants[name] = bool(self.wants_family(name))
        families = pa.array([n for n, w in self.wants.items() if w], pa.string())
        return pc.is_in(names, value_set=families).to_numpy(zero_copy_only=False)

    def _numbered(self, keys: pa.StringArray, wanted: np.ndarray) -> np.ndarray:
        """Block key index -> number in `self.keys` (new wanted keys appended; -1 for the others)."""
        out = np.full(len(keys), -1, dtype=np.int64)
        rows = np.flatnonzero(wanted)
        mine = keys.take(pa.array(rows))
        found = pc.index_in(mine, value_set=self.keys).to_numpy(zero_copy_only=False)
        new = np.isnan(found) if found.dtype.kind == "f" else np.zeros(len(found), bool)
        numbers = np.where(new, 0, np.nan_to_num(found)).astype(np.int64)
        numbers[new] = len(self.keys) + np.arange(int(new.sum()))
        if new.any():
            self.keys = pa.concat_arrays([self.keys, mine.filter(pa.array(new))])
        out[rows] = numbers
        return out


def _without(lines: pa.ChunkedArray, comment: pa.ChunkedArray) -> pa.ChunkedArray:
    """The lines that are not comments, as zero-copy slices between the (few) comment lines
    (a filter copied all 100 MB of a 10,000-GPU scrape)."""
    cuts = [-1, *pc.indices_nonzero(comment).to_pylist(), len(lines)]
    pieces = [lines.slice(a + 1, b - a - 1) for a, b in zip(cuts[:-1], cuts[1:], strict=False) if b - a > 1]
    return pa.chunked_array([chunk for piece in pieces for chunk in piece.chunks], pa.string())


def _select(
    kept: _Kept, source: str, wants_family: Callable[[str], bool], ts_bounds_ms: tuple[int, int]
) -> om.Samples | None:
    found = _series(kept.keys, source, wants_family)
    if found is None:
        return None
    out = om.Samples(table=found[0])
    index = np.concatenate(kept.index) if kept.index else np.zeros(0, np.int64)
    sid = found[1][index]
    stamps = np.concatenate(kept.stamps) if kept.stamps else np.zeros(0)
    values = np.concatenate(kept.values) if kept.values else np.zeros(0)
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
