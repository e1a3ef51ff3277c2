"""Perplexity filtering: score documents with a small codeprop decoder, drop the tail.

A document's perplexity is ``exp`` of the mean next-token negative log-likelihood of its
first ``max_tokens`` tokens under a decoder (any checkpoint `codeprop.checkpoints.hf.load`
reads, e.g. the tiny model pretrained by codeprop, with its tokenizer). Documents above
the ``percentile``-th perplexity of the batch are dropped: text the model finds very
surprising is usually not code (data, logs, other languages) or is badly garbled.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from codeprop.models import decoder


@dataclasses.dataclass(frozen=True)
class PerplexityConfig:
    """The scoring model and the cut.

    Attributes:
      checkpoint: a Hugging Face checkpoint directory (`codeprop.checkpoints.hf.load`).
      tokenizer: its tokenizer (`codeprop.tokens.tokenization.load` spec).
      percentile: documents above this percentile of perplexity are dropped.
      max_tokens: tokens scored per document (its beginning).
      batch_size: documents per forward pass.
    """

    checkpoint: str
    tokenizer: str = "bytes"
    percentile: float = 90.0
    max_tokens: int = 1024
    batch_size: int = 8


@functools.partial(jax.jit, static_argnums=0)
def _nll(config: decoder.DecoderConfig, params, tokens: jax.Array, lengths: jax.Array):
    """[B] mean next-token NLL of right-padded [B, T] tokens of the given lengths."""
    logits = decoder.Decoder(config).apply({"params": params}, tokens[:, :-1])
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])  # [B, T-1]
    real = jnp.arange(tokens.shape[1] - 1)[None, :] < (lengths - 1)[:, None]
    return jnp.sum(losses * real, axis=1) / jnp.maximum(jnp.sum(real, axis=1), 1)


def perplexities(
    config: decoder.DecoderConfig,
    params,
    token_lists: Sequence[Sequence[int]],
    max_tokens: int = 1024,
    batch_size: int = 8,
    pad_id: int = 0,
) -> np.ndarray:
    """[N] perplexity of each token list (truncated to ``max_tokens``; at least 2 tokens
    are needed, shorter lists get NaN)."""
    width = min(max_tokens, max((len(t) for t in token_lists), default=2))
    width = max(width, 2)
    out = np.full(len(token_lists), np.nan)
    for start in range(0, len(token_lists), batch_size):
        chunk = token_lists[start : start + batch_size]
        tokens = np.full((batch_size, width), pad_id, np.int32)
        lengths = np.ones(batch_size, np.int32)
        for row, ids in enumerate(chunk):
            ids = list(ids)[:width]
            tokens[row, : len(ids)] = ids
            lengths[row] = len(ids)
        nll = np.asarray(_nll(config, params, jnp.asarray(tokens), jnp.asarray(lengths)))
        for row in range(len(chunk)):
            if lengths[row] >= 2:
                out[start + row] = float(np.exp(nll[row]))
    return out


def above_percentile(values: np.ndarray, percentile: float) -> np.ndarray:
    """[N] bool: values above the ``percentile``-th percentile (NaN counts as above)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return np.ones(len(values), bool)
    cut = np.percentile(finite, percentile)
    return ~(values <= cut)


class Scorer:
    """A loaded perplexity model: `score` texts -> [N] perplexities."""

    def __init__(self, config: PerplexityConfig):
        from codeprop.checkpoints import hf
        from codeprop.tokens import tokenization

        self.settings = config
        self.config, self.params = hf.load(config.checkpoint)
        self.tokenizer = tokenization.load(config.tokenizer)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        tokens = [self.tokenizer.encode(t) for t in texts]
        return perplexities(
            self.config, self.params, tokens, self.settings.max_tokens, self.settings.batch_size,
            self.tokenizer.pad_id,
        )  # fmt: skip
