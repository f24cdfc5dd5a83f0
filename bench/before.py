"""`python -m bench.before [MAIN_DIR]`: the before/after of issue 10's optimisation, with py-spy profiles.

Before: main's chargeback (step tables, one Python object per pod, node and price row) and this
branch's with the rollups switched off (step tables, classes grouped in SQL). After: this branch
(rollups). Main is slow at scale, so its larger fleets get one run (10,000 GPUs: one day, not 30).
Stored under "before" in bench/results.json (make bench keeps it) and rendered into results.md.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from bench import cache, profile, report
from bench.fleet import FleetSpec
from bench.harness import ROOT, spawn, spawn_argv, stat

PLAN = [  # (GPUs, days, runs of main, runs of this branch)
    (100, 30, 3, 5),
    (1000, 30, 1, 3),
    (10000, 1, 1, 3),
]


def _main_chargeback(main_dir: str, args: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    child = spawn_argv(
        [sys.executable, str(ROOT / "bench" / "main_chargeback.py"), main_dir, json.dumps(args)], timeout_s
    )
    return {
        **stat(child.result["times"]).as_dict(),
        "peak_rss_mb": child.peak_rss_mb,
        "numbers": child.result["numbers"],
    }


def measure(main_dir: str) -> dict[str, Any]:
    rows = []
    start = FleetSpec(gpus=1).start.isoformat()
    sizes = {int(x) for x in os.environ.get("BEFORE_SIZES", "100,1000,10000").split(",")}
    for gpus, days, main_runs, runs in [p for p in PLAN if p[0] in sizes]:
        path, stats = cache.warehouse(FleetSpec(gpus=gpus))
        args = {"warehouse": str(path), "start": start, "hours": days * 24}
        entry: dict[str, Any] = {"gpus": stats["gpus"], "window": f"{days} d"}
        try:
            entry["main"] = _main_chargeback(main_dir, {**args, "runs": main_runs, "warmup": 0}, timeout_s=3600)
        except (TimeoutError, RuntimeError) as exc:
            entry["main"] = {"error": str(exc)}
        steps = spawn("chargeback", {**args, "runs": runs, "rollups": False})
        after = spawn("chargeback", {**args, "runs": runs})
        entry["steps"] = {**stat(steps.result["times"]).as_dict(), "peak_rss_mb": steps.peak_rss_mb}
        entry["after"] = {**stat(after.result["times"]).as_dict(), "peak_rss_mb": after.peak_rss_mb}
        if "numbers" in entry["main"]:
            report.agree({"gpuledger": after.result["numbers"], "main": entry["main"].pop("numbers")})
        rows.append(entry)
        print(json.dumps(entry), file=sys.stderr, flush=True)
    return {"rows": rows, "profiles": _profiles(main_dir)}


def _profiles(main_dir: str) -> list[tuple[str, dict[str, object]]]:
    start = FleetSpec(gpus=1).start.isoformat()
    out = []
    small, _ = cache.warehouse(FleetSpec(gpus=100))
    big, stats = cache.warehouse(FleetSpec(gpus=10000))
    month = {"start": start, "hours": 30 * 24, "runs": 1, "warmup": 0}
    argv = [
        sys.executable,
        str(ROOT / "bench" / "main_chargeback.py"),
        main_dir,
        json.dumps({**month, "warehouse": str(small)}),
    ]
    out.append(("before: main's chargeback, 100 GPUs, 30 d", profile.py_spy(argv)))
    argv = [sys.executable, "-m", "bench.worker", "chargeback", json.dumps({**month, "warehouse": str(big), "runs": 3})]
    out.append(
        (f"after: this branch's chargeback, {stats['gpus']:,} GPUs, 30 d (3 runs)", profile.py_spy(argv, env=_env()))
    )
    return out


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def markdown(before: dict[str, Any]) -> str:
    lines = [
        "## Before and after (issue 10's optimisation)",
        "",
        "30-day chargeback by team (10,000 GPUs: one day for main, which reads every step row). Before: main's",
        "chargeback; steps: this branch with the rollups off; after: this branch. Same bill asserted for main and after.",
        "",
        "| GPUs | window | main (before) | this branch, step tables | this branch, rollups (after) | speed-up | peak RSS before / after |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in before["rows"]:
        main = r["main"]
        m = f"{main['median']:.2f} s ({main['runs']} runs)" if "median" in main else main.get("error", "—")
        up = f"{main['median'] / r['after']['median']:,.0f}x" if "median" in main else "—"
        rss = f"{main.get('peak_rss_mb', 0):,.0f} / {r['after']['peak_rss_mb']:,.0f} MB"
        lines.append(
            f"| {r['gpus']:,} | {r['window']} | {m} | {r['steps']['median']:.2f} s | {r['after']['median']:.3f} s | {up} | {rss} |"
        )
    lines.append("")
    for title, prof in before.get("profiles", []):
        lines += profile.markdown(title, prof)
    return "\n".join(lines)


def main() -> None:
    main_dir = sys.argv[1] if len(sys.argv) > 1 else str(ROOT.parent / "main")
    before = measure(main_dir)
    before["markdown"] = markdown(before)
    path = ROOT / "bench" / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["before"] = before
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    if "figures" in results:
        (ROOT / "bench" / "results.md").write_text(report.markdown(results))


if __name__ == "__main__":
    main()
