"""seqio Tasks: fill-in-the-middle, end-of-text, packing into decoder features."""

import json

import numpy as np
import pytest
import seqio
import tensorflow as tf

from codeprop.corpus import pipeline
from codeprop.tokens import tokenization
from codeprop.train import input_pipeline

from conftest import SMALL_C_PROGRAMS

TEXTS = [p * 3 for p in SMALL_C_PROGRAMS]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    (root / "model").write_bytes(tokenization.train_sentencepiece(SMALL_C_PROGRAMS * 40, 400))
    repo = root / "repo"
    repo.mkdir()
    for i, text in enumerate(TEXTS):
        (repo / f"p{i}.c").write_text(text)
    config = pipeline.CorpusConfig(quality_filter=False)
    pipeline.run([str(repo)], root / "corpus", config)
    vocab = input_pipeline.CodeVocabulary(root / "model")
    return root, vocab


def _fim(vocab, fim_rate, spm_rate, seed=0):
    ds = tf.data.Dataset.from_tensor_slices(
        {"text": TEXTS, "id": [str(i) for i in range(len(TEXTS))]}
    )
    features = {"targets": seqio.Feature(vocab, add_eos=True, dtype=tf.int32)}
    with seqio.utils.map_seed_manager(seed):
        out = input_pipeline.fim(ds, output_features=features, fim_rate=fim_rate, spm_rate=spm_rate)
    return [x["targets"].tolist() for x in out.as_numpy_iterator()]


def _split(ids, sentinel_ids):
    parts, current = [], []
    for i in ids:
        if i in sentinel_ids:
            parts.append(current)
            current = []
        else:
            current.append(i)
    return [*parts, current]


def test_fim_rates_and_layouts(setup):
    _, vocab = setup
    s = vocab.sentinels()
    plain = _fim(vocab, 0.0, 0.0)
    assert plain == [vocab.encode(t) for t in TEXTS]
    psm = _fim(vocab, 1.0, 0.0)
    for ids, text in zip(psm, TEXTS):
        assert ids[0] == s.prefix and ids.count(s.suffix) == ids.count(s.middle) == 1
        assert ids.index(s.suffix) < ids.index(s.middle)
        _, prefix, suffix, middle = _split(ids, {s.prefix, s.suffix, s.middle})
        assert vocab.decode(prefix) + vocab.decode(middle) + vocab.decode(suffix) == text
    spm = _fim(vocab, 1.0, 1.0)
    for ids, text in zip(spm, TEXTS):
        assert ids[:2] == [s.prefix, s.suffix]
        _, _, suffix, prefix_middle = _split(ids, {s.prefix, s.suffix, s.middle})
        assert vocab.decode(prefix_middle) + vocab.decode(suffix) == text
    assert _fim(vocab, 1.0, 0.0, seed=0) == psm  # seeded
    assert _fim(vocab, 1.0, 0.0, seed=1) != psm


def test_fim_rate_within_tolerance(setup):
    _, vocab = setup
    texts = [f"int v{i} = {i};\n" for i in range(400)]
    ds = tf.data.Dataset.from_tensor_slices({"text": texts, "id": [str(i) for i in range(400)]})
    features = {"targets": seqio.Feature(vocab, add_eos=True, dtype=tf.int32)}
    s = vocab.sentinels()
    with seqio.utils.map_seed_manager(7):
        out = list(
            input_pipeline.fim(
                ds, output_features=features, fim_rate=0.3, spm_rate=0.5
            ).as_numpy_iterator()
        )
    fim = [x["targets"] for x in out if x["targets"][0] == s.prefix]
    assert abs(len(fim) / 400 - 0.3) < 0.07
    spm = sum(x[1] == s.suffix for x in fim)
    assert abs(spm / len(fim) - 0.5) < 0.15


@pytest.mark.parametrize("length", input_pipeline.SEQUENCE_LENGTHS)
def test_mixture_packs_into_decoder_features(setup, length):
    root, vocab = setup
    mixture = input_pipeline.register_corpus(
        "codeprop_test", root / "corpus", root / "model", validation_every=1000
    )
    assert [t.name for t in mixture.tasks] == ["codeprop_test_c"]
    batch = list(
        input_pipeline.packed_dataset("codeprop_test", length, shuffle=False).as_numpy_iterator()
    )
    kept = len((root / "corpus" / "kept.jsonl").read_text().splitlines())
    assert kept >= 3 and len(batch) == 1  # the short programs fit in one row
    row = batch[0]
    names = ["target_tokens", "input_tokens", "loss_weights", "segment_ids", "positions"]
    assert {k: v.shape for k, v in row.items()} == {f"decoder_{n}": (length,) for n in names}
    segments = row["decoder_segment_ids"]
    n = int((segments > 0).sum())
    assert segments.max() == kept and np.all(row["decoder_loss_weights"][n:] == 0)
    ends = np.flatnonzero(np.diff(segments[: n + 1]) != 0)  # last token of each segment
    assert np.all(row["decoder_target_tokens"][ends] == vocab.eos_id)
    assert np.all(row["decoder_positions"][np.flatnonzero(np.diff(segments) > 0) + 1] == 0)


