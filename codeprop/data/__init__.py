"""Benchmark data: raw files (`raw`), readers (`devmap`, `poj104`), tfds builders
(`builders`), the one-call loader (`benchmarks.load`) and deterministic splits (`splits`)."""
