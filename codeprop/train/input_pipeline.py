"""seqio Tasks and Mixtures of the pretraining corpus, with fill-in-the-middle and packing.

`register_corpus` registers, for a corpus directory written by `codeprop.corpus.pipeline`
(``kept.jsonl``) and a code tokenizer (``*.model``), one Task per language
(``<name>_<language>``) and a Mixture ``<name>`` over them weighted by each language's
tokens after filtering (the corpus report). Each Task reads the kept documents (split by
a hash of their id: 1 in ``validation_every`` to ``validation``; ``train_sample`` is a
hash-drawn part of ``train`` of about the same size, for comparing losses), applies `fim` (seeded:
a document-level character split into prefix / middle / suffix at rate ``fim_rate``,
arranged PSM or SPM — see `codeprop.tokens.fim`), ends each document with
``<|endoftext|>`` and splits it into pieces of the sequence length (`split_to_length`:
no token of a long document is lost; each piece is a segment of its own, positions from
0). `packed_dataset` packs the pieces with seqio's `LMFeatureConverter` into
``decoder_target_tokens``, ``decoder_input_tokens``, ``decoder_loss_weights``,
``decoder_segment_ids`` and ``decoder_positions`` of a fixed length (2048, or 8192 for the
long-context stage).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import seqio
import tensorflow as tf

from codeprop.data import json_files
from codeprop.tokens import fim as fim_lib
from codeprop.tokens import tokenization

SEQUENCE_LENGTHS = (2048, 8192)
VALIDATION_EVERY = 100
"""1 in this many documents (by a hash of the id) is held out as ``validation``."""


class CodeVocabulary(seqio.SentencePieceVocabulary):
    """seqio's SentencePiece vocabulary with codeprop's end-of-text token as EOS.

    Padding is seqio's 0 (``<unk>`` in codeprop's models, which the tokenizer never
    produces), so padded positions can never be mistaken for text.
    """

    def __init__(self, model_file: str | os.PathLike):
        tokenization.quiet_sentencepiece()
        super().__init__(str(model_file))
        self._codeprop = tokenization.SentencePieceTokenizer(model_file)

    @property
    def eos_id(self) -> int:
        return self._codeprop.eos_id

    def sentinels(self) -> fim_lib.Sentinels:
        return fim_lib.Sentinels.from_vocab(self._codeprop.token_to_id)


SPLITS = ("train", "validation", "train_sample")
"""``train_sample``: a part of ``train`` (about as large as ``validation``) drawn like
``validation`` — by a hash of the id, not by file order — for comparing the two losses."""


def _split_of(doc_id: str, validation_every: int) -> str:
    digest = int(hashlib.md5(doc_id.encode()).hexdigest()[:8], 16)
    return "validation" if digest % validation_every == 0 else "train"


def training_sample_of(doc_id: str, validation_every: int) -> int | None:
    """Which of ``validation_every`` hash-drawn parts of ``train`` the document is in (0 is
    ``train_sample``), or None for a ``validation`` document. Other bits of the same
    digest than the validation draw, so the parts are drawn independently of it."""
    if _split_of(doc_id, validation_every) != "train":
        return None
    return int(hashlib.md5(doc_id.encode()).hexdigest()[8:16], 16) % validation_every


def _in_split(doc_id: str, split: str, validation_every: int) -> bool:
    """Whether the document ``doc_id`` belongs to ``split`` (one of `SPLITS`)."""
    if split == "train_sample":
        return training_sample_of(doc_id, validation_every) == 0
    return _split_of(doc_id, validation_every) == split


def kept_documents(
    corpus_dir, language: str, split: str, validation_every: int = VALIDATION_EVERY
) -> tf.data.Dataset:
    """The kept documents of one language and split (one of `SPLITS`) as a dataset of
    ``{"text", "id"}``, in the order of ``kept.jsonl``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; one of {SPLITS}")
    path = Path(corpus_dir) / "kept.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found (run python -m codeprop.corpus first)")

    def generate():
        with open(path, encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                if record["language"] == language and _in_split(
                    record["id"], split, validation_every
                ):
                    yield {"text": record["content"], "id": record["id"]}

    signature = {"text": tf.TensorSpec((), tf.string), "id": tf.TensorSpec((), tf.string)}
    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def _chars(text: tf.Tensor, start, length) -> tf.Tensor:
    return tf.strings.substr(text, start, length, unit="UTF8_CHAR")


@seqio.map_over_dataset(num_seeds=1)
def fim(features, seed, *, output_features, fim_rate: float = 0.5, spm_rate: float = 0.5):
    """Tokenizes ``features["text"]`` into ``targets``; with probability ``fim_rate`` as a
    fill-in-the-middle example (two uniform character positions cut the document; PSM, or
    SPM with probability ``spm_rate``). Deterministic for a given seed."""
    vocab = output_features["targets"].vocabulary
    sentinels = vocab.sentinels()
    text = features["text"]
    draws = tf.random.stateless_uniform([4], seed=seed)
    length = tf.strings.length(text, unit="UTF8_CHAR")
    cuts = tf.sort(tf.cast(draws[2:] * tf.cast(length + 1, tf.float32), tf.int32))
    cuts = tf.minimum(cuts, length)

    def as_fim():
        prefix = vocab.encode_tf(_chars(text, 0, cuts[0]))
        middle = vocab.encode_tf(_chars(text, cuts[0], cuts[1] - cuts[0]))
        suffix = vocab.encode_tf(_chars(text, cuts[1], length - cuts[1]))

        def token(i):
            return tf.constant([i], tf.int32)

        psm = tf.concat([token(sentinels.prefix), prefix, token(sentinels.suffix), suffix,
                         token(sentinels.middle), middle], 0)  # fmt: skip
        spm = tf.concat([token(sentinels.prefix), token(sentinels.suffix), suffix,
                         token(sentinels.middle), prefix, middle], 0)  # fmt: skip
        return tf.cond(draws[1] < spm_rate, lambda: spm, lambda: psm)

    targets = tf.cond(draws[0] < fim_rate, as_fim, lambda: vocab.encode_tf(text))
    return {"targets": tf.cast(targets, tf.int32), "id": features["id"]}


def split_to_length(dataset: tf.data.Dataset, sequence_length=None, output_features=None):
    """Splits each example's ``targets`` into consecutive pieces of at most the targets'
    sequence length (the last one shorter), in order, so that packing keeps every token of
    a long document instead of cutting it to its first piece. Without a sequence length the
    examples pass unchanged."""
    del output_features
    if not sequence_length or sequence_length.get("targets") is None:
        return dataset
    length = int(sequence_length["targets"])

    def pieces(example):
        targets = example["targets"]
        count = (tf.size(targets) + length - 1) // length

        def piece(i):
            return {**example, "targets": targets[i * length : (i + 1) * length]}

        return tf.data.Dataset.range(tf.cast(count, tf.int64)).map(
            lambda i: piece(tf.cast(i, tf.int32))
        )

    return dataset.flat_map(pieces)


def register_corpus(
    name: str,
    corpus_dir: str | os.PathLike,
    vocabulary_file: str | os.PathLike,
    *,
    fim_rate: float = 0.5,
    spm_rate: float = 0.5,
    validation_every: int = VALIDATION_EVERY,
) -> seqio.Mixture:
    """Registers a Task per language of ``corpus_dir/kept.jsonl`` and their Mixture.

    Returns:
      The Mixture ``name`` (rates: each language's tokens after filtering); its Tasks are
      ``<name>_<language>``. Registering a name again replaces it.
    """
    report = json_files.read_object(Path(corpus_dir) / "report.json")
    tokens = {r["language"]: r["tokens_after"] for r in report["languages"] if r["files_after"]}
    vocabulary = CodeVocabulary(vocabulary_file)
    features = {"targets": seqio.Feature(vocabulary, add_eos=True, dtype=tf.int32)}
    tasks = []
    for language in sorted(tokens):
        task_name = f"{name}_{language.replace('-', '_')}"
        seqio.TaskRegistry.remove(task_name)
        source = seqio.FunctionDataSource(
            functools.partial(_source_fn, corpus_dir, language, validation_every),
            splits=SPLITS,
        )
        seqio.TaskRegistry.add(
            task_name,
            source=source,
            preprocessors=[
                functools.partial(fim, fim_rate=fim_rate, spm_rate=spm_rate),
                seqio.preprocessors.append_eos,
                split_to_length,
            ],
            output_features=features,
        )
        tasks.append((task_name, tokens[language]))
    seqio.MixtureRegistry.remove(name)
    return seqio.MixtureRegistry.add(name, tasks)


def _source_fn(corpus_dir, language, validation_every, split, shuffle_files, seed=None):
    del shuffle_files, seed  # One file; examples are shuffled by the caller.
    return kept_documents(corpus_dir, language, split, validation_every)


def packed_dataset(
    name: str, sequence_length: int, split: str = "train", seed: int = 0, shuffle: bool = True
) -> tf.data.Dataset:
    """The Task or Mixture ``name`` packed into ``decoder_*`` features of one length."""
    return seqio.get_dataset(
        name,
        task_feature_lengths={"targets": sequence_length},
        dataset_split=split,
        shuffle=shuffle,
        seed=seed,
        feature_converter=seqio.LMFeatureConverter(pack=True),
    )
