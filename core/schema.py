"""The warehouse schema, as an ordered list of migrations.

Migration N takes a version N-1 warehouse to version N. A new warehouse runs them all. Never edit
a released migration: append a new one, so every older file upgrades along the same path.

Time conventions for every fact table: `ts` is naive UTC and a row covers [ts, ts + step_s).
Its value is what the source reported at the end of that step (the last sample within the
lookback), exactly what Prometheus' query_range returns at ts + step_s.
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

# --- issue 3: collectors ---
# Version 3: per-step change of health signals (counters: reset-aware increase; Xid: event flag).
MIGRATION_3 = [f"ALTER TABLE {c.T_HEALTH_SAMPLES} ADD COLUMN {c.COL_HEALTH_DELTA} DOUBLE"]

MIGRATIONS: list[list[str]] = [MIGRATION_1, MIGRATION_2, MIGRATION_3]
LATEST_VERSION = len(MIGRATIONS)
