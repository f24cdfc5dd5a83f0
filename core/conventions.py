"""Every name gpuledger reads or writes: tables, columns, metrics, labels, special rows, rules.

One module so that the collectors, analytics, rule generator, exports and dashboard can never
disagree on a spelling. Changing a value here is a schema or API change: bump the warehouse
schema version (core/store/schema.py) or the export format version when you do.
"""

from __future__ import annotations

from functools import lru_cache
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
T_POD_PENDING: Final = "pod_pending"  # per step: GPU resources requested by Pending pods, and unschedulable
T_NODE_RESOURCES: Final = "node_resources"  # per step: each node's allocatable GPU resources (whole, shared, MIG)
T_QUEUE_SAMPLES: Final = "queue_samples"  # per step: Kueue / Volcano queue gauges (quota, usage, pending)
T_PRICES: Final = "prices"  # price rows with effective_from and provenance
T_BILLING_LINES: Final = "billing_lines"  # the provider's bill, line by line (FOCUS or CUR 2.0), with provenance
T_WATERMARKS: Final = "watermarks"  # last committed step per collection source
T_INGEST_RUNS: Final = "ingest_runs"  # one row per collection run (data-status page)
# Rollups of the step tables (core/store/rollups/hourly.py), each as <name>_hourly and <name>_daily.
T_ALLOC_ROLLUP: Final = "rollup_alloc"  # GPU-unit-seconds per pod and hour/day
T_CAPACITY_ROLLUP: Final = "rollup_capacity"  # billable GPU-unit-seconds per node and hour/day
T_USAGE_ROLLUP: Final = "rollup_usage"  # used GPU-seconds per pod and hour/day
T_COVERAGE_ROLLUP: Final = "rollup_coverage_hourly"  # per GPU and node and hour: steps reported, first, last end
T_ROLLUP_STATE: Final = "rollup_state"  # step-table row counts at the last rollup refresh
T_CLASS_ALLOC: Final = "rollup_class_alloc_daily"  # GPU-unit-seconds per attribution class, node group and day
T_CLASS_USAGE: Final = "rollup_class_usage_daily"  # used GPU-seconds per attribution class, node group and day
T_CLASS_NODES: Final = "rollup_class_nodes"  # node -> the representative of nodes with the same attributes
T_LABELLED_ALLOC: Final = "rollup_labelled_alloc_daily"  # GPU-unit-seconds per attribution class, node and day
T_LABELLED_USAGE: Final = "rollup_labelled_usage_daily"  # used GPU-seconds per attribution class, node and day
# The bill's price of each node-hour, stored (core/store/rollups/bills.py): what a chargeback at billed cost reads
T_BILL_HOURS: Final = "rollup_bill_hours"  # per node, hour and MIG share: the id of the bill's price
T_BILL_DAYS: Final = "rollup_bill_days"  # per node, day and MIG share: the day's one price, or how many
T_BILL_PRICES: Final = "rollup_bill_prices"  # per bill price id: the invoice's amounts and the capacity they fall on
# Fragmentation per hour (core/store/rollups/waiting.py): what `report queues` reads instead of every node-step
T_WAITING_ROLLUP: Final = "rollup_waiting_hourly"  # per node, resource and hour: free and fragmented unit-seconds
T_WAITING_CLUSTER_ROLLUP: Final = "rollup_waiting_cluster_hourly"  # per cluster and hour: steps waited, largest free
# per hour, node pool and MIG share mode: steps, capacity units summed over them, peak allocated units, largest node
T_POOL_ROLLUP: Final = "rollup_pool_hourly"
T_POOL_NODES: Final = "rollup_pool_nodes"  # the pool each node had when the pool rows were last computed
# per hour and pod (uid) on a node, per GPU resource: the most it asked for at a step, and its seconds Running
T_POD_REQUEST_ROLLUP: Final = "rollup_pod_requests_hourly"
T_PENDING_ROLLUP: Final = "rollup_pending_hourly"  # per Pending pod and hour: first step, last end, GPU-seconds asked
T_CARBON_HOURLY: Final = "carbon_intensity_hourly"  # per grid zone and hour: gCO2e/kWh, from an import

FACT_TABLES: Final = (
    T_NODE_SAMPLES,
    T_GPU_SAMPLES,
    T_GPU_POD_SAMPLES,
    T_POD_ALLOCATIONS,
    T_HEALTH_SAMPLES,
    T_INFERENCE_SAMPLES,
    T_POD_PENDING,
    T_NODE_RESOURCES,
    T_QUEUE_SAMPLES,
)

