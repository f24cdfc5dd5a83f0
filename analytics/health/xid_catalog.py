"""The versioned Xid catalog (analytics/health/data/xid-catalog.yaml) and the user's overrides of it.

The catalog is data, not code: NVIDIA's own catalog, the Kubernetes device plugin and other tools
disagree on several codes, so the policy must be a file that can be diffed, cited and overridden
(`health.xid_overrides`). An Xid the catalog does not know is watched, never ignored: the evidence
says so and names the catalog version, so the entry can be added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import yaml

from core.errors import ConfigError

CATALOG_FILE = "xid-catalog.yaml"
CAUSES = ("hardware", "driver", "application", "thermal", "bus")
ACTIONS = ("restart_app", "reset_gpu", "reboot_node", "drain_and_rma", "ignore")
SEVERITIES = ("none", "watch", "drain", "rma")
_REQUIRED = (
    "code",
    "mnemonic",
    "description",
    "cause",
    "action",
    "severity",
    "device_plugin_ignores",
    "why",
    "sources",
)


@dataclass(frozen=True)
class XidEntry:
    code: int
    mnemonic: str
    description: str
    cause: str  # one of CAUSES, or "unknown" for codes outside the catalog
    nvidia_action: str | None
    action: str  # one of ACTIONS
    severity: str  # one of SEVERITIES: "none" means it counts against the workload, not the GPU
    device_plugin_ignores: bool
    why: str
    sources: tuple[str, ...]
    overridden: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "mnemonic": self.mnemonic,
            "description": self.description,
            "cause": self.cause,
            "nvidia_action": self.nvidia_action,
            "action": self.action,
            "severity": self.severity,
            "device_plugin_ignores": self.device_plugin_ignores,
            "why": self.why,
            "sources": list(self.sources),
            "overridden": self.overridden,
        }


@dataclass(frozen=True)
class XidCatalog:
    version: str
    entries: Mapping[int, XidEntry]
    sources: Mapping[str, Mapping[str, Any]]

    def lookup(self, code: int) -> XidEntry:
        """The entry for `code`; unknown codes are watched (the device plugin marks them unhealthy)."""
        if code in self.entries:
            return self.entries[code]
        return XidEntry(
            code,
            f"XID_{code}",
            "not in gpuledger's catalog",
            "unknown",
            None,
            "ignore",
            "watch",
            False,
            f"Xid {code} is not in catalog {self.version}: look it up in NVIDIA's Xid catalog and add "
            "an entry or a health.xid_overrides setting.",
            (),
        )


def load_catalog(overrides: Mapping[int, Any] | None = None, text: str | None = None) -> XidCatalog:
    """Read the shipped catalog (or `text`), validate it, and apply `overrides` (code -> XidOverride)."""
    source = text if text is not None else resources.files("analytics.health.data").joinpath(CATALOG_FILE).read_text()
    raw = yaml.load(source, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # the C loader when present
    if not isinstance(raw, dict) or "version" not in raw or not isinstance(raw.get("xids"), list):
        raise ConfigError(f"{CATALOG_FILE}: needs `version`, `sources` and a list of `xids`")
    sources = raw.get("sources") or {}
    entries: dict[int, XidEntry] = {}
    for item in raw["xids"]:
        entry = _entry(item, sources)
        if entry.code in entries:
            raise ConfigError(f"{CATALOG_FILE}: Xid {entry.code} is listed twice")
        entries[entry.code] = entry
    version = str(raw["version"])
    if overrides:
        version += "+overrides"
        for code, override in overrides.items():
            entries[int(code)] = _override(entries.get(int(code)), int(code), override)
    return XidCatalog(version, entries, sources)


def _entry(item: Any, sources: Mapping[str, Any]) -> XidEntry:
    if not isinstance(item, dict) or any(k not in item for k in _REQUIRED):
        raise ConfigError(f"{CATALOG_FILE}: every Xid needs {', '.join(_REQUIRED)}: {item!r}")
    code = item["code"]
    _check(code, "cause", item["cause"], CAUSES)
    _check(code, "action", item["action"], ACTIONS)
    _check(code, "severity", item["severity"], SEVERITIES)
    unknown = [s for s in item["sources"] if s not in sources]
    if not item["sources"] or unknown:
        raise ConfigError(f"{CATALOG_FILE}: Xid {code} must cite known sources (unknown: {unknown})")
    return XidEntry(
        int(code),
        str(item["mnemonic"]),
        str(item["description"]),
        item["cause"],
        item.get("nvidia_action"),
        item["action"],
        item["severity"],
        bool(item["device_plugin_ignores"]),
        str(item["why"]),
        tuple(item["sources"]),
    )


def _check(code: int, field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{CATALOG_FILE}: Xid {code}: {field} {value!r} is not one of {', '.join(allowed)}")


def _override(base: XidEntry | None, code: int, override: Any) -> XidEntry:
    """Apply one override; a code the catalog lacks needs at least a severity to be useful."""
    fields = {k: v for k, v in dict(override).items() if v is not None}
    if base is None:
        base = XidCatalog("", {}, {}).lookup(code)
        base = replace(base, why=f"Xid {code}: set by health.xid_overrides")
    return replace(base, **fields, overridden=True)
