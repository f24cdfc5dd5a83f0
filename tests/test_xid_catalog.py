"""The Xid catalog is versioned data that cites its sources, and users can override it."""

from __future__ import annotations

import pytest

from analytics.health.xid_catalog import CAUSES, load_catalog
from core.errors import ConfigError
from core.settings import Settings, load_settings

CATALOG = load_catalog()

# NVIDIA k8s-device-plugin internal/rm/health.go: "Application errors: the GPU should still be healthy".
DEVICE_PLUGIN_IGNORED = {13, 31, 43, 45, 68, 109}


def test_every_entry_cites_a_known_source_and_says_why() -> None:
    assert CATALOG.version and len(CATALOG.entries) >= 40
    for entry in CATALOG.entries.values():
        assert entry.sources and all(s in CATALOG.sources for s in entry.sources), entry.code
        assert entry.why.strip() and entry.cause in CAUSES
    assert all(source.get("title") for source in CATALOG.sources.values())


def test_the_device_plugins_ignored_xids_are_exactly_the_ones_marked_so() -> None:
    assert {e.code for e in CATALOG.entries.values() if e.device_plugin_ignores} == DEVICE_PLUGIN_IGNORED


@pytest.mark.parametrize(
    ("code", "severity", "cause", "action"),
    [
        (13, "none", "application", "restart_app"),
        (31, "none", "application", "restart_app"),
        (43, "none", "application", "ignore"),
        (45, "none", "application", "ignore"),
        (48, "drain", "hardware", "reset_gpu"),
        (63, "watch", "hardware", "reset_gpu"),
        (79, "drain", "bus", "reboot_node"),
        (92, "watch", "hardware", "ignore"),
        (95, "drain", "hardware", "reset_gpu"),
        (119, "drain", "driver", "reset_gpu"),
    ],
    ids=lambda v: str(v),
)
def test_well_known_xids_carry_nvidias_verdict(code: int, severity: str, cause: str, action: str) -> None:
    entry = CATALOG.lookup(code)
    assert (entry.severity, entry.cause, entry.action) == (severity, cause, action)


def test_an_xid_outside_the_catalog_is_watched_and_names_the_catalog_version() -> None:
    entry = CATALOG.lookup(9999)
    assert entry.severity == "watch" and CATALOG.version in entry.why


def test_a_settings_override_replaces_only_the_fields_it_sets_and_marks_the_version(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "gpuledger.yaml"
    config.write_text(
        "health:\n  xid_overrides:\n    109: {severity: drain, why: our H100s}\n    9999: {severity: rma}\n"
    )
    settings = load_settings(config, env={})
    catalog = load_catalog(settings.health.xid_overrides)
    entry = catalog.lookup(109)
    assert (entry.severity, entry.why, entry.cause, entry.overridden) == ("drain", "our H100s", "driver", True)
    assert catalog.lookup(9999).severity == "rma"
    assert catalog.version.endswith("+overrides") and not CATALOG.lookup(109).overridden


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nsources: {}\nxids: [{code: 1}]\n", "every Xid needs"),
        (
            "version: 1\nsources: {s: {title: t}}\nxids:\n"
            "  - {code: 1, mnemonic: A, description: d, cause: cosmic, action: ignore, severity: none,"
            " device_plugin_ignores: false, why: w, sources: [s]}\n",
            "cause 'cosmic'",
        ),
        (
            "version: 1\nsources: {s: {title: t}}\nxids:\n"
            "  - {code: 1, mnemonic: A, description: d, cause: bus, action: ignore, severity: none,"
            " device_plugin_ignores: false, why: w, sources: [nowhere]}\n",
            "must cite known sources",
        ),
        ("xids: []\n", "needs `version`"),
    ],
    ids=["an entry with missing fields", "an unknown cause", "an uncited entry", "no version"],
)
def test_a_malformed_catalog_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_catalog(text=text)


def test_an_override_with_an_unknown_severity_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="severity"):
        Settings.model_validate({"health": {"xid_overrides": {13: {"severity": "panic"}}}})
