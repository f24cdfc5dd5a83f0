"""Every name gpuledger reads or writes: tables, columns, metrics, labels, special rows, rules.

One module so that the collectors, analytics, rule generator, exports and dashboard can never
disagree on a spelling. Changing a value here is a schema or API change: bump the warehouse
schema version (core/schema.py) or the export format version when you do.
"""

from __future__ import annotations

from typing import Final

# --------------------------------------------------------------------------------------------
# Warehouse tables
# --------------------------------------------------------------------------------------------
T_SCHEMA_VERSION: Final = "schema_version"
T_NODES: Final = "nodes"  # one row per (cluster, node): instance type, capacity type, region, GPUs
T_GPUS: Final = "gpus"  # one row per GPU device or MIG instance
T_PODS: Final = "pods"  # one row per pod (uid): namespace, node, labels
T_NAMESPACES: Final = "namespaces"  # one row per namespace: labels
T_NODE_SAMPLES: Final = "node_samples"  # per step: node present, physical GPU count
T_GPU_SAMPLES: Final = "gpu_samples"  # per step and device: utilisation, memory, power, temperature
T_GPU_POD_SAMPLES: Final = "gpu_pod_samples"  # per step: which pod the device (or replica) serves
T_POD_ALLOCATIONS: Final = "pod_allocations"  # per step: GPU resources requested by Running pods
T_HEALTH_SAMPLES: Final = "gpu_health_samples"  # per step: Xid / ECC / row-remap observations
T_INFERENCE_SAMPLES: Final = "inference_samples"  # per step: serving counters and histograms
T_PRICES: Final = "prices"  # price rows with effective_from and provenance
T_WATERMARKS: Final = "watermarks"  # last committed step per collection source
T_INGEST_RUNS: Final = "ingest_runs"  # one row per collection run (data-status page)
# Rollups of the step tables (core/rollups.py), each as <name>_hourly and <name>_daily.
T_ALLOC_ROLLUP: Final = "rollup_alloc"  # GPU-unit-seconds per pod and hour/day
T_CAPACITY_ROLLUP: Final = "rollup_capacity"  # billable GPU-unit-seconds per node and hour/day
T_USAGE_ROLLUP: Final = "rollup_usage"  # used GPU-seconds per pod and hour/day
T_ROLLUP_STATE: Final = "rollup_state"  # step-table row counts at the last rollup refresh
T_CLASS_ALLOC: Final = "rollup_class_alloc_daily"  # GPU-unit-seconds per attribution class, node group and day
T_CLASS_USAGE: Final = "rollup_class_usage_daily"  # used GPU-seconds per attribution class, node group and day
T_CLASS_NODES: Final = "rollup_class_nodes"  # node -> the representative of nodes with the same attributes

FACT_TABLES: Final = (
    T_NODE_SAMPLES,
    T_GPU_SAMPLES,
    T_GPU_POD_SAMPLES,
    T_POD_ALLOCATIONS,
    T_HEALTH_SAMPLES,
    T_INFERENCE_SAMPLES,
)

# --------------------------------------------------------------------------------------------
# Special chargeback rows (OpenCost's vocabulary, so FinOps users recognise them)
# --------------------------------------------------------------------------------------------
IDLE: Final = "__idle__"  # GPU capacity no pod requested
UNALLOCATED: Final = "__unallocated__"  # GPU pods with no owner (no team label)

# Capacity types accepted in price tables and derived from node labels.
CAPACITY_TYPES: Final = ("on_demand", "spot", "reserved", "on_prem")

# Exact GPU arithmetic: a GPU share is stored as an integer number of units of
# 1/GPU_UNITS GPU. 3,603,600 = lcm(1..16) * 5, so MIG slices (g/7, g/4, g/8), time-slicing
# replicas up to 16 and whole percentages are all exact integers; conservation never depends on
# float rounding.
GPU_UNITS: Final = 3_603_600

# --------------------------------------------------------------------------------------------
# Input metrics (exporter names, exactly as exported)
# --------------------------------------------------------------------------------------------
DCGM_GR_ENGINE_ACTIVE: Final = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
DCGM_GPU_UTIL: Final = "DCGM_FI_DEV_GPU_UTIL"
DCGM_FB_USED: Final = "DCGM_FI_DEV_FB_USED"
DCGM_POWER: Final = "DCGM_FI_DEV_POWER_USAGE"
DCGM_GPU_TEMP: Final = "DCGM_FI_DEV_GPU_TEMP"
DCGM_XID: Final = "DCGM_FI_DEV_XID_ERRORS"