# --------------------------------------------------------------------------------------------
# Input metrics (exporter names, exactly as exported)
# --------------------------------------------------------------------------------------------
DCGM_GR_ENGINE_ACTIVE: Final = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
DCGM_GPU_UTIL: Final = "DCGM_FI_DEV_GPU_UTIL"
DCGM_FB_USED: Final = "DCGM_FI_DEV_FB_USED"
# dcgm-exporter >= 4.5.3 with virtual GPUs (PR #594) adds per-process copies of these two for each
# time-slicing replica: pod_uid and vgpu set, one pod's share, beside the device series. pod_uid
# alone marks nothing: --kubernetes-enable-pod-uid puts it on every pod-mapped series.
DCGM_PER_PROCESS_FAMILIES: Final = (DCGM_GPU_UTIL, DCGM_FB_USED)
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
KSM_NODE_ALLOCATABLE: Final = "kube_node_status_allocatable"
KSM_NAMESPACE_LABELS: Final = "kube_namespace_labels"
KSM_POD_CREATED: Final = "kube_pod_created"  # value: the pod's creation time (Unix seconds)
KSM_POD_SCHEDULED: Final = "kube_pod_status_scheduled_time"  # value: when the scheduler bound it (Unix seconds)
KSM_POD_UNSCHEDULABLE: Final = "kube_pod_status_unschedulable"  # 1 while the scheduler finds no node for it
# Kueue (kubernetes-sigs/kueue pkg/metrics, v0.13): per ClusterQueue; quota gauges need
# metrics.enableClusterQueueResources. Volcano (pkg/scheduler/metrics/queue.go, v1.12): per queue, GPUs among the
# scalar resources in thousandths (Quantity.MilliValue), so 1000 is one GPU.
KUEUE_PENDING: Final = "kueue_pending_workloads"  # {cluster_queue, status: active | inadmissible}
KUEUE_ADMITTED: Final = "kueue_admitted_workloads_total"  # counter {cluster_queue}
KUEUE_ADMISSION_WAIT: Final = "kueue_admission_wait_time_seconds_bucket"  # histogram {cluster_queue, le}
KUEUE_USAGE: Final = "kueue_cluster_queue_resource_usage"  # {cluster_queue, cohort, flavor, resource}
KUEUE_NOMINAL: Final = "kueue_cluster_queue_nominal_quota"
KUEUE_BORROWING: Final = "kueue_cluster_queue_borrowing_limit"  # 0 when unset (v0.13)
VOLCANO_ALLOCATED: Final = "volcano_queue_allocated_scalar_resources"  # {queue_name, resource}
VOLCANO_DESERVED: Final = "volcano_queue_deserved_scalar_resources"
VOLCANO_CAPACITY: Final = "volcano_queue_capacity_scalar_resources"
VOLCANO_REQUEST: Final = "volcano_queue_request_scalar_resources"
VOLCANO_PENDING: Final = "volcano_queue_pod_group_pending_count"  # vc-controller-manager {queue_name}
QUEUE_FAMILIES: Final = (
    KUEUE_PENDING, KUEUE_ADMITTED, KUEUE_ADMISSION_WAIT, KUEUE_USAGE, KUEUE_NOMINAL, KUEUE_BORROWING,
    VOLCANO_ALLOCATED, VOLCANO_DESERVED, VOLCANO_CAPACITY, VOLCANO_REQUEST, VOLCANO_PENDING,
)  # fmt: skip
L_CLUSTER_QUEUE: Final = "cluster_queue"  # Kueue's queue label
L_QUEUE_NAME: Final = "queue_name"  # Volcano's
L_COHORT: Final = "cohort"
L_FLAVOR: Final = "flavor"
L_STATUS: Final = "status"

# vLLM serving metrics (V1 engine names; histograms are stored bucket by bucket).
VLLM_REQUEST_SUCCESS: Final = "vllm:request_success_total"

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
L_PROVIDER_ID: Final = "provider_id"  # kube_node_info: the cloud's ID of the node's instance (bills name it)
L_RESOURCE: Final = "resource"
L_PHASE: Final = "phase"
L_LE: Final = "le"
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
NODE_GPU_SHARING_LABEL: Final = "label_nvidia_com_gpu_sharing_strategy"  # time-slicing | mps | none
NODE_MIG_STRATEGY_LABEL: Final = "label_nvidia_com_mig_strategy"  # single | mixed
# nodes.gpu_sharing: the sharing strategy label's value, or this when MIG's single strategy renames slices nvidia.com/gpu
MIG_SINGLE: Final = "mig-single"
# The NVIDIA device plugin's time-slicing/MPS without renameByDefault suffixes the product label with this
SHARED_PRODUCT_SUFFIX: Final = "-SHARED"
# A GPU DCGM once reported counts as part of its node (billed, and `unhealthy` while silent) until it has been
# silent this long: kube-state-metrics' capacity and GPU feature discovery's count keep it beyond that.
DEVICE_LOOKBEHIND_S: Final = 7 * 24 * 3600

# GPU resources as kube-state-metrics sanitises them.
RESOURCE_GPU: Final = "nvidia_com_gpu"
RESOURCE_GPU_SHARED: Final = "nvidia_com_gpu_shared"
RESOURCE_MIG_PREFIX: Final = "nvidia_com_mig_"
GPU_RESOURCE_REGEX: Final = "nvidia_com_gpu.*|nvidia_com_mig_.*"

