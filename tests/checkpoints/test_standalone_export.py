"""A decoder with codeprop's SentencePiece tokenizer, exported for stock transformers: its
tokenizer encodes real code to the same ids, and transformers alone (no codeprop, no
remote code) generates the same greedy tokens as codeprop."""

import json
import pathlib
import subprocess
import sys
import sysconfig

import jax
import numpy as np
import pytest

from codeprop.checkpoints import hf, hf_tokenizer
from codeprop.models import decoder, generation
from codeprop.tokens import tokenization

STDLIB = pathlib.Path(sysconfig.get_paths()["stdlib"])
HEADERS = pathlib.Path(sysconfig.get_paths()["include"])
EXTRA = "  x = 12345;\r\n\t\tπ ≈ 3.14 ünïcødé 日本語 🙂 <fim_prefix>a<fim_suffix>b<fim_middle>c"


def _files(pattern_root: pathlib.Path, pattern: str, count: int) -> list[str]:
    paths = sorted(pattern_root.glob(pattern))[:count]
    assert len(paths) == count, f"{pattern_root}/{pattern}: fewer than {count} files"
    return [p.read_text(errors="replace") for p in paths]


@pytest.fixture(scope="module")
def sentencepiece(tmp_path_factory):
    """A 2,000-piece code tokenizer trained on 40 stdlib modules and 20 C headers, and
    held-out texts (other modules and headers, and odd characters)."""
    train = _files(STDLIB / "json", "*.py", 5) + _files(STDLIB, "[a-d]*.py", 35)
    train += _files(HEADERS, "*.h", 20)
    held_out = _files(STDLIB / "email", "*.py", 12) + _files(HEADERS, "cpython/*.h", 12)
    model = tmp_path_factory.mktemp("sp") / "code.model"
    model.write_bytes(tokenization.train_sentencepiece(train, vocab_size=2000))
    return model, held_out + [EXTRA, "", " ", "a  b   c\n\n\n"]


def test_the_tokenizer_json_encodes_and_decodes_as_sentencepiece(sentencepiece):
    model, texts = sentencepiece
    ours = tokenization.SentencePieceTokenizer(model)
    theirs = hf_tokenizer.build(model)
    counted = 0
    for text in texts:
        ids = ours.encode(text)
        assert theirs.encode(text, add_special_tokens=False).ids == ids, text[:80]
        assert theirs.decode(ids, skip_special_tokens=False) == text
        counted += len(ids)
    assert counted > 20_000
    specials = [ours.token_to_id(t) for t in tokenization.SPECIALS]
    assert [theirs.token_to_id(t) for t in tokenization.SPECIALS] == specials


STANDALONE = """
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
path, prompts = sys.argv[1], json.loads(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=False)
out = []
for prompt in prompts:
    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    new = model.generate(**enc, max_new_tokens=20, do_sample=False)[0, enc["input_ids"].shape[1]:]
    out.append({"prompt_ids": enc["input_ids"][0].tolist(), "new": new.tolist()})
assert not any(m.startswith("codeprop") for m in sys.modules)
print(json.dumps({"class": type(model).__name__, "out": out}))
"""


def test_stock_transformers_loads_the_export_alone_and_generates_our_greedy_tokens(
    sentencepiece, tmp_path
):
    model_file, _ = sentencepiece
    tokenizer = tokenization.SentencePieceTokenizer(model_file)
    config = decoder.DecoderConfig(
        vocab_size=tokenizer.vocab_size, embed_dim=64, mlp_dim=256, num_layers=2,
        num_heads=4, num_kv_heads=2, max_positions=256, initializer_range=0.2,
    )  # fmt: skip
    params = decoder.init_params(config, jax.random.key(3))
    out = tmp_path / "hf"
    hf.export(config, params, out, model_file)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "model.safetensors", "generation_config.json", *hf_tokenizer.FILES]
    )
    assert json.loads((out / "config.json").read_text())["model_type"] == "starcoder2"
    prompts = ["int main(void) {\n    int n = 10;", "def add(a, b):\n", "#include <stdio.h>\n"]
    run = subprocess.run(
        [sys.executable, "-c", STANDALONE, str(out), json.dumps(prompts)],
        capture_output=True, text=True, cwd=tmp_path, check=True, timeout=600,
    )  # fmt: skip
    theirs = json.loads(run.stdout.strip().splitlines()[-1])
    assert theirs["class"] == "Starcoder2ForCausalLM"
    sampling = generation.SamplingConfig(max_new_tokens=20, eos_id=tokenizer.eos_id)
    ids = [tokenizer.encode(p) for p in prompts]
    ours = generation.generate(config, params, ids, sampling, seed=0)
    for prompt_ids, row, their in zip(ids, ours.tokens, theirs["out"], strict=True):
        assert their["prompt_ids"] == prompt_ids
        new = their["new"][:-1] if their["new"][-1:] == [tokenizer.eos_id] else their["new"]
        assert list(row) == new and len(new) > 0
    reloaded_config, reloaded = hf.load(out)
    assert not hf.hf_config.differences(config, reloaded_config)
    same = jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), b), params, reloaded)
    assert all(jax.tree.leaves(same))


def test_a_tokenizer_larger_than_the_embedding_table_is_refused(sentencepiece, tmp_path):
    model_file, _ = sentencepiece
    config = decoder.tiny(vocab_size=1000)
    params = decoder.init_params(config, jax.random.key(0))
    with pytest.raises(hf.CheckpointError, match=r"code\.model: the tokenizer has 2000 tokens"):
        hf.export(config, params, tmp_path / "hf", model_file)
    assert not (tmp_path / "hf").exists()
