"""The warehouse schema, as an ordered list of migrations.

Migration N takes a version N-1 warehouse to version N. A new warehouse runs them all. Never edit
a released migration: append a new one, so every older file upgrades along the same path.

Time conventions for every fact table: `ts` is naive UTC and a row covers [ts, ts + step_s). A state
gauge's row (pod_allocations, node_samples) holds what kube-state-metrics stated at ts; every other
row what the source reported at the end of the step (the last sample within the lookback), exactly
what Prometheus' query_range returns at ts + step_s (collectors/metrics/grid_stage.py).
"""

from __future__ import annotations

from core import conventions as c

_FACT_KEY = "ts TIMESTAMP NOT NULL, step_s INTEGER NOT NULL, cluster VARCHAR NOT NULL"

MIGRATION_1 = [
    f"""CREATE TABLE {c.T_NODES} (
        cluster VARCHAR NOT NULL, node VARCHAR NOT NULL,
        instance_type VARCHAR, capacity_type VARCHAR, region VARCHAR, zone VARCHAR, node_pool VARCHAR,
        gpu_model VARCHAR, gpu_count INTEGER, gpu_replicas INTEGER, labels JSON,
        first_seen TIMESTAMP, last_seen TIMESTAMP,
        PRIMARY KEY (cluster, node))""",
    f"""CREATE TABLE {c.T_GPUS} (
        cluster VARCHAR NOT NULL, node VARCHAR NOT NULL, gpu_uuid VARCHAR NOT NULL,
        gpu_instance VARCHAR NOT NULL, gpu_index INTEGER, model VARCHAR, mig_profile VARCHAR,
        first_seen TIMESTAMP, last_seen TIMESTAMP,
        PRIMARY KEY (cluster, node, gpu_uuid, gpu_instance))""",
    f"""CREATE TABLE {c.T_PODS} (
        cluster VARCHAR NOT NULL, namespace VARCHAR NOT NULL, pod VARCHAR NOT NULL, uid VARCHAR NOT NULL,
        node VARCHAR, labels JSON, first_seen TIMESTAMP, last_seen TIMESTAMP,
        PRIMARY KEY (cluster, namespace, pod, uid))""",
    f"""CREATE TABLE {c.T_NODE_SAMPLES} ({_FACT_KEY}, node VARCHAR NOT NULL, gpu_capacity INTEGER)""",
    f"""CREATE TABLE {c.T_GPU_SAMPLES} ({_FACT_KEY}, node VARCHAR NOT NULL, gpu_uuid VARCHAR NOT NULL,
        gpu_instance VARCHAR NOT NULL, gr_engine_active FLOAT, gpu_util FLOAT, fb_used_mib FLOAT,
        power_w FLOAT, temp_c FLOAT)""",
    f"""CREATE TABLE {c.T_GPU_POD_SAMPLES} ({_FACT_KEY}, node VARCHAR NOT NULL, gpu_uuid VARCHAR NOT NULL,
        gpu_instance VARCHAR NOT NULL, vgpu VARCHAR NOT NULL, namespace VARCHAR NOT NULL, pod VARCHAR NOT NULL,
        gpu_util FLOAT)""",
    f"""CREATE TABLE {c.T_POD_ALLOCATIONS} ({_FACT_KEY}, namespace VARCHAR NOT NULL, pod VARCHAR NOT NULL,
        uid VARCHAR NOT NULL, node VARCHAR NOT NULL, resource VARCHAR NOT NULL, amount DOUBLE NOT NULL)""",
    f"""CREATE TABLE {c.T_HEALTH_SAMPLES} ({_FACT_KEY}, node VARCHAR NOT NULL, gpu_uuid VARCHAR NOT NULL,
        gpu_instance VARCHAR NOT NULL, metric VARCHAR NOT NULL, value DOUBLE)""",
    f"""CREATE TABLE {c.T_INFERENCE_SAMPLES} ({_FACT_KEY}, namespace VARCHAR NOT NULL, pod VARCHAR NOT NULL,
        model VARCHAR NOT NULL, metric VARCHAR NOT NULL, le DOUBLE, labels JSON, value DOUBLE)""",
    f"""CREATE TABLE {c.T_PRICES} (
        provider VARCHAR NOT NULL, region VARCHAR NOT NULL, instance_type VARCHAR NOT NULL,
        capacity_type VARCHAR NOT NULL, gpu_model VARCHAR, gpus INTEGER NOT NULL,
        price_per_hour_usd DECIMAL(28, 10) NOT NULL, effective_from TIMESTAMP NOT NULL, source VARCHAR,
        PRIMARY KEY (provider, region, instance_type, capacity_type, effective_from))""",
    f"""CREATE TABLE {c.T_WATERMARKS} (
        source VARCHAR PRIMARY KEY, last_ts TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL)""",
]

