"""A CodeShell-style decoder: GPT-2 blocks with grouped-query attention and RoPE.

One configurable pre-norm decoder covers the families codeprop imports (see
`codeprop.checkpoints.hf`): CodeShell (LayerNorm, GELU, biases, GQA, RoPE), StarCoder2
(the same plus a sliding window), GPTBigCode (learned positions, MQA or MHA) and Llama /
DeepSeek-Coder (RMSNorm, SwiGLU, no biases, RoPE scaling).

Letters: B batch, T query length, S key length (cache size), D embed_dim, N num_heads,
K num_kv_heads, H head_dim, F mlp_dim, V vocab_size, L num_layers.

Parameters carry logical axis names (`codeprop.models.axes`); activations are
constrained at block boundaries to ``axes.RESIDUAL``. Without logical-axis rules in scope
both are no-ops, so the same module runs on one CPU and on a sharded mesh.

Usage::

    config = decoder.tiny()
    model = decoder.Decoder(config)
    params = decoder.init_params(config, jax.random.key(0))
    logits = model.apply({"params": params}, tokens)  # tokens [B, T] int32 -> [B, T, V]
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from codeprop.models import attention as attention_lib
from codeprop.models import axes, losses, rope

POSITION_EMBEDDINGS = ("rope", "learned")
NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = {
    "gelu_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "silu": jax.nn.silu,
    "relu": jax.nn.relu,
}
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Architecture and numerics of a `Decoder`.

    Attributes:
      vocab_size: V.
      embed_dim: D, the residual width.
      mlp_dim: F, the MLP's inner width.
      num_layers: L blocks.
      num_heads: N query heads.
      num_kv_heads: K key/value heads (1: MQA; N: MHA; else GQA); N must be a multiple.
      head_dim: H; None for ``embed_dim // num_heads``.
      max_positions: the trained context (learned position table size; the reference
        length of dynamic RoPE scaling).
      position_embedding: ``'rope'`` or ``'learned'`` (absolute, GPT-2 / GPTBigCode).
      rope_base: RoPE theta.
      rope_scaling: None, ``'linear'`` or ``'dynamic'`` (NTK); see `codeprop.models.rope`.
      rope_scaling_factor: the scaling factor.
      sliding_window: attend to at most this many most recent tokens (StarCoder2), or None.
      norm: ``'layernorm'`` or ``'rmsnorm'``.
      norm_eps: epsilon of the norms.
      activation: MLP activation, a key of `ACTIVATIONS`.
      gated_mlp: ``act(gate(x)) * up(x)`` (SwiGLU with silu) instead of ``act(fc(x))``.
      attention_bias: biases on the query, key, value and output projections.
      mlp_bias: biases on the MLP projections.
      tie_embeddings: the output projection is the token embedding's transpose.
      attention_scale: logit scale; None for ``head_dim ** -0.5``.
      initializer_range: standard deviation of the normal initialisers (output
        projections get ``/ sqrt(2 L)``, as in GPT-2).
      dtype: computation dtype (e.g. ``'bfloat16'``); logits are always float32.
      param_dtype: parameter dtype (keep ``'float32'`` master weights).
      remat: rematerialisation per block: ``'none'``, ``'full'`` (save nothing) or
        ``'dots'`` (save matmul outputs).
      attention_impl: ``'blockwise'`` (causal query blocks with a hand-written gradient;
        the fastest on CPUs, and the default), ``'einsum'`` (the reference, differentiated
        by autodiff), ``'xla'`` or ``'cudnn'`` (flash attention on NVIDIA GPUs) — see
        `codeprop.models.attention.attention`. Decoding with a KV cache uses ``'einsum'``
        in place of ``'blockwise'``.
      attention_query_chunk: self-attention over the sequence (no KV cache) runs in query
        blocks of this many rows that skip the keys above the diagonal (same result;
        faster on CPUs); None attends with all T queries at once.
      loss_chunk: tokens per chunk of `Decoder.loss` (its largest temporaries are
        [loss_chunk, V] float32 logits and their gradient: 32 MB each at V = 8192, 287 MB
        at CodeShell's 70,144).
    """

    vocab_size: int
    embed_dim: int
    mlp_dim: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int | None = None
    max_positions: int = 2048
    position_embedding: str = "rope"
    rope_base: float = 10000.0
    rope_scaling: str | None = None
    rope_scaling_factor: float = 1.0
    sliding_window: int | None = None
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    activation: str = "gelu_tanh"
    gated_mlp: bool = False
    attention_bias: bool = True
    mlp_bias: bool = True
    tie_embeddings: bool = True
    attention_scale: float | None = None
    initializer_range: float = 0.02
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: str = "none"
    attention_impl: str = "blockwise"
    attention_query_chunk: int | None = 64
    loss_chunk: int = 1024

    def __post_init__(self):
        def check(ok, message):
            if not ok:
                raise ValueError(f"DecoderConfig: {message}")

        check(
            self.num_heads % self.num_kv_heads == 0, "num_heads must be a multiple of num_kv_heads"
        )
        check(
            self.position_embedding in POSITION_EMBEDDINGS,
            f"position_embedding in {POSITION_EMBEDDINGS}",
        )
        check(self.rope_scaling in rope.SCALINGS, f"rope_scaling in {rope.SCALINGS}")
        check(self.norm in NORMS, f"norm in {NORMS}")
        check(self.activation in ACTIVATIONS, f"activation in {tuple(ACTIVATIONS)}")
        check(self.remat in REMAT_POLICIES, f"remat in {tuple(REMAT_POLICIES)}")
        check(self.attention_impl in attention_lib.IMPLEMENTATIONS, "unknown attention_impl")
        check(self.sliding_window is None or self.sliding_window > 0, "sliding_window > 0")
        if self.head_dim is None:
            check(self.embed_dim % self.num_heads == 0, "embed_dim must be a multiple of num_heads")

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim or self.embed_dim // self.num_heads

    @property
    def scale(self) -> float:
        return (
            self.attention_scale
            if self.attention_scale is not None
            else self.resolved_head_dim**-0.5
        )

    def replace(self, **changes) -> DecoderConfig:
        return dataclasses.replace(self, **changes)


