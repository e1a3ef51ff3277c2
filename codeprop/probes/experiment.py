"""Graph-probe experiments end to end: benchmark -> graphs -> folds -> GNN -> report.

`run_graph_probe` is the entry point that gin configures (see ``gin/experiments/``) and
that notebooks call directly. It writes to ``workdir``:

  results.json     per-fold and aggregated metrics, data report, settings
  results.md       the same as Markdown tables, with published reference numbers
  embeddings.npz   test-set graph embeddings, labels and fold of every example
  metrics/         clu scalars (per-epoch losses and accuracies; TensorBoard format)
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pathlib
import time

import numpy as np
from absl import logging
from clu import metric_writers

from codeprop.data import benchmarks, devmap, splits
from codeprop.graphs import ast, compiler, llvm_ir, programl, transforms
from codeprop.models import gnn, rgcn
from codeprop.probes import graph_probe, report
from codeprop.train import metrics

PROTOCOLS = ("kfold", "holdout", "per_class_3_1_1")
REPRESENTATIONS = ("ast", "programl")
NODE_TEXTS = ("text", "statement")
DEFAULT_MAX_NODES = 50_000


def source_of(bench: benchmarks.Benchmark, example: dict, source_field: str | None) -> str:
    if source_field:
        return example[source_field]
    return example["normalized_source"] if bench.platform else example["text"]


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
        text = source_of(bench, ex, source_field)
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


def build_programl_graphs(
    bench: benchmarks.Benchmark,
    raw_dir: str | None = None,
    per_use: bool = True,
    max_nodes: int = DEFAULT_MAX_NODES,
    cache_dir: str | None = None,
    workers: int | None = None,
    statements: bool = False,
) -> dict:
    """ProGraML graphs of every example; identical inputs share a graph.

    devmap uses the IR ProGraML used (``kernels_ir/`` of the NCC zip, one file per row by
    devmap_index.csv's rule); POJ-104 programs are compiled with clang 22 and the fix-ups of
    `codeprop.graphs.compiler.Compiler.compile_poj104` (cached by content).

    With `statements`, the graphs also carry ``nodes["statement"]``
    (`codeprop.graphs.programl.ProgramGraph.statement_texts`).

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
        graphs.append(graph.to_graphs_tuple(statements))
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


def programl_inputs(graph, model: rgcn.RGCNConfig):
    """A ProGraML graph as the R-GCN consumes it: reverse edges as relations 3..5, sorted
    by receiver, with edge coefficients. Independent of the vocabulary."""
    graph = transforms.sort_edges_by_receiver(rgcn.add_reverse_edges(graph, programl.NUM_FLOWS))
    return rgcn.add_rgcn_norm(graph, model)


def aux_inputs_of(examples: list[dict], train: np.ndarray) -> np.ndarray:
    """[N, 2] log transfer and log work-group size, standardised on the training rows."""
    x = np.log1p(np.array([[e["transfer"], e["wgsize"]] for e in examples], np.float64))
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    return ((x - mean) / std).astype(np.float32)


def make_splits(labels, protocol: str, num_folds: int, seed: int) -> list[dict[str, np.ndarray]]:
    """The evaluation splits of a protocol (see `codeprop.data.splits`)."""
    if protocol == "kfold":
        return splits.kfold(labels, k=num_folds, seed=seed)
    if protocol == "holdout":
        return [splits.holdout(labels, (0.8, 0.1, 0.1), seed=seed)]
    if protocol == "per_class_3_1_1":
        return [splits.holdout(labels, (0.6, 0.2, 0.2), seed=seed)]
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


def run_graph_probe(
    *,
    workdir: str | os.PathLike,
    benchmark: str,
    model: gnn.GCNConfig | rgcn.RGCNConfig,
    train: graph_probe.TrainConfig,
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
) -> dict:
    """Runs a graph probe on a benchmark and writes its results to `workdir`.

    Args:
      workdir: output directory (created).
      benchmark: ``devmap/amd``, ``devmap/nvidia`` or ``poj104``.
      model: GNN hyperparameters: a `gnn.GCNConfig` for ``ast``, an `rgcn.RGCNConfig` for
        ``programl``.
      train: optimisation settings.
      representation: ``ast`` (tree-sitter AST + GCN) or ``programl`` (ProGraML graph of
        the LLVM IR + R-GCN).
      protocol: ``kfold`` (stratified, `num_folds`), ``holdout`` (80/10/10) or
        ``per_class_3_1_1`` (POJ-104's 3:1:1 per class).
      num_folds: folds for ``kfold``.
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

    Examples without a graph (a POJ-104 program that does not compile) are left out of
    every split and counted in the results (``data.graphs.examples_without_graph`` and
    each fold's ``test_without_graph``); accuracies are over the examples with a graph.

    Returns:
      The results dict also written to ``workdir/results.json``.
    """
    if representation not in REPRESENTATIONS:
        raise ValueError(f"unknown representation {representation!r}; one of {REPRESENTATIONS}")
    wanted = gnn.GCNConfig if representation == "ast" else rgcn.RGCNConfig
    if not isinstance(model, wanted):
        raise ValueError(f"representation {representation!r} takes a {wanted.__name__}")
    if node_texts not in NODE_TEXTS:
        raise ValueError(f"unknown node_texts {node_texts!r}; one of {NODE_TEXTS}")
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    bench = benchmarks.load(benchmark, raw_dir=raw_dir)
    labels = np.array(bench.labels, np.int32)
    if aux_inputs and not bench.platform:
        raise ValueError("aux_inputs are devmap's transfer and wgsize; not available for POJ-104")
    model = dataclasses.replace(model, num_aux=2 if aux_inputs else 0)
    if representation == "ast":
        built = build_ast_graphs(bench, source_field)
        # Edge selection, sorting and norms do not depend on the fold: done once.
        built["inputs"] = [model_inputs(g, model) for g in built["graphs"]]
        built["fast_paths"] = fast_paths(model, built["inputs"])
    else:
        built = build_programl_graphs(
            bench, raw_dir, per_use, max_nodes, cache_dir, statements=node_texts == "statement"
        )
        built["inputs"] = [programl_inputs(g, model) for g in built["graphs"]]
    built["representation"] = representation
    built["vocab_fields"] = ("statement", "text") if node_texts == "statement" else ("text",)
    built["vocab_min_count"] = vocab_min_count
    logging.info("graphs: %s", built["report"])
    fold_splits = make_splits(labels, protocol, num_folds, split_seed)[:max_folds]
    writer = metric_writers.create_default_writer(str(workdir / "metrics"), just_logging=False)
    folds, embeddings = [], []
    test_fold = np.full(len(labels), -1, np.int32)
    for i, split in enumerate(fold_splits):
        fold, test_embeddings = _run_fold(i, split, bench, built, model, train, aux_inputs, writer)
        folds.append(fold)
        tested = split["test"][built["graph_of"][split["test"]] >= 0]
        test_fold[tested] = i
        embeddings.append((tested, test_embeddings))
        logging.info("fold %d: %s", i, {k: fold[k] for k in ("accuracy", "f1", "best_epoch")})
    writer.flush()
    results = {
        "benchmark": benchmark,
        "representation": representation,
        "model": ("GCN" if representation == "ast" else "R-GCN")
        + (" + aux inputs" if aux_inputs else ""),
        "protocol": protocol,
        "num_folds_run": len(folds),
        "split_seed": split_seed,
        "settings": {
            "model": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(model).items()},
            "train": vars(train),
            "aux_inputs": aux_inputs,
            **({"node_texts": node_texts} if representation == "programl" else {}),
            "vocab_min_count": vocab_min_count,
        },
        "data": {"benchmark": bench.report, "graphs": built["report"]},
        "folds": folds,
        "aggregate": report.aggregate(folds),
    }
    write_results(workdir, results, embeddings, labels, test_fold)
    return results


