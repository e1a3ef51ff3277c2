"""The LLM arm of the probes: pooling, sequence batches, fine-tuning, the gin entry point."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from codeprop import main
from codeprop.checkpoints import hf
from codeprop.models import decoder, heads
from codeprop.tokens import tokenization
from codeprop.train import batchers, classifier, memory_plan, placement

from conftest import REPO, SMALL_C_PROGRAMS

CONFIG = decoder.tiny(vocab_size=263).replace(embed_dim=32, mlp_dim=64, num_layers=2)
LABELS = np.array([0, 1, 0, 1, 1, 0, 0, 1], np.int32)
TINY_DEVMAP = str(REPO / "gin/experiments/devmap_amd_decoder_tiny.gin")


def _small(raw_dir) -> list[str]:
    """Bindings that make the devmap decoder probe one quick fold."""
    return [
        "EPOCHS = 1",
        "MAX_TOKENS = 64",
        "BATCH_SIZE = 32",
        "decoder.DecoderConfig.num_layers = 1",
        "decoder.DecoderConfig.embed_dim = 32",
        "llm_probe.run_llm_probe.max_folds = 1",
        f"llm_probe.run_llm_probe.raw_dir = '{raw_dir}'",
    ]


def test_pooling_last_and_mean_skip_padding():
    tokens = jnp.asarray([[5, 6, 7, 0, 0], [1, 2, 3, 4, 5]])
    hidden = jnp.arange(2 * 5 * 3, dtype=jnp.float32).reshape(2, 5, 3)
    np.testing.assert_array_equal(
        heads.pool(hidden, tokens, 0, "last"), hidden[jnp.arange(2), jnp.array([2, 4])]
    )
    np.testing.assert_allclose(heads.pool(hidden, tokens, 0, "mean")[0], hidden[0, :3].mean(0))
    np.testing.assert_allclose(heads.pool(hidden, tokens, 0, "mean")[1], hidden[1].mean(0))


def _data(graph_of=None):
    tok = tokenization.ByteTokenizer()
    seqs = [np.asarray(tok.encode(p)[:48], np.int32) for p in SMALL_C_PROGRAMS]
    graph_of = np.arange(8) if graph_of is None else graph_of
    labels = LABELS if len(graph_of) == 8 else np.resize(LABELS, len(graph_of))
    return batchers.Examples(seqs, graph_of, labels), tok


def test_sequence_batches_share_sequences_between_rows():
    data, tok = _data(np.array([0, 1, 0, 2, 1, 3]))
    batcher = batchers.SequenceBatcher.for_data(data, batch_size=2, pad_id=tok.pad_id)
    assert (batcher.length, batcher.num_rows) == (48, 4)
    assert batcher.num_batches(np.arange(6)) == 2
    (first, rows), (second, rows2) = list(batcher.batches(np.arange(6)))
    assert first["inputs"].shape == (2, 48) and rows.tolist() == [0, 2, 1, 4]
    assert first["rows"].tolist() == [0, 0, 1, 1] and first["mask"].all()
    assert rows2.tolist() == [3, 5] and second["mask"].tolist() == [True, True, False, False]
    np.testing.assert_array_equal(second["inputs"][1, : len(data.inputs[3])], data.inputs[3])


def _varied_lengths(n=13, seed=0):
    """n random byte sequences of 5 to 300 tokens, each its own row and class."""
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(3, 263, size=k).astype(np.int32) for k in rng.integers(5, 300, n)]
    return batchers.Examples.one_input_per_row(seqs, np.arange(n) % 2)


def test_eval_batches_group_by_length_and_pad_only_to_a_multiple():
    data = _varied_lengths()
    batcher = batchers.SequenceBatcher.for_data(data, batch_size=4, pad_id=0)
    rows = np.arange(13)[::-1]
    out = list(batcher.eval_batches(rows))
    lengths = np.array([len(s) for s in data.inputs])
    got = np.concatenate([r for _, r in out])
    assert sorted(got.tolist()) == list(range(13))  # every row once
    assert lengths[got].tolist() == sorted(lengths.tolist(), reverse=True)
    for batch, batch_rows in out:
        t = batch["inputs"].shape[1]
        longest = lengths[batch_rows].max()
        assert batch["inputs"].shape[0] == 4 and longest <= t
        assert t == batcher.length or (t % 64 == 0 and t - longest < 64)
    assert [b["inputs"].shape[1] for b, _ in out] == [
        min(batcher.length, -(-lengths[r].max() // 64) * 64) for _, r in out
    ]
    assert sum(b["inputs"].size for b, _ in out) < 0.8 * len(out) * 4 * batcher.length


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_evaluation_by_length_equals_full_padding(pooling):
    """The same logits and embeddings as at full length, in the rows' order, up to float
    rounding (each query sees the same attention blocks)."""
    data = _varied_lengths()
    config = CONFIG.replace(attention_query_chunk=64)
    model = heads.DecoderClassifier(config, num_classes=2, pad_id=0, pooling=pooling)
    batcher = batchers.SequenceBatcher.for_data(data, batch_size=4, pad_id=0)
    full = dataclasses.replace(batcher, length_multiple=batcher.length)
    first, _ = next(batcher.batches(np.arange(1)))
    state = placement.DEFAULT.init_state(model, first, 0, optax.set_to_zero())
    rows = np.random.default_rng(1).permutation(13)
    by_length = classifier.evaluate(state, batcher, rows, with_embeddings=True)
    padded = classifier.evaluate(state, full, rows, with_embeddings=True)
    assert {b["inputs"].shape[1] for b, _ in full.eval_batches(rows)} == {batcher.length}
    np.testing.assert_allclose(by_length["logits"], padded["logits"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(by_length["embeddings"], padded["embeddings"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(by_length["loss"], padded["loss"], rtol=1e-6)
    assert by_length["logits"].shape == (13, 2)
    # The frozen protocol's pass: the same embeddings from one forward pass, no logits.
    only = classifier.evaluate(state, batcher, rows, with_embeddings=True, with_logits=False)
    assert set(only) == {"embeddings"}
    np.testing.assert_array_equal(only["embeddings"], by_length["embeddings"])


def test_decoder_classifier_overfits_eight_programs():
    data, tok = _data()
    split = {"train": np.arange(8), "validation": np.arange(8), "test": np.arange(8)}
    model = heads.DecoderClassifier(CONFIG, num_classes=2, pad_id=tok.pad_id)
    batcher = batchers.SequenceBatcher.for_data(data, batch_size=4, pad_id=tok.pad_id)
    config = classifier.TrainConfig(epochs=40, batch_size=4, learning_rate=3e-3)
    result = classifier.fit(model, data, split, config, batcher=batcher)
    assert (result["test_logits"].argmax(-1) == LABELS).all()
    assert result["test_embeddings"].shape == (8, 32)


def test_pretrained_decoder_goes_in_under_decoder(tmp_path):
    pretrained = decoder.init_params(CONFIG, jax.random.key(42))
    hf.save(CONFIG, pretrained, tmp_path, "codeshell")
    config, loaded = hf.load(tmp_path)
    data, tok = _data()
    split = {"train": np.arange(6), "validation": np.arange(6, 8), "test": np.arange(6, 8)}
    model = heads.DecoderClassifier(config, num_classes=2, pad_id=tok.pad_id, pooling="mean")
    batcher = batchers.SequenceBatcher.for_data(data, batch_size=4, pad_id=tok.pad_id)
    frozen = classifier.TrainConfig(epochs=1, batch_size=4, learning_rate=0.0)
    result = classifier.fit(
        model,
        data,
        split,
        frozen,
        batcher=batcher,
        initial_params=lambda p: {**p, "decoder": loaded},
    )
    for a, b in zip(jax.tree.leaves(result["params"]["decoder"]), jax.tree.leaves(pretrained)):
        np.testing.assert_array_equal(a, b)


def test_llm_probe_runs_from_gin_on_devmap(raw_dir, tfds_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CODEPROP_TFDS_DIR", str(tfds_dir))
    results = main.run([TINY_DEVMAP], _small(raw_dir), str(tmp_path), [str(REPO)])
    (fold,) = results["folds"]
    assert (fold["train"], fold["validation"], fold["test"]) == (551, 61, 68)
    assert 0.0 <= fold["accuracy"] <= 1.0 and "speedup_mean" in results["aggregate"]
    report = results["data"]["sequences"]
    assert report["examples"] == 680 and report["distinct_sources"] == 247
    assert 0 < report["truncated_sources"] <= 247 and report["max_tokens"] == 64
    assert results["representation"] == "tokens" and "aux inputs" in results["model"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["settings"]["decoder"]["num_kv_heads"] == 2
    emb = np.load(tmp_path / "embeddings.npz")
    assert emb["embeddings"].shape == (680, 32) and (emb["test_fold"] == 0).sum() == 68


def test_bfloat16_fine_tuning_with_remat_still_learns():
    data, tok = _data()
    split = {"train": np.arange(8), "validation": np.arange(8), "test": np.arange(8)}
    bf16 = CONFIG.replace(dtype="bfloat16", remat="full")
    model = heads.DecoderClassifier(bf16, num_classes=2, pad_id=tok.pad_id)
    batcher = batchers.SequenceBatcher.for_data(data, batch_size=4, pad_id=tok.pad_id)
    config = classifier.TrainConfig(epochs=40, batch_size=4, learning_rate=3e-3)
    result = classifier.fit(model, data, split, config, batcher=batcher)
    history = result["history"]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert (result["test_logits"].argmax(-1) == LABELS).mean() >= 0.875  # chance: 0.5
    # Master weights stay float32.
    assert {leaf.dtype for leaf in jax.tree.leaves(result["params"])} == {np.dtype("float32")}


def test_the_probe_prints_its_memory_plan_and_refuses_what_cannot_fit(
    raw_dir, tfds_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("CODEPROP_TFDS_DIR", str(tfds_dir))
    bindings = _small(raw_dir) + [
        "llm_probe.run_llm_probe.dtype = 'bfloat16'",
        "llm_probe.run_llm_probe.remat = 'full'",
        "llm_probe.run_llm_probe.device_memory_gib = 0.001",  # 1 MiB
    ]
    with pytest.raises(memory_plan.MemoryPlanError, match=r"does not fit the device: it needs"):
        main.run([TINY_DEVMAP], bindings, str(tmp_path), [str(REPO)])
    printed = capsys.readouterr().out
    assert "memory per device (mesh data 1 x fsdp 1 x tensor 1):" in printed
    assert "activations (estimate, 32 x 64 tokens)" in printed


def test_a_checkpoint_of_another_model_than_the_gin_file_names_is_refused(
    raw_dir, tfds_dir, tmp_path, monkeypatch
):
    from codeprop.checkpoints import hf_config
    from codeprop.probes import llm_probe

    monkeypatch.setenv("CODEPROP_TFDS_DIR", str(tfds_dir))
    hf.save(CONFIG, decoder.init_params(CONFIG, jax.random.key(0)), tmp_path / "ckpt", "codeshell")
    named = CONFIG.replace(num_layers=3, num_kv_heads=4)
    with pytest.raises(ValueError, match="is not the model the gin file names") as e:
        llm_probe.run_llm_probe(
            workdir=tmp_path / "run",
            benchmark="devmap/amd",
            train=classifier.TrainConfig(epochs=1),
            decoder=named,
            checkpoint=str(tmp_path / "ckpt"),
            tokenizer="bytes",
            raw_dir=str(raw_dir),
        )
    assert "num_layers: expected 3, checkpoint 2" in str(e.value)
    assert "num_kv_heads: expected 4, checkpoint 2" in str(e.value)
    # How the model runs (numerics) is not what it is.
    loaded, _ = hf.load(tmp_path / "ckpt")
    assert hf_config.differences(CONFIG.replace(dtype="bfloat16", remat="full"), loaded) == []
