"""`gpuledger pricing import FILE`: recognise the format, parse it whole, then store it (or nothing).

Formats (`--format`, else recognised from the content):
  aws       EC2 bulk offer file (`products` + `terms`) or a GetProducts response (`PriceList`)
  aws-spot  DescribeSpotPriceHistory output (`SpotPriceHistory`) or a spot data feed file (`#Fields:`)
  gcp       a Cloud Billing Catalog SKU page (`skus`)
  azure     a Retail Prices API page (`Items`)
  csv       gpuledger's own table (a comma-separated header line)
Gzipped files (the spot data feed is delivered as .gz) are read transparently. A file's price rows
record when it was fetched: its modification time, unless the caller says otherwise.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collectors.pricing import aws, azure, gcp
from collectors.pricing.price_table import ImportOptions, Parsed, input_structure, load_json, parse_csv
from core import conventions as c
from core.errors import ConfigError, InputError

JSON_KINDS = (  # (format, key that marks it)
    ("aws", "products"),
    ("aws", "PriceList"),
    ("aws-spot", "SpotPriceHistory"),
    ("gcp", "skus"),
    ("azure", "Items"),
)


def read_text(path: Path, max_bytes: int = ImportOptions.max_bytes) -> str:
    """The file's text, gunzipped; refused, before it is all in memory, when it (or what it inflates to) is
    larger than `max_bytes` (a 2 MB gzip bomb once took 4.3 GB before anything refused it)."""
    too_big = f"larger than {max_bytes // 2**20} MB (pricing.max_file_mb)"
    try:
        if path.stat().st_size > max_bytes:
            raise InputError(str(path), too_big)
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as inflating:
                data = inflating.read(max_bytes + 1)
        except (OSError, EOFError) as exc:
            raise InputError(str(path), f"truncated or corrupt gzip data ({exc})") from None
        if len(data) > max_bytes:
            raise InputError(str(path), f"decompresses to {too_big}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text (byte {exc.start})") from None


def import_file(path: Path, fmt: str | None, options: ImportOptions) -> Parsed:
    """Parse a price file of any supported format; nothing is stored here."""
    if options.fetched_at is None:
        mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC) if path.exists() else None
        options = replace(options, fetched_at=mtime.replace(tzinfo=None, microsecond=0) if mtime else None)
    return parse_text(read_text(path, options.max_bytes), str(path), fmt, options)


def parse_text(text: str, source: str, fmt: str | None, options: ImportOptions) -> Parsed:
    with input_structure(source):
        return _parse_text(text, source, fmt, options)


def _parse_text(text: str, source: str, fmt: str | None, options: ImportOptions) -> Parsed:
    if fmt is not None and fmt not in c.PRICE_FORMATS:
        raise ConfigError(f"--format {fmt}: choose from {', '.join(c.PRICE_FORMATS)}")
    start = text.lstrip()[:1]
    if start in ("{", "["):
        doc = load_json(text, source)
        return _parse_json(doc, source, fmt or _json_format(doc, source), options)
    if text.startswith("#Version") or text.startswith("#Fields"):
        if fmt not in (None, "aws-spot"):
            raise InputError(source, f"this is an AWS spot data feed file, not --format {fmt}", 1)
        return aws.parse_spot_feed(text, source, options)
    first_line = text.split("\n", 1)[0]
    if fmt == "csv" or (fmt is None and "," in first_line):  # the CSV parser names missing columns
        return Parsed(parse_csv(text, source, options))
    if fmt is None:
        raise InputError(source, f"cannot tell the price format; pass --format ({', '.join(c.PRICE_FORMATS)})", 1)
    raise InputError(source, f"not a {fmt} price file (expected JSON)", 1)


def _json_format(doc: Any, source: str) -> str:
    if isinstance(doc, dict):
        for fmt, key in JSON_KINDS:
            if key in doc:
                return fmt
    raise InputError(source, f"cannot tell the price format of this JSON; pass --format ({', '.join(c.PRICE_FORMATS)})")


def _parse_json(doc: Any, source: str, fmt: str, options: ImportOptions) -> Parsed:
    if not isinstance(doc, dict):
        raise InputError(source, f"not a {fmt} price document (expected a JSON object)")
    if fmt == "aws":
        return (aws.parse_get_products if "PriceList" in doc else aws.parse_offer)(doc, source, options)
    if fmt == "aws-spot":
        return aws.parse_spot_history(doc, source, options)
    if fmt == "gcp":
        return gcp.parse_catalog(doc, source, options)
    if fmt == "azure":
        return azure.parse_page(doc, source, options)
    raise InputError(source, "a csv price table is not JSON")