# DCGM gauge -> gpu_samples column.
DCGM_SAMPLE_COLUMNS: Final = {
    DCGM_GR_ENGINE_ACTIVE: "gr_engine_active",
    DCGM_GPU_UTIL: "gpu_util",
    DCGM_FB_USED: "fb_used_mib",
    DCGM_POWER: "power_w",
    DCGM_GPU_TEMP: "temp_c",
}
# DCGM health signals kept in long form (gpu_health_samples.metric holds the metric name).
DCGM_HEALTH_METRICS: Final = (
    DCGM_XID,
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
    "DCGM_FI_DEV_RETIRED_SBE",
    "DCGM_FI_DEV_RETIRED_DBE",
    "DCGM_FI_DEV_RETIRED_PENDING",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE",
    "DCGM_FI_DEV_ROW_REMAP_PENDING",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_THERMAL_VIOLATION",
    "DCGM_FI_DEV_POWER_VIOLATION",
)

KSM_POD_INFO: Final = "kube_pod_info"
KSM_POD_LABELS: Final = "kube_pod_labels"
KSM_POD_PHASE: Final = "kube_pod_status_phase"
KSM_POD_REQUESTS: Final = "kube_pod_container_resource_requests"
KSM_NODE_INFO: Final = "kube_node_info"
KSM_NODE_LABELS: Final = "kube_node_labels"
KSM_NODE_CAPACITY: Final = "kube_node_status_capacity"
KSM_NAMESPACE_LABELS: Final = "kube_namespace_labels"

# vLLM serving metrics (V1 engine names; histograms are stored bucket by bucket).
VLLM_E2E_LATENCY: Final = "vllm:e2e_request_latency_seconds"
VLLM_TTFT: Final = "vllm:time_to_first_token_seconds"
VLLM_REQUEST_SUCCESS: Final = "vllm:request_success_total"
VLLM_PROMPT_TOKENS: Final = "vllm:prompt_tokens_total"
VLLM_GENERATION_TOKENS: Final = "vllm:generation_tokens_total"
VLLM_HISTOGRAMS: Final = (VLLM_E2E_LATENCY, VLLM_TTFT)
VLLM_COUNTERS: Final = (VLLM_REQUEST_SUCCESS, VLLM_PROMPT_TOKENS, VLLM_GENERATION_TOKENS)

# --------------------------------------------------------------------------------------------
# Input labels
# --------------------------------------------------------------------------------------------
L_CLUSTER: Final = "cluster"
L_HOSTNAME: Final = ("Hostname", "hostname")  # dcgm-exporter <= 4.8.2 / main after PR #655
L_UUID: Final = ("UUID", "uuid")  # uuid with -o/--use-old-namespace
L_GPU_INDEX: Final = "gpu"
L_MODEL_NAME: Final = "modelName"
L_GPU_I_PROFILE: Final = "GPU_I_PROFILE"
L_GPU_I_ID: Final = "GPU_I_ID"
L_VGPU: Final = "vgpu"
L_POD_UID: Final = "pod_uid"
L_ERR_CODE: Final = "err_code"
# Workload labels on DCGM series, by scrape style (a setting, never a guess: with
# honorLabels=false, `pod` names the dcgm-exporter pod itself).
WORKLOAD_LABELS: Final = {
    "plain": ("namespace", "pod", "container"),
    "exported": ("exported_namespace", "exported_pod", "exported_container"),
}
L_NAMESPACE: Final = "namespace"
L_POD: Final = "pod"
L_UID: Final = "uid"
L_NODE: Final = "node"
L_RESOURCE: Final = "resource"
L_PHASE: Final = "phase"
L_LE: Final = "le"
L_MODEL: Final = "model_name"
KSM_LABEL_PREFIX: Final = "label_"

