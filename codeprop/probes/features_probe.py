"""Bag-of-features baselines: histograms of AST node types or of tokens, linear head.

`run_features_probe` is the comparison's floor: no structure, no learned encoder. Each
program becomes ``log(1 + count)`` of every named AST node type of the language's grammar
(`codeprop.graphs.ast.NodeTypeVocab.of_grammar`: the same columns in every fold) or of
every token id of a tokenizer, and a logistic-regression head
(`codeprop.train.classifier.read_by_linear_head`, its L2 strength chosen on validation
rows) reads it. Splits, metrics and result files are
`codeprop.probes.protocol`'s, the same as every other probe's; the histogram is the
embedding written to ``embeddings.npz``.

``head = 'boosted_trees'`` reads the same features with gradient-boosted trees
(`codeprop.train.boosted_head`, their settings chosen on validation rows), and
``features = 'none'`` leaves only devmap's auxiliary inputs (the floor of what a program
representation adds to them); ``'static_features'`` are devmap's hand-counted kernel
features and Grewe et al.'s ratios of them (`codeprop.data.devmap.static_features`); kinds
joined by ``+`` (``'static_features+programl_node_texts'``) read side by side.
"""

from __future__ import annotations

import os

import numpy as np

from codeprop.data import benchmarks, devmap
from codeprop.graphs import ast, programl
from codeprop.probes import graph_probe, llm_probe
from codeprop.probes import protocol as protocol_lib
from codeprop.tokens import tokenization
from codeprop.train import boosted_head, classifier, linear_head

REPRESENTATIONS = {
    "ast_node_types": "ast",
    "tokens": "tokens",
    "programl_node_texts": "programl",
    "static_features": "static",
    "none": "none",
}
"""Each kind of features and the representation its results name."""
DESCRIPTIONS = {
    "ast_node_types": "bag of ast node types",
    "tokens": "bag of tokens",
    "programl_node_texts": "bag of programl node texts",
    "static_features": "static features",
    "none": "no program features",
}
"""Each kind of features as the results' model names it."""
FEATURES = tuple(REPRESENTATIONS)
HEADS = ("linear", "boosted_trees")
UNTRUNCATED = 1 << 62
"""Token histograms count the whole source."""


def node_type_histograms(graphs, vocab: ast.NodeTypeVocab, language: str) -> np.ndarray:
    """[G, V] counts of each vocabulary node type in each AST graph."""
    table = vocab.table(language)
    return np.stack([np.bincount(table[g.nodes["kind"]], minlength=len(vocab)) for g in graphs])


