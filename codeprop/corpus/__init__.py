"""The pretraining corpus pipeline: ``python -m codeprop.corpus --source ... --out DIR``.

- `sources`: documents from directories, globs, JSONL dumps, tfds, or the default corpus.
- `filters`: rule filters; `dedup`: exact (MD5) and near (MinHash LSH) deduplication.
- `quality`: rule-based quality scores; `quality_model`: the learned quality scorer;
  `perplexity`: perplexity filtering with a decoder checkpoint.
- `accounting`: files, bytes and tokens in and out of every stage, and why dropped.
- `pipeline`: `run`, the stages in one process; `beam`: the same as an Apache Beam
  pipeline (DirectRunner here; Dataflow, Flink or Spark at scale).
"""
