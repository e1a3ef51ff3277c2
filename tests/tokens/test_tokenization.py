"""Byte and tokenizer.json tokenizers for the LLM probes."""

import json

import pytest

from codeprop.tokens import fim, tokenization

from conftest import SMALL_C_PROGRAMS, write_bpe_tokenizer


def test_bytes_round_trip_and_specials_after_the_bytes():
    tok = tokenization.ByteTokenizer()
    text = "int main() { return 0; } // é"
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode("é")) == 2 and tok.vocab_size == 263
    assert (tok.eos_id, tok.pad_id) == (256, 262)
    sentinels = fim.Sentinels.from_vocab(tok.token_to_id)
    assert (sentinels.prefix, sentinels.middle, sentinels.suffix) == (257, 258, 259)


def test_tokenizer_json_file(tmp_path):
    write_bpe_tokenizer(tmp_path)

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


@pytest.fixture(scope="module")
def code_corpus():
    from codeprop.corpus import sources

    docs, _ = sources.default_corpus(max_files_per_root=60)
    docs = [d for d in docs if d.content and d.language in ("python", "c")]
    return docs[::2], docs[1::2]  # train, held out


def test_sentencepiece_code_tokenizer(code_corpus, tmp_path):
    train, held_out = code_corpus
    model = tokenization.train_sentencepiece([d.content for d in train], vocab_size=3000)
    (tmp_path / "code.model").write_bytes(model)
    tok = tokenization.load(str(tmp_path / "code.model"))
    assert tok.vocab_size == 3000
    assert [tok.token_to_id(t) for t in tokenization.SPECIALS] == [1, 2, 3, 4, 5, 6]
    assert (tok.eos_id, tok.pad_id) == (1, 5)
    text = "def f(x):\n\tif x > 12345:\n        return 'é ✓ 漢'\n\n"
    ids = tok.encode(text)
    assert tok.decode(ids) == text  # exact: no normalisation, byte fallback for rare characters
    assert 0 not in ids  # never <unk>
    pieces = [tok.processor.id_to_piece(i) for i in tok.encode("x = 12345")]
    assert [p for p in pieces if p.isdigit()] == ["1", "2", "3", "4", "5"]  # digits split
    assert tok.decode(tok.encode("int a;") + tok.encode("\nint b;")) == "int a;\nint b;"
    table = tokenization.compression_table(
        [(d.language, d.content) for d in held_out], {"codeprop": tok, "gpt2": tokenization.gpt2()}
    )
    rows = {r["language"]: r for r in table}
    assert set(rows) == {"python", "c", "all"}
    assert rows["all"]["documents"] == len(held_out)
    for language in ("python", "c"):  # trained on code, it compresses code better than GPT-2
        assert rows[language]["codeprop"] > rows[language]["gpt2"] > 1.5


def test_gpt2_tokenizer_from_the_package():
    tok = tokenization.gpt2()
    assert tok.vocab_size == 50257 and tok.eos_id == 50256
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.decode(tok.encode("int main() {}")) == "int main() {}"


def test_tokenizer_command(tmp_path, capsys):
    from codeprop import main

    corpus = tmp_path / "kept.jsonl"
    rows = [{"language": "c", "content": p} for p in SMALL_C_PROGRAMS * 30]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert (
        main.tokenizer_main(
            ["--corpus", str(corpus), "--out", str(tmp_path / "tok"), "--vocab_size", "400"]
        )
        == 0
    )
    report = json.loads((tmp_path / "tok" / "compression.json").read_text())
    assert report["vocab_size"] == 400 and report["held_out_documents"] == len(rows) // 10
    assert "characters per token" in capsys.readouterr().out
