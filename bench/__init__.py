"""Benchmarks at fleet scale (`make bench`): a fast synthetic fleet generator and the harness."""
