"""Benchmarks: long measurements whose figures go in the README, never into tests."""
