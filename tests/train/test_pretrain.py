"""Pretraining: schedule, weight decay, accumulation, exact resume, faults, sharding."""

import functools
import json
import os
import shutil
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from codeprop.models import decoder
from codeprop.train import checkpointing, optimizers, partitioning, pretrain

from conftest import REPO, run_on_simulated_devices

MODEL = decoder.tiny(vocab_size=128).replace(embed_dim=32, mlp_dim=64, num_layers=2)
DATA = functools.partial(pretrain.synthetic_batches, vocab_size=128)
OPT = optimizers.OptimizerConfig(warmup_steps=2, total_steps=8)
RUN = dict(model=MODEL, steps=4, batch_size=4, seq_len=16, optimizer=OPT, log_every=2)


def _train(workdir, data=DATA, **changes):
    return pretrain.train(workdir=str(workdir), **{**RUN, "data": data, **changes})


def _params(workdir):
    step, params = checkpointing.load_params(workdir)
    return step, jax.tree.leaves(params)


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_schedule_warms_up_linearly_then_decays_to_the_final_rate():
    config = optimizers.OptimizerConfig(
        peak_learning_rate=3e-4, final_learning_rate=3e-5, warmup_steps=10, total_steps=110
    )
    lr = optimizers.schedule(config)
    assert float(lr(0)) == 0.0
    assert float(lr(5)) == pytest.approx(1.5e-4)
    assert float(lr(10)) == pytest.approx(3e-4)
    assert float(lr(60)) == pytest.approx(3e-5 + (3e-4 - 3e-5) / 2, rel=1e-5)  # cosine midpoint
    assert float(lr(110)) == pytest.approx(3e-5) and float(lr(500)) == pytest.approx(3e-5)


def test_weight_decay_shrinks_matrices_and_spares_biases_and_norms():
    config = optimizers.OptimizerConfig(warmup_steps=0, total_steps=10, weight_decay=0.5)
    tx = optimizers.optimizer(config)
    params = {"kernel": jnp.ones((2, 3)), "bias": jnp.ones((3,)), "scale": jnp.ones((3,))}
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    assert float(updates["kernel"][0, 0]) == pytest.approx(-3e-4 * 0.5)
    assert float(jnp.abs(updates["bias"]).max()) == 0.0
    assert float(jnp.abs(updates["scale"]).max()) == 0.0


