"""End-to-end runs that chain the packages.

- `pretraining_demo`: corpus -> tokenizer -> pretraining -> generation -> HF export, small
  enough for a CPU (``python -m codeprop.main pretrain_demo --workdir DIR``).
"""
