"""Every user file with bad content gets its subsystem's error naming the file: never a
bare JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError or a library's own.

Each case writes one kind of file with each kind of bad content (bytes that are not
UTF-8, not JSON, JSON of the wrong type, nothing at all, binary garbage) and calls the
public function that reads it.
"""

import gzip
import json
import pathlib

import jax
import pytest

from codeprop.analysis import comparison, embedding_files
from codeprop.checkpoints import hf
from codeprop.corpus import quality_model
from codeprop.data import json_files
from codeprop.evals import execute
from codeprop.models import decoder
from codeprop.recipes import arms, workdir
from codeprop.tokens import tokenization
from codeprop.train import checkpointing

CONTENTS = {
    "latin1": b'{"a": "caf\xe9"}',
    "not_json": b"{not json",
    "a_list": b"[1, 2]",
    "empty": b"",
    "binary": b"\x00\x01\x02garbage\xff",
}
TINY = decoder.tiny(vocab_size=64).replace(embed_dim=16, mlp_dim=32, num_layers=1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf")
    hf.save(TINY, decoder.init_params(TINY, jax.random.key(0)), path, "codeshell")
    return path


def _copy(source: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    target.mkdir()
    for file in source.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    return target


def _hf_config(tmp, checkpoint, data):
    (_copy(checkpoint, tmp / "ckpt") / "config.json").write_bytes(data)
    return tmp / "ckpt" / "config.json", lambda: hf.load(tmp / "ckpt")


def _hf_weights(tmp, checkpoint, data):
    (_copy(checkpoint, tmp / "ckpt") / "model.safetensors").write_bytes(data)
    return tmp / "ckpt" / "model.safetensors", lambda: hf.load(tmp / "ckpt")


def _hf_index(tmp, checkpoint, data):
    directory = _copy(checkpoint, tmp / "ckpt")
    (directory / "model.safetensors.index.json").write_bytes(data)
    return directory / "model.safetensors.index.json", lambda: hf.load(directory)


def _tokenizer_json(tmp, checkpoint, data):
    (tmp / "tokenizer.json").write_bytes(data)
    return tmp / "tokenizer.json", lambda: tokenization.load(str(tmp / "tokenizer.json"))


def _sentencepiece(tmp, checkpoint, data):
    (tmp / "code.model").write_bytes(data)
    return tmp / "code.model", lambda: tokenization.load(str(tmp / "code.model"))


def _model_config(tmp, checkpoint, data):
    (tmp / checkpointing.MODEL_CONFIG).write_bytes(data)
    return tmp / checkpointing.MODEL_CONFIG, lambda: checkpointing.check_workdir(tmp, TINY)


def _arm_results(tmp, checkpoint, data):
    (tmp / "results.json").write_bytes(data)
    return tmp / "results.json", lambda: comparison.load_arm("a", tmp, "devmap/amd", "kfold", 204)


def _embeddings(tmp, checkpoint, data):
    (tmp / "embeddings.npz").write_bytes(data)
    return tmp / "embeddings.npz", lambda: embedding_files.load(tmp / "embeddings.npz")


def _samples(tmp, checkpoint, data):
    (tmp / "samples.jsonl").write_bytes(data + b"\n")
    return tmp / "samples.jsonl", lambda: execute.read_samples(tmp / "samples.jsonl", [])


def _scorer(tmp, checkpoint, data):
    (tmp / "scorer.json").write_bytes(data)
    return tmp / "scorer.json", lambda: quality_model.QualityScorer.load(tmp)


def _annotations(tmp, checkpoint, data):
    (tmp / "labels.jsonl").write_bytes(data + b"\n")
    return tmp / "labels.jsonl", lambda: quality_model.read_annotations(tmp / "labels.jsonl")


def _kept(tmp, checkpoint, data):
    (tmp / "kept.jsonl").write_bytes(data + b"\n")
    return tmp / "kept.jsonl", lambda: list(tokenization.read_kept(tmp / "kept.jsonl"))


def _run_status(tmp, checkpoint, data):
    (tmp / workdir.STATUS).write_bytes(data)
    return tmp / workdir.STATUS, lambda: workdir.claimed(tmp, "x = 1\n").__enter__()


def _arm_record(tmp, checkpoint, data):
    (tmp / "run.json").write_bytes(data)
    return tmp / "run.json", lambda: arms.run_record(tmp)


FILES = {
    "hf config.json": (_hf_config, hf.CheckpointError),
    "hf weights": (_hf_weights, hf.CheckpointError),
    "hf index": (_hf_index, hf.CheckpointError),
    "tokenizer.json": (_tokenizer_json, tokenization.TokenizerError),
    "sentencepiece model": (_sentencepiece, tokenization.TokenizerError),
    "pretraining model_config.json": (_model_config, hf.CheckpointError),
    "arm results.json": (_arm_results, embedding_files.EmbeddingFileError),
    "embeddings.npz": (_embeddings, embedding_files.EmbeddingFileError),
    "samples JSONL": (_samples, execute.SamplesError),
    "scorer.json": (_scorer, ValueError),
    "annotations JSONL": (_annotations, ValueError),
    "corpus kept.jsonl": (_kept, tokenization.TokenizerError),
    "workdir run_status.json": (_run_status, workdir.WorkdirError),
    "arm run.json": (_arm_record, workdir.WorkdirError),
}
# An empty JSONL file is a file of no records, not an error.
EMPTY_IS_FINE = {"samples JSONL", "annotations JSONL", "corpus kept.jsonl"}


@pytest.mark.parametrize("content", CONTENTS, ids=str)
@pytest.mark.parametrize("kind", FILES, ids=str)
def test_bad_content_is_the_subsystems_error_naming_the_file(kind, content, checkpoint, tmp_path):
    make, error = FILES[kind]
    path, read = make(tmp_path, checkpoint, CONTENTS[content])
    if content == "empty" and kind in EMPTY_IS_FINE:
        read()
        return
    with pytest.raises(error) as raised:
        read()
    assert str(path) in str(raised.value), raised.value


def test_json_lines_name_the_line_and_a_truncated_gz_is_an_error(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\n[2]\n')
    with pytest.raises(KeyError, match=r"x.jsonl:3: a JSON list where a JSON object is expected"):
        list(json_files.lines(path, KeyError))
    packed = tmp_path / "y.jsonl.gz"
    packed.write_bytes(gzip.compress(b'{"a": 1}\n' * 1000)[:60])
    with pytest.raises(ValueError, match=r"y.jsonl.gz: cannot be read after line \d+"):
        list(json_files.lines(packed))
    (tmp_path / "ok.json").write_text(json.dumps({"k": [1]}))
    assert json_files.read_object(tmp_path / "ok.json") == {"k": [1]}
    with pytest.raises(ValueError, match=r"missing.json: cannot be read \(No such file"):
        json_files.read(tmp_path / "missing.json")
