"""Graph probes: benchmark -> AST or ProGraML graphs -> GCN or R-GCN, under the protocol.

`run_graph_probe` is the entry point that gin configures (``gin/runs/graph_probe.gin``,
``gin/experiments/*_ast_gcn.gin``, ``*_programl_rgcn.gin``) and that notebooks call
directly. It builds each distinct source's graph once (`build_ast_graphs`,
`build_programl_graphs`), then per fold the node vocabulary of the training graphs and the
GNN; splits, training, metrics and the result files are `codeprop.probes.protocol`'s.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time

import numpy as np
from absl import logging

from codeprop.data import benchmarks, devmap
from codeprop.graphs import ast, compiler, llvm_ir, programl, transforms
from codeprop.models import ggnn, gnn, rgcn
from codeprop.probes import protocol as protocol_lib
from codeprop.train import batchers, boosted_head, classifier, ensembles

REPRESENTATIONS = ("ast", "programl")
NODE_TEXTS = ("text", "statement")
DEFAULT_MAX_NODES = 50_000


def build_ast_graphs(bench: benchmarks.Benchmark, source_field: str | None = None) -> dict:
    """AST graphs of every example; identical sources are parsed once and share a graph.

    Returns:
      ``graphs`` (the distinct graphs), ``graph_of`` [num examples] (each example's graph),
      ``language`` and a report: examples, distinct sources, sources with parse errors,
      ERROR/MISSING nodes, node counts and build time.
    """
    language = "opencl" if bench.platform else "cpp"
    index: dict[str, int] = {}
    graphs, graph_of = [], []
    start = time.perf_counter()
    for ex in bench.examples:
        text = protocol_lib.source_of(bench, ex, source_field)
        if text not in index:
            index[text] = len(graphs)
            graphs.append(ast.ast_graph(text, language))
        graph_of.append(index[text])
    seconds = time.perf_counter() - start
    errors = np.array([int(g.globals["parse_errors"][0]) for g in graphs])
    nodes = np.array([int(g.n_node[0]) for g in graphs])
    return {
        "graphs": graphs,
        "graph_of": np.asarray(graph_of, np.int64),
        "language": language,
        "report": {
            "examples": len(graph_of),
            "distinct_sources": len(graphs),
            "sources_with_parse_errors": int((errors > 0).sum()),
            "error_or_missing_nodes": int(errors.sum()),
            "nodes_mean": round(float(nodes.mean()), 1),
            "nodes_max": int(nodes.max()),
            "build_seconds": round(seconds, 3),
        },
    }


def uses_tree(model: gnn.GCNConfig) -> bool:
    """Whether the GCN sees exactly the AST's tree (CHILD + PARENT edges): it then runs on
    parent pointers (`codeprop.models.gnn.tree_conv`), the same result for less work."""
    return set(model.edge_types) == {ast.CHILD, ast.PARENT}


def model_inputs(graph, model: gnn.GCNConfig):
    """An AST graph as the GCN consumes it: only the edges it uses (the CHILD edges alone
    in tree mode), sorted by receiver, with precomputed GCN norms. Independent of the
    node-type vocabulary: `NodeTypeVocab.encode` can come before or after."""
    graph = transforms.sort_edges_by_receiver(graph)
    if uses_tree(model):
        return gnn.add_tree_gcn_norm(graph, ast.CHILD)
    return gnn.add_gcn_norm(transforms.keep_edge_types(graph, model.edge_types), model.edge_types)


def fast_paths(model: gnn.GCNConfig, graphs) -> dict[str, bool]:
    """The `gnn.GCN` flags that `model_inputs` graphs allow: the fastest correct path."""
    tree = uses_tree(model)
    symmetric = not tree and all(is_symmetric(g) for g in graphs)
    return {"sorted_receivers": True, "symmetric": symmetric, "tree": tree}


def make_model(model: gnn.GCNConfig, graphs, vocab_size: int, num_classes: int) -> gnn.GCN:
    """The GCN for `model_inputs` graphs, with the fastest path their structure allows."""
    return gnn.GCN(model, vocab_size, num_classes, **fast_paths(model, graphs))


def is_symmetric(graph) -> bool:
    """Whether every edge (with its norm) has a reverse twin: an undirected graph."""
    norm = graph.edges.get("norm", np.ones(len(graph.senders)))
    forward = sorted(zip(graph.senders.tolist(), graph.receivers.tolist(), norm.tolist()))
    backward = sorted(zip(graph.receivers.tolist(), graph.senders.tolist(), norm.tolist()))
    return forward == backward


MODEL_NAMES = {gnn.GCNConfig: "GCN", rgcn.RGCNConfig: "R-GCN", ggnn.GGNNConfig: "GGNN"}

# Model settings added after runs were saved: left out of the settings (and so of the fold
# keys, `codeprop.probes.protocol.fold_key`) at their default, so those runs stay valid.
OMITTED_AT_DEFAULT = {"number_width": 0, "head_hidden": 0}


def build_programl_graphs(
    bench: benchmarks.Benchmark,
    raw_dir: str | None = None,
    per_use: bool = True,
    max_nodes: int = DEFAULT_MAX_NODES,
    cache_dir: str | None = None,
    workers: int | None = None,
    statements: bool = False,
    number_width: int = 0,
) -> dict:
    """ProGraML graphs of every example; identical inputs share a graph.

    devmap uses the IR ProGraML used (``kernels_ir/`` of the NCC zip, one file per row by
    devmap_index.csv's rule); POJ-104 programs are compiled with clang 22 and the fix-ups of
    `codeprop.graphs.compiler.Compiler.compile_poj104` (cached by content).

    With `statements`, the graphs also carry ``nodes["statement"]``
    (`codeprop.graphs.programl.ProgramGraph.statement_texts`); with `number_width` W,
    ``nodes["digits"]`` [N, W] (the constants' values, `codeprop.graphs.numbers`).

    Returns:
      ``graphs`` (distinct, numpy GraphsTuples with ``nodes["text"]``), ``graph_of``
      [num examples] (-1 for an example without a graph) and a report: how many inputs
      compiled (and by which fix-up), every failure counted by reason (compile error,
      timeout, memory limit, IR rejected, empty module, over `max_nodes`), and up to 20
      named examples per reason with their first error lines.
    """
    outcomes: collections.Counter = collections.Counter()
    attempts: collections.Counter = collections.Counter()
    failures: dict[str, dict[str, str]] = collections.defaultdict(dict)  # reason -> examples.
    start = time.perf_counter()
    if bench.platform:
        keys = [ex["ir_file"] for ex in bench.examples]
        names = {k: k for k in keys}
        distinct = list(dict.fromkeys(keys))
        texts = devmap.read_ir(distinct, raw_dir)
        compile_seconds = 0.0
    else:
        keys = [ex["text"] for ex in bench.examples]
        names = {}
        for ex in bench.examples:
            names.setdefault(ex["text"], f"program {ex['id']}")
        distinct = list(dict.fromkeys(keys))
        cc = compiler.Compiler(cache_dir)
        results = cc.compile_many(distinct, workers, compile_one=cc.compile_poj104)
        texts = {}
        for key, result in zip(distinct, results, strict=True):
            if result.ok:
                texts[key] = result.ir
                attempts[result.attempt.split(", guessed macros")[0]] += 1
                if "guessed macros" in result.attempt:
                    attempts["guessed macros"] += 1
            else:
                outcomes[result.reason] += 1
                message = result.errors[-1][1][:300] if result.errors else ""
                failures[result.reason][names[key]] = message
        compile_seconds = time.perf_counter() - start
    graph_start = time.perf_counter()
    index: dict[str, int] = {}
    graphs = []
    for key in distinct:
        if key not in texts:
            continue
        try:
            graph = programl.from_ir(texts[key], per_use=per_use)
        except llvm_ir.IRError as e:
            reason = "empty module" if "empty module" in str(e) else "IR rejected"
            outcomes[reason] += 1
            failures[reason][names[key]] = str(e)[:300]
            continue
        if graph.num_nodes > max_nodes:
            outcomes[f"over {max_nodes} nodes"] += 1
            continue
        index[key] = len(graphs)
        graphs.append(graph.to_graphs_tuple(statements, number_width))
        outcomes["graph"] += 1
    graph_of = np.array([index.get(k, -1) for k in keys], np.int64)
    nodes = np.array([int(g.n_node[0]) for g in graphs])
    edges = np.array([int(g.n_edge[0]) for g in graphs])
    return {
        "graphs": graphs,
        "graph_of": graph_of,
        "report": {
            "examples": len(keys),
            "examples_without_graph": int((graph_of < 0).sum()),
            "distinct_inputs": len(distinct),
            "outcomes": dict(outcomes),
            "compiled_by": dict(attempts),
            "failures": {  # Up to 20 examples per reason, with their first error lines.
                reason: dict(sorted(cases.items())[:20]) for reason, cases in failures.items()
            },
            "nodes_mean": round(float(nodes.mean()), 1) if len(nodes) else 0.0,
            "nodes_max": int(nodes.max()) if len(nodes) else 0,
            "edges_mean": round(float(edges.mean()), 1) if len(edges) else 0.0,
            "compile_seconds": round(compile_seconds, 1),
            "graph_seconds": round(time.perf_counter() - graph_start, 1),
        },
    }


def programl_inputs(graph, model: rgcn.RGCNConfig | ggnn.GGNNConfig):
    """A ProGraML graph as the R-GCN consumes it: reverse edges as relations 3..5, sorted
    by receiver, with edge coefficients. Independent of the vocabulary."""
    graph = transforms.sort_edges_by_receiver(rgcn.add_reverse_edges(graph, programl.NUM_FLOWS))
    return rgcn.add_rgcn_norm(graph, model)


def run_graph_probe(
    *,
    workdir: str | os.PathLike,
    benchmark: str,
    model: gnn.GCNConfig | rgcn.RGCNConfig | ggnn.GGNNConfig,
    train: classifier.TrainConfig,
    representation: str = "ast",
    protocol: str = "kfold",
    num_folds: int = 10,
    split_seed: int = 204,
    max_folds: int | None = None,
    aux_inputs: bool = False,
    source_field: str | None = None,
    per_use: bool = True,
    max_nodes: int = DEFAULT_MAX_NODES,
    node_texts: str = "text",
    vocab_min_count: int = 1,
    raw_dir: str | None = None,
    cache_dir: str | None = None,
    frozen: bool = False,
    ensemble: int = 1,
    tree_head: bool = False,
    tree_min_samples_leaf: int = 20,
    tree_combine: str = "best",
    tree_choose_on: str = "validation",
    checkpoint_every: float = 600.0,
) -> dict:
    """Runs a graph probe on a benchmark and writes its results to `workdir`.

    Args:
      workdir: output directory (created).
      benchmark: ``devmap/amd``, ``devmap/nvidia`` or ``poj104``.
      model: GNN hyperparameters: a `gnn.GCNConfig` for ``ast``; an `rgcn.RGCNConfig` (or a
        `ggnn.GGNNConfig`, ProGraML's own model) for
        ``programl``.
      train: optimisation settings.
      representation: ``ast`` (tree-sitter AST + GCN) or ``programl`` (ProGraML graph of
        the LLVM IR + R-GCN).
      protocol: ``kfold`` (stratified, `num_folds`), ``holdout`` (80/10/10),
        ``per_class_3_1_1`` (POJ-104's 3:1:1 per class) or ``grouped_kfold`` (devmap:
        `num_folds` folds of whole kernels, `codeprop.data.splits.grouped_kfold`).
      num_folds: folds for ``kfold`` and ``grouped_kfold``.
      split_seed: seed of the splits (fixed across models so results compare).
      max_folds: run only the first folds (quick checks); None runs all.
      aux_inputs: devmap only: feed log transfer and work-group size to the classifier.
      source_field: ``ast`` only: example field to parse (default: devmap
        ``normalized_source``, POJ-104 ``text``).
      per_use: ``programl`` only: a variable node per use (ProGraML) or per value.
      max_nodes: ``programl`` only: graphs above this many nodes are skipped (counted).
      node_texts: ``programl`` only: what a node's embedding is looked up by: ``text``
        (ProGraML's: opcode or type) or ``statement`` (the normalised full text,
        `codeprop.graphs.node_text`, backing off to ``text`` when rare).
      vocab_min_count: training-fold occurrences a text (a statement, with
        ``node_texts='statement'``) needs to enter the vocabulary.
      raw_dir: raw-data directory (else $CODEPROP_DATA_DIR, else download).
      cache_dir: compiled-IR cache (see `codeprop.graphs.compiler.Compiler`).
      frozen: the random-init baseline: the GNN keeps its initialisation (from
        ``train.seed``) and a linear head is trained on its embeddings
        (`codeprop.train.classifier.fit_frozen`); otherwise the GNN is trained.
      ensemble: models per fold, differing only in their seed (``train.seed + k``), their
        predicted probabilities averaged (`codeprop.train.ensembles`); 1: one model.
      tree_head: after training (its epoch chosen as usual), the trained GNN's graph
        embeddings of the fold's rows, with the auxiliary inputs when given, are read by
        gradient-boosted trees (`codeprop.train.classifier.read_by_boosted_head`, their
        setting chosen on the validation rows), which give the fold's predictions; the
        GNN's own head is then unused (its parameters still counted).
      tree_min_samples_leaf, tree_combine, tree_choose_on: the trees' fewest rows in a
        leaf, how their settings combine and where one is chosen, as in
        `codeprop.probes.features_probe.run_features_probe` (``tree_head`` only).
      checkpoint_every: least seconds of training between two saves of an unfinished
        fold's training state, from which the same command resumes it (0: every epoch).

    Examples without a graph (a POJ-104 program that does not compile) are left out of
    every split and counted in the results (``data.graphs.examples_without_graph`` and
    each fold's ``test_without_input``); accuracies are over the examples with a graph.

    Returns:
      The results dict also written to ``workdir/results.json``.
    """
    if representation not in REPRESENTATIONS:
        raise ValueError(f"unknown representation {representation!r}; one of {REPRESENTATIONS}")
    wanted = (gnn.GCNConfig,) if representation == "ast" else (rgcn.RGCNConfig, ggnn.GGNNConfig)
    if not isinstance(model, wanted):
        names = " or ".join(w.__name__ for w in wanted)
        raise ValueError(f"representation {representation!r} takes a {names}")
    if ensemble < 1:
        raise ValueError(f"ensemble must be at least 1, not {ensemble}")
    if tree_head and (frozen or ensemble > 1):
        raise ValueError("tree_head reads one trained GNN: not with frozen or an ensemble")
    tree_grid = boosted_head.probe_grid(
        boosted_head.GRID, tree_min_samples_leaf, tree_combine, tree_choose_on
    )
    if node_texts not in NODE_TEXTS:
        raise ValueError(f"unknown node_texts {node_texts!r}; one of {NODE_TEXTS}")
    bench = benchmarks.load(benchmark, raw_dir=raw_dir)
    protocol_lib.check_aux_inputs(bench, aux_inputs)
    model = dataclasses.replace(model, num_aux=2 if aux_inputs else 0)
    if representation == "ast":
        built = build_ast_graphs(bench, source_field)
        # Edge selection, sorting and norms do not depend on the fold: done once.
        built["inputs"] = [model_inputs(g, model) for g in built["graphs"]]
        built["fast_paths"] = fast_paths(model, built["inputs"])
    else:
        built = build_programl_graphs(
            bench,
            raw_dir,
            per_use,
            max_nodes,
            cache_dir,
            statements=node_texts == "statement",
            number_width=model.number_width,
        )
        built["inputs"] = [programl_inputs(g, model) for g in built["graphs"]]
    vocab_fields = ("statement", "text") if node_texts == "statement" else ("text",)
    logging.info("graphs: %s", built["report"])
    labels = np.array(bench.labels, np.int32)

    def fit_fold(split, aux, fit_kwargs):
        train_graphs = [built["graphs"][g] for g in np.unique(built["graph_of"][split["train"]])]
        if representation == "ast":
            vocab = ast.NodeTypeVocab.build(train_graphs, built["language"], vocab_min_count)
            table = vocab.table(built["language"])
            graphs = [vocab.encode(g, table) for g in built["inputs"]]
            module = gnn.GCN(model, len(vocab), bench.num_classes, **built["fast_paths"])
        else:
            vocab = programl.NodeTextVocab.build(train_graphs, vocab_min_count, vocab_fields)
            graphs = [vocab.encode(g) for g in built["inputs"]]
            kind = ggnn.GGNN if isinstance(model, ggnn.GGNNConfig) else rgcn.RGCN
            module = kind(model, len(vocab), bench.num_classes, sorted_receivers=True)
        data = batchers.Examples(graphs, built["graph_of"], labels, aux)
        fit = classifier.fit_frozen if frozen else classifier.fit
        if tree_head:
            trained = fit(module, data, split, train, **(fit_kwargs | {"embed_all": True}))
            result = classifier.read_by_boosted_head(
                trained["embeddings"],
                labels,
                aux,
                split,
                tree_grid,
                encoder_params=trained["num_params"],
                combine=tree_combine,
                choose_on=tree_choose_on,
            )
            result |= {
                "best_epoch": trained["best_epoch"],
                "history": trained["history"],
                "network_validation_accuracy": trained["best_validation_accuracy"],
            }
            return result, {"vocab_size": len(vocab)}
        if ensemble == 1:
            return fit(module, data, split, train, **fit_kwargs), {"vocab_size": len(vocab)}
        result = ensembles.fit_members(fit, module, data, split, train, ensemble, **fit_kwargs)
        return result, {"vocab_size": len(vocab), "members": result["members"]}

    settings = {
        "model": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in vars(model).items()
            if not (k in OMITTED_AT_DEFAULT and v == OMITTED_AT_DEFAULT[k])
        },
        **({"node_texts": node_texts} if representation == "programl" else {}),
        "vocab_min_count": vocab_min_count,
        "frozen": frozen,
        **({"ensemble": ensemble} if ensemble != 1 else {}),
        **({"tree_head": True} if tree_head else {}),
        # Recorded away from their defaults (the earlier tree-head runs' settings stand).
        **({"tree_min_samples_leaf": tree_min_samples_leaf} if tree_min_samples_leaf != 20 else {}),
        **({"tree_combine": tree_combine} if tree_combine != "best" else {}),
        **({"tree_choose_on": tree_choose_on} if tree_choose_on != "validation" else {}),
    }
    return protocol_lib.run(
        workdir=workdir,
        bench=bench,
        input_of=built["graph_of"],
        fit_fold=fit_fold,
        train=train,
        header={
            "representation": representation,
            "model": MODEL_NAMES[type(model)]
            + (" (random init, linear head)" if frozen else "")
            + (f", ensemble of {ensemble} seeds" if ensemble > 1 else "")
            + (", boosted-trees head on its embeddings" if tree_head else ""),
            "settings": settings,
            "data": {"graphs": built["report"]},
        },
        protocol=protocol,
        num_folds=num_folds,
        split_seed=split_seed,
        max_folds=max_folds,
        aux_inputs=aux_inputs,
        checkpoint_every=checkpoint_every,
    )