def codeshell_7b() -> DecoderConfig:
    """CodeShell-7B as released: 42 layers, D 4096, 32 heads in 8 KV groups, 8192 context."""
    return DecoderConfig(
        vocab_size=70144,
        embed_dim=4096,
        mlp_dim=16384,
        num_layers=42,
        num_heads=32,
        num_kv_heads=8,
        max_positions=8192,
    )


def codeshell_1b() -> DecoderConfig:
    """The report's "codeshell-small": 24 layers, D 2048 (about 1.2B parameters).

    The report gives only depth and width; heads keep CodeShell-7B's head size (128) and
    its 4:1 query-to-KV-group ratio, and the MLP its 4x width.
    """
    return codeshell_7b().replace(
        embed_dim=2048, mlp_dim=8192, num_layers=24, num_heads=16, num_kv_heads=4
    )


def tiny(vocab_size: int = 512) -> DecoderConfig:
    """A CPU-sized CodeShell (about 0.8M parameters with the default vocabulary)."""
    return DecoderConfig(
        vocab_size=vocab_size,
        embed_dim=128,
        mlp_dim=512,
        num_layers=4,
        num_heads=4,
        num_kv_heads=2,
        max_positions=2048,
    )


def _init(config: DecoderConfig, axes: tuple[str, ...], scale: float = 1.0):
    return nn.with_logical_partitioning(
        nn.initializers.normal(config.initializer_range * scale), axes
    )


def _zeros(axes: tuple[str, ...]):
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), axes)


def _norm(config: DecoderConfig, name: str) -> nn.Module:
    """LayerNorm (scale, bias) or RMSNorm (scale) over the last axis, statistics in float32."""
    ones = nn.with_logical_partitioning(nn.initializers.ones_init(), (axes.NORM,))
    common = dict(
        epsilon=config.norm_eps,
        dtype=config.dtype,
        param_dtype=config.param_dtype,
        scale_init=ones,
        name=name,
    )
    if config.norm == "rmsnorm":
        return nn.RMSNorm(**common)
    return nn.LayerNorm(**common, bias_init=_zeros((axes.NORM,)), use_fast_variance=False)


def _write_cache(cache: jnp.ndarray, new: jnp.ndarray, start: jnp.ndarray) -> jnp.ndarray:
    """Writes ``new`` [B, T, K, H] into ``cache`` [B, S, K, H] at slot ``start[b]`` per row."""
    write = lambda c, n, s: jax.lax.dynamic_update_slice(c, n, (s, 0, 0))  # noqa: E731
    return jax.vmap(write)(cache, new.astype(cache.dtype), start)