# Version 2: namespace labels (attribution fallback) and a run log for the data-status page.
MIGRATION_2 = [
    f"""CREATE TABLE {c.T_NAMESPACES} (
        cluster VARCHAR NOT NULL, namespace VARCHAR NOT NULL, labels JSON,
        first_seen TIMESTAMP, last_seen TIMESTAMP, PRIMARY KEY (cluster, namespace))""",
    f"""CREATE TABLE {c.T_INGEST_RUNS} (
        run_id VARCHAR PRIMARY KEY, source VARCHAR NOT NULL, started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP, window_start TIMESTAMP, window_end TIMESTAMP, rows BIGINT,
        skipped_series BIGINT, status VARCHAR NOT NULL, message VARCHAR)""",
]

# Version 3 (issue 4, pricing): price rows gain a zone (spot prices are per availability zone), a
# reservation term, the GPUs' part of the node price, and provenance (provider SKU, fetched-at);
# discounts live in their own dated table; price_history adds each row's end. DuckDB cannot change a
# primary key in place, so the prices table is rebuilt; existing rows keep their values and bill all
# of the node price to its GPUs, as before.
MIGRATION_3 = [
    f"""CREATE TABLE {c.T_PRICES}_v3 (
        provider VARCHAR NOT NULL, region VARCHAR NOT NULL, zone VARCHAR NOT NULL DEFAULT '',
        instance_type VARCHAR NOT NULL, capacity_type VARCHAR NOT NULL, term VARCHAR NOT NULL DEFAULT '',
        gpu_model VARCHAR, gpus INTEGER NOT NULL, price_per_hour_usd DECIMAL(28, 10) NOT NULL,
        gpu_price_per_hour_usd DECIMAL(28, 10) NOT NULL, effective_from TIMESTAMP NOT NULL, source VARCHAR,
        sku VARCHAR, fetched_at TIMESTAMP,
        PRIMARY KEY (provider, region, zone, instance_type, capacity_type, effective_from))""",
    f"""INSERT INTO {c.T_PRICES}_v3 SELECT provider, region, '', instance_type, capacity_type, '', gpu_model, gpus,
        price_per_hour_usd, price_per_hour_usd, effective_from, source, NULL, NULL FROM {c.T_PRICES}""",
    f"DROP TABLE {c.T_PRICES}",
    f"ALTER TABLE {c.T_PRICES}_v3 RENAME TO {c.T_PRICES}",
    f"""CREATE TABLE {c.T_PRICE_DISCOUNTS} (
        name VARCHAR PRIMARY KEY, percent DECIMAL(9, 6) NOT NULL, provider VARCHAR NOT NULL,
        region VARCHAR NOT NULL, instance_types VARCHAR NOT NULL, capacity_type VARCHAR NOT NULL,
        effective_from TIMESTAMP NOT NULL, effective_to TIMESTAMP, source VARCHAR)""",
    f"""CREATE VIEW {c.V_PRICE_HISTORY} AS SELECT *, lead(effective_from) OVER (
        PARTITION BY provider, region, zone, instance_type, capacity_type ORDER BY effective_from) AS effective_to
        FROM {c.T_PRICES}""",
]

