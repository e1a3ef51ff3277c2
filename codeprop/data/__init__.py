"""Benchmark datasets, the bottom layer (numpy and tfds only).

- `raw`: where raw files come from: a local directory (``CODEPROP_DATA_DIR``) or a
  download from the canonical source, checked by sha256.
- `devmap`, `poj104`: readers of the raw files, with clear errors naming the file;
  `poj104` also rebuilds its archive from CodeXGLUE's public parquet files.
- `builders`: tfds builders of both benchmarks.
- `benchmarks`: `benchmarks.load(name)`, the one call that prepares and loads one.
- `splits`: deterministic stratified k-fold and hold-out splits.
- `json_files`: reading a user's JSON and JSONL files, every problem raised as the
  caller's error naming the file and line.
"""