class Projection(nn.Module):
    """``x @ kernel + bias`` over the last ``contract`` axes of x, to ``features`` axes.

    Like flax's DenseGeneral, but the kernel is created in its own shape (e.g. [D, N, H]),
    not flattened and reshaped, so its logical-axis sharding applies at initialisation.
    """

    features: tuple[int, ...]
    contract: int = 1
    use_bias: bool = True
    dtype: str = "float32"
    param_dtype: str = "float32"
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x):
        """[..., *in] -> [..., *features], ``in`` being the last ``contract`` axes."""
        in_shape = x.shape[x.ndim - self.contract :]
        kernel = self.param("kernel", self.kernel_init, in_shape + self.features, self.param_dtype)
        letters = "abcdefgh"
        ins, outs = (
            letters[: self.contract],
            letters[self.contract : self.contract + len(self.features)],
        )
        x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        y = jnp.einsum(f"...{ins},{ins}{outs}->...{outs}", x, kernel)
        if self.use_bias:
            bias = self.param("bias", self.bias_init, self.features, self.param_dtype)
            y = y + bias.astype(self.dtype)
        return y


class Attention(nn.Module):
    """Grouped-query self-attention with RoPE and an optional KV cache."""

    config: DecoderConfig

    @nn.compact
    def __call__(self, x, sin, cos, mask, cache=None, start=None):
        """Attends over the sequence (or the cache).

        Args:
          x: [B, T, D] inputs.
          sin, cos: [B, T, H] RoPE angles, or None (learned positions).
          mask: [B, T, S] bool (S = T without a cache), or None for plain causal
            attention over the sequence.
          cache: ``{'key', 'value'}`` [B, S, K, H] (RoPE already applied to keys), or None.
          start: [B] int32 slot of each row's first new token in the cache.

        Returns:
          ([B, T, D] outputs, the updated cache or None).
        """
        c = self.config
        h = c.resolved_head_dim
        dense = functools.partial(
            Projection, use_bias=c.attention_bias, dtype=c.dtype, param_dtype=c.param_dtype
        )
        q = dense(
            (c.num_heads, h),
            kernel_init=_init(c, (axes.EMBED, axes.Q_HEADS, axes.KV)),
            bias_init=_zeros((axes.Q_HEADS, axes.KV)),
            name="query",
        )(x)  # [B, T, N, H]
        k = dense(
            (c.num_kv_heads, h),
            kernel_init=_init(c, (axes.EMBED, axes.KV_HEADS, axes.KV)),
            bias_init=_zeros((axes.KV_HEADS, axes.KV)),
            name="key",
        )(x)  # [B, T, K, H]
        v = dense(
            (c.num_kv_heads, h),
            kernel_init=_init(c, (axes.EMBED, axes.KV_HEADS, axes.KV)),
            bias_init=_zeros((axes.KV_HEADS, axes.KV)),
            name="value",
        )(x)  # [B, T, K, H]
        if sin is not None:
            q, k = rope.apply_rope(q, sin, cos), rope.apply_rope(k, sin, cos)
        if cache is not None:
            k = _write_cache(cache["key"], k, start)  # [B, S, K, H]
            v = _write_cache(cache["value"], v, start)
            cache = {"key": k, "value": v}
        out = attention_lib.attention(
            q,
            k,
            v,
            mask,
            c.scale,
            c.attention_impl,
            c.sliding_window,
            query_chunk=c.attention_query_chunk if cache is None else None,
        )  # [B, T, N, H]
        out = dense(
            (c.embed_dim,),
            contract=2,
            kernel_init=_init(c, (axes.Q_HEADS, axes.KV, axes.EMBED), (2 * c.num_layers) ** -0.5),
            bias_init=_zeros((axes.EMBED,)),
            name="out",
        )(out)  # [B, T, D]
        return out, cache