def _run_fold(i, split, bench, built, model, train, aux_inputs, writer) -> tuple[dict, np.ndarray]:
    """Trains and tests one split; returns its metrics and the test rows' embeddings."""
    start = time.perf_counter()
    labels = np.array(bench.labels, np.int32)
    has_graph = built["graph_of"] >= 0
    without = int((~has_graph[split["test"]]).sum())
    split = {k: v[has_graph[v]] for k, v in split.items()}
    train_graphs = np.unique(built["graph_of"][split["train"]])
    if built["representation"] == "ast":
        vocab = ast.NodeTypeVocab.build(
            [built["graphs"][g] for g in train_graphs], built["language"], built["vocab_min_count"]
        )
        table = vocab.table(built["language"])
        graphs = [vocab.encode(g, table) for g in built["inputs"]]
        module = gnn.GCN(model, len(vocab), bench.num_classes, **built["fast_paths"])
    else:
        vocab = programl.NodeTextVocab.build(
            [built["graphs"][g] for g in train_graphs],
            built["vocab_min_count"],
            built["vocab_fields"],
        )
        graphs = [vocab.encode(g) for g in built["inputs"]]
        module = rgcn.RGCN(model, len(vocab), bench.num_classes, sorted_receivers=True)
    data = graph_probe.Examples(
        graphs=graphs,
        graph_of=built["graph_of"],
        labels=labels,
        aux=aux_inputs_of(bench.examples, split["train"]) if aux_inputs else None,
    )
    result = graph_probe.fit(
        module, data, split, train, writer=writer, step_offset=i * (train.epochs + 1)
    )
    fold = fold_record(i, split, bench, result, start)
    fold.update(test_without_graph=without, vocab_size=len(vocab))
    return fold, result["test_embeddings"]


def fold_record(
    i: int, split: dict, bench: benchmarks.Benchmark, result: dict, start: float
) -> dict:
    """One fold's sizes, model selection and test metrics (devmap: with speed-ups)."""
    labels = np.array(bench.labels, np.int32)
    predictions = result["test_logits"].argmax(-1)
    best = result["history"][result["best_epoch"] - 1]
    fold = {
        "fold": i,
        "train": len(split["train"]),
        "validation": len(split["validation"]),
        "test": len(split["test"]),
        "best_epoch": result["best_epoch"],
        "best_validation_accuracy": best.get("validation_accuracy", float("nan")),
        "num_params": gnn.num_params(result["params"]),
        **metrics.classification_metrics(labels[split["test"]], predictions, bench.num_classes),
        "seconds": round(time.perf_counter() - start, 2),
    }
    if bench.platform:
        test_examples = [bench.examples[j] for j in split["test"]]
        fold.update(devmap.speedup_over_static(predictions, test_examples, bench.platform))
    return fold


def write_results(workdir: pathlib.Path, results: dict, embeddings, labels, test_fold) -> None:
    """``results.json``, ``results.md`` and ``embeddings.npz`` (each example's test
    embedding, label and test fold; NaN rows for examples never tested)."""
    write_embeddings(workdir / "embeddings.npz", embeddings, labels, test_fold)
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    (workdir / "results.md").write_text(report.markdown(results))


def write_embeddings(path, embeddings, labels, test_fold) -> None:
    dim = embeddings[0][1].shape[1]
    table = np.full((len(labels), dim), np.nan, np.float32)
    for idx, emb in embeddings:
        table[idx] = emb
    np.savez_compressed(path, embeddings=table, labels=labels, test_fold=test_fold)
