"""The fast path for OpenMetrics files with sample timestamps: Arrow parses, Python only sees series.

Arrow's CSV reader splits the file into lines (multi-threaded C++, no Python object per line),
Arrow compute splits each line at its last two spaces and converts value and timestamp, and
dictionary-encoding the series keys leaves Python one call per distinct series (label parsing and
selection, as in the strict parser). Anything this path does not expect (a line without timestamp,
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

from collectors import openmetrics as om
from core.errors import InputError

# One column per line: a delimiter and no quoting that cannot occur in exposition text.
_READ = pacsv.ReadOptions(column_names=["line"], block_size=1 << 24)
_PARSE = pacsv.ParseOptions(delimiter="\x01", quote_char=False, escape_char=False, newlines_in_values=False)
_CONVERT = pacsv.ConvertOptions(
    column_types={"line": pa.string()}, strings_can_be_null=False, quoted_strings_can_be_null=False
)


def parse_file(path: Path, wants_family: Callable[[str], bool], select: om.Selector) -> om.Samples | None:
    """Samples of a timestamped, `# EOF`-terminated file, or None when the strict parser must read it."""
    try:
        lines = pacsv.read_csv(path, _READ, _PARSE, _CONVERT).column("line")
    except (pa.ArrowInvalid, OSError):
        return None
    if not _ends_with_eof(lines):
        return None
    comment = pc.starts_with(lines, "#")
    samples = pc.filter(lines, pc.invert(comment))
    parts = pc.split_pattern(samples, " ", max_splits=2, reverse=True)
    if len(samples) and pc.min(pc.list_value_length(parts)).as_py() != 3:
        return None  # a line without timestamp (or with no value): the strict parser says which
    keys = pc.list_element(parts, 0)
    try:
        values = pc.cast(pc.list_element(parts, 1), pa.float64()).to_numpy(zero_copy_only=False)
        stamps = pc.cast(pc.list_element(parts, 2), pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    out = _select(keys, values, stamps, str(path), wants_family, select)
    if out is not None:
        out.lines = len(lines)
    return out


def _ends_with_eof(lines: pa.ChunkedArray) -> bool:
    """`# EOF` is the last line and appears once (the strict parser reports anything else)."""
    return len(lines) > 0 and lines[-1].as_py() == "# EOF" and pc.sum(pc.equal(lines, "# EOF")).as_py() == 1


def _select(
    keys: pa.ChunkedArray,
    values: np.ndarray,
    stamps: np.ndarray,
    source: str,
    wants_family: Callable[[str], bool],
    select: om.Selector,
) -> om.Samples | None:
    encoded = pc.dictionary_encode(keys).combine_chunks()
    out = om.Samples()
    mapping = np.full(len(encoded.dictionary), -1, dtype=np.int32)
    wanted_names: dict[str, bool] = {}
    for i, key in enumerate(encoded.dictionary.to_pylist()):
        parsed = _series(key, source)
        if parsed is None:
            return None
        name, labels_text = parsed
        wanted = wanted_names.get(name)
        if wanted is None:
            wanted = wanted_names[name] = wants_family(name)
        if not wanted:
            continue
        try:
            labels = om.parse_labels(labels_text, source, 0) if labels_text is not None else {}
        except InputError:
            return None
        if select(name, labels):
            mapping[i] = len(out.series)
            out.series.append((name, labels))
    sid = mapping[encoded.indices.to_numpy(zero_copy_only=False)]
    ts_ms = np.round(np.where(stamps > 1e11, stamps, stamps * 1000.0)).astype(np.int64)
    keep = (sid >= 0) & ~_blank(values)
    out.sid = array("i", sid[keep].astype(np.int32).tobytes())
    out.ts_ms = array("q", ts_ms[keep].tobytes())
    out.value = array("d", values[keep].tobytes())
    return out


def _series(key: str, source: str) -> tuple[str, str | None] | None:
    """(metric name, label text or None) of a series key, or None if it is not well formed."""
    brace = key.find("{")
    if brace < 0:
        return (key, None) if key and " " not in key and "}" not in key else None
    if not key.endswith("}") or brace == 0:
        return None
    return key[:brace], key[brace + 1 : -1]


def _blank(values: np.ndarray) -> np.ndarray:
    """DCGM 'no data' sentinels and NaN, as the strict parser drops them."""
    return (
        (values >= om._INT64_BLANK) | ((values >= om._FP64_BLANK[0]) & (values <= om._FP64_BLANK[1])) | np.isnan(values)
    )