def test_accumulated_micro_batches_give_the_full_batch_step():
    tx = optimizers.optimizer(OPT)
    mesh = partitioning.make_mesh(partitioning.MeshConfig(), jax.devices()[:1])
    shardings = pretrain.state_shardings(MODEL, tx, mesh)
    state = pretrain.init_state(MODEL, tx, 0, shardings)
    batch = next(DATA("train", 8, 16, 0))
    batch["decoder_loss_weights"][5, 10:] = 0.0  # uneven real tokens per micro-batch
    model = decoder.Decoder(MODEL)
    one, m1 = pretrain.train_step(state, batch, model=model, tx=tx)
    four, m4 = pretrain.train_step(state, batch, model=model, tx=tx, accumulation=4)
    assert float(m1["tokens"]) == float(m4["tokens"]) == 8 * 16 - 6
    np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-6)
    np.testing.assert_allclose(m1["grad_norm"], m4["grad_norm"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(four.params)):
        np.testing.assert_allclose(a, b, atol=1e-7)


def test_resume_continues_bitwise(tmp_path):
    straight = _train(tmp_path / "straight", checkpoint_every=2)
    assert straight["step"] == 4 and np.isfinite(straight["loss"])
    _train(tmp_path / "resumed", steps=2, checkpoint_every=100)
    resumed = _train(tmp_path / "resumed", checkpoint_every=100)
    assert resumed["step"] == 4
    _assert_same(_params(tmp_path / "straight")[1], _params(tmp_path / "resumed")[1])
    assert resumed["loss"] == straight["loss"]
    events = list((tmp_path / "straight").glob("events.out.tfevents.*"))
    summary = json.loads((tmp_path / "straight" / "summary.json").read_text())
    assert (
        events
        and summary["step"] == 4
        and summary["parameters"]
        == decoder.num_params(decoder.init_params(MODEL, jax.random.key(0)))
    )


def test_a_corrupt_checkpoint_is_reported_and_the_previous_one_used(tmp_path, caplog):
    _train(tmp_path / "straight", checkpoint_every=2)
    _train(tmp_path / "broken", checkpoint_every=2, steps=3)  # checkpoints 2 and 3
    for path in (tmp_path / "broken" / "checkpoints" / "3" / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\0garbage")
    resumed = _train(tmp_path / "broken", checkpoint_every=2)
    assert "checkpoint 3" in caplog.text and "does not restore" in caplog.text
    assert resumed["step"] == 4
    _assert_same(_params(tmp_path / "straight")[1], _params(tmp_path / "broken")[1])


def test_a_corrupt_newest_step_is_moved_aside_and_saved_anew(tmp_path, caplog):
    # Resuming from step 2 trains step 3 again and saves it: with the corrupt step 3 still
    # in checkpoints/, orbax refused the save (StepAlreadyExistsError) on every resume.
    _train(tmp_path / "straight", checkpoint_every=1)
    _train(tmp_path / "broken", checkpoint_every=1, steps=3)  # checkpoints 1, 2 and 3
    for path in (tmp_path / "broken" / "checkpoints" / "3" / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\0garbage")
    resumed = _train(tmp_path / "broken", checkpoint_every=1)
    aside = tmp_path / "broken" / checkpointing.UNRESTORABLE / "3-0"
    assert "checkpoint 3" in caplog.text and str(aside) in caplog.text
    assert (aside / "state").is_dir()  # kept for inspection
    assert resumed["step"] == 4
    assert {"3", "4"} <= {p.name for p in (tmp_path / "broken" / "checkpoints").iterdir()}
    _assert_same(_params(tmp_path / "straight")[1], _params(tmp_path / "broken")[1])
    again = _train(tmp_path / "broken", checkpoint_every=1, steps=5)  # and once more
    assert again["step"] == 5 and _params(tmp_path / "broken")[0] == 5


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    def poisoned(split, batch_size, seq_len, start_batch):
        for i, batch in enumerate(DATA(split, batch_size, seq_len, start_batch), start_batch):
            if i == 2:
                batch["decoder_loss_weights"][0, 0] = np.nan
            yield batch

    with pytest.raises(pretrain.NonFiniteLossError, match=r"loss is nan at step 3.*step 2"):
        _train(tmp_path, data=poisoned, checkpoint_every=2, steps=6)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["2"]


def test_sigterm_saves_and_stops_then_the_run_resumes_exactly(tmp_path):
    def preempting(split, batch_size, seq_len, start_batch):
        for i, batch in enumerate(DATA(split, batch_size, seq_len, start_batch), start_batch):
            if i == 1 and split == "train" and start_batch == 0:
                os.kill(os.getpid(), signal.SIGTERM)  # arrives during step 2
            yield batch

    stopped = _train(tmp_path / "run", data=preempting, checkpoint_every=100)
    assert stopped["preempted"] and stopped["step"] == 2
    finished = _train(tmp_path / "run", data=preempting, checkpoint_every=100)
    assert finished["step"] == 4 and "preempted" not in finished
    _train(tmp_path / "straight", checkpoint_every=100)
    _assert_same(_params(tmp_path / "straight")[1], _params(tmp_path / "run")[1])


def test_a_workdir_of_another_model_is_refused_with_the_differences(tmp_path):
    _train(tmp_path, steps=1)
    with pytest.raises(ValueError, match=r"embed_dim: 32 -> 64.*mlp_dim: 64 -> 128"):
        _train(tmp_path, model=MODEL.replace(embed_dim=64, mlp_dim=128))
    # Numerics and kernels may change between a run and its resumption.
    assert _train(tmp_path, model=MODEL.replace(attention_impl="xla"), steps=2)["step"] == 2


def test_partition_specs_of_the_parameters():
    devices = np.asarray(jax.devices()[:1] * 1)
    mesh = jax.sharding.Mesh(devices.reshape(1, 1, 1), partitioning.MESH_AXES)
    specs = jax.tree.map(
        lambda s: tuple(s.spec),
        pretrain.state_shardings(MODEL, optimizers.optimizer(OPT), mesh).params,
    )
    attn = specs["blocks_0"]["attention"]
    assert attn["query"]["kernel"] == ("fsdp", "tensor", None)
    assert attn["key"]["kernel"] == ("fsdp", "tensor", None)
    assert attn["out"]["kernel"] == ("tensor", None, "fsdp")
    assert specs["blocks_0"]["mlp"]["fc"]["kernel"] == ("fsdp", "tensor")
    assert specs["blocks_0"]["mlp"]["proj"]["kernel"] == ("tensor", "fsdp")
    assert specs["embedder"]["embedding"] == ("tensor", "fsdp")
    assert specs["final_norm"]["scale"] == (None,)


SHARDED_CHECK = """
import functools, json, sys
import jax, numpy as np
from codeprop.models import decoder
from codeprop.train import optimizers, partitioning, pretrain
import flax.linen as nn
model_config = decoder.tiny(vocab_size=128).replace(embed_dim=32, mlp_dim=64, num_layers=2)
tx = optimizers.optimizer(optimizers.OptimizerConfig(warmup_steps=0, total_steps=4))
batch = next(pretrain.synthetic_batches("train", 8, 16, 0, vocab_size=128))
out = {}
for name, mesh_config, devices in [
    ("single", partitioning.MeshConfig(1, 1, 1), jax.devices()[:1]),
    ("sharded", partitioning.MeshConfig(2, 2, 2), jax.devices()),
]:
    mesh = partitioning.make_mesh(mesh_config, devices)
    shardings = pretrain.state_shardings(model_config, tx, mesh)
    state = pretrain.init_state(model_config, tx, 0, shardings)
    batch_shardings = {k: partitioning.batch_sharding(mesh) for k in batch}
    module = decoder.Decoder(model_config)
    with nn.logical_axis_rules(partitioning.RULES), jax.set_mesh(mesh):
        step = jax.jit(
            functools.partial(pretrain.train_step, model=module, tx=tx, accumulation=2),
            in_shardings=(shardings, batch_shardings), out_shardings=(shardings, None))
        for _ in range(2):
            state, metrics = step(state, jax.device_put(batch, batch_shardings))
    kernel = state.params["blocks_0"]["attention"]["query"]["kernel"]
    out[name] = {
        "loss": float(metrics["loss"]),
        "params": [np.asarray(x).tolist() for x in jax.tree.leaves(state.params)],
        "kernel_shards": len(kernel.addressable_shards),
        "kernel_shard_shape": list(kernel.addressable_shards[0].data.shape),
    }
json.dump(out, sys.stdout)
"""


def test_the_sharded_step_equals_the_single_device_step():
    out = run_on_simulated_devices(SHARDED_CHECK)
    single, sharded = out["single"], out["sharded"]
    assert sharded["kernel_shards"] == 8 and sharded["kernel_shard_shape"] == [16, 2, 8]
    assert single["kernel_shard_shape"] == [32, 4, 8]
    assert sharded["loss"] == pytest.approx(single["loss"], rel=1e-6)
    for a, b in zip(single["params"], sharded["params"]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-6)


def test_load_params_restores_the_decoder_for_generation(tmp_path):
    _train(tmp_path, steps=2)
    step, params = checkpointing.load_params(tmp_path)
    assert step == 2
    logits = decoder.Decoder(MODEL).apply({"params": params}, jnp.zeros((1, 5), jnp.int32))
    assert logits.shape == (1, 5, 128) and bool(jnp.isfinite(logits).all())
    shutil.rmtree(tmp_path / "checkpoints")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpointing.load_params(tmp_path)


def test_context_extension_starts_from_the_shorter_runs_parameters(tmp_path):
    _train(tmp_path / "short", steps=2)
    longer = MODEL.replace(max_positions=64, rope_scaling="linear", rope_scaling_factor=2.0)
    frozen = optimizers.OptimizerConfig(peak_learning_rate=0.0, warmup_steps=0, total_steps=4)
    summary = _train(
        tmp_path / "long",
        model=longer,
        seq_len=64,
        steps=1,
        optimizer=frozen,
        init_from=str(tmp_path / "short"),
    )
    assert summary["step"] == 1 and np.isfinite(summary["loss"])
    # With a zero learning rate the one step keeps the short run's parameters exactly.
    _assert_same(_params(tmp_path / "short")[1], _params(tmp_path / "long")[1])
    with pytest.raises(ValueError, match="init_from=.*num_layers: 2 -> 3"):
        _train(
            tmp_path / "other", model=MODEL.replace(num_layers=3), init_from=str(tmp_path / "short")
        )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_compute_the_loss_of_one(tmp_path):
    """Multi-controller JAX on this machine: 2 processes (CPU collectives over gloo), one
    device each, data-parallel over both; the same run in one process."""
    command = [
        sys.executable, "-m", "codeprop.main",
        "--gin_file=gin/experiments/pretrain_tiny_synthetic.gin",
        "--gin_bindings=STEPS = 3", "--gin_bindings=SEQ_LEN = 32",
        "--gin_bindings=pretrain.train.eval_every = 0",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("XLA_FLAGS", None)
    single = subprocess.run(
        [*command, f"--workdir={tmp_path / 'one'}"], env=env, cwd=REPO, capture_output=True
    )
    assert single.returncode == 0, single.stderr[-3000:]
    port = _free_port()
    procs = [
        subprocess.Popen(
            [*command, f"--workdir={tmp_path / 'two'}"],
            env={
                **env,
                "CODEPROP_COORDINATOR_ADDRESS": f"localhost:{port}",
                "CODEPROP_NUM_PROCESSES": "2",
                "CODEPROP_PROCESS_ID": str(rank),
            },
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for rank in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["step"] == two["step"] == 3
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)


def test_seqio_batches_are_deterministic_and_skip_exactly(tmp_path):
    from codeprop.corpus import pipeline
    from codeprop.tokens import tokenization

    from conftest import SMALL_C_PROGRAMS

    (tmp_path / "code.model").write_bytes(
        tokenization.train_sentencepiece(SMALL_C_PROGRAMS * 40, 400)
    )
    repo = tmp_path / "repo"
    repo.mkdir()
    for i, text in enumerate(SMALL_C_PROGRAMS * 4):
        (repo / f"p{i}.c").write_text(f"// file {i}\n" + text * (1 + i % 3))
    pipeline.run([str(repo)], tmp_path / "corpus", pipeline.CorpusConfig(quality_filter=False))
    data = functools.partial(
        pretrain.seqio_batches,
        corpus_dir=str(tmp_path / "corpus"),
        vocabulary_file=str(tmp_path / "code.model"),
        mixture="test_pretrain_corpus",
    )

    def take(start, n):
        batches = data("train", 2, 64, start)
        return [next(batches) for _ in range(n)]

    first = take(0, 6)  # more batches than one pass over the corpus: repeated
    assert set(first[0]) == set(pretrain.FEATURES)
    assert first[0]["decoder_input_tokens"].shape == (2, 64)
    assert (first[0]["decoder_segment_ids"] > 0).any()
    for a, b in zip(first, take(0, 6)):  # the same seed gives the same batches
        for name in pretrain.FEATURES:
            np.testing.assert_array_equal(a[name], b[name])
    for a, b in zip(first[4:], take(4, 2)):  # resuming at batch 4 skips exactly 4
        for name in pretrain.FEATURES:
            np.testing.assert_array_equal(a[name], b[name])


def test_a_relative_workdir_trains_and_restores(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # orbax itself takes absolute paths only
    summary = _train("relative/run", steps=2)
    assert summary["step"] == 2
    step, _ = checkpointing.load_params("relative/run")
    assert step == 2 and (tmp_path / "relative" / "run" / "checkpoints" / "2").is_dir()