class MLP(nn.Module):
    """``proj(act(fc(x)))``, or ``down(act(gate(x)) * up(x))`` when gated."""

    config: DecoderConfig

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        c = self.config
        dense = functools.partial(
            nn.Dense,
            use_bias=c.mlp_bias,
            dtype=c.dtype,
            param_dtype=c.param_dtype,
            bias_init=_zeros((axes.MLP,)),
        )
        act = ACTIVATIONS[c.activation]
        into = _init(c, (axes.EMBED, axes.MLP))
        if c.gated_mlp:
            hidden = act(dense(c.mlp_dim, kernel_init=into, name="gate")(x))
            hidden = hidden * dense(c.mlp_dim, kernel_init=into, name="up")(x)  # [B, T, F]
            name = "down"
        else:
            hidden = act(dense(c.mlp_dim, kernel_init=into, name="fc")(x))  # [B, T, F]
            name = "proj"
        hidden = nn.with_logical_constraint(hidden, axes.MLP_HIDDEN)
        return nn.Dense(
            c.embed_dim,
            use_bias=c.mlp_bias,
            dtype=c.dtype,
            param_dtype=c.param_dtype,
            kernel_init=_init(c, (axes.MLP, axes.EMBED), (2 * c.num_layers) ** -0.5),
            bias_init=_zeros((axes.EMBED,)),
            name=name,
        )(hidden)  # [B, T, D]


class Block(nn.Module):
    """Pre-norm block: ``x + attention(norm(x))``, then ``x + mlp(norm(x))``."""

    config: DecoderConfig

    @nn.compact
    def __call__(self, x, sin, cos, mask, cache=None, start=None):
        """[B, T, D] -> ([B, T, D], updated cache); arguments as in `Attention`."""
        attended, cache = Attention(self.config, name="attention")(
            _norm(self.config, "pre_attention_norm")(x), sin, cos, mask, cache, start
        )
        x = x + attended
        x = x + MLP(self.config, name="mlp")(_norm(self.config, "pre_mlp_norm")(x))
        return nn.with_logical_constraint(x, axes.RESIDUAL), cache


