"""Training: the classifier loop and sharded pretraining.

- `classifier`: `fit`, the jitted loop with best-validation model selection, used by the
  probes and the learned quality scorer; `TrainConfig`.
- `batchers`: example rows over shared inputs (`Examples`) and their fixed-shape batches
  (`GraphBatcher`, `SequenceBatcher`).
- `steps`: train state, jitted train/eval/embed steps; `metrics`: host-side metrics.
- `progress`: the progress lines of a run (rate, ETA, current metric).
- `ensembles`: models differing only in their seed, their probabilities averaged.
- `epoch_checkpoints`: a fold's training state saved between epochs (orbax), from which
  a stopped fold resumes exactly; `preemption`: SIGTERM as a stop at a safe point.
- `pretrain`: the gin-launched sharded LM pretraining loop; `input_pipeline`: its seqio
  tasks (corpus mixture, FIM, packing); `optimizers`: AdamW with warm-up + cosine;
  `partitioning`: the device mesh; `checkpointing`: orbax save/restore of a run;
  `distributed`: multi-host start-up; `host_memory`: glibc settings for XLA:CPU.
"""
