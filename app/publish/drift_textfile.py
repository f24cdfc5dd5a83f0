"""The drift report as Prometheus text exposition, for node-exporter's textfile collector or a
Pushgateway: run `gpuledger report drift ... --textfile /var/lib/node_exporter/textfile/drift-MODEL.prom`
on a schedule and the drift alerts (rules/gpuledger-drift.yaml) read the report's own numbers.

Written atomically (temporary file, then rename): the collector never reads half a file.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from analytics.serving.drift import FeatureDrift
from analytics.serving.traffic_drift import AccuracyDrift
from core import conventions as c
from core.timeutil import to_epoch

HELP = {
    c.METRIC_DRIFT_PSI: "PSI of a serving signal, current window vs reference (gpuledger report drift).",
    c.METRIC_DRIFT_DETECTED: "1 when the feature's default test or distance flags drift.",
    c.METRIC_ACCURACY_DEGRADED: "1 when accuracy dropped significantly against the reference (the report's verdict).",
    c.METRIC_ACCURACY_DEGRADATION: "Relative accuracy drop, current vs reference.",
    c.METRIC_DRIFT_WINDOW_END: "End of the current window the drift figures describe (Unix seconds).",
}


def _labels(**pairs: str) -> str:
    def escape(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{k}="{escape(v)}"' for k, v in pairs.items())


def exposition(model: str, end: datetime, features: list[FeatureDrift], accuracy: AccuracyDrift) -> str:
    samples: dict[str, list[str]] = {name: [] for name in HELP}
    m = {c.L_DRIFT_MODEL: model}
    for f in features:
        key = {**m, c.L_DRIFT_FEATURE: f.feature}
        psi = f.statistics.get("psi")
        if psi is not None:
            samples[c.METRIC_DRIFT_PSI].append(f"{{{_labels(**key)}}} {psi:.10g}")
        if f.drift is None:  # not judged: no sample, as the accuracy gauge is absent when it cannot be judged
            continue
        detected = _labels(**key, kind=f.kind, method=f.method)
        samples[c.METRIC_DRIFT_DETECTED].append(f"{{{detected}}} {int(f.drift)}")
    if accuracy.verdict in ("stable", "degraded"):
        samples[c.METRIC_ACCURACY_DEGRADED].append(f"{{{_labels(**m)}}} {int(accuracy.verdict == 'degraded')}")
    if accuracy.degradation is not None:
        samples[c.METRIC_ACCURACY_DEGRADATION].append(f"{{{_labels(**m)}}} {accuracy.degradation:.10g}")
    samples[c.METRIC_DRIFT_WINDOW_END].append(f"{{{_labels(**m)}}} {to_epoch(end):.0f}")
    lines = []
    for name, values in samples.items():
        if values:
            lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} gauge", *(name + v for v in values)]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
