"""Which GPUs each cloud instance type carries: static tables, because the price feeds do not say.

AWS offer files give a GPU count (`gpu`) but not reliably the model (`gpuMemory` is "NA" on p3), spot
feeds give neither; Azure Retail Prices rows carry only the VM size; GCP bills machines as cores + RAM
+ GPUs, so a machine's price needs its shape. Sources: the providers' instance-type pages (AWS
"Accelerated computing", Azure "GPU optimized VM sizes", GCP "GPU machine types"), as of 2026-01.
"""

from __future__ import annotations

from dataclasses import dataclass


def _sizes(family: str, model: str, counts: dict[str, int]) -> dict[str, tuple[int, str]]:
    return {f"{family}.{size}": (n, model) for size, n in counts.items()}


_ONE = {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1}

# AWS instance type -> (GPUs, model)
AWS: dict[str, tuple[int, str]] = {
    "p6-b200.48xlarge": (8, "B200"),
    "p5.48xlarge": (8, "H100 80GB"),
    "p5.4xlarge": (1, "H100 80GB"),
    "p5e.48xlarge": (8, "H200 141GB"),
    "p5en.48xlarge": (8, "H200 141GB"),
    "p4d.24xlarge": (8, "A100 40GB"),
    "p4de.24xlarge": (8, "A100 80GB"),
    "p3dn.24xlarge": (8, "V100 32GB"),
    **_sizes("p3", "V100 16GB", {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8}),
    **_sizes("g5", "A10G", {**_ONE, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    **_sizes("g6", "L4", {**_ONE, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    **_sizes("g6e", "L40S", {**_ONE, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    **_sizes("g4dn", "T4", {**_ONE, "12xlarge": 4, "metal": 8}),
}

# Azure VM size (armSkuName) -> (GPUs, model). Fractional-GPU sizes (NVadsA10 v5 below 36) are left out.
AZURE: dict[str, tuple[int, str]] = {
    "Standard_NC4as_T4_v3": (1, "T4"),
    "Standard_NC8as_T4_v3": (1, "T4"),
    "Standard_NC16as_T4_v3": (1, "T4"),
    "Standard_NC64as_T4_v3": (4, "T4"),
    "Standard_NC6s_v3": (1, "V100 16GB"),
    "Standard_NC12s_v3": (2, "V100 16GB"),
    "Standard_NC24s_v3": (4, "V100 16GB"),
    "Standard_NC24rs_v3": (4, "V100 16GB"),
    "Standard_NC24ads_A100_v4": (1, "A100 80GB"),
    "Standard_NC48ads_A100_v4": (2, "A100 80GB"),
    "Standard_NC96ads_A100_v4": (4, "A100 80GB"),
    "Standard_ND96asr_v4": (8, "A100 40GB"),
    "Standard_ND96amsr_A100_v4": (8, "A100 80GB"),
    "Standard_NC40ads_H100_v5": (1, "H100 NVL"),
    "Standard_NC80adis_H100_v5": (2, "H100 NVL"),
    "Standard_ND96isr_H100_v5": (8, "H100 80GB"),
    "Standard_ND96isr_H200_v5": (8, "H200 141GB"),
    "Standard_NV36ads_A10_v5": (1, "A10"),
    "Standard_NV72ads_A10_v5": (2, "A10"),
}


@dataclass(frozen=True)
class GcpMachine:
    family: str  # the core/RAM SKU family in the Billing Catalog ("A2 Instance Core ...")
    vcpus: int
    memory_gib: int
    gpus: int
    gpu: str  # GPU SKU key (see pricing_gcp.GPU_SKUS)


def _gcp(family: str, gpu: str, shapes: dict[str, tuple[int, int, int]]) -> dict[str, GcpMachine]:
    return {name: GcpMachine(family, v, m, g, gpu) for name, (v, m, g) in shapes.items()}


# GCP machine type -> shape. a2-highgpu-1g = 12 vCPU + 85 GiB + 1 A100 40GB.
GCP: dict[str, GcpMachine] = {
    **_gcp(
        "A2",
        "A100 40GB",
        {
            "a2-highgpu-1g": (12, 85, 1),
            "a2-highgpu-2g": (24, 170, 2),
            "a2-highgpu-4g": (48, 340, 4),
            "a2-highgpu-8g": (96, 680, 8),
            "a2-megagpu-16g": (96, 1360, 16),
        },
    ),
    **_gcp(
        "A2",
        "A100 80GB",
        {
            "a2-ultragpu-1g": (12, 170, 1),
            "a2-ultragpu-2g": (24, 340, 2),
            "a2-ultragpu-4g": (48, 680, 4),
            "a2-ultragpu-8g": (96, 1360, 8),
        },
    ),
    **_gcp(
        "A3",
        "H100 80GB",
        {
            "a3-highgpu-1g": (26, 234, 1),
            "a3-highgpu-2g": (52, 468, 2),
            "a3-highgpu-4g": (104, 936, 4),
            "a3-highgpu-8g": (208, 1872, 8),
        },
    ),
    **_gcp("A3", "H100 80GB Mega", {"a3-megagpu-8g": (208, 1872, 8)}),
    **_gcp(
        "G2",
        "L4",
        {
            "g2-standard-4": (4, 16, 1),
            "g2-standard-8": (8, 32, 1),
            "g2-standard-12": (12, 48, 1),
            "g2-standard-16": (16, 64, 1),
            "g2-standard-24": (24, 96, 2),
            "g2-standard-32": (32, 128, 1),
            "g2-standard-48": (48, 192, 4),
            "g2-standard-96": (96, 384, 8),
        },
    ),
}
