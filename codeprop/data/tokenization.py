"""Text tokenizers for the LLM probes: bytes (always available) or a tokenizer.json.

- `ByteTokenizer`: UTF-8 bytes 0..255 plus special tokens after them; needs no files, so
  a decoder trained from scratch can probe any machine's data.
- `JsonTokenizer`: a Hugging Face ``tokenizer.json`` (the file public checkpoints ship),
  run by the ``tokenizers`` library.

Both expose ``encode(text) -> list[int]``, ``decode(ids) -> str``, ``vocab_size``,
``pad_id`` and ``token_to_id(token)``.
"""

from __future__ import annotations

import os
from pathlib import Path

SPECIALS = (
    "<|endoftext|>",
    "<fim_prefix>",
    "<fim_middle>",
    "<fim_suffix>",
    "<fim_pad>",
    "<filename>",
    "<pad>",
)


class ByteTokenizer:
    """UTF-8 bytes as tokens 0..255; `SPECIALS` are 256 onwards (``<pad>`` last)."""

    def __init__(self):
        self.specials = {token: 256 + i for i, token in enumerate(SPECIALS)}
        self.vocab_size = 256 + len(SPECIALS)
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
        self.tokenizer = Tokenizer.from_file(str(path))
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


def load(spec: str = "bytes"):
    """``'bytes'`` or the path of a tokenizer.json (or of a directory holding one)."""
    return ByteTokenizer() if spec == "bytes" else JsonTokenizer(spec)
