"""A decoder as a sequence classifier and embedder for the probes.

`DecoderClassifier` pools the decoder's final hidden states of each sequence into one
vector and applies a linear ``score`` layer (no bias), as transformers'
``*ForSequenceClassification`` do:

- ``last``: the hidden state of the last non-pad token (transformers' rule: the rightmost
  position whose token is not ``pad_id``), the natural summary of a causal decoder;
- ``mean``: the mean over the non-pad tokens.

It has the probe loop's interface (`codeprop.train.steps`): ``apply(vars, tokens, aux,
rows, deterministic=...)`` -> [R, C] logits and ``embed(tokens)`` -> [S, D], where rows
index the sequences (devmap rows share a kernel) and ``aux`` are extra row features.
Parameters: ``{'decoder': <Decoder params>, 'score': {'kernel'}}``, so a pretrained
decoder (`codeprop.checkpoints.hf.load`) drops in under ``'decoder'``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from codeprop.models import axes, gnn
from codeprop.models import decoder as decoder_lib

POOLINGS = ("last", "mean")


def pool(hidden: jax.Array, tokens: jax.Array, pad_id: int, pooling: str) -> jax.Array:
    """[S, T, D] hidden states of [S, T] tokens -> [S, D] (float32)."""
    real = tokens != pad_id  # [S, T]
    hidden = hidden.astype(jnp.float32)
    if pooling == "last":
        positions = jnp.arange(tokens.shape[1])
        last = jnp.argmax(positions * real, axis=-1)  # [S]; 0 for an all-pad row
        return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]
    if pooling == "mean":
        weights = real.astype(jnp.float32)[..., None]  # [S, T, 1]
        return jnp.sum(hidden * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1.0)
    raise ValueError(f"unknown pooling {pooling!r}; one of {POOLINGS}")


class DecoderClassifier(nn.Module):
    """Decoder + pooling + linear score.

    Attributes:
      config: the decoder.
      num_classes: C.
      pad_id: the padding token (excluded from pooling).
      pooling: ``'last'`` or ``'mean'``.
      num_aux: A extra row features appended to the pooled vector before the score.
      dropout_rate: dropout on the pooled vector while training.
    """

    config: decoder_lib.DecoderConfig
    num_classes: int
    pad_id: int = 0
    pooling: str = "last"
    num_aux: int = 0
    dropout_rate: float = 0.0

    def setup(self):
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; one of {POOLINGS}")
        self.decoder = decoder_lib.Decoder(self.config)
        self.score = nn.Dense(
            self.num_classes,
            use_bias=False,
            kernel_init=nn.with_logical_partitioning(
                nn.initializers.normal(self.config.initializer_range), (axes.EMBED, axes.CLASSES)
            ),
        )
        self.dropout = nn.Dropout(self.dropout_rate)

    def embed(self, tokens: jax.Array, deterministic: bool = True) -> jax.Array:
        """[S, T] int32 tokens -> [S, D] pooled final hidden states."""
        del deterministic  # The decoder has no dropout.
        return pool(self.decoder.embed(tokens), tokens, self.pad_id, self.pooling)

    def __call__(
        self,
        tokens: jax.Array,
        aux: jax.Array | None = None,
        rows: jax.Array | None = None,
        deterministic: bool = True,
    ) -> jax.Array:
        """[R, C] logits: sequence ``rows[r]`` (all sequences when None) plus ``aux[r]``."""
        h = self.dropout(self.embed(tokens), deterministic=deterministic)  # [S, D]
        return gnn.classify(h, self.score, self.num_aux, aux, rows)
