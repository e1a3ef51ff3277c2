"""The learned quality scorer: a small codeprop decoder classifier trained on annotations.

CodeShell scored files with a model trained on quality annotations. Here the annotations
are a JSONL file of ``{"code": ..., "score": 0..5}`` lines (``content`` is accepted for
``code``); `RUBRIC` is the prompt template for producing them with any instruction-following
LLM (correctness, readability, security and value, summarised as one integer 0..5).
`train` fine-tunes a `codeprop.models.heads.DecoderClassifier` over the six scores with the
probe loop; `QualityScorer.score` gives each text's expected score, which the corpus
pipeline's ``learned_quality`` stage compares with a threshold.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
from flax import traverse_util
from safetensors.numpy import load_file, save_file

from codeprop.data import json_files
from codeprop.models import decoder as decoder_lib
from codeprop.models import heads
from codeprop.tokens import tokenization
from codeprop.train import batchers, classifier

NUM_SCORES = 6
RUBRIC = """You are reviewing source files for the training data of a code language model.
Rate the file below on four aspects and combine them into ONE integer from 0 to 5.

- Correctness: would it compile or run as written; is its logic plausible?
- Readability: meaningful names, consistent formatting, comments where they help.
- Security: no hard-coded secrets, no obviously unsafe patterns (injection, unchecked input).
- Value: does it teach something reusable (an algorithm, an API used well), rather than
  boilerplate, generated output, data or fragments?

5 = exemplary on all four; 4 = good with minor issues; 3 = acceptable; 2 = weak on two
aspects; 1 = mostly useless; 0 = not code, garbled, or harmful.

Language: {language}
Path: {path}
```
{code}
```
Answer with the integer only.
Score:"""


def rubric_prompt(code: str, language: str = "unknown", path: str = "") -> str:
    """The annotation prompt for one file."""
    return RUBRIC.format(code=code, language=language, path=path)


def read_annotations(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """(codes, [N] int scores) of an annotations JSONL file; a bad line is an error naming
    the file and the line."""
    codes, scores = [], []
    for number, record in json_files.lines(path, ValueError):
        code, score = record.get("code", record.get("content")), record.get("score")
        if not isinstance(code, str) or type(score) is not int or not 0 <= score <= 5:
            raise ValueError(
                f"{path}:{number}: needs a string 'code' and an integer 'score' from 0 to 5"
            )
        codes.append(code)
        scores.append(score)
    return codes, np.asarray(scores, np.int32)


@dataclasses.dataclass(frozen=True)
class ScorerConfig:
    """The scorer's model and training.

    Attributes:
      decoder: the decoder (default: a 2-layer, 64-wide byte-level model).
      tokenizer: `codeprop.tokens.tokenization.load` spec.
      max_tokens: tokens read per file (its beginning).
      epochs, batch_size, learning_rate, seed: the probe loop's settings.
      selection: which epoch's parameters are kept (`classifier.TrainConfig.selection`);
        the lowest validation loss by default, since the scorer's output is an expected
        score (exact-class accuracy on a few validation files ties across many epochs).
    """

    decoder: decoder_lib.DecoderConfig = decoder_lib.tiny(vocab_size=263).replace(
        embed_dim=64, mlp_dim=256, num_layers=2
    )
    tokenizer: str = "bytes"
    max_tokens: int = 512
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 2e-3
    seed: int = 0
    selection: str = "loss"


class QualityScorer:
    """A trained scorer: `score` texts -> [N] expected scores in [0, 5]."""

    def __init__(self, config: ScorerConfig, params):
        self.config, self.params = config, params
        self.tokenizer = tokenization.load(config.tokenizer)
        self.model = heads.DecoderClassifier(
            config.decoder, NUM_SCORES, pad_id=self.tokenizer.pad_id, pooling="mean"
        )
        self._logits = jax.jit(lambda p, t: self.model.apply({"params": p}, t))

    def score(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        tokens = [
            self.tokenizer.encode(t)[: self.config.max_tokens] or [self.tokenizer.pad_id]
            for t in texts
        ]
        width = max(map(len, tokens))
        out = []
        for start in range(0, len(tokens), batch_size):
            batch = np.full((batch_size, width), self.tokenizer.pad_id, np.int32)
            chunk = tokens[start : start + batch_size]
            for row, ids in enumerate(chunk):
                batch[row, : len(ids)] = ids
            probs = jax.nn.softmax(self._logits(self.params, batch), axis=-1)
            out.append(np.asarray(probs @ np.arange(NUM_SCORES, dtype=np.float32))[: len(chunk)])
        return np.concatenate(out)

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        flat = {
            "/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(self.params).items()
        }
        save_file(flat, str(path / "scorer.safetensors"))
        settings = dataclasses.asdict(self.config)
        (path / "scorer.json").write_text(json.dumps(settings, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> QualityScorer:
        path = Path(path)
        settings = json_files.read_object(path / "scorer.json", ValueError)
        try:
            config = ScorerConfig(
                **{**settings, "decoder": decoder_lib.DecoderConfig(**settings["decoder"])}
            )
        except (TypeError, KeyError, ValueError) as error:
            raise ValueError(
                f"{path / 'scorer.json'}: not a scorer's settings ({type(error).__name__}: {error})"
            ) from None
        try:
            flat = load_file(str(path / "scorer.safetensors"))
        except Exception as error:  # noqa: BLE001 - safetensors' errors have no common base
            raise ValueError(
                f"{path / 'scorer.safetensors'}: not a readable safetensors file ({error})"
            ) from None
        params = traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})
        return cls(config, params)


def train(
    codes: Sequence[str], scores: np.ndarray, config: ScorerConfig = ScorerConfig()
) -> QualityScorer:
    """Fine-tunes the scorer on annotated files (every 10th file validates, for model
    selection, when there are at least 20)."""
    tokenizer = tokenization.load(config.tokenizer)
    seqs = [
        np.asarray(tokenizer.encode(c)[: config.max_tokens] or [tokenizer.pad_id], np.int32)
        for c in codes
    ]
    data = batchers.Examples.one_input_per_row(seqs, np.asarray(scores, np.int32))
    rows = np.arange(len(codes))
    held = rows[::10] if len(rows) >= 20 else rows
    split = {
        "train": np.setdiff1d(rows, held) if len(rows) >= 20 else rows,
        "validation": held,
        "test": rows,
    }
    model = heads.DecoderClassifier(
        config.decoder, NUM_SCORES, pad_id=tokenizer.pad_id, pooling="mean"
    )
    batcher = batchers.SequenceBatcher.for_data(data, config.batch_size, tokenizer.pad_id)
    settings = classifier.TrainConfig(
        epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
        seed=config.seed, schedule="cosine", selection=config.selection,
    )  # fmt: skip
    result = classifier.fit(model, data, split, settings, batcher=batcher)
    return QualityScorer(config, result["params"])
