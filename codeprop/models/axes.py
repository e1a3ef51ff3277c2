"""Logical axis names — the one place they are defined — and the rules that map them to
the device mesh.

Parameters and activations name their axes logically (``nn.with_logical_partitioning``,
``nn.with_logical_constraint``); `RULES` says which mesh axis (``data``, ``fsdp`` or
``tensor``, see `MESH_AXES`) each one is split over, or None to replicate it. Every name
below has a rule (a test checks it), and gin can replace the rules
(``pretrain.train.rules``). Without rules in scope the names are no-ops, so single-device
code is unaffected.

Parameter axes:        Activation axes:
  VOCAB     vocabulary   ACTIVATION_BATCH   batch rows
  EMBED     model width  ACTIVATION_LENGTH  sequence positions
  MLP       MLP width    ACTIVATION_EMBED   model width
  Q_HEADS   query heads  ACTIVATION_MLP     MLP width
  KV_HEADS  key/value heads (groups)
  KV        head_dim
  NORM      normalisation scales and biases
  POSITION  learned position table
  CLASSES   classification-head outputs
"""

from __future__ import annotations

VOCAB = "vocab"
EMBED = "embed"
MLP = "mlp"
Q_HEADS = "q_heads"
KV_HEADS = "kv_heads"
KV = "kv"
NORM = "norm"
POSITION = "position"
CLASSES = "classes"
PARAMETER_AXES = (VOCAB, EMBED, MLP, Q_HEADS, KV_HEADS, KV, NORM, POSITION, CLASSES)

ACTIVATION_BATCH = "activation_batch"
ACTIVATION_LENGTH = "activation_length"
ACTIVATION_EMBED = "activation_embed"
ACTIVATION_MLP = "activation_mlp"
ACTIVATION_AXES = (ACTIVATION_BATCH, ACTIVATION_LENGTH, ACTIVATION_EMBED, ACTIVATION_MLP)

# The residual stream between blocks, [B, T, D].
RESIDUAL = (ACTIVATION_BATCH, ACTIVATION_LENGTH, ACTIVATION_EMBED)
# The MLP's hidden activations, [B, T, F].
MLP_HIDDEN = (ACTIVATION_BATCH, ACTIVATION_LENGTH, ACTIVATION_MLP)

MESH_AXES = ("data", "fsdp", "tensor")

# (logical axis, mesh axis or axes or None), first match wins: batch over data x fsdp
# (ZeRO-3 keeps parameters split along EMBED over fsdp), heads / MLP / vocabulary over
# tensor (Megatron style); small axes are replicated.
RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    (ACTIVATION_BATCH, ("data", "fsdp")),
    (ACTIVATION_LENGTH, None),
    (ACTIVATION_EMBED, None),
    (ACTIVATION_MLP, "tensor"),
    (VOCAB, "tensor"),
    (EMBED, "fsdp"),
    (MLP, "tensor"),
    (Q_HEADS, "tensor"),
    (KV_HEADS, "tensor"),
    (KV, None),
    (NORM, None),
    (POSITION, None),
    (CLASSES, None),
)