# --------------------------------------------------------------------------------------------
# Collection: counters, device entities and the recording rules the collector reads
# --------------------------------------------------------------------------------------------
# Counters among the DCGM health signals: a driver reload resets them, so their per-step
# increase is computed the way PromQL's increase() treats resets (a drop means "restarted at 0").
DCGM_ENERGY: Final = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
# (every health metric but the last-Xid gauge and the retirement/remap state gauges, in the same order)
DCGM_HEALTH_COUNTERS: Final = (
    *(
        m
        for m in DCGM_HEALTH_METRICS
        if m
        not in (
            DCGM_XID,
            "DCGM_FI_DEV_RETIRED_PENDING",
            "DCGM_FI_DEV_ROW_REMAP_FAILURE",
            "DCGM_FI_DEV_ROW_REMAP_PENDING",
        )
    ),
    DCGM_ENERGY,
)
# gpu_health_samples.delta: counters -> reset-aware increase since the previous step;
# DCGM_FI_DEV_XID_ERRORS -> 1 when the last-Xid value changed to a new non-zero code (an Xid event).
COL_HEALTH_DELTA: Final = "delta"
COL_HEALTH_SPAN: Final = "delta_span_s"  # an energy counter's increase across a silence: the seconds it spans
# prices: an on-prem row's electricity per kWh (PUE included) and the nameplate power in its GPU part (per node-hour)
COL_ENERGY_USD_PER_KWH: Final = "energy_usd_per_kwh"
COL_GPU_ENERGY_USD_PER_HOUR: Final = "gpu_energy_usd_per_hour"
COL_FIRST_ALLOCATED: Final = "first_allocated"  # pods: the first step the pod held GPUs (any collection)
# pods: its Pending steps summed over all time (core/store/rollups/waiting.py), what `report queues` reads for the pods
# whose Pending steps all fall inside its window
COL_PENDING_FIRST: Final = "pending_first"  # the first Pending step
COL_PENDING_LAST_END: Final = "pending_last_end"  # the last Pending step's end
COL_PENDING_GPU_S: Final = "pending_gpu_s"  # GPU-seconds asked for while Pending
COL_PENDING_UNSCHEDULABLE: Final = "pending_unschedulable"  # the scheduler called it unschedulable at some step

# Device identity labels of dcgm-exporter series (both spellings of Hostname/UUID, MIG instance).
DCGM_DEVICE_LABELS: Final = (L_CLUSTER, *L_HOSTNAME, *L_UUID, L_GPU_INDEX, L_MODEL_NAME, L_GPU_I_PROFILE, L_GPU_I_ID)

# Recording rules the collector reads when they cover a window (see core/promql.py).
REC_HEARTBEAT: Final = "gpuledger:recording_rules:heartbeat"  # vector(1): proves the group was evaluated
REC_POD_ALLOCATION_RUNNING: Final = "pod:gpuledger_gpu_allocation_running:sum"  # requests x Running, HA-deduped
REC_POD_DEVICE: Final = "pod_gpu:gpuledger_dcgm_mapping:count"  # which pod each device (or replica) serves
REC_POD_PENDING: Final = "pod:gpuledger_gpu_pending:sum"  # requests x Pending (a pushed-down query's family)


def rec_device_gauge(metric: str) -> str:
    """Recording rule holding one series per device entity for a DCGM gauge (copies deduplicated)."""
    return f"gpu:{metric}:max"


# Families the Prometheus collector names for pushed-down series (kinds in collectors/metrics/series.py).
KIND_POD_ALLOCATION: Final = "pod_alloc"
KIND_POD_PENDING: Final = "pod_pending"
KIND_DCGM_MAPPING: Final = "dcgm_map"

# State gauges: what holds from a sample's time on (kube-state-metrics' phase, requests, labels,
# capacity). A state sampled at t covers [t, t + step), and a series ends one scrape interval after
# its last sample (Prometheus' staleness). Every other family (DCGM's interval averages, counters)
# covers the step before its sample and is carried for the lookback, as PromQL reads it.
STATE_PREFIX: Final = "kube_"
STATE_KINDS: Final = (
    "ksm_requests", "ksm_phase", "ksm_pod_labels", "ksm_pod_info", "ksm_node_labels", "ksm_node_capacity",
    "ksm_namespace_labels", "ksm_node_info", KIND_POD_ALLOCATION, "ksm_pod_times", "ksm_unschedulable",
    KIND_POD_PENDING,
)  # fmt: skip

# HTTP header carrying the tenant for Mimir / Cortex.
HEADER_TENANT: Final = "X-Scope-OrgID"

# --------------------------------------------------------------------------------------------
# Pod labels used for attribution (Kubernetes keys, as stored in pods.labels)
# --------------------------------------------------------------------------------------------
TEAM_LABELS: Final = ("team", "cost-center")  # the default owner label keys, in order
L_KSM_TEAM: Final = "label_team"  # kube_pod_labels' team label: what the cost rules and dashboards group by


@lru_cache(maxsize=1024)  # a few configured keys, looked up for every pod class of a report
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
# Special chargeback rows (OpenCost's vocabulary, so FinOps users recognise them)
# --------------------------------------------------------------------------------------------
IDLE: Final = "__idle__"  # GPU capacity no pod requested
UNALLOCATED: Final = "__unallocated__"  # GPU pods with no owner (no team label)
UNHEALTHY: Final = "__unhealthy__"  # idle GPU time of GPUs that stopped reporting (fell off the bus, exporter down)

# Capacity types accepted in price tables and derived from node labels.
CAPACITY_TYPES: Final = ("on_demand", "spot", "reserved", "on_prem")

# Exact GPU arithmetic: a GPU share is stored as an integer number of units of
# 1/GPU_UNITS GPU. 3,603,600 = lcm(1..16) * 5, so MIG slices (g/7, g/4, g/8), time-slicing
# replicas up to 16 and whole percentages are all exact integers; conservation never depends on
# float rounding.
GPU_UNITS: Final = 3_603_600