def node_text_histograms(graphs) -> tuple[np.ndarray, programl.NodeTextVocab]:
    """[G, V] counts of each ProGraML node text (opcode or type) in each graph, over the
    texts of all `graphs` (a text that no training graph holds is a column of zeros there:
    neither head can use it, so the columns need no fold of their own)."""
    vocab = programl.NodeTextVocab.build(graphs)
    counts = np.zeros((len(graphs), len(vocab)), np.int64)
    for i, g in enumerate(graphs):
        counts[i] = np.bincount(vocab.ids(g.nodes["text"].tolist()), minlength=len(vocab))
    return counts, vocab


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
    head: str = "linear",
    tree_grid: tuple[dict, ...] = boosted_head.GRID,
    tree_min_samples_leaf: int = 20,
    tree_combine: str = "best",
    tree_choose_on: str = "validation",
    raw_dir: str | None = None,
) -> dict:
    """Trains a linear or boosted-trees head on histogram features of a benchmark (and the
    auxiliary inputs, when given); writes the results.

    Args:
      workdir: output directory (created).
      benchmark: ``devmap/amd``, ``devmap/nvidia`` or ``poj104``.
      features: ``ast_node_types`` (the grammar's named node types), ``tokens`` (ids of
        `tokenizer`), ``programl_node_texts`` (opcodes and types of the ProGraML graph's
        nodes, `node_text_histograms`), ``static_features`` (devmap's six static counts
        and Grewe et al.'s four ratios, `codeprop.data.devmap.static_features`) or
        ``none`` (no program features: the auxiliary inputs alone, which it requires; the
        embedding is then empty, [N, 0]); or several kinds but ``none`` joined by ``+``,
        their columns side by side (an example without one kind's input, e.g. a kernel
        that did not compile, is without input for all).
      tokenizer: ``'bytes'`` or a tokenizer.json / SentencePiece path (``tokens`` only).
      regularisations: the grid of the linear head's ``C`` (chosen on validation rows).
      head: ``linear`` (logistic regression) or ``boosted_trees``
        (`codeprop.train.boosted_head`).
      tree_grid: the boosted trees' settings (chosen on validation rows).
      tree_min_samples_leaf: the fewest training rows in a leaf, in every setting of
        `tree_grid`, overriding theirs (scikit-learn's default 20; devmap has about 2.7
        rows a kernel, so a leaf of 20 spans several kernels).
      tree_combine: ``best`` (the setting of `tree_grid` with the best validation accuracy)
        or ``mean`` (all of them, their probabilities averaged; `boosted_head`).
      tree_choose_on: where ``best`` chooses: ``validation`` (the validation rows) or
        ``training_holdout`` (a ninth of the training rows, so that the validation
        accuracy is unbiased for a sweep's choice among runs; `boosted_head`).
      protocol, num_folds, split_seed, max_folds, aux_inputs, source_field, raw_dir: as in
        `codeprop.probes.graph_probe.run_graph_probe`.

    Returns:
      The results dict also written to ``workdir/results.json``.
    """
    parts = features.split("+")
    for part in parts:
        if part not in FEATURES or (part == "none" and len(parts) > 1):
            raise ValueError(
                f"unknown features {features!r}: one of {FEATURES}, or several of them but "
                "'none' joined by '+'"
            )
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; one of {HEADS}")
    if features == "none" and not aux_inputs:
        raise ValueError("features = 'none' reads the auxiliary inputs alone: set aux_inputs")
    tree_grid = boosted_head.probe_grid(
        tree_grid, tree_min_samples_leaf, tree_combine, tree_choose_on
    )
    bench = benchmarks.load(benchmark, raw_dir=raw_dir)
    protocol_lib.check_aux_inputs(bench, aux_inputs)
    labels = np.array(bench.labels, np.int32)
    built = [_features_of(part, bench, tokenizer, source_field, raw_dir) for part in parts]
    if len(built) == 1:
        counts, input_of, data_report = built[0]
    else:
        # Side by side per example; an example lacking one kind's input lacks them all.
        input_of = np.where(np.all([b[1] >= 0 for b in built], 0), np.arange(len(labels)), -1)
        counts = np.concatenate([np.where(b[1][:, None] >= 0, b[0][b[1]], 0) for b in built], 1)
        data_report = {
            f"{part}.{section}": values
            for part, b in zip(parts, built, strict=True)
            for section, values in b[2].items()
        }
    vocab_size = counts.shape[1]

    def fit_fold(split, aux, fit_kwargs):
        rows, _ = linear_head.concatenated(split)
        embeddings = np.log1p(counts[input_of[rows]]).astype(np.float32)  # [n, V]
        if head == "linear":
            result = classifier.read_by_linear_head(embeddings, labels, aux, split, regularisations)
        else:
            result = classifier.read_by_boosted_head(
                embeddings,
                labels,
                aux,
                split,
                tree_grid,
                combine=tree_combine,
                choose_on=tree_choose_on,
            )
        return result, {"vocab_size": vocab_size}

    return protocol_lib.run(
        workdir=workdir,
        bench=bench,
        input_of=input_of,
        fit_fold=fit_fold,
        train=classifier.TrainConfig(epochs=0),
        header={
            "representation": "+".join(REPRESENTATIONS[part] for part in parts),
            "model": " + ".join(DESCRIPTIONS[part] for part in parts)
            + f" ({head.replace('_', ' ')} head)",
            "settings": {
                "features": features,
                "tokenizer": tokenizer if "tokens" in parts else None,
                "regularisations": list(regularisations),
            }
            | (
                {
                    "head": head,
                    "tree_grid": list(tree_grid),
                    "tree_combine": tree_combine,
                    "tree_choose_on": tree_choose_on,
                }
                if head != "linear"
                else {}
            ),
            "data": data_report,
        },
        protocol=protocol,
        num_folds=num_folds,
        split_seed=split_seed,
        max_folds=max_folds,
        aux_inputs=aux_inputs,
    )


def _features_of(
    kind: str, bench: benchmarks.Benchmark, tokenizer: str, source_field, raw_dir
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(counts [M, V], input_of [N] (row of counts, -1 for an example without one), data
    report) of one kind of features (`run_features_probe`'s ``features``)."""
    n = len(bench.examples)
    if kind == "none":
        return np.zeros((n, 0), np.float64), np.arange(n), {}
    if kind == "static_features":
        if not bench.platform:
            raise ValueError("static_features are devmap's CSV columns; POJ-104 has none")
        columns = [*devmap.STATIC_FEATURES, *devmap.GREWE_FEATURES]
        report = {"static_features": {"columns": columns, "rows": n}}
        return devmap.static_features(bench.examples), np.arange(n), report
    if kind == "programl_node_texts":
        built = graph_probe.build_programl_graphs(bench, raw_dir)
        counts, _ = node_text_histograms(built["graphs"])
        return counts, built["graph_of"], {"graphs": built["report"]}
    if kind == "ast_node_types":
        built = graph_probe.build_ast_graphs(bench, source_field)
        vocab = ast.NodeTypeVocab.of_grammar(built["language"])
        counts = node_type_histograms(built["graphs"], vocab, built["language"])
        return counts, built["graph_of"], {"graphs": built["report"]}
    tok = tokenization.load(tokenizer)
    built = llm_probe.tokenize_benchmark(
        bench, tok, UNTRUNCATED, lambda b, e: protocol_lib.source_of(b, e, source_field)
    )
    counts = np.stack([np.bincount(s, minlength=tok.vocab_size) for s in built["sequences"]])
    return counts, built["input_of"], {"sequences": built["report"] | {"vocab": tok.vocab_size}}
