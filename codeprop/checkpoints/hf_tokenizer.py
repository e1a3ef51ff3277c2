"""codeprop's SentencePiece code tokenizer as Hugging Face tokenizer files.

``write(model, directory)`` writes ``tokenizer.json`` (a ``tokenizers`` BPE with the same
vocabulary, ids and special tokens), ``tokenizer_config.json`` and
``special_tokens_map.json``, so that stock ``transformers.AutoTokenizer`` loads the
tokenizer from the directory alone and encodes every text to the ids that
`codeprop.tokens.tokenization.SentencePieceTokenizer` gives.

How the SentencePiece model maps onto ``tokenizers``:

- vocabulary: every piece keeps its id; ``<unk>`` is id 0 (never produced: byte fallback);
- merges: a SentencePiece BPE model merges, at each step, the adjacent pair whose
  concatenation is the highest-scoring piece; its normal pieces are numbered in score
  order, so the merge ``(left, right)`` ranks by the id of ``left + right`` (then by the
  ids of its halves), for every split of every piece whose halves are pieces;
- whitespace: spaces become ``"▁"`` (SentencePiece escapes them even under identity
  normalisation); no dummy prefix, so nothing is prepended;
- digits: each its own pre-token (``split_digits``);
- `tokenization.SPECIALS`: special added tokens, matched whole in the raw text, as
  SentencePiece's user-defined symbols are;
- characters outside the vocabulary: UTF-8 byte pieces ``<0xNN>`` (``byte_fallback``).

Example::

    hf_tokenizer.write("workdir/code_lm/tokenizer/code.model", "workdir/code_lm/hf")
    AutoTokenizer.from_pretrained("workdir/code_lm/hf")("int main() {}")["input_ids"]
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from codeprop.tokens import tokenization

FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _merges(vocab: dict[str, int], normal: set[str]) -> list[tuple[str, str]]:
    """BPE merges [M] of the normal pieces, in SentencePiece's merge order."""
    ranked = []
    for piece in normal:
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in normal and right in normal:
                ranked.append((vocab[piece], vocab[left], vocab[right], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def build(model: str | os.PathLike | bytes):
    """The ``tokenizers.Tokenizer`` equal to the SentencePiece ``model`` (path or bytes)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers

    sp = tokenization.SentencePieceTokenizer(model).processor
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    if len(vocab) != sp.get_piece_size():
        raise ValueError(f"{model}: pieces are not unique")
    special = set(tokenization.SPECIALS)
    normal = {
        p
        for p, i in vocab.items()
        if not (sp.is_unknown(i) or sp.is_control(i) or sp.is_byte(i) or p in special)
    }
    bpe = models.BPE(
        vocab=vocab,
        merges=_merges(vocab, normal),
        unk_token=sp.id_to_piece(sp.unk_id()),
        byte_fallback=True,
        fuse_unk=True,
    )
    tokenizer = Tokenizer(bpe)
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.pre_tokenizer = pre_tokenizers.Digits(individual_digits=True)
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in tokenization.SPECIALS]
    )
    return tokenizer


def write(
    model: str | os.PathLike | bytes, directory: str | os.PathLike, max_length: int = 2048
) -> list[Path]:
    """Writes `FILES` for the SentencePiece ``model`` into ``directory``; returns them.

    ``max_length`` is the model's context (``model_max_length``).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build(model)
    tokenizer.save(str(out / FILES[0]))
    specials = {
        "eos_token": "<|endoftext|>",
        "bos_token": "<|endoftext|>",
        "unk_token": "<unk>",
        "pad_token": "<fim_pad>",
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_length,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "additional_special_tokens": [t for t in tokenization.SPECIALS if t != "<|endoftext|>"],
        **specials,
    }
    (out / FILES[1]).write_text(json.dumps(config, indent=2) + "\n")
    (out / FILES[2]).write_text(json.dumps(specials, indent=2) + "\n")
    return [out / f for f in FILES]
