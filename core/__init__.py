"""Shared names, schema, settings, errors and time helpers used by every gpuledger stage."""
