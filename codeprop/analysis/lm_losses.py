r"""Is a pretrained decoder's gap between training and held-out loss more than chance?

A language's held-out documents (1 in ``validation_every`` by a hash of their id) are a
few dozen files; their mean loss moves with which files they are. This scores, per
language, every held-out document and the documents of several hash-drawn parts of the
training split of the same size (`codeprop.train.input_pipeline.training_sample_of`; part
0 is the code LM report's ``train_sample``), each document left to right (no FIM), cut
into pieces of the sequence length as in pretraining. Per sample: the token-weighted mean
loss and a 95% bootstrap interval over its documents. When the held-out mean lies among
the training samples' means, the gap is the sampling of documents, not overfitting or a
pipeline fault.

    python -m codeprop.analysis.lm_losses --workdir workdir/code_lm --samples 4

(a `codeprop.recipes.code_lm` workdir: ``corpus/``, ``tokenizer/code.model``, the
pretraining checkpoints in ``run/`` and the gin config's model in ``hf/config.json``).
Writes ``<workdir>/loss_samples.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from codeprop.data import json_files
from codeprop.models import decoder


def pieces(tokens: list[int], seq_len: int) -> list[list[int]]:
    """A document's tokens (end of text included) cut into consecutive pieces of at most
    ``seq_len`` tokens, as pretraining's `input_pipeline.split_to_length` cuts them."""
    return [tokens[i : i + seq_len] for i in range(0, len(tokens), seq_len)]


@functools.partial(jax.jit, static_argnames="model")
def _token_losses(params, inputs, targets, *, model):
    """[B, T] next-token cross-entropy of ``targets`` after ``inputs``."""
    logits = model.apply({"params": params}, inputs)  # [B, T, V]
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]


def document_losses(
    config: decoder.DecoderConfig,
    params,
    documents: list[list[int]],
    seq_len: int,
    batch_size: int = 8,
) -> np.ndarray:
    """[N, 2] (summed loss in nats, tokens) of each tokenized document.

    Each piece is a sequence of its own, its input the piece shifted right after a 0 (the
    start of a segment in pretraining's packed rows); every target token is counted.
    """
    model = decoder.Decoder(config)
    rows = [(d, piece) for d, doc in enumerate(documents) for piece in pieces(doc, seq_len)]
    out = np.zeros((len(documents), 2))
    for first in range(0, len(rows), batch_size):
        chunk = rows[first : first + batch_size]
        targets = np.zeros((batch_size, seq_len), np.int32)
        weights = np.zeros((batch_size, seq_len))
        for r, (_, piece) in enumerate(chunk):
            targets[r, : len(piece)] = piece
            weights[r, : len(piece)] = 1.0
        inputs = np.concatenate([np.zeros((batch_size, 1), np.int32), targets[:, :-1]], 1)
        losses = np.asarray(_token_losses(params, inputs, targets, model=model))
        for r, (d, _) in enumerate(chunk):
            out[d] += (float((losses[r] * weights[r]).sum()), float(weights[r].sum()))
    return out


def bootstrap_interval(
    per_document: np.ndarray, draws: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of the token-weighted mean loss, resampling documents ([N, 2] rows of
    (summed loss, tokens)) with replacement."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(per_document), (draws, len(per_document)))
    sums, counts = per_document[picks, 0].sum(1), per_document[picks, 1].sum(1)
    low, high = np.percentile(sums / counts, [2.5, 97.5])
    return float(low), float(high)


def summarize(per_document: np.ndarray) -> dict:
    """Mean loss, tokens, documents and the bootstrap interval of one sample."""
    if len(per_document) == 0:
        return {"loss": None, "tokens": 0, "documents": 0, "interval": None}
    return {
        "loss": float(per_document[:, 0].sum() / per_document[:, 1].sum()),
        "tokens": int(per_document[:, 1].sum()),
        "documents": len(per_document),
        "interval": bootstrap_interval(per_document),
    }


def run(workdir: str | pathlib.Path, samples: int = 4, seq_len: int = 512) -> dict:
    """``{language: {"validation": summary, "train_0": summary, ...}}`` (see `summarize`)
    for a code LM workdir; also written to ``<workdir>/loss_samples.json``."""
    from codeprop.checkpoints import hf_config
    from codeprop.tokens import tokenization
    from codeprop.train import checkpointing, input_pipeline

    root = pathlib.Path(workdir)
    config_file = root / "hf" / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file}: not found (a finished code LM run's export)")
    _, config = hf_config.from_hf(json_files.read_object(config_file, hf_config.ConfigError))
    _, params = checkpointing.load_params(root / "run")
    tokenizer = tokenization.SentencePieceTokenizer(root / "tokenizer" / "code.model")
    groups: dict[tuple[str, str], list[list[int]]] = {}
    for _, record in json_files.lines(root / "corpus" / "kept.jsonl"):
        part = input_pipeline.training_sample_of(record["id"], input_pipeline.VALIDATION_EVERY)
        if part is None:
            name = "validation"
        elif part < samples:
            name = f"train_{part}"
        else:
            continue
        tokens = tokenizer.encode(record["content"]) + [tokenizer.eos_id]
        groups.setdefault((record["language"], name), []).append(tokens)
    result: dict[str, dict] = {}
    for language, name in sorted(groups):
        per_document = document_losses(config, params, groups[language, name], seq_len)
        result.setdefault(language, {})[name] = summarize(per_document)
    (root / "loss_samples.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def markdown(result: dict) -> str:
    """One row per language and sample: mean loss [95% interval], documents, tokens."""
    lines = [
        "| language | sample | loss (nats/token) [95% interval] | documents | tokens |",
        "|---|---|---|---|---|",
    ]
    for language, named in result.items():
        for name, s in sorted(named.items(), key=lambda kv: (kv[0] != "validation", kv[0])):
            low, high = s["interval"]
            lines.append(
                f"| {language} | {name} | {s['loss']:.2f} [{low:.2f}, {high:.2f}] "
                f"| {s['documents']:,} | {s['tokens']:,} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="a code LM run's workdir")
    parser.add_argument("--samples", type=int, default=4, help="training samples to score")
    parser.add_argument("--seq_len", type=int, default=512)
    args = parser.parse_args(argv)
    print(markdown(run(args.workdir, args.samples, args.seq_len)), end="")


if __name__ == "__main__":
    main()
