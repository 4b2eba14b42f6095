"""Benchmarks: long measurements whose figures go in docs/benchmarks.md and results/, never into tests."""
