"""Perplexity filtering with a small decoder trained here on C."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from codeprop.checkpoints import hf
from codeprop.corpus import beam, perplexity, pipeline
from codeprop.models import decoder
from codeprop.tokens import tokenization

from conftest import SMALL_C_PROGRAMS

CONFIG = decoder.tiny(vocab_size=263).replace(embed_dim=64, mlp_dim=128, num_layers=2)


@pytest.fixture(scope="module")
def c_model(tmp_path_factory):
    """A byte-level decoder fitted to small C programs, saved as a CodeShell checkpoint."""
    tok = tokenization.ByteTokenizer()
    seqs = [tok.encode(p) for p in SMALL_C_PROGRAMS]
    width = max(map(len, seqs))
    tokens = np.full((len(seqs), width), tok.pad_id, np.int32)
    weights = np.zeros((len(seqs), width - 1), np.float32)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = s
        weights[i, : len(s) - 1] = 1
    model, tx = decoder.Decoder(CONFIG), optax.adam(3e-3)

    def loss(p):
        logits = model.apply({"params": p}, tokens[:, :-1])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])
        return jnp.sum(ce * weights) / weights.sum()

    @jax.jit
    def step(p, o):
        updates, o = tx.update(jax.grad(loss)(p), o)
        return optax.apply_updates(p, updates), o

    params = decoder.init_params(CONFIG, jax.random.key(0))
    opt = tx.init(params)
    for _ in range(150):
        params, opt = step(params, opt)
    path = tmp_path_factory.mktemp("ppl") / "c_model"
    hf.save(CONFIG, params, path, "codeshell")
    return path


def test_perplexity_ranks_code_below_noise(c_model):
    scorer = perplexity.Scorer(perplexity.PerplexityConfig(str(c_model)))
    rng = np.random.default_rng(0)
    noise = ["".join(chr(c) for c in rng.integers(33, 127, size=120)) for _ in range(4)]
    values = scorer.score(SMALL_C_PROGRAMS[:4] + noise + ["x"])
    assert np.all(values[:4] < 5) and np.all(values[4:8] > 20)  # fitted code vs random bytes
    assert np.isnan(values[8])  # one token: nothing to predict
    high = perplexity.above_percentile(values, 50)
    assert high.tolist() == [False] * 4 + [True] * 5


def test_perplexity_stage_in_process_and_on_beam(c_model, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    rng = np.random.default_rng(1)
    for i, program in enumerate(SMALL_C_PROGRAMS):
        (repo / f"p{i}.c").write_text(program)
    for i in range(2):  # C-looking files of random words: in range for the rules, odd to the model
        words = ["".join(chr(c) for c in rng.integers(97, 123, size=6)) for _ in range(48)]
        lines = [" ".join(words[j : j + 6]) for j in range(0, 48, 6)]
        (repo / f"q{i}.c").write_text("".join(f"int {line};\n" for line in lines))
    settings = perplexity.PerplexityConfig(str(c_model), percentile=75.0)
    config = pipeline.CorpusConfig(quality_filter=False, perplexity=settings)
    local = pipeline.run([str(repo)], tmp_path / "local", config)
    dropped = local["stages"]["perplexity"]["total"]["dropped"]
    assert (
        list(dropped) == ["perplexity_above_p75"] and dropped["perplexity_above_p75"]["docs"] >= 2
    )
    records = [
        json.loads(x) for x in (tmp_path / "local" / "dropped.jsonl").read_text().splitlines()
    ]
    by_perplexity = {r["path"].rsplit("/", 1)[1] for r in records if r["stage"] == "perplexity"}
    assert {"q0.c", "q1.c"} <= by_perplexity
    beam.run_beam([str(repo)], tmp_path / "beam", config)
    for name in ("kept.jsonl", "dropped.jsonl"):
        beam_lines = sorted((tmp_path / "beam" / name).read_text().splitlines())
        assert beam_lines == sorted((tmp_path / "local" / name).read_text().splitlines())