class Decoder(nn.Module):
    """Token embedding, L blocks, final norm and the (tied or separate) output projection."""

    config: DecoderConfig

    def setup(self):
        c = self.config
        self.embedder = nn.Embed(
            c.vocab_size,
            c.embed_dim,
            dtype=c.dtype,
            param_dtype=c.param_dtype,
            embedding_init=_init(c, (axes.VOCAB, axes.EMBED)),
        )
        if c.position_embedding == "learned":
            self.position_embedder = nn.Embed(
                c.max_positions,
                c.embed_dim,
                dtype=c.dtype,
                param_dtype=c.param_dtype,
                embedding_init=_init(c, (axes.POSITION, axes.EMBED)),
            )
        block = Block
        if c.remat != "none":
            block = nn.remat(Block, policy=REMAT_POLICIES[c.remat], prevent_cse=True)
        self.blocks = [block(c) for _ in range(c.num_layers)]
        self.final_norm = _norm(c, "final_norm")
        if not c.tie_embeddings:
            self.lm_head = nn.Dense(
                c.vocab_size,
                use_bias=False,
                dtype=c.dtype,
                param_dtype=c.param_dtype,
                kernel_init=_init(c, (axes.EMBED, axes.VOCAB)),
            )

    def __call__(self, tokens, *, positions=None, segment_ids=None):
        """Logits [B, T, V] (float32) of ``tokens`` [B, T] int32.

        Args:
          tokens: [B, T] token ids.
          positions: [B, T] position of each token (``decoder_positions`` of packed
            sequences, restarting at 0 per segment); None for ``0 .. T-1``.
          segment_ids: [B, T] ``decoder_segment_ids`` of packed sequences: tokens attend
            only within their segment. None for one sequence per row.
        """
        return self.logits(self.embed(tokens, positions=positions, segment_ids=segment_ids))

    def embed(self, tokens, *, positions=None, segment_ids=None):
        """Final hidden states [B, T, D] (after the final norm); arguments as `__call__`."""
        b, t = tokens.shape
        slots = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        positions = slots if positions is None else positions
        if segment_ids is None:
            mask = None  # Plain causal: the attention kernel makes (or skips) the mask.
        else:
            mask = attention_lib.causal_mask(
                slots, slots, segment_ids, segment_ids, self.config.sliding_window
            )
        hidden, _ = self._trunk(tokens, positions, mask, None, None)
        return hidden

    def extend(self, tokens, cache, num_new=None):
        """Runs ``tokens`` [B, T] after the cached ones; returns (logits [B, T, V], cache).

        Row b's tokens go to cache slots ``cache['lengths'][b] + 0 .. T-1`` (which are
        also their positions). ``num_new`` [B] says how many of them are real (prompts of
        different lengths, right-padded); the rest are written but not counted, so the
        next call overwrites them. The cache must have room: ``lengths + T <= S``
        (`codeprop.models.generation` checks this before decoding).
        """
        b, t = tokens.shape
        start = cache["lengths"]  # [B]
        slots = start[:, None] + jnp.arange(t, dtype=jnp.int32)  # [B, T]
        size = cache["layers"][0]["key"].shape[1]
        kv_slots = jnp.broadcast_to(jnp.arange(size, dtype=jnp.int32), (b, size))
        mask = attention_lib.causal_mask(slots, kv_slots, sliding_window=self.config.sliding_window)
        hidden, layers = self._trunk(tokens, slots, mask, cache["layers"], start)
        num_new = jnp.full((b,), t, jnp.int32) if num_new is None else num_new
        return self.logits(hidden), {"lengths": start + num_new, "layers": layers}

    def loss(self, tokens, targets, weights=None, *, positions=None, segment_ids=None):
        """Weighted next-token cross-entropy, without materialising [B, T, V] logits.

        Args:
          tokens: [B, T] inputs; ``positions``/``segment_ids`` as in `__call__`.
          targets: [B, T] the token to predict at each position.
          weights: [B, T] per-token loss weights (0 for padding), or None for ones.

        Returns:
          (float32 ``sum(weights * cross_entropy)``, [B, T] bool target-is-arg-max), with
          the gradient of ``cross_entropy(self(tokens), targets)`` — see
          `codeprop.models.losses.fused_cross_entropy`.
        """
        hidden = self.embed(tokens, positions=positions, segment_ids=segment_ids)
        return losses.fused_cross_entropy(
            hidden, self.output_matrix(), targets, weights, self.config.loss_chunk
        )

    def output_matrix(self):
        """The [V, D] output projection (tied embedding or LM head kernel) in ``dtype``."""
        if self.config.tie_embeddings:
            matrix = self.embedder.embedding
        else:
            matrix = self.lm_head.variables["params"]["kernel"].T
        return matrix.astype(self.config.dtype)

    def logits(self, hidden):
        """[B, T, D] final hidden states -> [B, T, V] float32 logits."""
        out = self.embedder.attend(hidden) if self.config.tie_embeddings else self.lm_head(hidden)
        return out.astype(jnp.float32)

    def _trunk(self, tokens, positions, mask, caches, start):
        c = self.config
        x = self.embedder(tokens)  # [B, T, D]
        sin = cos = None
        if c.position_embedding == "learned":
            x = x + self.position_embedder(positions)
        else:
            inv_freq = rope.inverse_frequencies(
                c.resolved_head_dim,
                c.rope_base,
                c.rope_scaling,
                c.rope_scaling_factor,
                c.max_positions,
                jnp.max(positions) + 1,
            )
            sin, cos = rope.sin_cos(positions, inv_freq)  # [B, T, H]
        x = nn.with_logical_constraint(x, axes.RESIDUAL)
        new_caches = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, sin, cos, mask, None if caches is None else caches[i], start)
            new_caches.append(layer_cache)
        return self.final_norm(x), new_caches


def init_cache(config: DecoderConfig, batch_size: int, size: int, dtype=None) -> dict:
    """An empty KV cache: ``lengths`` [B] zeros and per layer ``key``/``value`` [B, S, K, H]."""
    shape = (batch_size, size, config.num_kv_heads, config.resolved_head_dim)
    dtype = dtype or config.dtype
    return {
        "lengths": jnp.zeros((batch_size,), jnp.int32),
        "layers": [
            {"key": jnp.zeros(shape, dtype), "value": jnp.zeros(shape, dtype)}
            for _ in range(config.num_layers)
        ],
    }


def init_params(config: DecoderConfig, rng: jax.Array, seq_len: int = 8) -> dict:
    """Randomly initialised parameters (plain arrays, logical-axis boxes removed)."""
    tokens = jnp.zeros((1, seq_len), jnp.int32)
    boxed = jax.jit(Decoder(config).init)(rng, tokens)["params"]
    return nn.meta.unbox(boxed)


def logical_axes(config: DecoderConfig) -> dict:
    """The logical axis names of every parameter (a tree like the params of `init_params`)."""
    tokens = jnp.zeros((1, 8), jnp.int32)
    shapes = jax.eval_shape(Decoder(config).init, jax.random.key(0), tokens)["params"]
    return nn.get_partition_spec(shapes)


def num_params(params) -> int:
    return int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))
