"""kill -9 during a weekly export: the week's folder holds the previous export or the new one, whole,
never a torn file and never a mix of the two (every file matches the manifest beside it, and the new one
keeps the previous one whole as its revision 1)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.publish import exports
from core import conventions as c
from tests.conftest import run_cli
from tests.serve_helpers import ROOT

WEEK = "2026-W45"


def _export(warehouse: Path, config: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app", "--config", str(config), "--warehouse", str(warehouse), "export", "weekly",
         "--week", WEEK, "--out", str(out)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _whole(folder: Path) -> str:
    """The published files as the manifest lists them, after checking every file in the folder is exactly the one
    it lists, and that each earlier revision kept beside them is whole too."""
    manifest = json.loads((folder / c.EXPORT_MANIFEST).read_text())
    kept = ["revisions"] if manifest["revision"] > 1 else []
    assert sorted(p.name for p in folder.iterdir()) == sorted([*manifest["files"], c.EXPORT_MANIFEST, *kept])
    for name, entry in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"], name
    for n in range(1, manifest["revision"]):
        _whole(folder / "revisions" / str(n))
    return json.dumps(manifest["files"], sort_keys=True)


def test_a_killed_export_leaves_the_previous_week_or_the_new_one_never_a_torn_or_mixed_folder(
    direct_warehouse: Path, tmp_path: Path
) -> None:
    root = tmp_path / "exports"
    wh = str(direct_warehouse)
    assert run_cli("--warehouse", wh, "export", "weekly", "--week", WEEK, "--out", str(root)).exit_code == 0
    previous = _whole(root / WEEK)
    weighted = tmp_path / "weighted.yaml"  # other allocation options: other bytes in every file
    weighted.write_text("chargeback: {idle: weighted}\n")
    reference = _export(direct_warehouse, weighted, tmp_path / "reference")
    assert reference.wait(timeout=120) == 0
    new = _whole(tmp_path / "reference" / WEEK)
    assert new != previous
    seen = []
    for _ in range(4):
        proc = _export(direct_warehouse, weighted, root)
        while proc.poll() is None and not (root / exports.STAGING).exists():
            time.sleep(0.0005)  # the export starts writing: kill it somewhere in the middle of that
        time.sleep(random.uniform(0, 0.01))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        seen.append(_whole(root / WEEK))
        assert seen[-1] in (previous, new)
        weeks = [p.name for p in root.iterdir() if not p.name.startswith(".")]
        assert weeks == [WEEK]  # a half-written stage is never a week of its own
    final = _export(direct_warehouse, weighted, root)  # the next export tidies any stage up and completes
    assert final.wait(timeout=120) == 0
    assert _whole(root / WEEK) == new and not (root / exports.STAGING).exists()
    # the new bytes are revision 2 of the week, the first export kept whole as revision 1
    assert json.loads((root / WEEK / c.EXPORT_MANIFEST).read_text())["revision"] == 2
    assert _whole(root / WEEK / "revisions" / "1") == previous
