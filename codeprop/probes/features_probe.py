"""Bag-of-features baselines: histograms of AST node types or of tokens, linear head.

`run_features_probe` is the comparison's floor: no structure, no learned encoder. Each
program becomes ``log(1 + count)`` of every named AST node type of the language's grammar
(`codeprop.graphs.ast.NodeTypeVocab.of_grammar`: the same columns in every fold) or of
every token id of a tokenizer, and a logistic-regression head
(`codeprop.train.classifier.read_by_linear_head`, its L2 strength chosen on validation
rows) reads it. Splits, metrics and result files are
`codeprop.probes.protocol`'s, the same as every other probe's; the histogram is the
embedding written to ``embeddings.npz``.
"""

from __future__ import annotations

import os

import numpy as np

from codeprop.data import benchmarks
from codeprop.graphs import ast
from codeprop.probes import graph_probe, llm_probe
from codeprop.probes import protocol as protocol_lib
from codeprop.tokens import tokenization
from codeprop.train import classifier, linear_head

FEATURES = ("ast_node_types", "tokens")
UNTRUNCATED = 1 << 62
"""Token histograms count the whole source."""


def node_type_histograms(graphs, vocab: ast.NodeTypeVocab, language: str) -> np.ndarray:
    """[G, V] counts of each vocabulary node type in each AST graph."""
    table = vocab.table(language)
    return np.stack([np.bincount(table[g.nodes["kind"]], minlength=len(vocab)) for g in graphs])


def run_features_probe(
    *,
    workdir: str | os.PathLike,
    benchmark: str,
    features: str = "ast_node_types",
    tokenizer: str = "bytes",
    protocol: str = "kfold",
    num_folds: int = 10,
    split_seed: int = 204,
    max_folds: int | None = None,
    aux_inputs: bool = False,
    source_field: str | None = None,
    regularisations: tuple[float, ...] = linear_head.REGULARISATIONS,
    raw_dir: str | None = None,
) -> dict:
    """Trains a linear head on histogram features of a benchmark; writes the results.

    Args:
      workdir: output directory (created).
      benchmark: ``devmap/amd``, ``devmap/nvidia`` or ``poj104``.
      features: ``ast_node_types`` (the grammar's named node types) or ``tokens`` (ids of
        `tokenizer`).
      tokenizer: ``'bytes'`` or a tokenizer.json / SentencePiece path (``tokens`` only).
      regularisations: the grid of the head's ``C`` (chosen on validation rows).
      protocol, num_folds, split_seed, max_folds, aux_inputs, source_field, raw_dir: as in
        `codeprop.probes.graph_probe.run_graph_probe`.

    Returns:
      The results dict also written to ``workdir/results.json``.
    """
    if features not in FEATURES:
        raise ValueError(f"unknown features {features!r}; one of {FEATURES}")
    bench = benchmarks.load(benchmark, raw_dir=raw_dir)
    protocol_lib.check_aux_inputs(bench, aux_inputs)
    labels = np.array(bench.labels, np.int32)
    if features == "ast_node_types":
        built = graph_probe.build_ast_graphs(bench, source_field)
        vocab = ast.NodeTypeVocab.of_grammar(built["language"])
        counts = node_type_histograms(built["graphs"], vocab, built["language"])
        input_of, data_report = built["graph_of"], {"graphs": built["report"]}
    else:
        tok = tokenization.load(tokenizer)
        built = llm_probe.tokenize_benchmark(
            bench, tok, UNTRUNCATED, lambda b, e: protocol_lib.source_of(b, e, source_field)
        )
        input_of = built["input_of"]
        counts = np.stack([np.bincount(s, minlength=tok.vocab_size) for s in built["sequences"]])
        data_report = {"sequences": built["report"] | {"vocab": tok.vocab_size}}

    def fit_fold(split, aux, fit_kwargs):
        rows, _ = linear_head.concatenated(split)
        embeddings = np.log1p(counts[input_of[rows]]).astype(np.float32)  # [n, V]
        result = classifier.read_by_linear_head(embeddings, labels, aux, split, regularisations)
        return result, {"vocab_size": counts.shape[1]}

    return protocol_lib.run(
        workdir=workdir,
        bench=bench,
        input_of=input_of,
        fit_fold=fit_fold,
        train=classifier.TrainConfig(epochs=0),
        header={
            "representation": "ast" if features == "ast_node_types" else "tokens",
            "model": f"bag of {features.replace('_', ' ')} (linear head)",
            "settings": {
                "features": features,
                "tokenizer": tokenizer if features == "tokens" else None,
                "regularisations": list(regularisations),
            },
            "data": data_report,
        },
        protocol=protocol,
        num_folds=num_folds,
        split_seed=split_seed,
        max_folds=max_folds,
        aux_inputs=aux_inputs,
    )