# Version 4 (issue 6): GPU health history. Periods tile each GPU's observed time in the evaluated
# windows (one state each, with the evidence of the transition into it); events are Xid changes.
MIGRATION_4 = [
    f"""CREATE TABLE {c.T_HEALTH_PERIODS} (
        cluster VARCHAR NOT NULL, node VARCHAR NOT NULL, gpu_uuid VARCHAR NOT NULL, model VARCHAR,
        node_pool VARCHAR, state VARCHAR NOT NULL, period_start TIMESTAMP NOT NULL, period_end TIMESTAMP NOT NULL,
        ongoing BOOLEAN NOT NULL, from_state VARCHAR, signal VARCHAR, metric VARCHAR, xid INTEGER, value DOUBLE,
        action VARCHAR, evidence JSON, catalog_version VARCHAR, evaluated_at TIMESTAMP NOT NULL,
        PRIMARY KEY (cluster, node, gpu_uuid, period_start))""",
    f"""CREATE TABLE {c.T_HEALTH_EVENTS} (
        cluster VARCHAR NOT NULL, node VARCHAR NOT NULL, gpu_uuid VARCHAR NOT NULL, ts TIMESTAMP NOT NULL,
        xid INTEGER NOT NULL, previous_xid INTEGER, mnemonic VARCHAR, cause VARCHAR, severity VARCHAR,
        action VARCHAR, device_plugin_ignores BOOLEAN, namespace VARCHAR, pod VARCHAR, team VARCHAR,
        catalog_version VARCHAR, evaluated_at TIMESTAMP NOT NULL,
        PRIMARY KEY (cluster, node, gpu_uuid, ts))""",
]

# Version 5 (issue 7: serving): each serving row also keeps the time of the scrape its value came
# from, so counter increases follow PromQL's increase() (extrapolation uses real sample times).
MIGRATION_5 = [f"ALTER TABLE {c.T_INFERENCE_SAMPLES} ADD COLUMN sample_ts TIMESTAMP"]

# Version 6 (issue 3, collectors): per-step change of health signals (counters: reset-aware increase; Xid: event flag).
MIGRATION_6 = [f"ALTER TABLE {c.T_HEALTH_SAMPLES} ADD COLUMN {c.COL_HEALTH_DELTA} DOUBLE"]

# Version 7 (issue 10, performance): hourly and daily rollups of the step tables, maintained by every
# collection commit (core/store/rollups/hourly.py), so a month's report reads pod-days instead of pod-steps. Units for
# both MIG share modes; `fp` is the node's dimension fingerprint they were computed under. An upgraded
# warehouse has empty rollups and no rollup_state: reports read the step tables until the next commit
# rebuilds them.
_ROLLUP_POD = "namespace VARCHAR, pod VARCHAR, uid VARCHAR"
_ROLLUP_UNITS = "units_compute BIGINT NOT NULL, units_memory BIGINT NOT NULL"
MIGRATION_7 = [
    statement
    for level, col in (("hourly", "hour"), ("daily", "day"))
    for statement in (
        f"""CREATE TABLE {c.T_ALLOC_ROLLUP}_{level} ({col} TIMESTAMP NOT NULL, cluster VARCHAR NOT NULL,
            node VARCHAR NOT NULL, {_ROLLUP_POD}, {_ROLLUP_UNITS}, fp UBIGINT)""",
        f"""CREATE TABLE {c.T_CAPACITY_ROLLUP}_{level} ({col} TIMESTAMP NOT NULL, cluster VARCHAR NOT NULL,
            node VARCHAR NOT NULL, {_ROLLUP_UNITS}, fp UBIGINT)""",
        f"""CREATE TABLE {c.T_USAGE_ROLLUP}_{level} ({col} TIMESTAMP NOT NULL, cluster VARCHAR NOT NULL,
            node VARCHAR NOT NULL, {_ROLLUP_POD}, used_s DOUBLE, fp UBIGINT)""",
    )
] + [f"CREATE TABLE {c.T_ROLLUP_STATE} (source VARCHAR PRIMARY KEY, source_rows BIGINT NOT NULL)"]

# Version 8 (issue 10): daily rollups by attribution class (core/store/rollups/classes.py), so a month's report by
# team reads one row per class and node group instead of one per pod. Empty until the next commit builds
# them; reports fall back to the pod-day rows meanwhile.
MIGRATION_8 = [
    f"""CREATE TABLE {c.T_CLASS_ALLOC} (day TIMESTAMP NOT NULL, cluster VARCHAR NOT NULL, class_node VARCHAR NOT NULL,
        namespace VARCHAR, labels VARCHAR, pod VARCHAR, units_compute HUGEINT NOT NULL, units_memory HUGEINT NOT NULL)""",
    f"""CREATE TABLE {c.T_CLASS_USAGE} (day TIMESTAMP NOT NULL, cluster VARCHAR NOT NULL, class_node VARCHAR NOT NULL,
        namespace VARCHAR, labels VARCHAR, pod VARCHAR, mapped BOOLEAN NOT NULL, used_s DOUBLE)""",
    f"""CREATE TABLE {c.T_CLASS_NODES} (cluster VARCHAR NOT NULL, node VARCHAR NOT NULL, class_node VARCHAR NOT NULL)""",
]

