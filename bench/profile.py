"""Sampling profiles with py-spy: where a command spends its time, summarised for results.md."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.harness import ROOT


def py_spy(argv: list[str], rate: int = 50, top: int = 8, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run argv under `py-spy record --format raw`; the functions with the most samples (self and total)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stacks.txt"
        subprocess.run(
            [exe, "record", "--format", "raw", "--rate", str(rate), "--nonblocking", "-o", str(out), "--", *argv],
            check=True, capture_output=True, cwd=ROOT, env=env,
        )  # fmt: skip
        lines = out.read_text().splitlines()
    self_time: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_short(f) for f in stack.split(";") if f]
        if frames:
            self_time[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    return {
        "samples": samples,
        "self": [(f, round(100 * n / samples, 1)) for f, n in self_time.most_common(top)],
        "total": [(f, round(100 * n / samples, 1)) for f, n in total.most_common() if _interesting(f)][:top],
    }


def _interesting(frame: str) -> bool:
    """Leave out the interpreter's and the benchmark worker's own frames."""
    return not any(x in frame for x in ("<frozen", "<module>", "bench/worker.py", "bench/main_chargeback.py", "runpy"))


def _short(frame: str) -> str:
    """'chargeback (analytics/cost/chargeback.py:70)' from py-spy's 'chargeback (/abs/path/analytics/chargeback.py:70)'."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")")
    for marker in ("/site-packages/", "/wt-10/", "/main/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path.split(':')[0]})"


def markdown(title: str, prof: dict[str, object]) -> list[str]:
    rows = [f"**{title}** ({prof['samples']} samples): where the time goes (share of samples, including callees)", ""]
    rows += ["| function | total % |", "|---|---|"]
    rows += [f"| `{f}` | {p} |" for f, p in prof["total"]]  # type: ignore[attr-defined]
    rows += ["", "| hottest leaf | self % |", "|---|---|"]
    rows += [f"| `{f}` | {p} |" for f, p in prof["self"]]  # type: ignore[attr-defined]
    return rows + [""]
