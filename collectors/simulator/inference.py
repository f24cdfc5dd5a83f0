"""A vLLM-style inference exporter for the simulated serving pods, with known incidents.

Names follow vLLM's V1 engine (`engine`, `model_name` labels); `namespace`, `pod` and
`model_version` are target labels Prometheus attaches when it scrapes the pod (the last one from
the pod's `version` label, as a ServiceMonitor's podTargetLabels does). The HTTP layer
(prometheus_fastapi_instrumentator) counts requests by status class, vLLM's only error signal.
Counters and histograms are cumulative since the pod started; bucket edges are vLLM's defaults
(token buckets follow the model's max_model_len, so the two models have different edges).

Two services (PROFILES): `llm-infer` (two pods: version v1 stable, v2 a canary with a higher
error rate and slightly lower accuracy) and `embed-infer` (two pods, healthy throughout).
Incidents of `llm-infer`, by day since --start (day 1 = the first 24 h):
- day 5: latency regression (e2e median x2.5, TTFT median x3);
- from day 6: prompt-length drift (median 512 -> 1100 tokens), more `length` finishes, and
  accuracy 7 points lower.
Every count is a deterministic function of the requests per interval and these parameters, so
serving_truth.py derives the expected SLIs and verdicts from the same parameters, never from output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from collectors.simulator.fleet import Pod
from collectors.simulator.signals import Stream, lognormal_cdf, requests_per_interval

E2E_EDGES = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0]
TTFT_EDGES = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]


def token_edges(max_model_len: int) -> list[float]:
    """vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to max_model_len."""
    out: list[int] = []
    mantissa, exponent = [1, 2, 5], 0
    while True:
        for m in mantissa:
            value = m * 10**exponent
            if value > max_model_len:
                return [float(v) for v in out]
            out.append(value)
        exponent += 1


@dataclass(frozen=True)
class Profile:
    """Generation parameters of one service version on one day: lognormal (median, sigma) pairs,
    shares of requests, and the accuracy its evaluator reports."""

    model: str
    max_model_len: int
    e2e: tuple[float, float]
    ttft: tuple[float, float]
    prompt: tuple[float, float]
    generation: tuple[float, float]
    length_share: float  # finished_reason="length"
    abort_share: float  # finished_reason="abort"
    server_error_rate: float  # HTTP 5xx per engine-finished request
    client_error_rate: float  # HTTP 4xx per engine-finished request
    accuracy: float


PROFILES = {
    "llm-infer": Profile(
        "meta-llama/Llama-3.1-8B-Instruct", 8192, (1.6, 0.55), (0.09, 0.7), (512, 0.6), (180, 0.5),
        0.07, 0.005, 0.003, 0.01, 0.91,
    ),
    "embed-infer": Profile(
        "Qwen/Qwen2.5-1.5B-Instruct", 32768, (0.45, 0.4), (0.02, 0.5), (200, 0.5), (60, 0.5),
        0.02, 0.002, 0.002, 0.005, 0.88,
    ),
}  # fmt: skip
STABLE, CANARY = "v1", "v2"
CANARY_APP = "llm-infer"  # its second pod serves the canary version
LATENCY_REGRESSION_DAY = 5
PROMPT_DRIFT_FROM_DAY = 6
HTTP_HANDLER = "/v1/chat/completions"
EVALUATIONS_PER_INTERVAL = 2  # labelled predictions the evaluator scores per pod and scrape interval


def profile(app: str, version: str, day: int) -> Profile:
    """Parameters of `app` at `version` on `day` (1-based): the single source of the incidents."""
    p = PROFILES[app]
    if app == CANARY_APP and version == CANARY:
        p = replace(p, server_error_rate=0.03, accuracy=p.accuracy - 0.015)
    if app == CANARY_APP and day == LATENCY_REGRESSION_DAY:
        p = replace(p, e2e=(p.e2e[0] * 2.5, p.e2e[1]), ttft=(p.ttft[0] * 3, p.ttft[1]))
    if app == CANARY_APP and day >= PROMPT_DRIFT_FROM_DAY:
        p = replace(p, prompt=(1100, p.prompt[1]), length_share=0.2, accuracy=p.accuracy - 0.07)
    return p


def lognormal_mean(median: float, sigma: float) -> float:
    return median * math.exp(sigma**2 / 2)


def versions(pods: list[Pod]) -> dict[str, str]:
    """Pod uid -> model version: the second pod of the canary app serves the canary."""
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for pod in pods:
        if pod.app in PROFILES:
            seen[pod.app] = seen.get(pod.app, 0) + 1
            out[pod.uid] = CANARY if pod.app == CANARY_APP and seen[pod.app] == 2 else STABLE
    return out


Segment = tuple[str, np.ndarray, list[str]]
HISTOGRAMS = ("e2e", "ttft", "prompt", "generation")
FAMILY = {
    "e2e": "vllm:e2e_request_latency_seconds",
    "ttft": "vllm:time_to_first_token_seconds",
    "prompt": "vllm:request_prompt_tokens",
    "generation": "vllm:request_generation_tokens",
}
HELP = {
    "e2e": "Histogram of e2e request latency in seconds.",
    "ttft": "Histogram of time to first token in seconds.",
    "prompt": "Number of prefill tokens processed.",
    "generation": "Number of generation tokens processed.",
}


def edges_of(kind: str, p: Profile) -> list[float]:
    if kind == "e2e":
        return E2E_EDGES
    if kind == "ttft":
        return TTFT_EDGES
    return token_edges(p.max_model_len)


def _le(edge: float) -> str:
    return "+Inf" if edge == float("inf") else repr(float(edge))


@dataclass
class PodTraffic:
    """One serving pod: requests per interval and the per-interval counts every family reports."""

    pod: Pod
    version: str
    idx: np.ndarray  # sample indices
    days: np.ndarray  # 1-based day of each sample
    n: np.ndarray  # engine-finished requests per interval

    def per_day(self, fn) -> np.ndarray:  # type: ignore[no-untyped-def]
        """Evaluate fn(profile) for each distinct day and spread it over the samples."""
        values = {int(d): fn(profile(self.pod.app, self.version, int(d))) for d in np.unique(self.days)}
        return np.array([values[int(d)] for d in self.days], dtype=np.float64)

    def bucket_counts(self, kind: str) -> np.ndarray:
        """[interval, edge] requests at or below each edge (cumulative over edges, not time)."""
        p0 = PROFILES[self.pod.app]
        edges = edges_of(kind, p0)
        by_day = {
            int(d): lognormal_cdf(edges, *getattr(profile(self.pod.app, self.version, int(d)), kind))
            for d in np.unique(self.days)
        }
        cdf = np.stack([by_day[int(d)] for d in self.days]) if len(self.days) else np.zeros((0, len(edges)))
        return np.round(self.n[:, None] * cdf).astype(np.int64)

    def histogram_sum(self, kind: str) -> np.ndarray:
        mean = self.per_day(lambda p: lognormal_mean(*getattr(p, kind)))
        if kind in ("prompt", "generation"):
            return np.round(self.n * mean)  # token counts are integers, equal to the token counters
        return self.n * mean

    def share(self, attr: str) -> np.ndarray:
        return np.round(self.n * self.per_day(lambda p: getattr(p, attr))).astype(np.int64)


class InferenceFamilies:
    def __init__(self, pods: list[Pod], acts: list[np.ndarray], stream: Stream, interval_s: int) -> None:
        version = versions(pods)
        self.traffic: list[PodTraffic] = []
        for pod, act in zip(pods, acts, strict=True):
            if pod.app not in PROFILES:
                continue
            n_req = requests_per_interval(stream, act, interval_s)
            idx = np.arange(pod.start, pod.end)
            days = idx * interval_s // 86400 + 1
            self.traffic.append(PodTraffic(pod, version[pod.uid], idx, days, n_req))

    @staticmethod
    def _target(t: PodTraffic) -> str:
        return f'model_version="{t.version}",namespace="{t.pod.namespace}",pod="{t.pod.name}"'

    def _base(self, t: PodTraffic, extra: str = "") -> str:
        return f'engine="0",{extra}model_name="{PROFILES[t.pod.app].model}",{self._target(t)}'

    def histogram(self, kind: str) -> list[tuple[np.ndarray, list[str]]]:
        """Per pod: sample indices and, per index, the block of lines (buckets, +Inf, count, sum)."""
        family = FAMILY[kind]
        out = []
        for t in self.traffic:
            edges = edges_of(kind, PROFILES[t.pod.app])
            cum = np.cumsum(t.bucket_counts(kind), axis=0)
            count = np.cumsum(t.n)
            total = np.cumsum(t.histogram_sum(kind))
            base = self._base(t)
            blocks = []
            for k in range(len(t.n)):
                lines = [f'{family}_bucket{{{base},le="{_le(e)}"}} {cum[k, j]}' for j, e in enumerate(edges)]
                lines.append(f'{family}_bucket{{{base},le="+Inf"}} {count[k]}')
                lines.append(f"{family}_count{{{base}}} {count[k]}")
                lines.append(f"{family}_sum{{{base}}} {total[k]:.6f}")
                blocks.append("\n".join(lines))
            out.append((t.idx, blocks))
        return out

    def counter(self, family: str) -> list[Segment]:
        """Cumulative counter series of one family (sample name = family + `_total`)."""
        out: list[Segment] = []
        for t in self.traffic:
            for labels, per_interval in self._counter_parts(family, t):
                out.append((labels, t.idx, [f"{v:.1f}" for v in np.cumsum(per_interval)]))
        return out

    def _counter_parts(self, family: str, t: PodTraffic) -> list[tuple[str, np.ndarray]]:
        if family == "vllm:request_success":
            length, abort = t.share("length_share"), t.share("abort_share")
            parts = {"abort": abort, "length": length, "stop": t.n - length - abort}
            return [(self._base(t, f'finished_reason="{r}",'), v) for r, v in parts.items()]
        if family == "vllm:prompt_tokens":
            return [(self._base(t), t.histogram_sum("prompt"))]
        if family == "vllm:generation_tokens":
            return [(self._base(t), t.histogram_sum("generation"))]
        if family == "http_requests":
            status = {"2xx": t.n, "4xx": t.share("client_error_rate"), "5xx": t.share("server_error_rate")}
            return [
                (f'handler="{HTTP_HANDLER}",method="POST",{self._target(t)},status="{s}"', v) for s, v in status.items()
            ]
        if family == "model_accuracy_evaluations":
            return [(f'model_name="{PROFILES[t.pod.app].model}",{self._target(t)}', self.evaluations(t))]
        raise KeyError(family)

    @staticmethod
    def evaluations(t: PodTraffic) -> np.ndarray:
        return np.full(len(t.n), EVALUATIONS_PER_INTERVAL, dtype=np.int64)

    def accuracy(self) -> list[Segment]:
        """The evaluator's gauge: accuracy over its last scoring window, per pod."""
        out: list[Segment] = []
        for t in self.traffic:
            values = t.per_day(lambda p: p.accuracy)
            labels = f'model_name="{PROFILES[t.pod.app].model}",{self._target(t)}'
            out.append((labels, t.idx, [f"{v:.4f}" for v in values]))
        return out


COUNTERS = {
    "vllm:request_success": "Count of successfully processed requests.",
    "vllm:prompt_tokens": "Number of prefill tokens processed.",
    "vllm:generation_tokens": "Number of generation tokens processed.",
    "http_requests": "Total number of requests by method, status and handler.",
    "model_accuracy_evaluations": "Labelled predictions scored by the evaluator.",
}
ACCURACY_GAUGE = ("model_accuracy_ratio", "Accuracy of the model on its last scored window (0-1).")
