"""A vLLM-style inference exporter for the simulated serving pods.

Names follow vLLM's V1 engine (`engine`, `model_name` labels); `namespace` and `pod` are the
target labels Prometheus attaches when it scrapes the pod. Counters and histograms are
cumulative since the pod started; bucket edges are vLLM's defaults.
"""

from __future__ import annotations

import numpy as np

from collectors.simulator.fleet import Pod
from collectors.simulator.signals import Stream, lognormal_cdf, requests_per_interval

MODELS = {"llm-infer": "meta-llama/Llama-3.1-8B-Instruct", "embed-infer": "Qwen/Qwen2.5-1.5B-Instruct"}
E2E_EDGES = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0]
TTFT_EDGES = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]
# (median seconds, log-sigma) of each latency distribution, per model.
LATENCY = {
    "llm-infer": {"e2e": (1.6, 0.55), "ttft": (0.09, 0.7)},
    "embed-infer": {"e2e": (0.45, 0.4), "ttft": (0.02, 0.5)},
}
HISTOGRAMS = {
    "vllm:e2e_request_latency_seconds": ("e2e", E2E_EDGES),
    "vllm:time_to_first_token_seconds": ("ttft", TTFT_EDGES),
}
COUNTERS = ("vllm:request_success", "vllm:prompt_tokens", "vllm:generation_tokens")

Segment = tuple[str, np.ndarray, list[str]]


def _le(edge: float) -> str:
    return "+Inf" if edge == float("inf") else repr(float(edge))


class InferenceFamilies:
    def __init__(self, pods: list[Pod], acts: list[np.ndarray], stream: Stream, interval_s: int) -> None:
        self.serving = [(p, a) for p, a in zip(pods, acts, strict=True) if p.app in MODELS]
        self.requests = {p.uid: requests_per_interval(stream, a, interval_s) for p, a in self.serving}

    def _base(self, pod: Pod) -> str:
        return f'engine="0",model_name="{MODELS[pod.app]}",namespace="{pod.namespace}",pod="{pod.name}"'

    def histogram(self, family: str) -> list[tuple[np.ndarray, list[str]]]:
        """Per pod: sample indices and, per index, the block of lines (buckets, count, sum)."""
        kind, edges = HISTOGRAMS[family]
        out = []
        for pod, _ in self.serving:
            n_req = self.requests[pod.uid]
            median, sigma = LATENCY[pod.app][kind]
            cdf = lognormal_cdf(edges, median, sigma)
            per_bucket = np.round(np.outer(n_req, cdf)).astype(np.int64)
            cum = np.cumsum(per_bucket, axis=0)
            count = np.cumsum(n_req)
            mean = median * float(np.exp(sigma**2 / 2))
            total = np.cumsum(n_req * mean)
            base = self._base(pod)
            blocks = []
            for k in range(len(n_req)):
                lines = [f'{family}_bucket{{{base},le="{_le(e)}"}} {cum[k, j]}' for j, e in enumerate(edges)]
                lines.append(f'{family}_bucket{{{base},le="+Inf"}} {count[k]}')
                lines.append(f"{family}_count{{{base}}} {count[k]}")
                lines.append(f"{family}_sum{{{base}}} {total[k]:.6f}")
                blocks.append("\n".join(lines))
            out.append((np.arange(pod.start, pod.end), blocks))
        return out

    def counter(self, family: str) -> list[Segment]:
        out: list[Segment] = []
        for pod, _ in self.serving:
            n_req = self.requests[pod.uid]
            idx = np.arange(pod.start, pod.end)
            if family == "vllm:request_success":
                stop = np.cumsum(np.round(n_req * 0.93))
                length = np.cumsum(n_req) - stop
                for reason, values in (("length", length), ("stop", stop)):
                    labels = self._base(pod).replace('engine="0",', f'engine="0",finished_reason="{reason}",')
                    out.append((labels, idx, [f"{v:.1f}" for v in values]))
                continue
            per_request = 512 if family == "vllm:prompt_tokens" else 180
            values = np.cumsum(n_req * per_request)
            out.append((self._base(pod), idx, [f"{v:.1f}" for v in values]))
        return out