# Version 9 (issues 9, 10: the health page on a large fleet): per hour, which steps each GPU reported and
# each node was up (core/store/rollups/coverage.py), so the health report finds its GPUs and their silences
# without a DISTINCT over every sample of the month. gpu_uuid NULL: the node's row. Empty until the next
# commit builds it (rollup_state then gains its coverage: rows); health reads the step tables meanwhile.
# declared_steps (node rows): steps where kube-state-metrics gave the node's GPU capacity.
MIGRATION_9 = [
    f"""CREATE TABLE {c.T_COVERAGE_ROLLUP} (hour TIMESTAMP NOT NULL, cluster VARCHAR NOT NULL, node VARCHAR NOT NULL,
        gpu_uuid VARCHAR, steps BIGINT NOT NULL, first_ts TIMESTAMP NOT NULL, last_end TIMESTAMP NOT NULL,
        declared_steps BIGINT)"""
]

# Version 10 (issue 9: the health page at 10,000 GPUs): a node's hourly coverage row also says how many of its
# GPUs reported in the hour and the fewest steps any of them reported, so finding the hours where a GPU may
# have gone silent reads the node rows alone (a GROUP BY over every GPU row of a fortnight took 0.6 s).
# Filled from the GPU rows already there: no rebuild.
MIGRATION_10 = [
    f"ALTER TABLE {c.T_COVERAGE_ROLLUP} ADD COLUMN gpus BIGINT",
    f"ALTER TABLE {c.T_COVERAGE_ROLLUP} ADD COLUMN gpu_min_steps BIGINT",
    f"""UPDATE {c.T_COVERAGE_ROLLUP} AS u SET gpus = coalesce(g.gpus, 0), gpu_min_steps = g.gpu_min_steps
        FROM (SELECT n.hour, n.cluster, n.node, count(x.steps) AS gpus, min(x.steps) AS gpu_min_steps
              FROM {c.T_COVERAGE_ROLLUP} n LEFT JOIN {c.T_COVERAGE_ROLLUP} x ON x.hour = n.hour
                  AND x.cluster = n.cluster AND x.node = n.node AND x.gpu_uuid IS NOT NULL
              WHERE n.gpu_uuid IS NULL GROUP BY ALL) g
        WHERE u.gpu_uuid IS NULL AND u.hour = g.hour AND u.cluster = g.cluster AND u.node = g.node""",
]

# Version 11 (issue 30: hostile inputs): values a family cannot have (out of range, NaN, infinite) are dropped
# at staging; each run records how many, and the data-status page sums them.
MIGRATION_11 = [f"ALTER TABLE {c.T_INGEST_RUNS} ADD COLUMN invalid_values BIGINT DEFAULT 0"]

# Version 12 (issue 22: the ledger on clusters as they are configured): kube-state-metrics' GPU capacity per
# node and step (whole GPUs, time-slicing replicas, MIG compute slices) and per node (the latest, and the
# sharing strategy), so time-slicing replicas are known without the replicas label and a node's billed GPUs
# never drop when one falls silent; the capacity rollups gain the `unhealthy` GPU-unit-seconds (silent GPUs'
# idle time). The rule changed, so the rollups are rebuilt by the next commit (reports read the steps until then).
MIGRATION_12 = [
    *(
        f"ALTER TABLE {c.T_NODE_SAMPLES} ADD COLUMN {col} INTEGER"
        for col in ("ksm_gpus", "ksm_shared", "ksm_mig_slices")
    ),
    *(f"ALTER TABLE {c.T_NODES} ADD COLUMN {col} INTEGER" for col in ("ksm_gpus", "ksm_shared", "ksm_mig_slices")),
    f"ALTER TABLE {c.T_NODES} ADD COLUMN gpu_sharing VARCHAR",
    *(
        f"ALTER TABLE {c.T_CAPACITY_ROLLUP}_{level} ADD COLUMN {col} BIGINT DEFAULT 0"
        for level in ("hourly", "daily")
        for col in ("unhealthy_compute", "unhealthy_memory")
    ),
    f"DELETE FROM {c.T_ROLLUP_STATE} WHERE source NOT LIKE 'coverage:%'",  # coverage rows are unchanged
]

