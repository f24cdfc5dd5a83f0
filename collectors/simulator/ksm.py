"""kube-state-metrics 2.x series of the simulated fleet (label layout of internal/store/*.go).

Pod series start with namespace, pod, uid; node series with node. Started with
--metric-labels-allowlist=pods=[team,cost-center,app.kubernetes.io/name],nodes=[*],namespaces=[team],
so kube_pod_labels carries label_team and label_cost_center where the pod has them (sandbox pods do not).
A pod is Pending for one scrape (node=""), Running, then Succeeded for two scrapes before its
object is deleted (its request rows stay until then, as in real clusters).
"""

from __future__ import annotations

import numpy as np

from collectors.simulator.fleet import NODES, Node, Pod

Segment = tuple[str, np.ndarray, list[str]]
PHASES = ("Pending", "Succeeded", "Failed", "Unknown", "Running")


def _ip(node_index: int, host: int) -> str:
    return f"10.0.{12 + node_index}.{host}"


def node_label_pairs(node: Node) -> list[tuple[str, str]]:
    """(Kubernetes label key, value) pairs, sorted by key as kube-state-metrics sorts them."""
    product = node.model.name.replace(" ", "-") + ("-SHARED" if node.replicas else "")
    pairs = {
        "karpenter.sh/capacity-type": node.capacity_type,
        "karpenter.sh/nodepool": node.pool,
        "node.kubernetes.io/instance-type": node.instance_type,
        "nvidia.com/gpu.count": str(node.gpu_count),
        "nvidia.com/gpu.product": product,
        "topology.kubernetes.io/region": "us-east-1",
        "topology.kubernetes.io/zone": node.zone,
    }
    if node.replicas:
        pairs["nvidia.com/gpu.sharing-strategy"] = "time-slicing"
    if node.replicas and node.replicas_label:
        pairs["nvidia.com/gpu.replicas"] = str(node.replicas)
    if node.mig:
        pairs["nvidia.com/mig.strategy"] = "mixed"
    return sorted(pairs.items())


def _label_name(key: str) -> str:
    return "label_" + "".join(ch if ch.isalnum() else "_" for ch in key)