# --------------------------------------------------------------------------------------------
# Pricing
# --------------------------------------------------------------------------------------------
T_PRICE_DISCOUNTS: Final = "price_discounts"  # negotiated %, savings plans, committed use, with dates
V_PRICE_HISTORY: Final = "price_history"  # prices plus effective_to (the next row's effective_from)
PRICE_FORMATS: Final = ("aws", "aws-spot", "gcp", "azure", "csv")  # `gpuledger pricing import --format`
PROVIDER_ON_PREM: Final = "on_prem"  # provider of price rows computed from pricing.on_prem
HOURS_PER_YEAR: Final = 8760  # 365 x 24: AWS reserved terms, Azure (730 h x 12 months) and straight-line depreciation
RESERVED_TERMS: Final = {"1yr": 1, "3yr": 3}  # normalised reservation terms -> years

# --------------------------------------------------------------------------------------------
# Generated rules (Prometheus naming: level:metric:operations; alerts CamelCase)
# --------------------------------------------------------------------------------------------
RULE_GROUP_PREFIX: Final = "gpuledger"
REC_POD_GPU_ALLOCATION: Final = "namespace_pod:gpuledger_gpu_allocation:sum"
REC_POD_GPU_ACTIVE: Final = "namespace_pod:gpuledger_gpu_engine_active:avg"
REC_POD_GPU_POWER: Final = "namespace_pod:gpuledger_gpu_power_watts:avg"  # board power per GPU a pod holds
REC_TEAM_GPU_ALLOCATION: Final = "team:gpuledger_gpu_allocation:sum"
REC_POD_GPU_SHARE: Final = "namespace_pod:gpuledger_gpu_share:sum"
REC_NODE_GPU_PRICE: Final = "node:gpuledger_gpu_price_usd_per_hour:max"
REC_POD_GPU_COST: Final = "namespace_pod:gpuledger_gpu_cost_usd_per_hour:sum"
REC_TEAM_GPU_COST: Final = "team:gpuledger_gpu_cost_usd_per_hour:sum"
REC_TEAM_BUDGET_PACE: Final = "team:gpuledger_budget_usd_per_hour:pace"
ALERT_LOW_GPU_UTILIZATION: Final = "GpuledgerLowGPUUtilization"
ALERT_TEAM_OVER_BUDGET_PACE: Final = "GpuledgerTeamOverBudgetPace"
ALERT_HIGH_TRAINING_COST: Final = "GpuledgerHighTrainingCost"
ALERT_POOR_INFERENCE_EFFICIENCY: Final = "GpuledgerPoorInferenceCostEfficiency"
ALERT_IDLE_GPU_CAPACITY: Final = "GpuledgerIdleGPUCapacity"
ALERT_IDLE_GPU_POWER_BURN: Final = "GpuledgerIdleGPUPowerBurn"
ALERT_GPU_POD_PENDING: Final = "GpuledgerGPUPodPendingTooLong"
ALERT_QUEUE_WAIT_HIGH: Final = "GpuledgerQueueWaitHigh"
ALERT_GPUS_FRAGMENTED: Final = "GpuledgerGPUsFreeWhilePodsPend"
ALERT_GPU_POD_WITHOUT_COST_CENTER: Final = "GpuledgerGPUPodWithoutCostCenter"
ALERT_GPU_NOT_REPORTING: Final = "GpuledgerGPUStoppedReporting"
REC_SLO_ERROR_RATIO: Final = "slo:gpuledger_sli_error:ratio_rate"  # + window, e.g. ratio_rate5m
REC_SLO_OBJECTIVE: Final = "slo:gpuledger_objective:ratio"
REC_SLO_BUDGET_REMAINING: Final = "slo:gpuledger_period_error_budget_remaining:ratio"
L_SLO_SERVICE: Final = "gpuledger_service"
L_SLO_NAME: Final = "gpuledger_slo"
ALERT_SLO_BURN: Final = "GpuledgerSLOErrorBudgetBurn"
ALERT_NEW_DBE: Final = "GpuledgerGPUDoubleBitECCError"
ALERT_ROW_REMAP_FAILURE: Final = "GpuledgerGPURowRemapFailure"
ALERT_ROW_REMAP_PENDING: Final = "GpuledgerGPURowRemapPending"
ALERT_RETIRED_PAGES: Final = "GpuledgerGPURetiredPagesLimit"
ALERT_THERMAL_THROTTLING: Final = "GpuledgerGPUThermalThrottling"
ALERT_PCIE_REPLAYS: Final = "GpuledgerGPUPCIeReplays"
ALERT_GPU_TEMPERATURE: Final = "GpuledgerGPUHot"
ALERT_XID_HARDWARE: Final = "GpuledgerGPUXidHardware"
ALERT_XID_WATCH: Final = "GpuledgerGPUXidWatch"
ALERT_XID_APPLICATION: Final = "GpuledgerGPUXidApplication"
ALERT_LATENCY_REGRESSION: Final = "GpuledgerServingLatencyRegression"
ALERT_ERROR_SPIKE: Final = "GpuledgerServingErrorSpike"
ALERT_DISTRIBUTION_DRIFT: Final = "GpuledgerServingDistributionDrift"
ALERT_ACCURACY_DRIFT: Final = "GpuledgerModelAccuracyDrift"
# Gauges `gpuledger report drift --textfile` writes (node-exporter textfile collector / Pushgateway):
# the drift report's own numbers, so the alert and the report share one definition.
METRIC_DRIFT_PSI: Final = "gpuledger_serving_drift_psi"  # {model, feature}
METRIC_DRIFT_DETECTED: Final = "gpuledger_serving_drift_detected"  # {model, feature, kind, method} 1 | 0
METRIC_ACCURACY_DEGRADED: Final = "gpuledger_serving_accuracy_degraded"  # {model} 1 | 0 (the verdict)
METRIC_ACCURACY_DEGRADATION: Final = "gpuledger_serving_accuracy_degradation"  # {model} relative drop
METRIC_DRIFT_WINDOW_END: Final = "gpuledger_serving_drift_window_end_seconds"  # {model} current window end
L_DRIFT_MODEL: Final = "model"
L_DRIFT_FEATURE: Final = "feature"
ALERT_GPU_POD_WITHOUT_TEAM: Final = "GpuledgerGPUPodWithoutTeam"
RUNBOOK_BASE_URL: Final = "https://github.com/gpuledger/gpuledger/blob/main/README.md"

