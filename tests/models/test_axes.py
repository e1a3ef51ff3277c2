"""Logical axis names: one module defines them, every one has a mesh rule, and the models
use no other."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from codeprop.models import axes, decoder, heads


def _names(tree) -> set[str]:
    specs = jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    return {name for spec in specs for name in spec if name is not None}


def test_every_axis_has_exactly_one_rule():
    ruled = [name for name, _ in axes.RULES]
    assert sorted(ruled) == sorted(axes.PARAMETER_AXES + axes.ACTIVATION_AXES)
    mesh_axes = {
        m
        for _, target in axes.RULES
        if target
        for m in (target if isinstance(target, tuple) else (target,))
    }
    assert mesh_axes <= set(axes.MESH_AXES)


def test_models_name_only_defined_axes():
    config = decoder.tiny(vocab_size=64).replace(embed_dim=32, mlp_dim=64, num_layers=2)
    used = _names(decoder.logical_axes(config))
    assert used == {"vocab", "embed", "mlp", "q_heads", "kv_heads", "kv", "norm"}
    classifier = heads.DecoderClassifier(config, num_classes=3, pad_id=0)
    shapes = jax.eval_shape(classifier.init, jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
    used |= _names(nn.get_partition_spec(shapes["params"]))
    assert "classes" in used and used <= set(axes.PARAMETER_AXES)
    learned = config.replace(position_embedding="learned", max_positions=16)
    assert "position" in _names(decoder.logical_axes(learned))
