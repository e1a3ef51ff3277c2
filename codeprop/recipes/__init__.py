"""End-to-end runs that chain the packages.

- `pretraining_demo`: corpus -> tokenizer -> pretraining -> generation -> HF export, small
  enough for a CPU (``python -m codeprop.main pretrain_demo --workdir DIR``).
- `comparison`, `arms`, `sweep`: every representation of a benchmark side by side, its
  arms run or reused by config, and grid searches chosen on validation data.
- `code_lm`, `code_eval`: the code LM pretrained here; code-generation evaluations.
- `config_checks`: macros and bindings that nothing uses, refused before a run.
- `workdir`: one run per workdir at a time, another experiment's outputs refused, every
  run's end recorded (``run_status.json``).
"""