# --------------------------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------------------------
EXPORT_CHARGEBACK_BASENAME: Final = "chargeback"
EXPORT_MANIFEST: Final = "manifest.json"
EXPORT_WAITING: Final = "waiting.json"  # due weeks whose data is not complete yet, and why (serve)
EXPORT_FORMAT_VERSION: Final = 1

# --------------------------------------------------------------------------------------------
# Fleet health
# --------------------------------------------------------------------------------------------
# Derived health tables (written by `gpuledger health evaluate`, read by reports and the dashboard).
T_HEALTH_EVENTS: Final = "gpu_health_events"  # one row per Xid event (a change of the last-Xid gauge)
T_HEALTH_PERIODS: Final = "gpu_health_periods"  # one row per GPU and period spent in one health state

# DCGM health fields (exporter names; DCGM_HEALTH_METRICS above lists every one gpuledger stores).
DCGM_ECC_SBE_VOL: Final = "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"  # volatile: resets on driver reload / GPU reset
DCGM_ECC_DBE_VOL: Final = "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"
DCGM_ECC_SBE_AGG: Final = "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL"  # aggregate: persistent in the InfoROM
DCGM_ECC_DBE_AGG: Final = "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL"
DCGM_RETIRED_SBE: Final = "DCGM_FI_DEV_RETIRED_SBE"  # retired pages (pre-Ampere page retirement)
DCGM_RETIRED_DBE: Final = "DCGM_FI_DEV_RETIRED_DBE"
DCGM_RETIRED_PENDING: Final = "DCGM_FI_DEV_RETIRED_PENDING"
DCGM_ROW_REMAP_FAILURE: Final = "DCGM_FI_DEV_ROW_REMAP_FAILURE"  # Ampere+ row remapping
DCGM_ROW_REMAP_PENDING: Final = "DCGM_FI_DEV_ROW_REMAP_PENDING"
DCGM_UNCORRECTABLE_REMAPPED_ROWS: Final = "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"
DCGM_CORRECTABLE_REMAPPED_ROWS: Final = "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"
DCGM_PCIE_REPLAY: Final = "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"
DCGM_THERMAL_VIOLATION: Final = "DCGM_FI_DEV_THERMAL_VIOLATION"  # cumulative ns of thermal throttling
L_ERR_MSG: Final = "err_msg"

# Health states, least to most severe. A GPU is in the most severe state any of its findings asks
# for; a node is in the most severe state of its GPUs.
STATE_HEALTHY: Final = "healthy"
STATE_WATCH: Final = "watch"
STATE_DRAIN: Final = "drain_recommended"
STATE_OFFLINE: Final = "offline"
STATE_RMA: Final = "rma_recommended"
HEALTH_STATES: Final = (STATE_HEALTHY, STATE_WATCH, STATE_DRAIN, STATE_OFFLINE, STATE_RMA)
# States in which a GPU is out of service (its GPU-hours count as lost).
UNHEALTHY_STATES: Final = (STATE_DRAIN, STATE_OFFLINE, STATE_RMA)

# Health signals: the findings that move a GPU between states (evidence rows name them).
SIG_XID: Final = "xid"
SIG_ECC_DBE: Final = "ecc_dbe_volatile"
SIG_ROW_REMAP_FAILURE: Final = "row_remap_failure"
SIG_ROW_REMAP_PENDING: Final = "row_remap_pending"
SIG_UNCORRECTABLE_REMAP: Final = "uncorrectable_remapped_rows"
SIG_RETIRED_PAGES: Final = "retired_pages_limit"
SIG_RETIRED_DBE: Final = "retired_dbe_rate"
SIG_RETIRED_PENDING: Final = "retired_pages_pending"
SIG_PCIE_REPLAY: Final = "pcie_replay_rate"
SIG_THERMAL_VIOLATION: Final = "thermal_violation"
SIG_TEMPERATURE: Final = "temperature"
SIG_OFFLINE: Final = "stopped_reporting"
SIG_PROBATION: Final = "probation"
SIG_RECURRENCE: Final = "recurring_failure"  # hardware failures again within the lookbehind

