"""Who owns a pod: configurable label keys, then namespace labels, then a namespace map.

Order (first hit wins): the pod's labels in `team_labels` order (default `team`, then
`cost-center`), the namespace's labels with the same keys, the `namespace_teams` map, else
__unallocated__. Keys are Kubernetes label keys; kube-state-metrics renames them (`cost-center` ->
`cost_center`), so both spellings are looked up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from core import conventions as c

# ReplicaSet / Job / StatefulSet suffixes, so `llm-infer-5c7d9f8b6-x2k9p` is workload `llm-infer`.
_POD_SUFFIX = re.compile(r"(-[0-9a-f]{8,10})?-[a-z0-9]{5}$|-\d+$")


@dataclass(frozen=True)
class Attribution:
    team_labels: tuple[str, ...] = c.TEAM_LABELS
    namespace_teams: Mapping[str, str] = field(default_factory=dict)

    def team(self, pod_labels: Mapping[str, str], namespace: str, ns_labels: Mapping[str, str]) -> str:
        for labels in (pod_labels, ns_labels):
            value = self._lookup(labels)
            if value:
                return value
        return self.namespace_teams.get(namespace) or c.UNALLOCATED

    def _lookup(self, labels: Mapping[str, str]) -> str | None:
        for key in self.team_labels:
            value = labels.get(key) or labels.get(c.ksm_label_key(key))
            if value:
                return value
        return None


def label_value(labels: Mapping[str, str], key: str) -> str | None:
    return labels.get(key) or labels.get(c.ksm_label_key(key)) or None


def workload(pod: str, labels: Mapping[str, str]) -> str:
    """The workload a pod belongs to: app.kubernetes.io/name or app label, else its name minus hashes."""
    for key in ("app.kubernetes.io/name", "app"):
        value = label_value(labels, key)
        if value:
            return value
    return _POD_SUFFIX.sub("", pod) or pod


def matches_selector(labels: Mapping[str, str], selector: str) -> bool:
    """`key=value` (or bare `key`, meaning the label is present) against pod labels."""
    key, _, value = selector.partition("=")
    found = label_value(labels, key.strip())
    return found is not None and (not value or found == value.strip())