# Kubernetes node labels as kube-state-metrics exposes them (label_ + snake case).
NODE_INSTANCE_TYPE_LABELS: Final = (
    "label_node_kubernetes_io_instance_type",
    "label_beta_kubernetes_io_instance_type",
)
NODE_CAPACITY_TYPE_LABELS: Final = {
    # label -> {label value -> capacity type}
    "label_karpenter_sh_capacity_type": {"spot": "spot", "on-demand": "on_demand", "reserved": "reserved"},
    "label_eks_amazonaws_com_capacity_type": {"SPOT": "spot", "ON_DEMAND": "on_demand"},
    "label_cloud_google_com_gke_spot": {"true": "spot"},
    "label_cloud_google_com_gke_preemptible": {"true": "spot"},
    "label_kubernetes_azure_com_scalesetpriority": {"spot": "spot"},
}
NODE_REGION_LABELS: Final = ("label_topology_kubernetes_io_region", "label_failure_domain_beta_kubernetes_io_region")
NODE_ZONE_LABELS: Final = ("label_topology_kubernetes_io_zone", "label_failure_domain_beta_kubernetes_io_zone")
NODE_POOL_LABELS: Final = (
    "label_karpenter_sh_nodepool",
    "label_eks_amazonaws_com_nodegroup",
    "label_cloud_google_com_gke_nodepool",
    "label_kubernetes_azure_com_agentpool",
    "label_gpuledger_io_node_pool",
)
NODE_GPU_COUNT_LABEL: Final = "label_nvidia_com_gpu_count"  # GPU feature discovery: physical GPUs
NODE_GPU_PRODUCT_LABEL: Final = "label_nvidia_com_gpu_product"
NODE_GPU_REPLICAS_LABEL: Final = "label_nvidia_com_gpu_replicas"  # time-slicing replicas

# GPU resources as kube-state-metrics sanitises them.
RESOURCE_GPU: Final = "nvidia_com_gpu"
RESOURCE_GPU_SHARED: Final = "nvidia_com_gpu_shared"
RESOURCE_MIG_PREFIX: Final = "nvidia_com_mig_"
GPU_RESOURCE_REGEX: Final = "nvidia_com_gpu.*|nvidia_com_mig_.*"

# --------------------------------------------------------------------------------------------
# Pod labels used for attribution (Kubernetes keys, as stored in pods.labels)
# --------------------------------------------------------------------------------------------
TEAM_LABEL: Final = "team"


def ksm_label_key(key: str) -> str:
    """A Kubernetes label key as kube-state-metrics names it, minus `label_` (utils.go labelName).

    `team` -> `team`, `app.kubernetes.io/name` -> `app_kubernetes_io_name`, `costCenter` and
    `cost-center` -> `cost_center`.
    """
    out: list[str] = []
    for i, ch in enumerate(key):
        if ch.isascii() and ch.isupper() and i > 0 and (key[i - 1].islower() or key[i - 1].isdigit()):
            out.append("_")
        out.append(ch.lower() if ch.isascii() and (ch.isalnum() or ch == "_") else "_")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Generated rules (Prometheus naming: level:metric:operations; alerts CamelCase)
# --------------------------------------------------------------------------------------------
RULE_GROUP_PREFIX: Final = "gpuledger"
REC_POD_GPU_ALLOCATION: Final = "namespace_pod:gpuledger_gpu_allocation:sum"
REC_POD_GPU_ACTIVE: Final = "namespace_pod:gpuledger_gpu_engine_active:avg"
REC_TEAM_GPU_ALLOCATION: Final = "team:gpuledger_gpu_allocation:sum"
ALERT_LOW_GPU_UTILIZATION: Final = "GpuledgerLowGPUUtilization"
ALERT_GPU_NOT_REPORTING: Final = "GpuledgerGPUStoppedReporting"
ALERT_GPU_POD_WITHOUT_TEAM: Final = "GpuledgerGPUPodWithoutTeam"
RUNBOOK_BASE_URL: Final = "https://github.com/gpuledger/gpuledger/blob/main/README.md"

# --------------------------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------------------------
EXPORT_CHARGEBACK_BASENAME: Final = "chargeback"
EXPORT_MANIFEST: Final = "manifest.json"
EXPORT_FORMAT_VERSION: Final = 1


# --- issue 4: pricing ---
T_PRICE_DISCOUNTS: Final = "price_discounts"  # negotiated %, savings plans, committed use, with dates
V_PRICE_HISTORY: Final = "price_history"  # prices plus effective_to (the next row's effective_from)
PRICE_FORMATS: Final = ("aws", "aws-spot", "gcp", "azure", "csv")  # `gpuledger pricing import --format`
PROVIDER_ON_PREM: Final = "on_prem"  # provider of price rows computed from pricing.on_prem
HOURS_PER_YEAR: Final = 8760  # 365 x 24: AWS reserved terms, Azure (730 h x 12 months) and straight-line depreciation
RESERVED_TERMS: Final = {"1yr": 1, "3yr": 3}  # normalised reservation terms -> years
AWS_PURCHASE_OPTIONS: Final = ("No Upfront", "Partial Upfront", "All Upfront")
GCP_COMPUTE_SERVICE: Final = "6F81-5844-456A"  # Cloud Billing Catalog service id of Compute Engine
