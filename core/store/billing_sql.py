"""How a bill's resource IDs meet the cluster's nodes: one key for both, in SQL.

A node says which instance it runs on in kube_node_info's provider_id; a bill names the resource it
charges in FOCUS `ResourceId` or CUR `line_item_resource_id`. The spellings differ, so both sides are
reduced to one key:

| provider | node provider_id | bill ResourceId | key |
|---|---|---|---|
| AWS | `aws:///us-east-1a/i-0abc…` | `i-0abc…` (CUR), `arn:aws:ec2:…:instance/i-0abc…` (FOCUS) | `aws:i-0abc…` |
| GCP | `gce://project/zone/name` | `//compute.googleapis.com/projects/project/zones/zone/instances/name` | `gcp:project/zone/name` |
| Azure | `azure:///subscriptions/…/virtualMachines/name` | `/subscriptions/…/virtualMachines/name` | `azure:/subscriptions/…` (lower case) |
| Azure (AKS: scale sets) | `azure:///subscriptions/…/virtualMachineScaleSets/pool/virtualMachines/3` | `/subscriptions/…/virtualMachineScaleSets/pool` | the scale set's path: its lines are shared by its nodes |
| OCI | `ocid1.instance.oc1…` | `ocid1.instance.oc1…` | the OCID |
"""

from __future__ import annotations


def resource_key_sql(expr: str) -> str:
    """The matching key of a provider ID or bill resource ID (NULL for none)."""
    r = f"nullif(trim({expr}), '')"
    azure = f"lower(regexp_replace({r}, '^azure://', ''))"
    return f"""CASE
        WHEN regexp_matches({r}, '(^|[/:])i-[0-9a-f]{{8,17}}$') THEN 'aws:' || regexp_extract({r}, '(i-[0-9a-f]{{8,17}})$', 1)
        WHEN {r} LIKE 'gce://%' THEN 'gcp:' || regexp_replace({r}, '^gce://', '')
        WHEN {r} LIKE '//compute.googleapis.com/projects/%/instances/%' THEN 'gcp:' || regexp_replace({r},
            '^//compute\\.googleapis\\.com/projects/([^/]+)/zones/([^/]+)/instances/([^/]+).*$', '\\1/\\2/\\3')
        WHEN lower({r}) LIKE 'azure:///subscriptions/%' OR lower({r}) LIKE '/subscriptions/%' THEN 'azure:'
            || regexp_replace({azure}, '(/virtualmachinescalesets/[^/]+)/virtualmachines/[^/]+$', '\\1')
        ELSE {r} END"""