class KsmFamilies:
    def __init__(self, pods: list[Pod], n: int, epoch0: int = 0, interval_s: int = 300) -> None:
        self.pods = pods
        self.n = n
        self.epoch0, self.interval_s = epoch0, interval_s
        self.all = np.arange(n)
        self.node_index = {node.name: i for i, node in enumerate(NODES)}

    def segments(self, family: str) -> list[Segment]:
        builder = {
            "kube_pod_info": self._pod_info,
            "kube_pod_labels": self._pod_labels,
            "kube_pod_status_phase": self._pod_phase,
            "kube_pod_container_resource_requests": self._pod_requests,
            "kube_pod_created": self._pod_created,
            "kube_pod_status_scheduled_time": self._pod_scheduled,
            "kube_pod_status_unschedulable": self._pod_unschedulable,
        }.get(family)
        if builder is not None:
            return [seg for pod in self.pods for seg in builder(pod)]
        return {
            "kube_node_info": self._node_info,
            "kube_node_labels": self._node_labels,
            "kube_node_status_capacity": self._node_capacity,
            "kube_namespace_labels": self._namespace_labels,
        }[family]()

    def _pod_key(self, pod: Pod) -> str:
        return f'namespace="{pod.namespace}",pod="{pod.name}",uid="{pod.uid}"'

    def _pending(self, pod: Pod) -> np.ndarray:
        return np.arange(pod.created, pod.start)

    def _scheduled(self, pod: Pod) -> np.ndarray:
        return np.arange(pod.start, pod.deleted)

    def _pod_info(self, pod: Pod) -> list[Segment]:
        owner = ("ReplicaSet", pod.app) if pod.kind in ("inference", "notebook") else ("Job", pod.app)
        host = 10 + int(pod.uid[:2], 16) % 200
        out = []
        for idx, node, ips in (
            (self._pending(pod), "", ("", "")),
            (self._scheduled(pod), pod.node, (_ip(self.node_index[pod.node], 7), _ip(40, host))),
        ):
            if len(idx):
                labels = (
                    f'{self._pod_key(pod)},host_ip="{ips[0]}",pod_ip="{ips[1]}",node="{node}",'
                    f'created_by_kind="{owner[0]}",created_by_name="{owner[1]}",priority_class="",'
                    'host_network="false"'
                )
                out.append((labels, idx, ["1"] * len(idx)))
        return out

    def _pod_labels(self, pod: Pod) -> list[Segment]:
        # keys sorted by their Kubernetes spelling: app.kubernetes.io/name, cost-center, team
        labels = f'{self._pod_key(pod)},label_app_kubernetes_io_name="{pod.app}"'
        if pod.team is not None:
            labels += f',label_cost_center="cc-{pod.team}",label_team="{pod.team}"'
        idx = np.arange(pod.created, pod.deleted)
        return [(labels, idx, ["1"] * len(idx))]

    def _pod_phase(self, pod: Pod) -> list[Segment]:
        idx = np.arange(pod.created, pod.deleted)
        spans = {
            "Pending": (pod.created, pod.start),
            "Running": (pod.start, pod.end),
            "Succeeded": (pod.end, pod.deleted),
        }
        out = []
        for phase in PHASES:
            lo, hi = spans.get(phase, (0, 0))
            values = ["1" if lo <= i < hi else "0" for i in idx]
            out.append((f'{self._pod_key(pod)},phase="{phase}"', idx, values))
        return out

    def _at(self, index: int) -> str:
        return str(self.epoch0 + index * self.interval_s)

    def _pod_created(self, pod: Pod) -> list[Segment]:
        idx = np.arange(pod.created, pod.deleted)
        return [(self._pod_key(pod), idx, [self._at(pod.created)] * len(idx))] if len(idx) else []

    def _pod_scheduled(self, pod: Pod) -> list[Segment]:
        idx = self._scheduled(pod) if pod.start < pod.end else np.arange(0)
        return [(self._pod_key(pod), idx, [self._at(pod.start)] * len(idx))] if len(idx) else []

    def _pod_unschedulable(self, pod: Pod) -> list[Segment]:
        """A pod that never starts waits unschedulable (no node has the GPUs it asks for)."""
        idx = self._pending(pod) if pod.start >= pod.end else np.arange(0)
        return [(self._pod_key(pod), idx, ["1"] * len(idx))] if len(idx) else []

    def _pod_requests(self, pod: Pod) -> list[Segment]:
        out = []
        for idx, node in ((self._pending(pod), ""), (self._scheduled(pod), pod.node)):
            if not len(idx):
                continue
            base = f'{self._pod_key(pod)},container="{pod.container}",node="{node}"'
            out.append((f'{base},resource="cpu",unit="core"', idx, ["4"] * len(idx)))
            gpu = f'{base},resource="{pod.resource}",unit="integer"'
            out.append((gpu, idx, [str(pod.amount)] * len(idx)))
        return out

    def _node_info(self) -> list[Segment]:
        out = []
        for i, node in enumerate(NODES):
            labels = (
                f'node="{node.name}",kernel_version="6.8.0-1021-aws",os_image="Ubuntu 22.04.5 LTS",'
                'container_runtime_version="containerd://1.7.27",kubelet_version="v1.33.4",'
                f'kubeproxy_version="deprecated",provider_id="{node.provider_id()}",'
                f'pod_cidr="10.42.{i}.0/24",system_uuid="ec2{i:05d}-sim",internal_ip="{_ip(i, 7)}"'
            )
            out.append((labels, self.all, ["1"] * self.n))
        return out

    def _node_labels(self) -> list[Segment]:
        out = []
        for node in NODES:
            pairs = ",".join(f'{_label_name(k)}="{v}"' for k, v in node_label_pairs(node))
            out.append((f'node="{node.name}",{pairs}', self.all, ["1"] * self.n))
        return out

    def _node_capacity(self) -> list[Segment]:
        out = []
        for node in NODES:
            counts: dict[str, int] = {}
            whole = node.gpu_count - len(node.mig)
            if node.replicas:
                counts["nvidia_com_gpu_shared"] = whole * node.replicas
            else:
                counts["nvidia_com_gpu"] = whole
            for profiles in node.mig.values():
                for p in profiles:
                    key = "nvidia_com_mig_" + p.replace(".", "_")
                    counts[key] = counts.get(key, 0) + 1
            for resource, count in sorted(counts.items()):
                labels = f'node="{node.name}",resource="{resource}",unit="integer"'
                out.append((labels, self.all, [str(count)] * self.n))
        return out

    def _namespace_labels(self) -> list[Segment]:
        out = []
        for ns in sorted({p.namespace for p in self.pods}):
            team = ns.removeprefix("team-") if ns.startswith("team-") else None
            labels = f'namespace="{ns}"' + (f',label_team="{team}"' if team else "")
            out.append((labels, self.all, ["1"] * self.n))
        return out