def test_packing_gives_the_expected_segments_and_positions(setup):
    _, vocab = setup
    examples = [{"targets": [11, 12, 13]}, {"targets": [21, 22]}, {"targets": [31, 32, 33, 34]}]
    ds = tf.data.Dataset.from_generator(
        lambda: iter(examples), output_signature={"targets": tf.TensorSpec([None], tf.int32)}
    )
    packed = seqio.LMFeatureConverter(pack=True)(ds, {"targets": 12})
    (row,) = list(packed.as_numpy_iterator())
    np.testing.assert_array_equal(
        row["decoder_target_tokens"], [11, 12, 13, 21, 22, 31, 32, 33, 34, 0, 0, 0]
    )
    np.testing.assert_array_equal(
        row["decoder_input_tokens"], [0, 11, 12, 0, 21, 0, 31, 32, 33, 0, 0, 0]
    )
    np.testing.assert_array_equal(row["decoder_segment_ids"], [1, 1, 1, 2, 2, 3, 3, 3, 3, 0, 0, 0])
    np.testing.assert_array_equal(row["decoder_positions"], [0, 1, 2, 0, 1, 0, 1, 2, 3, 0, 0, 0])
    np.testing.assert_array_equal(row["decoder_loss_weights"], [1] * 9 + [0] * 3)


def test_every_token_of_a_long_document_is_trained_on(setup):
    # Documents longer than the sequence length are split into pieces of that length, not
    # cut to their first piece: with cutting, the pretraining demo (256-token sequences,
    # documents of thousands of tokens) saw only each file's first 256 tokens, about 6
    # times over in 1,000 steps, and its validation loss stayed 2 nats above training.
    root, vocab = setup
    input_pipeline.register_corpus(
        "codeprop_whole", root / "corpus", root / "model", fim_rate=0.0, validation_every=1000
    )
    records = [json.loads(line) for line in (root / "corpus" / "kept.jsonl").open()]
    train = [r for r in records if input_pipeline._split_of(r["id"], 1000) == "train"]
    expected = sum(len(vocab.encode(r["content"])) + 1 for r in train)  # + end of text
    assert max(len(vocab.encode(r["content"])) for r in train) > 3 * 8
    rows = list(
        input_pipeline.packed_dataset("codeprop_whole", 8, shuffle=False).as_numpy_iterator()
    )
    assert sum(int(r["decoder_loss_weights"].sum()) for r in rows) == expected
    # The pieces of one document follow each other, ending with one end-of-text token.
    targets = np.concatenate(
        [r["decoder_target_tokens"][r["decoder_loss_weights"] > 0] for r in rows]
    )
    assert int((targets == vocab.eos_id).sum()) == len(train)


def test_train_sample_is_drawn_like_validation(tmp_path):
    # The code LM's per-language training loss was read from the first tokens of the
    # training split in file order (Python's own C headers first), the held-out loss from
    # a hash-drawn mix of every directory: held-out C came out 0.8 nats *below* training
    # C. `train_sample` draws training documents by a hash as validation does.
    directories = [f"/usr/include/d{i}" for i in range(8)]
    records = [
        {"id": f"{d}/{j}.h", "language": "c", "content": f"int f{j};\n"}
        for d in directories
        for j in range(300)
    ]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "kept.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    def ids(split):
        dataset = input_pipeline.kept_documents(corpus, "c", split, validation_every=10)
        return [x["id"].decode() for x in dataset.as_numpy_iterator()]

    train, validation, sample = set(ids("train")), set(ids("validation")), ids("train_sample")
    assert len(train) + len(validation) == len(records) and not train & validation
    assert set(sample) <= train
    assert 0.6 < len(sample) / len(validation) < 1.6, (len(sample), len(validation))
    # Every directory is in the sample, as in validation; a prefix of the file would hold
    # only the first directory or two.
    assert {s.rsplit("/", 1)[0] for s in sample} == set(directories)
    assert {v.rsplit("/", 1)[0] for v in validation} == set(directories)
    with pytest.raises(ValueError, match="unknown split 'test'"):
        input_pipeline.kept_documents(corpus, "c", "test")