# --------------------------------------------------------------------------------------------
# Model serving
# --------------------------------------------------------------------------------------------
# Model-serving inputs, exactly as the servers export them. Each family maps onto a canonical
# *signal*; analytics pick, per model, the first family of a signal that has data, so a server that
# exports a metric under both its old and new name (vLLM's deprecation releases) is never counted twice.
SIG_E2E: Final = "e2e_latency"  # seconds, request end to end
SIG_TTFT: Final = "ttft"  # seconds to the first token (Triton: first response)
SIG_ITL: Final = "itl"  # seconds between output tokens
SIG_PROMPT_LEN: Final = "prompt_tokens"  # tokens per request (histogram)
SIG_GEN_LEN: Final = "generation_tokens"  # tokens per request (histogram)
SIG_PREFILL: Final = "prefill_time"  # seconds per request in prefill (splits GPU cost input/output)
SIG_DECODE: Final = "decode_time"  # seconds per request in decode

# Histogram family (without _bucket/_count/_sum) -> (signal, factor from the exported unit to seconds
# or tokens). Order = preference within a signal. `le` is stored as exported and read per scrape.
SERVING_HISTOGRAMS: Final = {
    "vllm:e2e_request_latency_seconds": (SIG_E2E, 1.0),
    "tgi_request_duration": (SIG_E2E, 1.0),
    "request_predict_seconds": (SIG_E2E, 1.0),  # KServe Python model server
    "request_predict_processing_seconds": (SIG_E2E, 1.0),  # KServe, older name
    "revision_app_request_latencies": (SIG_E2E, 1e-3),  # Knative queue-proxy, milliseconds
    "revision_request_latencies": (SIG_E2E, 1e-3),  # Knative activator path, milliseconds
    "vllm:time_to_first_token_seconds": (SIG_TTFT, 1.0),
    "nv_inference_first_response_histogram_ms": (SIG_TTFT, 1e-3),  # Triton, opt-in, milliseconds
    "vllm:inter_token_latency_seconds": (SIG_ITL, 1.0),
    "vllm:time_per_output_token_seconds": (SIG_ITL, 1.0),  # vLLM before 0.11
    "vllm:request_prompt_tokens": (SIG_PROMPT_LEN, 1.0),
    "tgi_request_input_length": (SIG_PROMPT_LEN, 1.0),
    "vllm:request_generation_tokens": (SIG_GEN_LEN, 1.0),
    "tgi_request_generated_tokens": (SIG_GEN_LEN, 1.0),
    "vllm:request_prefill_time_seconds": (SIG_PREFILL, 1.0),
    "vllm:request_decode_time_seconds": (SIG_DECODE, 1.0),
}