# Version 13 (issue 23: what you actually paid): the node's cloud instance ID (kube_node_info's provider_id)
# and the provider's bill, line by line with its provenance, so the ledger can be reconciled with the invoice.
MIGRATION_13 = [
    f"ALTER TABLE {c.T_NODES} ADD COLUMN provider_id VARCHAR",
    f"""CREATE TABLE {c.T_BILLING_LINES} (
        billing_period DATE NOT NULL, provider VARCHAR NOT NULL, format VARCHAR NOT NULL,
        billing_account_id VARCHAR NOT NULL, account_id VARCHAR, invoice_id VARCHAR, resource_id VARCHAR,
        resource_key VARCHAR,
        instance_type VARCHAR, region VARCHAR, charge_category VARCHAR NOT NULL, charge_class VARCHAR,
        pricing_category VARCHAR, charge_start TIMESTAMP NOT NULL, charge_end TIMESTAMP NOT NULL,
        quantity DECIMAL(38, 10), unit VARCHAR, billed_cost DECIMAL(38, 10) NOT NULL,
        effective_cost DECIMAL(38, 10) NOT NULL, list_cost DECIMAL(38, 10), currency VARCHAR NOT NULL,
        original_currency VARCHAR NOT NULL, fx_rate DECIMAL(38, 10) NOT NULL,
        source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL, imported_at TIMESTAMP NOT NULL)""",
]

# Version 14 (issue 25: energy measured at the GPU): usage rows carry each pod's energy (J) beside its used
# GPU-seconds, and the part of it derived from power where a GPU has no energy counter. The rule grew, so the
# rollups are rebuilt by the next commit (reports read the steps until then).
MIGRATION_14 = [
    *(
        f"ALTER TABLE {table} ADD COLUMN {col} DOUBLE"
        for table in (f"{c.T_USAGE_ROLLUP}_hourly", f"{c.T_USAGE_ROLLUP}_daily", c.T_CLASS_USAGE)
        for col in ("energy_j", "derived_j")
    ),
    f"DELETE FROM {c.T_ROLLUP_STATE} WHERE source NOT LIKE 'coverage:%'",
]

