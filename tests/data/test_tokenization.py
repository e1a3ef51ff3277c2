"""Byte and tokenizer.json tokenizers for the LLM probes."""

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from codeprop.data import fim, tokenization

from conftest import SMALL_C_PROGRAMS


def test_bytes_round_trip_and_specials_after_the_bytes():
    tok = tokenization.ByteTokenizer()
    text = "int main() { return 0; } // é"
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode("é")) == 2 and tok.vocab_size == 263
    assert (tok.eos_id, tok.pad_id) == (256, 262)
    sentinels = fim.Sentinels.from_vocab(tok.token_to_id)
    assert (sentinels.prefix, sentinels.middle, sentinels.suffix) == (257, 258, 259)


def test_tokenizer_json_file(tmp_path):
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(SMALL_C_PROGRAMS * 20, trainer)
    bpe.save(str(tmp_path / "tokenizer.json"))

    tok = tokenization.load(str(tmp_path))
    text = SMALL_C_PROGRAMS[0]
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < len(text.encode())  # merges learnt
    assert tok.pad_id == tok.token_to_id("<fim_pad>") and tok.eos_id == 0
    assert fim.Sentinels.from_vocab(tok.token_to_id).prefix == 1
    with pytest.raises(ValueError, match="no padding token"):
        tokenization.JsonTokenizer(tmp_path / "tokenizer.json", pad_token="<nope>")
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        tokenization.load(str(tmp_path / "missing"))