# Counters, by sample name as scraped (prometheus_client adds `_total`; Triton's prometheus-cpp and
# TGI's metrics-exporter do not, and some relabelling pipelines add it: both spellings are read).
CNT_REQUESTS_OK: Final = "requests_ok"
CNT_REQUESTS_FAILED: Final = "requests_failed"
CNT_REQUESTS_ALL: Final = "requests_all"
CNT_HTTP: Final = "http_requests"  # HTTP layer: status / code / response_code_class label
CNT_PROMPT_TOKENS: Final = "prompt_tokens_total"
CNT_GEN_TOKENS: Final = "generation_tokens_total"
CNT_QUALITY_EVALS: Final = "quality_evaluations"
CNT_FINISHED: Final = "finished_by_reason"
SERVING_COUNTERS: Final = {
    "vllm:request_success_total": CNT_FINISHED,  # finished_reason = stop | length | abort
    "vllm:prompt_tokens_total": CNT_PROMPT_TOKENS,
    "vllm:generation_tokens_total": CNT_GEN_TOKENS,
    "nv_inference_request_success": CNT_REQUESTS_OK,
    "nv_inference_request_success_total": CNT_REQUESTS_OK,
    "nv_inference_request_failure": CNT_REQUESTS_FAILED,  # reason = REJECTED | CANCELED | BACKEND | OTHER
    "nv_inference_request_failure_total": CNT_REQUESTS_FAILED,
    "nv_inference_count": "inferences",
    "nv_inference_count_total": "inferences",
    "nv_inference_request_duration_us": "request_duration_us",  # cumulative microseconds
    "nv_inference_request_duration_us_total": "request_duration_us",
    "nv_inference_queue_duration_us": "queue_duration_us",
    "nv_inference_queue_duration_us_total": "queue_duration_us",
    "tgi_request_success": CNT_REQUESTS_OK,
    "tgi_request_success_total": CNT_REQUESTS_OK,
    "tgi_request_failure": CNT_REQUESTS_FAILED,
    "tgi_request_failure_total": CNT_REQUESTS_FAILED,
    "tgi_request_count": CNT_REQUESTS_ALL,
    "tgi_request_count_total": CNT_REQUESTS_ALL,
    "revision_request_count": CNT_HTTP,  # Knative: response_code_class = 2xx | 5xx ...
    "revision_request_count_total": CNT_HTTP,
    "http_requests_total": CNT_HTTP,  # prometheus_fastapi_instrumentator (vLLM): status = 2xx | 4xx | 5xx
    "model_accuracy_evaluations_total": CNT_QUALITY_EVALS,
}
# What each measurement is read from, in preference order (the first the service exports wins).
VLLM_FINISHED: Final = "vllm:request_success_total"
QUALITY_EVALUATIONS: Final = "model_accuracy_evaluations_total"
REQUEST_COUNTERS: Final = (  # requests served (summed within a group)
    ("vllm:request_success_total",),
    ("nv_inference_request_success", "nv_inference_request_failure"),
    ("nv_inference_request_success_total", "nv_inference_request_failure_total"),
    ("tgi_request_count",),
    ("tgi_request_count_total",),
    ("request_predict_seconds_count",),
    ("revision_request_count",),
)
PROMPT_TOKEN_COUNTERS: Final = ("vllm:prompt_tokens_total", "tgi_request_input_length_sum")
GENERATION_TOKEN_COUNTERS: Final = ("vllm:generation_tokens_total", "tgi_request_generated_tokens_sum")
PREFILL_DECODE_SUMS: Final = ("vllm:request_prefill_time_seconds_sum", "vllm:request_decode_time_seconds_sum")
# Error SLI sources: (bad family, total family; "+" = bad + this, status regex on the HTTP status label).
SERVER_ERROR_SOURCES: Final = (
    ("nv_inference_request_failure", "+nv_inference_request_success", None),
    ("nv_inference_request_failure_total", "+nv_inference_request_success_total", None),
    ("tgi_request_failure", "tgi_request_count", None),
    ("tgi_request_failure_total", "tgi_request_count_total", None),
)
HTTP_ERROR_SOURCES: Final = (
    ("http_requests_total", "http_requests_total", "5.."),
    ("revision_request_count", "revision_request_count", "5.."),
    ("revision_request_count_total", "revision_request_count_total", "5.."),
)
# Gauges: the quality a team's evaluator exports (labelled predictions scored so far, 0..1).
QUALITY_GAUGE: Final = "model_accuracy_ratio"
SERVING_GAUGES: Final = (QUALITY_GAUGE,)
# Every serving sample name the collectors keep (histograms as their three series).
SERVING_SAMPLE_NAMES: Final = (
    tuple(f"{h}{suffix}" for h in SERVING_HISTOGRAMS for suffix in ("_bucket", "_count", "_sum"))
    + tuple(SERVING_COUNTERS)
    + SERVING_GAUGES
)
# Labels naming the model and its version, in preference order.
L_MODEL_LABELS: Final = ("model_name", "model", "service_name")
L_VERSION_LABELS: Final = ("model_version", "version", "revision_name")
L_FINISHED_REASON: Final = "finished_reason"
# HTTP status labels; a value starting with "5" is a server error (5xx, 500, 503 ...).
L_HTTP_STATUS_LABELS: Final = ("status", "code", "response_code_class", "response_code")
# A Prometheus-path pseudo family holding `timestamp(<family>)`: the raw sample time of each grid point.
SAMPLE_TIME_SUFFIX: Final = "@timestamp"

# Standard multiwindow burn-rate pairs (long, short, % of the period's budget they may spend, severity):
# the SRE Workbook / Sloth catalog. Factor = budget% / 100 x period / long window (14.4, 6, 3, 1 at 30d).
BURN_RATE_WINDOWS: Final = (
    ("1h", "5m", 2.0, "page"),
    ("6h", "30m", 5.0, "page"),
    ("1d", "2h", 10.0, "ticket"),
    ("3d", "6h", 10.0, "ticket"),
)
# Sloth's catalog of SLO periods (AlertWindows): 30d and 28d spend the Workbook's shares above; a 7-day period
# spends larger shares (Sloth's 7d catalog: 8, 12.5, 20, 42%), else a week's page would need 3.36x, not 13.44x.
# Any other period keeps the Workbook's shares, its factors scaled by period / long window.
BURN_RATE_BUDGETS_BY_PERIOD: Final = {7 * 86400: (8.0, 12.5, 20.0, 42.0)}
LONGEST_BURN_WINDOW_S: Final = 3 * 86400


def burn_rate_windows(period_s: int) -> tuple[tuple[str, str, float, str], ...]:
    """(long, short, % of the period's budget, severity) of an SLO period of `period_s` seconds."""
    shares = BURN_RATE_BUDGETS_BY_PERIOD.get(period_s)
    if shares is None:
        return BURN_RATE_WINDOWS
    return tuple(
        (long, short, pct, kind) for (long, short, _, kind), pct in zip(BURN_RATE_WINDOWS, shares, strict=True)
    )


def slo_period_problem(period_s: int) -> str | None:
    """Why an SLO period cannot be used (None when it can): it must outlast every burn window, or its own
    recording would be one of theirs and its budget spent before a ticket could fire."""
    if period_s <= LONGEST_BURN_WINDOW_S:
        return "an SLO period must be longer than the longest burn-rate window (3d)"
    return None


# Seed policy (the FinOps/SRE brief): rollback triggers, relative to the stable version.