# Version 15 (issue 23: a month at billed cost in under a second at 10,000 GPUs): the class rows are kept per
# node as well (rollup_labelled_*), so a ledger whose nodes of one class pay different bills reads them instead of
# the pod-day rows; and the bill's price of each node-hour is stored when a bill is imported and with every
# commit (core/store/rollups/bills.py) instead of being worked out from the bill lines by each report. The class
# rows are rebuilt by the next commit (reports read the pod-day rows until then); the bill rows by the next
# commit or import (reports price from the lines until then). And (issue 25) hourly grid carbon intensity per zone,
# and the energy a GPU drew while silent; (issue 28) pending pods, nodes' GPU resources and queue gauges.
_LABELLED = "day TIMESTAMP NOT NULL, cluster VARCHAR NOT NULL, node VARCHAR NOT NULL, namespace VARCHAR, labels VARCHAR, pod VARCHAR"
MIGRATION_15 = [
    f"""CREATE TABLE {c.T_LABELLED_ALLOC} ({_LABELLED}, units_compute HUGEINT NOT NULL, units_memory HUGEINT NOT NULL)""",
    f"""CREATE TABLE {c.T_LABELLED_USAGE} ({_LABELLED}, mapped BOOLEAN NOT NULL, used_s DOUBLE, energy_j DOUBLE,
        derived_j DOUBLE)""",
    f"""CREATE TABLE {c.T_BILL_HOURS} (cluster VARCHAR NOT NULL, node VARCHAR NOT NULL, hour TIMESTAMP NOT NULL,
        mig_share VARCHAR NOT NULL, bill_id VARCHAR)""",
    f"""CREATE TABLE {c.T_BILL_DAYS} (cluster VARCHAR NOT NULL, node VARCHAR NOT NULL, day TIMESTAMP NOT NULL,
        mig_share VARCHAR NOT NULL, prices BIGINT NOT NULL, bill_id VARCHAR)""",
    f"""CREATE TABLE {c.T_BILL_PRICES} (bill_id VARCHAR NOT NULL, key_units HUGEINT NOT NULL,
        effective DECIMAL(38, 10) NOT NULL, billed DECIMAL(38, 10) NOT NULL, list DECIMAL(38, 10) NOT NULL,
        accounts VARCHAR, invoices VARCHAR, provider VARCHAR)""",
    # an energy counter's increase across a silence (the GPU sent nothing for a while) and the seconds it spans:
    # the energy of a silent GPU, on the unhealthy line (core/store/step_sql.py device_energy_ctes)
    f"ALTER TABLE {c.T_HEALTH_SAMPLES} ADD COLUMN {c.COL_HEALTH_SPAN} INTEGER",
    # hourly grid carbon intensity per zone (collectors/carbon/hourly.py), read where carbon.zones maps a region
    f"""CREATE TABLE {c.T_CARBON_HOURLY} (zone VARCHAR NOT NULL, hour TIMESTAMP NOT NULL,
        gco2e_per_kwh DECIMAL(18, 6) NOT NULL, source VARCHAR NOT NULL, imported_at TIMESTAMP NOT NULL,
        PRIMARY KEY (zone, hour))""",
    # issue 28, who waits for GPUs: Pending pods' GPU requests per step, nodes' allocatable GPU resources per step,
    # Kueue / Volcano queue gauges, and each pod's creation and scheduling times
    f"""CREATE TABLE {c.T_POD_PENDING} ({_FACT_KEY}, namespace VARCHAR NOT NULL, pod VARCHAR NOT NULL,
        uid VARCHAR NOT NULL, resource VARCHAR NOT NULL, amount DOUBLE NOT NULL, unschedulable BOOLEAN NOT NULL)""",
    f"""CREATE TABLE {c.T_NODE_RESOURCES} ({_FACT_KEY}, node VARCHAR NOT NULL, resource VARCHAR NOT NULL,
        allocatable DOUBLE NOT NULL)""",
    f"""CREATE TABLE {c.T_QUEUE_SAMPLES} ({_FACT_KEY}, system VARCHAR NOT NULL, queue VARCHAR NOT NULL,
        cohort VARCHAR, flavor VARCHAR, resource VARCHAR, status VARCHAR, metric VARCHAR NOT NULL, le DOUBLE,
        value DOUBLE)""",
    f"ALTER TABLE {c.T_PODS} ADD COLUMN created_at TIMESTAMP",
    f"ALTER TABLE {c.T_PODS} ADD COLUMN scheduled_at TIMESTAMP",
    f"DELETE FROM {c.T_ROLLUP_STATE} WHERE source LIKE 'class:%'",
]

# fragmentation per hour (core/store/rollups/waiting.py): built by the next commit (no state rows: not in sync)
MIGRATION_16 = [
    f"""CREATE TABLE {c.T_WAITING_ROLLUP} (hour TIMESTAMP NOT NULL, cluster VARCHAR NOT NULL, node VARCHAR NOT NULL,
        resource VARCHAR NOT NULL, free_s DOUBLE NOT NULL, fragmented_s DOUBLE NOT NULL)""",
    f"""CREATE TABLE {c.T_WAITING_CLUSTER_ROLLUP} (hour TIMESTAMP NOT NULL, cluster VARCHAR NOT NULL,
        waiting_steps BIGINT NOT NULL, largest_min DOUBLE, largest_max DOUBLE)""",
    f"""CREATE TABLE {c.T_PENDING_ROLLUP} (hour TIMESTAMP NOT NULL, cluster VARCHAR NOT NULL, namespace VARCHAR NOT NULL,
        pod VARCHAR NOT NULL, uid VARCHAR NOT NULL, first_ts TIMESTAMP NOT NULL, last_end TIMESTAMP NOT NULL,
        gpu_s DOUBLE NOT NULL, unschedulable BOOLEAN NOT NULL)""",
    # each pod's first step holding GPUs (core/store/rollups/hourly.py keeps it): when a pod started, for `report
    # queues`, without reading a month of allocations
    f"ALTER TABLE {c.T_PODS} ADD COLUMN {c.COL_FIRST_ALLOCATED} TIMESTAMP",
    f"ALTER TABLE {c.T_PODS} ADD COLUMN {c.COL_PENDING_FIRST} TIMESTAMP",
    f"ALTER TABLE {c.T_PODS} ADD COLUMN {c.COL_PENDING_LAST_END} TIMESTAMP",
    f"ALTER TABLE {c.T_PODS} ADD COLUMN {c.COL_PENDING_GPU_S} DOUBLE",
    f"ALTER TABLE {c.T_PODS} ADD COLUMN {c.COL_PENDING_UNSCHEDULABLE} BOOLEAN",
    f"""UPDATE {c.T_PODS} p SET {c.COL_FIRST_ALLOCATED} = a.first FROM (
        SELECT cluster, namespace, pod, uid, min(ts) AS first FROM {c.T_POD_ALLOCATIONS} GROUP BY ALL) a
    WHERE p.cluster = a.cluster AND p.namespace = a.namespace AND p.pod = a.pod AND p.uid = a.uid""",
]

