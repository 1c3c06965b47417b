"""Benchmarks: ``python -m benchmarks.ops`` and ``python -m benchmarks.train`` (see BENCHMARKS.md)."""