# --------------------------------------------------------------------------------------------
# Service (`gpuledger serve`)
# --------------------------------------------------------------------------------------------
# `gpuledger serve`'s own metrics (prometheus_client; counters get `_total` when exposed).
M_COLLECTION_LAST_SUCCESS: Final = "gpuledger_collection_last_success_timestamp_seconds"  # {source}
M_COLLECTION_WATERMARK: Final = "gpuledger_collection_watermark_timestamp_seconds"  # {source}: data complete up to
M_SAMPLES_INGESTED: Final = "gpuledger_samples_ingested"  # {source}, counter
M_ROWS_COMMITTED: Final = "gpuledger_rows_committed"  # {source}, counter
M_ERRORS: Final = "gpuledger_errors"  # {job, kind}: kind = transient | terminal | bug, counter
M_JOB_DURATION: Final = "gpuledger_job_duration_seconds"  # {job}, histogram
M_JOB_LAST_SUCCESS: Final = "gpuledger_job_last_success_timestamp_seconds"  # {job}
M_EXPORT_LAST_SUCCESS: Final = "gpuledger_export_last_success_timestamp_seconds"
M_EXPORT_LATEST_WEEK_END: Final = (
    "gpuledger_export_latest_week_end_timestamp_seconds"  # end of the newest exported week
)
M_EXPORT_PENDING: Final = "gpuledger_export_pending_weeks"  # weeks due but not exported (waiting for data or failing)
M_START_TIME: Final = "gpuledger_service_start_time_seconds"
ERROR_KINDS: Final = ("transient", "terminal", "bug")
# Scheduled jobs (the `job` label).
JOB_COLLECT: Final = "collect"
JOB_HEALTH: Final = "health"
JOB_RULES: Final = "rules"
JOB_EXPORT: Final = "export"
JOB_PRICES: Final = "prices"
# Alerts on gpuledger itself (rules/gpuledger-service.yaml).
ALERT_COLLECTION_STALE: Final = "GpuledgerCollectionStale"
ALERT_EXPORT_MISSED: Final = "GpuledgerWeeklyExportMissed"
ALERT_JOB_FAILING: Final = "GpuledgerJobFailing"
ALERT_SERVICE_DOWN: Final = "GpuledgerServiceDown"
# Weekly export schedule: the previous ISO week, Mondays at this UTC hour.
EXPORT_WEEKDAY: Final = "mon"
EXPORT_HOUR_UTC: Final = 1
LOCK_SUFFIX: Final = ".lock"  # <warehouse>.lock: held by the one `gpuledger serve` writing it

# --------------------------------------------------------------------------------------------
# Valid sample values
# --------------------------------------------------------------------------------------------
# What a sample of each family can be. A value outside its range, or not finite, is dropped at
# staging and counted (the run summary, `ingest_runs.invalid_values`, Data status): one -Inf
# activity once made every report fail, and one activity of 1e12 an efficiency of 67 billion.
# Bounds are generous: a real exporter never reaches them.
# DCGM "blank" sentinels (dcgm_structs.h): values meaning "not supported / no data" (INT64 blanks from
# 0x7ffffffffffffff0, FP64 blanks from 2^47). Current exporters skip them; older ones printed them. A
# DCGM family's blank is dropped without being counted; anywhere else such a value is simply invalid.
DCGM_PREFIX: Final = "DCGM_FI_"
DCGM_INT64_BLANK: Final = (9.223372036854775e18, 9.223372036854776e18)
DCGM_FP64_BLANK: Final = (140737488355328.0, 140737488355343.0)
VALID_DEFAULT: Final = (0.0, 1e18)  # counters, histograms, serving gauges: finite and non-negative
MAX_GPU_REQUEST: Final = 1e7
# No GPU rents for more per hour (an H100 lists at about $12, a B200 at about $14): a higher price is a
# typo or a unit error, refused unless `pricing import --force` says it is real.
MAX_PLAUSIBLE_GPU_HOUR_USD: Final = 1000  # GPUs, MIG slices, replicas, HAMi MiB (nvidia.com/gpumem) or core %
VALID_RANGES: Final[dict[str, tuple[float, float]]] = {
    DCGM_GR_ENGINE_ACTIVE: (0.0, 1.0),  # a ratio
    DCGM_GPU_UTIL: (0.0, 100.0),  # percent
    DCGM_FB_USED: (0.0, 16_777_216.0),  # MiB: 16 TiB
    DCGM_POWER: (0.0, 20_000.0),  # W: a GB200 superchip draws 2,700
    DCGM_GPU_TEMP: (-60.0, 200.0),  # °C
    KSM_POD_REQUESTS: (0.0, MAX_GPU_REQUEST),
    REC_POD_ALLOCATION_RUNNING: (0.0, MAX_GPU_REQUEST),
    KSM_POD_PHASE: (0.0, 1.0),  # info-style series: 0 or 1
    KSM_POD_LABELS: (0.0, 1.0),
    KSM_POD_INFO: (0.0, 1.0),
    KSM_NODE_LABELS: (0.0, 1.0),
    KSM_NODE_CAPACITY: (0.0, MAX_GPU_REQUEST),  # GPU resources only (MIG slices, replicas)
    KSM_NODE_ALLOCATABLE: (0.0, MAX_GPU_REQUEST),
    KSM_NAMESPACE_LABELS: (0.0, 1.0),
    KSM_POD_CREATED: (0.0, 1e11),  # Unix seconds
    KSM_POD_SCHEDULED: (0.0, 1e11),
    KSM_POD_UNSCHEDULABLE: (0.0, 1.0),
    REC_POD_PENDING: (0.0, MAX_GPU_REQUEST),
    QUALITY_GAUGE: (0.0, 1.0),
}