# on-prem price rows charge their GPUs' measured energy (collectors/pricing/from_settings.py): the price per kWh (PUE
# included) and the part of the GPU price that is nameplate power, which measured kWh replace; NULL on other rows
# and node-pool occupancy per hour (core/store/rollups/pools.py), built by the next commit (no state rows: not in sync)
MIGRATION_17 = [
    f"ALTER TABLE {c.T_PRICES} ADD COLUMN {c.COL_ENERGY_USD_PER_KWH} DECIMAL(28, 10)",
    f"ALTER TABLE {c.T_PRICES} ADD COLUMN {c.COL_GPU_ENERGY_USD_PER_HOUR} DECIMAL(28, 10)",
    f"""CREATE TABLE {c.T_POOL_ROLLUP} (mig_share VARCHAR NOT NULL, hour TIMESTAMP NOT NULL, node_pool VARCHAR NOT NULL,
        steps BIGINT NOT NULL, capacity_units HUGEINT NOT NULL, peak_alloc_units HUGEINT NOT NULL,
        max_node_units BIGINT NOT NULL)""",
    f"CREATE TABLE {c.T_POOL_NODES} (cluster VARCHAR NOT NULL, node VARCHAR NOT NULL, node_pool VARCHAR NOT NULL)",
]

# each pod's requests and run time per hour (core/store/rollups/pools.py), the savings' evidence beside the pools':
# the pools' state rows are dropped, so the next commit rebuilds both (until then readers use the steps)
MIGRATION_18 = [
    f"""CREATE TABLE {c.T_POD_REQUEST_ROLLUP} (hour TIMESTAMP NOT NULL, cluster VARCHAR NOT NULL,
        namespace VARCHAR NOT NULL, pod VARCHAR NOT NULL, uid VARCHAR NOT NULL, node VARCHAR NOT NULL,
        resource VARCHAR NOT NULL, amount DOUBLE NOT NULL, run_s BIGINT NOT NULL)""",
    f"DELETE FROM {c.T_ROLLUP_STATE} WHERE starts_with(source, 'pools:')",
]

# the capacity rollups also keep each node-hour's seconds and its billable units on steps where no source gives the
# node a GPU, so the bill-vs-ledger reconciliation reads hours, not steps (a day at 10,000 GPUs took 45 s from the
# steps). The main rollups' state rows are dropped: the next commit rebuilds them (until then reports read the steps).
MIGRATION_19 = [
    *(
        f"ALTER TABLE {c.T_CAPACITY_ROLLUP}_{level} ADD COLUMN {col} BIGINT DEFAULT 0"
        for level in ("hourly", "daily")
        for col in ("node_s", "no_gpu_compute", "no_gpu_memory")
    ),
    f"""DELETE FROM {c.T_ROLLUP_STATE}
        WHERE source IN ('{c.T_POD_ALLOCATIONS}', '{c.T_GPU_SAMPLES}', '{c.T_GPU_POD_SAMPLES}', '{c.T_NODE_SAMPLES}')""",
]

MIGRATIONS: list[list[str]] = [
    MIGRATION_1,
    MIGRATION_2,
    MIGRATION_3,
    MIGRATION_4,
    MIGRATION_5,
    MIGRATION_6,
    MIGRATION_7,
    MIGRATION_8,
    MIGRATION_9,
    MIGRATION_10,
    MIGRATION_11,
    MIGRATION_12,
    MIGRATION_13,
    MIGRATION_14,
    MIGRATION_15,
    MIGRATION_16,
    MIGRATION_17,
    MIGRATION_18,
    MIGRATION_19,
]
LATEST_VERSION = len(MIGRATIONS)
